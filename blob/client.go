// Package blob is a REST client for the Azure Blob service: it signs its own
// requests, retries what is safe to retry, and turns service errors into
// typed Go errors. It knows nothing about FUSE.
package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// APIVersion is the x-ms-version sent on every request.
const APIVersion = "2025-01-05"

// Options tune a Client. Zero values take the defaults.
type Options struct {
	// Transport sends the requests; nil means a tuned http.Transport.
	Transport http.RoundTripper
	// Retry governs retries of transient failures.
	Retry RetryPolicy
	// Log receives one line per failed call; nil logs nowhere.
	Log logrus.FieldLogger
	// Observer, when set, is told about every attempt (for metrics).
	Observer Observer
}

// Observer is told about every HTTP attempt.
type Observer interface {
	ObserveCall(c Call)
}

// Call is one HTTP attempt, as an Observer is told of it.
type Call struct {
	Op       string        // the REST operation, e.g. "PutBlock"
	Status   int           // HTTP status; 0 for a transport error
	Duration time.Duration // from sending to the end of the answer
	Sent     int64         // request body bytes
	Received int64         // response body bytes
	Retry    bool          // the attempt is a retry of an earlier one
}

// Client talks to one storage account's blob endpoint.
type Client struct {
	endpoint *url.URL // e.g. https://acct.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1
	cred     Credential
	http     *http.Client
	retry    RetryPolicy
	log      logrus.FieldLogger
	obs      Observer
}

// NewClient returns a client for the account at endpoint. Plain http is
// accepted only for loopback endpoints, so that a key or token never
// crosses a network in the clear.
func NewClient(endpoint string, cred Credential, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(endpoint, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("blob endpoint %q is not a URL like https://ACCOUNT.blob.core.windows.net", endpoint)
	}
	if err := CheckScheme(u); err != nil {
		return nil, err
	}
	t := opts.Transport
	if t == nil {
		t = DefaultTransport()
	}
	log := opts.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	return &Client{
		endpoint: u,
		cred:     cred,
		http:     &http.Client{Transport: t},
		retry:    opts.Retry.withDefaults(),
		log:      log,
		obs:      opts.Observer,
	}, nil
}

// CheckScheme refuses plain http to anything but a loopback address.
func CheckScheme(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("endpoint %s uses plain http to a non-loopback host: use https so that credentials are not sent in the clear", u.Redacted())
	}
	return fmt.Errorf("endpoint %s: scheme must be https (or http on loopback)", u.Redacted())
}

// DefaultTransport is tuned for many parallel transfers to one host.
func DefaultTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // per-attempt timeouts come from the retry policy
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
		DisableCompression:    true,
	}
}

// Container returns a handle on one container of the account.
func (c *Client) Container(name string) *Container {
	return &Container{c: c, name: name}
}

// request describes one REST call; do() builds a fresh *http.Request from it
// for every attempt, so a retry re-signs and re-sends the body from the start.
type request struct {
	op       string // operation name for errors, logs and metrics
	name     string // container or blob, for errors
	method   string
	path     string // escaped path below the endpoint, starting with '/'
	query    url.Values
	header   http.Header
	body     []byte      // sent as-is; nil for none
	bodyFrom io.ReaderAt // alternatively a section of this...
	bodyLen  int64       // ...of this length
	ok       []int       // accepted status codes
	// idempotent says the call may be repeated after an ambiguous failure
	// (the request may have reached the service). Reads, Put Blob, Put Block
	// and Delete-with-etag are; the caller decides for the rest.
	idempotent bool
}

func (c *Client) newHTTPRequest(ctx context.Context, r *request) (*http.Request, error) {
	u := *c.endpoint
	u.RawPath = c.endpoint.EscapedPath() + r.path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, err
	}
	u.Path = p
	u.RawQuery = encodeQuery(r.query)
	var body io.Reader
	var n int64
	switch {
	case r.body != nil:
		body, n = bytes.NewReader(r.body), int64(len(r.body))
	case r.bodyFrom != nil:
		body, n = io.NewSectionReader(r.bodyFrom, 0, r.bodyLen), r.bodyLen
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.URL = &u // keep our exact escaping: it is what gets signed
	req.ContentLength = n
	if body == nil {
		req.Body = http.NoBody
	}
	for k, v := range r.header {
		vals := append([]string(nil), v...)
		if strings.HasPrefix(strings.ToLower(k), "x-ms-") {
			// Send x-ms-* values already in their canonical form (trimmed,
			// whitespace runs folded): Azure signs the folded value, Azurite
			// the value as received, and only a folded value agrees with both.
			for i, s := range vals {
				vals[i] = strings.Join(strings.Fields(s), " ")
			}
		}
		req.Header[k] = vals
	}
	req.Header.Set("x-ms-version", APIVersion)
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	if r.method == http.MethodPut || r.method == http.MethodPost {
		req.Header.Set("Content-Length", fmt.Sprint(n))
	}
	return req, nil
}

