package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/sirupsen/logrus"
)

// caller sends IMDS and ARM requests with the Retry schedule. It is shared
// by both so that their retries look alike in code and in logs.
type caller struct {
	client *http.Client
	retry  Retry
	log    logrus.FieldLogger
	onWait func(Wait) // may be nil
}

// answer is a complete HTTP answer; bodies here are small JSON documents.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// noAnswerError says no HTTP answer came back at all, however often asked:
// refused connections, timeouts, resets.
type noAnswerError struct {
	endpoint string
	attempts int
	elapsed  time.Duration
	last     error
}

func (e *noAnswerError) Error() string {
	return fmt.Sprintf("no answer from %s after %d attempts over %v: %v", e.endpoint, e.attempts, e.elapsed.Round(100*time.Millisecond), e.last)
}

func (e *noAnswerError) Unwrap() error { return e.last }

const maxAnswer = 1 << 20

// call sends the request made by newReq until the answer is not retryable
// or the budget is spent, and returns the last answer; err is non-nil only
// when no answer came back or ctx ended. newReq is called for every attempt
// so that each carries a fresh token.
func (c *caller) call(ctx context.Context, step string, budget time.Duration,
	newReq func(ctx context.Context) (*http.Request, error), retryable func(status int) bool) (answer, int, error) {
	start := time.Now()
	var lastErr error
	var endpoint string
	for n := 0; ; n++ {
		a, err := c.attempt(ctx, newReq, &endpoint)
		elapsed := time.Since(start)
		var after time.Duration
		var be *buildError
		switch {
		case errors.As(err, &be):
			return answer{}, n + 1, fmt.Errorf("%s: %w", step, be.err)
		case err == nil && !retryable(a.status):
			return a, n + 1, nil
		case err == nil:
			after = retryAfter(a.header)
			lastErr = nil
		case ctx.Err() != nil:
			return answer{}, n + 1, fmt.Errorf("%s: %w", step, ctx.Err())
		default:
			lastErr = err
		}
		wait := c.retry.wait(n, after)
		if elapsed+wait > budget {
			if lastErr != nil {
				return answer{}, n + 1, &noAnswerError{endpoint: endpoint, attempts: n + 1, elapsed: elapsed, last: lastErr}
			}
			return a, n + 1, nil
		}
		f := logrus.Fields{"step": step, "attempt": n + 1, "wait": wait.Round(time.Millisecond)}
		if lastErr != nil {
			c.log.WithFields(f).WithError(lastErr).Debug("auth: no answer; retrying")
		} else {
			f["status"] = a.status
			if after > 0 {
				f["retry_after"] = after
			}
			c.log.WithFields(f).Debug("auth: transient answer; retrying")
		}
		if c.onWait != nil {
			c.onWait(Wait{Step: step, Endpoint: endpoint, Attempt: n + 1, Elapsed: elapsed, Pause: wait,
				Until: start.Add(budget), Err: lastErr, Status: a.status})
		}
		select {
		case <-ctx.Done():
			return answer{}, n + 1, fmt.Errorf("%s: %w", step, ctx.Err())
		case <-time.After(wait):
		}
	}
}

func (c *caller) attempt(ctx context.Context, newReq func(context.Context) (*http.Request, error), endpoint *string) (answer, error) {
	actx, cancel := context.WithTimeout(ctx, c.retry.AttemptTimeout)
	defer cancel()
	req, err := newReq(actx)
	if err != nil {
		return answer{}, &buildError{err}
	}
	*endpoint = req.URL.Scheme + "://" + req.URL.Host
	t0 := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		return answer{}, scrub(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return answer{}, scrub(err)
	}
	c.log.WithFields(logrus.Fields{
		"method": req.Method, "endpoint": *endpoint, "path": req.URL.Path,
		"status": resp.StatusCode, "took": time.Since(t0).Round(time.Millisecond),
	}).Debug("auth: answer")
	return answer{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// buildError is a request that could not even be made: retrying is futile.
type buildError struct{ err error }

func (e *buildError) Error() string { return e.err.Error() }

// scrub drops the query from a *url.Error: it names the identity and
// resource, which is harmless, but the shape of errors should not depend
// on which endpoint failed, and SAS-like queries must never be echoed.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		if perr == nil {
			u.RawQuery = ""
			u.User = nil
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
		return ue.Err
	}
	return err
}

// imdsTransport talks to the link-local IMDS directly: a proxy cannot reach
// it and would see the token, so HTTP_PROXY is ignored, as Azure requires.
func imdsTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 0, // the attempt timeout covers it
	}
}

// armTransport follows the environment's proxy settings, as any HTTPS
// client on the VM would.
func armTransport() *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
}
