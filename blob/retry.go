package blob

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy says which failures are retried and how long to wait.
// Waits grow as Base·2ⁿ, jittered by ±25 %, capped at MaxWait; a
// Retry-After from the service is honoured (capped at MaxWait too).
type RetryPolicy struct {
	MaxAttempts int           // per call, including the first; default 8
	Base        time.Duration // default 200 ms
	MaxWait     time.Duration // one wait at most; default 10 s
	Budget      time.Duration // total time for a call and its retries; default 2 min
	// AttemptTimeout is the longest silence tolerated within one attempt:
	// sending the body, waiting for the headers, or inside one Read of the
	// answer's body. Default 30 s.
	AttemptTimeout time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 8
	}
	if p.Base == 0 {
		p.Base = 200 * time.Millisecond
	}
	if p.MaxWait == 0 {
		p.MaxWait = 10 * time.Second
	}
	if p.Budget == 0 {
		p.Budget = 2 * time.Minute
	}
	if p.AttemptTimeout == 0 {
		p.AttemptTimeout = 30 * time.Second
	}
	return p
}

// next says whether to retry after the attempt-th failure err, and after
// how long. Transport errors and 500/502/504 answers are retried only for
// idempotent requests, since the failed one may have been applied; 408, 429
// and 503 say the service turned the request away unapplied, so any request
// may be repeated after them.
func (p RetryPolicy) next(attempt int, err error, idempotent bool, elapsed time.Duration) (time.Duration, bool) {
	if attempt+1 >= p.MaxAttempts {
		return 0, false
	}
	var te *transportError
	var se *StorageError
	switch {
	case errors.As(err, &te):
		if !idempotent {
			return 0, false
		}
	case errors.As(err, &se):
		if !retryableStatus(se.Status) || !idempotent && !unapplied(se.Status) {
			return 0, false
		}
	default:
		return 0, false
	}
	wait := p.Base << attempt
	if wait > p.MaxWait || wait <= 0 {
		wait = p.MaxWait
	}
	wait = min(time.Duration(float64(wait)*(0.75+0.5*rand.Float64())), p.MaxWait)
	var ra *retryAfterError
	if errors.As(err, &ra) && ra.after > wait {
		wait = min(ra.after, p.MaxWait)
	}
	if elapsed+wait > p.Budget {
		return 0, false
	}
	return wait, true
}

func retryableStatus(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func unapplied(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true
	}
	return false
}

// retryAfterError carries the service's requested wait with its error.
type retryAfterError struct {
	*StorageError
	after time.Duration
}

func (e *retryAfterError) Unwrap() error { return e.StorageError }

// retryAfter reads the wait the service asked for, in any of its headers.
func retryAfter(h http.Header) time.Duration {
	for _, k := range []string{"x-ms-retry-after-ms", "retry-after-ms"} {
		if v := h.Get(k); v != "" {
			if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s > 0 {
			return time.Duration(s) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return time.Until(t)
		}
	}
	return 0
}
