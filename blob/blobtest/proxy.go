package blobtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is one kind of misbehaviour the proxy can inject.
type Fault string

// The faults a Proxy injects. Reset and Lost both drop the connection with a
// TCP reset, but Lost first forwards the request, so the service has applied
// it and only the answer is lost: the case that makes non-idempotent calls
// dangerous to repeat.
const (
	FaultReset      Fault = "reset"       // drop the connection before forwarding
	FaultLost       Fault = "lost"        // forward, then drop the connection instead of answering
	Fault500        Fault = "500"         // 500 InternalError, not forwarded
	Fault503        Fault = "503"         // 503 ServerBusy with Retry-After, not forwarded
	Fault429        Fault = "429"         // 429 with Retry-After, not forwarded
	FaultStall      Fault = "stall"       // hold the request Stall long before answering anything
	FaultBodyStall  Fault = "body-stall"  // send the headers and half the body, then hold
	FaultTruncate   Fault = "truncate"    // send the headers and half the body, then reset
	faultOutage     Fault = "outage"      // counted when Outage refuses a request
	faultOutageHang Fault = "outage-hang" // counted when Outage holds a request
)

// AllFaults is every fault kind, the default mix.
var AllFaults = []Fault{FaultReset, FaultLost, Fault500, Fault503, Fault429, FaultStall, FaultBodyStall, FaultTruncate}

// Faults configure what the proxy injects. The zero value injects nothing.
type Faults struct {
	// Rate is the fraction of requests, 0 to 1, that get a fault.
	Rate float64
	// Kinds is the mix, picked uniformly; empty means AllFaults.
	Kinds []Fault
	// Ops limits faults to these operations (as Operation names them);
	// empty means every operation.
	Ops []string
	// Stall is how long a stall holds (the client usually gives up first);
	// zero means 30 s.
	Stall time.Duration
	// RetryAfter is sent with 429 and 503; zero means 1 s. It is sent in
	// whole seconds (Retry-After) and in milliseconds (x-ms-retry-after-ms).
	RetryAfter time.Duration
	// Max stops injecting after this many faults; 0 means no limit.
	Max int
	// Seed makes the choice of faulted requests repeatable; 0 picks one.
	Seed uint64
}

// Proxy is an HTTP proxy on loopback in front of one loopback blob endpoint
// (Azurite). It counts requests and bytes by REST operation and injects
// faults that can be changed while it runs.
type Proxy struct {
	target *url.URL
	ln     net.Listener
	srv    *http.Server
	tr     *http.Transport
	done   chan struct{}
	once   sync.Once

	mu         sync.Mutex
	observe    func(op string, r *http.Request)
	faults     Faults
	budgetUsed int // faults injected under the current Faults, for Max
	rng        *rand.Rand
	outage     bool
	hang       bool
	counts     map[string]int
	injected   map[Fault]int
	bytesIn    map[string]int64 // request bodies received, by operation
	bytesOut   map[string]int64 // response bodies sent, by operation
}

// StartProxy starts a proxy on a free loopback port in front of target, a
// path-style endpoint such as Azurite's http://127.0.0.1:PORT/ACCOUNT. The
// target must be a loopback address: the proxy never forwards anywhere else.
func StartProxy(target string) (*Proxy, error) {
	u, err := url.Parse(strings.TrimSuffix(target, "/"))
	if err != nil {
		return nil, fmt.Errorf("blobtest proxy: target %q: %w", target, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("blobtest proxy: target %q must be plain http on loopback", target)
	}
	if !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("blobtest proxy: target %q is not a loopback address", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		target: u,
		ln:     ln,
		done:   make(chan struct{}),
		tr: &http.Transport{
			Proxy:               nil, // never via an environment proxy: loopback only
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			DisableCompression:  true,
		},
		rng:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)),
		counts:   map[string]int{},
		injected: map[Fault]int{},
		bytesIn:  map[string]int64{},
		bytesOut: map[string]int64{},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 30 * time.Second}
	go p.srv.Serve(ln)
	return p, nil
}