// do sends r, retrying transient failures, and returns the accepted
// response. The caller closes its body.
func (c *Client) do(ctx context.Context, r *request) (*http.Response, error) {
	var refreshed bool
	start := time.Now()
	for attempt := 0; ; attempt++ {
		resp, err := c.attempt(ctx, r, attempt > 0)
		if err == nil {
			return resp, nil
		}
		var se *StorageError
		if errors.As(err, &se) && se.SignatureRefused() && !refreshed {
			// A key that used to work may have been rotated: fetch it again once.
			refreshed = true
			if rf, ok := c.cred.(Refresher); ok {
				if changed, rerr := rf.Refresh(ctx); rerr == nil && changed {
					c.log.WithField("op", r.op).Info("credential refreshed after the service refused it; retrying")
					attempt--
					continue
				} else if rerr != nil {
					c.log.WithError(rerr).Warn("refreshing the credential failed")
				}
			}
		}
		wait, retry := c.retry.next(attempt, err, r.idempotent, time.Since(start))
		if !retry || ctx.Err() != nil {
			c.logFailure(r, err)
			return nil, err
		}
		c.log.WithFields(logrus.Fields{"op": r.op, "blob": r.name, "attempt": attempt + 1, "wait": wait}).
			WithError(err).Debug("retrying")
		select {
		case <-ctx.Done():
			c.logFailure(r, err)
			return nil, fmt.Errorf("%s %q: %w (after %d attempts: %v)", r.op, r.name, ctx.Err(), attempt+1, err)
		case <-time.After(wait):
		}
	}
}

func (c *Client) logFailure(r *request, err error) {
	f := logrus.Fields{"op": r.op, "blob": r.name}
	var se *StorageError
	if errors.As(err, &se) {
		f["status"], f["code"], f["request_id"] = se.Status, se.Code, se.RequestID
		if se.Status == http.StatusNotFound || se.Status == http.StatusConflict || se.Status == http.StatusPreconditionFailed {
			// Expected answers (lookups of missing names, create-only
			// races): the caller decides whether they are failures.
			c.log.WithFields(f).Debug("REST call refused")
			return
		}
	}
	c.log.WithFields(f).WithError(err).Warn("REST call failed")
}

// attempt sends r once. The per-attempt timeout is the longest silence
// tolerated: while the request body is being sent, while waiting for the
// answer's headers, and inside every Read of the answer's body. A stalled
// connection is thus abandoned wherever it stalls, yet a slow but moving
// transfer of any size is not cut off, and a caller that pauses between
// Reads is not charged for its own pause.
func (c *Client) attempt(ctx context.Context, r *request, retry bool) (*http.Response, error) {
	actx, cancel := context.WithCancel(ctx)
	req, err := c.newHTTPRequest(actx, r)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := c.cred.Authorize(actx, req); err != nil {
		cancel()
		return nil, fmt.Errorf("%s %q: authorize: %w", r.op, r.name, err)
	}
	wd := newWatchdog(c.retry.AttemptTimeout, cancel)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &kickingBody{ReadCloser: req.Body, wd: wd}
		if gb := req.GetBody; gb != nil {
			req.GetBody = func() (io.ReadCloser, error) {
				b, err := gb()
				if err != nil {
					return nil, err
				}
				return &kickingBody{ReadCloser: b, wd: wd}, nil
			}
		}
	}
	t0 := time.Now()
	resp, err := c.http.Do(req)
	wd.disarm()
	if err != nil {
		cancel()
		c.observe(r, 0, t0, 0, retry)
		if wd.fired.Load() && ctx.Err() == nil {
			return nil, &transportError{op: r.op, name: r.name, err: fmt.Errorf("%w: no progress for %v, abandoned the attempt", ErrStalled, c.retry.AttemptTimeout)}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %q: %w", r.op, r.name, ctx.Err())
		}
		return nil, &transportError{op: r.op, name: r.name, err: scrubURL(err)}
	}
	c.observe(r, resp.StatusCode, t0, resp.ContentLength, retry)
	for _, s := range r.ok {
		if resp.StatusCode == s {
			resp.Body = &watchedBody{rc: resp.Body, wd: wd, cancel: cancel, ctx: ctx, op: r.op, name: r.name}
			return resp, nil
		}
	}
	defer cancel()
	defer resp.Body.Close()
	se := newStorageError(r.op, r.name, resp)
	if ra := retryAfter(resp.Header); ra > 0 {
		return nil, &retryAfterError{StorageError: se, after: ra}
	}
	return nil, se
}

func (c *Client) observe(r *request, status int, t0 time.Time, received int64, retry bool) {
	if c.obs == nil {
		return
	}
	if received < 0 {
		received = 0
	}
	var sent int64
	if r.body != nil {
		sent = int64(len(r.body))
	} else if r.bodyFrom != nil {
		sent = r.bodyLen
	}
	c.obs.ObserveCall(Call{Op: r.op, Status: status, Duration: time.Since(t0), Sent: sent, Received: received, Retry: retry})
}

// transportError is a failure to get any answer: the request may or may not
// have reached the service.
type transportError struct {
	op, name string
	err      error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("%s %q: connection to the blob service failed: %v", e.op, e.name, e.err)
}
func (e *transportError) Unwrap() error { return e.err }

// Is makes every transport failure ErrUnavailable.
func (e *transportError) Is(t error) bool { return t == ErrUnavailable }

// scrubURL drops the query from a *url.Error: a SAS token lives there.
func scrubURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		if perr == nil {
			u.RawQuery = ""
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
		return ue.Err
	}
	return err
}
