package blob

import (
	"io"
	"net/http"
	"testing"
	"time"
)

func TestRetryDecisions(t *testing.T) {
	p := RetryPolicy{Base: 100 * time.Millisecond, MaxWait: 5 * time.Second}.withDefaults()
	se := func(status int) error { return &StorageError{Status: status} }
	te := &transportError{err: io.ErrUnexpectedEOF}
	for _, tc := range []struct {
		name       string
		err        error
		idempotent bool
		attempt    int
		elapsed    time.Duration
		retry      bool
		minWait    time.Duration
	}{
		{"transport, idempotent", te, true, 0, 0, true, 75 * time.Millisecond},
		{"transport, not idempotent", te, false, 0, 0, false, 0},
		{"500, idempotent", se(500), true, 0, 0, true, 0},
		{"500, not idempotent: may have been applied", se(500), false, 0, 0, false, 0},
		{"504, not idempotent", se(504), false, 0, 0, false, 0},
		{"503, not idempotent: turned away", se(503), false, 0, 0, true, 0},
		{"429, not idempotent", se(429), false, 0, 0, true, 0},
		{"408", se(408), true, 0, 0, true, 0},
		{"404 never", se(404), true, 0, 0, false, 0},
		{"412 never", se(412), true, 0, 0, false, 0},
		{"backoff grows", se(500), true, 3, 0, true, 600 * time.Millisecond},
		{"backoff capped", se(500), true, 6, 0, true, 3750 * time.Millisecond},
		{"attempts exhausted", se(500), true, 7, 0, false, 0},
		{"budget exhausted", se(500), true, 0, 2*time.Minute - 10*time.Millisecond, false, 0},
		{"Retry-After honoured", &retryAfterError{StorageError: &StorageError{Status: 503}, after: 3 * time.Second}, false, 0, 0, true, 3 * time.Second},
		{"Retry-After capped at MaxWait", &retryAfterError{StorageError: &StorageError{Status: 429}, after: time.Hour}, true, 0, 0, true, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wait, retry := p.next(tc.attempt, tc.err, tc.idempotent, tc.elapsed)
			if retry != tc.retry {
				t.Fatalf("retry = %v, want %v", retry, tc.retry)
			}
			if retry && (wait < tc.minWait || wait > p.MaxWait) {
				t.Errorf("wait %v, want between %v and %v", wait, tc.minWait, p.MaxWait)
			}
		})
	}
}

func TestRetryAfterHeaders(t *testing.T) {
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"X-Ms-Retry-After-Ms": {"250"}}, 250 * time.Millisecond},
		{http.Header{"Retry-After-Ms": {"40"}}, 40 * time.Millisecond},
		{http.Header{"Retry-After": {"2"}}, 2 * time.Second},
		{http.Header{"Retry-After": {"junk"}}, 0},
		{http.Header{}, 0},
	} {
		if got := retryAfter(tc.h); got != tc.want {
			t.Errorf("retryAfter(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}