// StartProxyT starts a proxy for a test and closes it when the test ends.
func StartProxyT(tb testing.TB, target string) *Proxy {
	tb.Helper()
	p, err := StartProxy(target)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Endpoint is the path-style endpoint to give clients instead of the target's.
func (p *Proxy) Endpoint() string {
	return "http://" + p.ln.Addr().String() + p.target.EscapedPath()
}

// Addr is the host:port the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetFaults replaces the fault configuration; it applies to requests that
// arrive from now on.
func (p *Proxy) SetFaults(f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = f
	p.budgetUsed = 0
	if f.Seed != 0 {
		p.rng = rand.New(rand.NewPCG(f.Seed, 1))
	}
}

// Observe calls fn with every request as it arrives, before any fault;
// r.RequestURI is the request target exactly as it came over the wire. fn
// must not read the body. nil stops observing.
func (p *Proxy) Observe(fn func(op string, r *http.Request)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observe = fn
}

// Outage, while on, refuses every request by resetting its connection.
func (p *Proxy) Outage(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outage = on
}

// Hang, while on, holds every request without answering until Hang(false),
// Close, or the client giving up; held requests then go on to the service.
func (p *Proxy) Hang(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hang = on
}

// Counts returns the number of requests received, by operation, faulted ones
// included.
func (p *Proxy) Counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		m[k] = v
	}
	return m
}

// Total is the number of requests received.
func (p *Proxy) Total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, v := range p.counts {
		n += v
	}
	return n
}

// Injected returns the number of faults injected, by kind.
func (p *Proxy) Injected() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[Fault]int, len(p.injected))
	for k, v := range p.injected {
		m[k] = v
	}
	return m
}

// Bytes returns the body bytes received from clients (in) and sent to them
// (out), by operation.
func (p *Proxy) Bytes() (in, out map[string]int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	in, out = map[string]int64{}, map[string]int64{}
	for k, v := range p.bytesIn {
		in[k] = v
	}
	for k, v := range p.bytesOut {
		out[k] = v
	}
	return in, out
}

// ResetCounts zeroes the request, byte and fault counters.
func (p *Proxy) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = map[string]int{}
	p.injected = map[Fault]int{}
	p.bytesIn = map[string]int64{}
	p.bytesOut = map[string]int64{}
}

