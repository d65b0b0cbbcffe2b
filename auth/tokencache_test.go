package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// fakeFetch hands out numbered tokens living life, failing while fail is set.
type fakeFetch struct {
	life    time.Duration
	calls   atomic.Int32
	fail    atomic.Bool
	release chan struct{} // when set, each fetch waits for it
}

func (f *fakeFetch) fetch(ctx context.Context) (token, error) {
	n := f.calls.Add(1)
	if f.release != nil {
		<-f.release
	}
	if f.fail.Load() {
		return token{}, errors.New("IMDS said no")
	}
	now := time.Now()
	return token{value: NewSecret(fmt.Sprintf("token-%d", n)), expiresOn: now.Add(f.life), fetched: now}, nil
}

func TestTokenCacheOneFetchForManyWaiters(t *testing.T) {
	f := &fakeFetch{life: time.Hour, release: make(chan struct{})}
	c := newTokenCache("r", f.fetch, quietLog(), nil)
	var wg sync.WaitGroup
	got := make([]string, 100)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := c.Token(context.Background())
			if err != nil {
				t.Error(err)
			}
			got[i] = tok
		}()
	}
	// Let every goroutine block on the fetch, then let it finish.
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(f.release)
	wg.Wait()
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d fetches for 100 concurrent callers, want 1", n)
	}
	for i, tok := range got {
		if tok != "token-1" {
			t.Fatalf("caller %d got %q", i, tok)
		}
	}
}

func TestTokenCacheRefreshesEarlyAndKeepsTokenOnFailure(t *testing.T) {
	f := &fakeFetch{life: time.Hour}
	c := newTokenCache("r", f.fetch, quietLog(), nil)
	ctx := context.Background()
	first, err := c.Token(ctx)
	if err != nil || first != "token-1" {
		t.Fatalf("%q, %v", first, err)
	}
	if tok, _ := c.Token(ctx); tok != "token-1" || f.calls.Load() != 1 {
		t.Fatal("a fresh token was fetched again")
	}
	c.mu.Lock()
	if due := c.refreshAt.Sub(c.cur.fetched); due < 54*time.Minute || due > 56*time.Minute {
		t.Errorf("a 1 h token is due for renewal after %v, want 55 min", due)
	}
	c.refreshAt = time.Now() // as if 55 minutes had passed
	c.mu.Unlock()

	// Past the refresh point the current token is still handed out while
	// a refresh runs; when that fails, the token is kept.
	f.fail.Store(true)
	failedAt := time.Now()
	if tok, err := c.Token(ctx); err != nil || tok != "token-1" {
		t.Fatalf("during a failing early refresh got %q, %v; want the current token", tok, err)
	}
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.inflight == nil && f.calls.Load() == 2 })
	if tok, err := c.Token(ctx); err != nil || tok != "token-1" {
		t.Fatalf("after a failed early refresh got %q, %v; want the current token", tok, err)
	}
	c.mu.Lock()
	next := c.refreshAt
	c.mu.Unlock()
	if next.Sub(failedAt) < 29*time.Second {
		t.Errorf("a failed early refresh is tried again after %v, want 30 s", next.Sub(failedAt))
	}

	// The next attempt succeeds and replaces the token before it expires.
	f.fail.Store(false)
	c.mu.Lock()
	c.refreshAt = time.Now()
	c.mu.Unlock()
	c.Token(ctx)
	waitFor(t, func() bool { tok, _ := c.Token(ctx); return tok == "token-3" })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRefreshPoint(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		life, refreshIn, want time.Duration
	}{
		{24 * time.Hour, 0, 12 * time.Hour},             // long-lived: half-life
		{time.Hour, 0, 55 * time.Minute},                // 5 minutes before expiry
		{4 * time.Minute, 0, 2 * time.Minute},           // short: half-life
		{time.Hour, 10 * time.Minute, 10 * time.Minute}, // the endpoint's refresh_in wins
	}
	for _, tt := range tests {
		got := refreshPoint(token{expiresOn: now.Add(tt.life), refreshIn: tt.refreshIn}, now).Sub(now)
		if got != tt.want {
			t.Errorf("life %v refresh_in %v: refresh after %v, want %v", tt.life, tt.refreshIn, got, tt.want)
		}
	}
}

func TestRefreshAfterRefusalIsRateLimited(t *testing.T) {
	f := &fakeFetch{life: time.Hour}
	c := newTokenCache("r", f.fetch, quietLog(), nil)
	ctx := context.Background()
	c.Token(ctx)
	changed, err := c.Refresh(ctx)
	if err != nil || !changed || f.calls.Load() != 2 {
		t.Fatalf("first Refresh = %v, %v after %d fetches", changed, err, f.calls.Load())
	}
	// A token that arrived moments ago is assumed unused by the caller.
	if changed, _ := c.Refresh(ctx); !changed || f.calls.Load() != 2 {
		t.Errorf("Refresh right after a change = %v, %d fetches", changed, f.calls.Load())
	}
	c.mu.Lock()
	c.changedAt = time.Now().Add(-time.Minute)
	c.mu.Unlock()
	// And IMDS is not asked again within 30 s for a refused token.
	if changed, _ := c.Refresh(ctx); changed || f.calls.Load() != 2 {
		t.Errorf("Refresh within 30 s of the last = %v, %d fetches", changed, f.calls.Load())
	}
}

func TestRetryWait(t *testing.T) {
	r := Retry{Base: time.Second, MaxWait: 20 * time.Second}
	for n, want := range []time.Duration{1, 2, 4, 8, 16, 20, 20} {
		w := r.wait(n, 0)
		lo, hi := time.Duration(float64(want*time.Second)*0.8), time.Duration(float64(want*time.Second)*1.2)
		if w < lo || w >= hi {
			t.Errorf("wait %d = %v, want within [%v, %v)", n, w, lo, hi)
		}
	}
	if w := r.wait(0, 7*time.Second); w != 7*time.Second {
		t.Errorf("Retry-After 7 s gave a wait of %v", w)
	}
	// The default schedule rides out IMDS's 70 s of 410s.
	d := DefaultRetry()
	var total time.Duration
	for n := 0; ; n++ {
		w := time.Duration(float64(min(d.Base<<n, d.MaxWait)) * 0.8) // shortest jitter
		if total+w > d.Budget {
			break
		}
		total += w
	}
	if total < 70*time.Second {
		t.Errorf("default IMDS retries span at least %v only, want ≥ 70 s", total)
	}
}
