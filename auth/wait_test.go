package auth_test

import (
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/auth/authtest"
)

// A negative budget (--auth-wait 0) asks IMDS once; a positive one
// reports every pause to OnWait, with why and until when.
func TestRetryBudgetAndOnWait(t *testing.T) {
	tests := []struct {
		name     string
		budget   time.Duration
		attempts int // token requests that reach the refusing IMDS, at least
		waits    bool
	}{
		{"no retries", -1, 1, false},
		// Long enough that a slow first attempt on a loaded machine still
		// leaves room for a pause inside the budget.
		{"retries reported", 2 * time.Second, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, authtest.Options{})
			h.srv.StopIMDS()
			cfg := h.config()
			cfg.Retry.Budget = tt.budget
			var mu sync.Mutex
			var waits []auth.Wait
			var firstWait time.Time // when the first pause was reported
			cfg.OnWait = func(w auth.Wait) {
				mu.Lock()
				if len(waits) == 0 {
					firstWait = time.Now()
				}
				waits = append(waits, w)
				mu.Unlock()
			}
			t0 := time.Now()
			_, err := h.newCredential(cfg)
			// A closed port answers refused, or reset when the listener was just closed.
			if !errors.Is(err, auth.ErrIdentityUnreachable) ||
				!(strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "connection reset")) {
				t.Fatalf("err = %v, want unreachable (connection refused or reset)", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !tt.waits {
				if len(waits) != 0 {
					t.Errorf("%d pauses with no retries wanted: %+v", len(waits), waits)
				}
				return
			}
			if len(waits) < tt.attempts-1 {
				t.Fatalf("%d pauses reported, want at least %d", len(waits), tt.attempts-1)
			}
			w := waits[0]
			refused := errors.Is(w.Err, syscall.ECONNREFUSED) || errors.Is(w.Err, syscall.ECONNRESET)
			if !refused || w.Endpoint == "" || w.Step == "" || w.Attempt != 1 {
				t.Errorf("first pause %+v: want the refusal, the endpoint, the step, attempt 1", w)
			}
			// The budget runs from the first attempt, which starts after t0
			// and before the first pause is reported; how long that takes
			// depends on the machine's load, so it is the bound, not a guess.
			if w.Until.Before(t0.Add(tt.budget)) || w.Until.After(firstWait.Add(tt.budget)) {
				t.Errorf("until %v after the start (first pause at %v), want the budget %v after the first attempt",
					w.Until.Sub(t0), firstWait.Sub(t0), tt.budget)
			}
		})
	}
}