// Close stops the proxy, ends held requests and drops its connections.
func (p *Proxy) Close() {
	p.once.Do(func() {
		close(p.done)
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
}

// Operation names the Blob REST operation of a request from its method, its
// comp and restype parameters and its headers, e.g. "GetBlob", "PutBlock",
// "ListBlobs". Unknown requests are named "METHOD?comp=…".
func Operation(r *http.Request) string {
	q := r.URL.Query()
	comp, restype := q.Get("comp"), q.Get("restype")
	m := r.Method
	switch {
	case restype == "container" && comp == "list":
		return "ListBlobs"
	case restype == "container" && comp == "":
		switch m {
		case http.MethodPut:
			return "CreateContainer"
		case http.MethodGet, http.MethodHead:
			return "GetContainerProperties"
		case http.MethodDelete:
			return "DeleteContainer"
		}
	case restype == "container":
		return m + "Container?comp=" + comp
	case restype == "service" || comp == "list":
		return m + "Service?comp=" + comp
	}
	switch comp {
	case "":
		switch m {
		case http.MethodGet:
			return "GetBlob"
		case http.MethodHead:
			return "GetBlobProperties"
		case http.MethodDelete:
			return "DeleteBlob"
		case http.MethodPut:
			if r.Header.Get("x-ms-copy-source") != "" {
				return "CopyBlob"
			}
			return "PutBlob"
		}
	case "block":
		if r.Header.Get("x-ms-copy-source") != "" {
			return "PutBlockFromURL"
		}
		return "PutBlock"
	case "blocklist":
		if m == http.MethodGet {
			return "GetBlockList"
		}
		return "PutBlockList"
	case "metadata":
		if m == http.MethodPut {
			return "SetBlobMetadata"
		}
		return "GetBlobMetadata"
	case "properties":
		return "SetBlobProperties"
	case "copy":
		return "AbortCopyBlob"
	case "lease":
		return "LeaseBlob"
	case "snapshot":
		return "SnapshotBlob"
	}
	return m + "?comp=" + comp
}

// pick decides the fault for a request of operation op, and counts it.
func (p *Proxy) pick(op string, r *http.Request) (Fault, Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[op]++
	f := p.faults
	if p.observe != nil {
		p.observe(op, r)
	}
	switch {
	case p.outage:
		p.injected[faultOutage]++
		return faultOutage, f
	case p.hang:
		p.injected[faultOutageHang]++
		return faultOutageHang, f
	case f.Rate <= 0:
		return "", f
	}
	if len(f.Ops) > 0 {
		match := false
		for _, o := range f.Ops {
			match = match || o == op
		}
		if !match {
			return "", f
		}
	}
	if p.rng.Float64() >= f.Rate || f.Max > 0 && p.budgetUsed >= f.Max {
		return "", f
	}
	p.budgetUsed++
	kinds := f.Kinds
	if len(kinds) == 0 {
		kinds = AllFaults
	}
	k := kinds[p.rng.IntN(len(kinds))]
	p.injected[k]++
	return k, f
}

func (p *Proxy) addBytes(op string, in, out int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytesIn[op] += in
	p.bytesOut[op] += out
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	op := Operation(r)
	fault, cfg := p.pick(op, r)
	stall := cfg.Stall
	if stall <= 0 {
		stall = 30 * time.Second
	}
	retryAfter := cfg.RetryAfter
	if retryAfter <= 0 {
		retryAfter = time.Second
	}
	switch fault {
	case faultOutage, FaultReset:
		p.drain(op, r)
		reset(w)
		return
	case faultOutageHang:
		for {
			p.mu.Lock()
			hang := p.hang
			p.mu.Unlock()
			if !hang {
				break
			}
			if !p.hold(r.Context(), 50*time.Millisecond) && r.Context().Err() != nil {
				return
			}
			select {
			case <-p.done:
				return
			default:
			}
		}
	case Fault500:
		p.drain(op, r)
		p.refuse(w, http.StatusInternalServerError, "InternalError", 0)
		return
	case Fault503:
		p.drain(op, r)
		p.refuse(w, http.StatusServiceUnavailable, "ServerBusy", retryAfter)
		return
	case Fault429:
		p.drain(op, r)
		p.refuse(w, http.StatusTooManyRequests, "TooManyRequests", retryAfter)
		return
	case FaultStall:
		// Read the body first, as a slow service would, then say nothing.
		p.drain(op, r)
		p.hold(r.Context(), stall)
		reset(w)
		return
	}
	p.forward(w, r, op, fault, stall)
}

// hold waits d, or less when the client goes away or the proxy closes; it
// reports whether the full time passed.
func (p *Proxy) hold(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-p.done:
	}
	return false
}

func (p *Proxy) drain(op string, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	p.addBytes(op, n, 0)
}

func (p *Proxy) refuse(w http.ResponseWriter, status int, code string, after time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("x-ms-error-code", code)
	h.Set("x-ms-request-id", "blobtest-proxy-fault")
	if after > 0 {
		h.Set("Retry-After", fmt.Sprint(int((after+time.Second-1)/time.Second)))
		h.Set("x-ms-retry-after-ms", fmt.Sprint(after.Milliseconds()))
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>injected by the blobtest proxy</Message></Error>`, code)
}

// reset drops the client's connection with a TCP RST, so the client sees
// "connection reset by peer" rather than a clean close.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	c, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, op string, fault Fault, stall time.Duration) {
	// Only the path and query of the request are used: whatever host a
	// client names, the request goes to the loopback target.
	u := *p.target
	u.Path, u.RawPath = r.URL.Path, r.URL.RawPath
	u.RawQuery = r.URL.RawQuery
	body := &countingReader{r: r.Body}
	var rb io.Reader = body
	if r.ContentLength == 0 {
		rb = nil
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), rb)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.URL = &u
	out.ContentLength = r.ContentLength
	for k, v := range r.Header {
		out.Header[k] = v
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		p.addBytes(op, body.n, 0)
		if r.Context().Err() == nil {
			reset(w)
		}
		return
	}
	defer resp.Body.Close()
	if fault == FaultLost {
		io.Copy(io.Discard, resp.Body)
		p.addBytes(op, body.n, 0)
		reset(w)
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	var sent int64
	if (fault == FaultBodyStall || fault == FaultTruncate) && resp.ContentLength > 1 && r.Method != http.MethodHead {
		sent, _ = io.CopyN(w, resp.Body, resp.ContentLength/2)
		p.addBytes(op, body.n, sent)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if fault == FaultBodyStall {
			p.hold(r.Context(), stall)
		}
		reset(w)
		return
	}
	sent, err = io.Copy(w, resp.Body)
	p.addBytes(op, body.n, sent)
	if err != nil && !errors.Is(err, context.Canceled) {
		panic(http.ErrAbortHandler)
	}
}
