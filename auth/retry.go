package auth

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Retry is the backoff for IMDS and ARM calls. Wait n (from 0) is
// Base·2ⁿ capped at MaxWait, times a jitter in [0.8, 1.2), so that VMs
// booting together do not hit IMDS in step; a Retry-After from the server
// replaces it when longer. Retries stop once the next wait would end past
// Budget, counted from the first attempt.
//
// The defaults (Base 1 s, MaxWait 20 s, Budget 100 s for IMDS and 60 s for
// ARM, AttemptTimeout 20 s) wait about 1, 2, 4, 8, 16, 20, 20, 20 s: eight
// retries spanning ~90 s, enough to ride out the 70 s an IMDS answering 410
// during an update or a VM boot may need (Microsoft's guidance), and
// slower than IMDS's 5 requests/s throttle.
type Retry struct {
	Base    time.Duration
	MaxWait time.Duration
	// Budget is IMDS's; ARM uses min(Budget, 60 s) unless ARMBudget is
	// set. Zero means the default; a negative Budget means no retries at
	// all, for IMDS and ARM (--auth-wait 0).
	Budget         time.Duration
	ARMBudget      time.Duration
	AttemptTimeout time.Duration // one request, until its whole answer is read
}

// DefaultRetry returns the schedule described on Retry.
func DefaultRetry() Retry {
	return Retry{
		Base:           time.Second,
		MaxWait:        20 * time.Second,
		Budget:         100 * time.Second,
		ARMBudget:      60 * time.Second,
		AttemptTimeout: 20 * time.Second,
	}
}

func (r Retry) withDefaults() Retry {
	d := DefaultRetry()
	if r.Base > 0 {
		d.Base = r.Base
	}
	if r.MaxWait > 0 {
		d.MaxWait = r.MaxWait
	}
	if r.Budget < 0 {
		d.Budget, d.ARMBudget = 0, 0
		return d
	}
	if r.Budget > 0 {
		d.Budget = r.Budget
		if r.ARMBudget == 0 && d.ARMBudget > r.Budget {
			d.ARMBudget = r.Budget
		}
	}
	if r.ARMBudget > 0 {
		d.ARMBudget = r.ARMBudget
	}
	if r.AttemptTimeout > 0 {
		d.AttemptTimeout = r.AttemptTimeout
	}
	return d
}

// wait is the pause before retry number n (0-based), given the server's
// Retry-After (0 if none).
func (r Retry) wait(n int, after time.Duration) time.Duration {
	w := r.Base << n
	if w > r.MaxWait || w <= 0 {
		w = r.MaxWait
	}
	w = time.Duration(float64(w) * (0.8 + 0.4*rand.Float64()))
	if after > w {
		w = after
	}
	return w
}

// retryAfter reads the wait a server asked for: seconds or an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
