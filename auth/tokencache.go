package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// TokenCache holds the token for one resource and refreshes it ahead of
// expiry, the way azidentity does: a token living more than 2 h is renewed
// at half-life, a shorter one 5 minutes before it expires (half-life when
// it lives less than 10 minutes), or at the endpoint's refresh_in. The
// first caller past that point starts one background refresh and everyone
// keeps using the current token meanwhile; only when there is no usable
// token do callers wait, all for the same fetch. A failed early refresh
// keeps the old token and is tried again later, never more than every 30 s.
type TokenCache struct {
	fetch    func(ctx context.Context) (token, error)
	resource string
	log      logrus.FieldLogger
	onFetch  func()

	mu        sync.Mutex
	cur       token
	refreshAt time.Time
	changedAt time.Time     // when cur last changed, for Refresh
	forcedAt  time.Time     // last forced fetch, to rate-limit Refresh
	inflight  chan struct{} // closed when the fetch under way ends
	lastErr   error
}

var _ interface {
	Token(context.Context) (string, error)
	Refresh(context.Context) (bool, error)
} = (*TokenCache)(nil)

func newTokenCache(resource string, fetch func(context.Context) (token, error), log logrus.FieldLogger, onFetch func()) *TokenCache {
	return &TokenCache{fetch: fetch, resource: resource, log: log, onFetch: onFetch}
}

// skew is how long before expires_on a token stops being handed out, so
// that it does not expire in flight.
func skew(life time.Duration) time.Duration {
	return min(30*time.Second, life/10)
}

// usable says whether t can still be sent at now.
func usable(t token, now time.Time) bool {
	if t.value.Empty() {
		return false
	}
	return now.Before(t.expiresOn.Add(-skew(t.expiresOn.Sub(t.fetched))))
}

// refreshPoint is when a token fetched at now should be renewed.
func refreshPoint(t token, now time.Time) time.Time {
	life := t.expiresOn.Sub(now)
	var at time.Time
	switch {
	case t.refreshIn > 0 && t.refreshIn < life:
		at = now.Add(t.refreshIn)
	case life > 2*time.Hour:
		at = now.Add(life / 2)
	default:
		at = t.expiresOn.Add(-min(5*time.Minute, life/2))
	}
	if !at.After(now) {
		// The endpoint handed back a token already due (IMDS caches tokens
		// itself): do not ask again on every call.
		at = now.Add(retryGap(life))
	}
	return at
}

// retryGap is the pause before another attempt after a refresh that did
// not help, bounded so that a short-lived token is still renewed in time.
func retryGap(life time.Duration) time.Duration {
	return max(min(30*time.Second, life/4), 10*time.Millisecond)
}

// Token returns a current token, fetching one only when none is usable.
func (c *TokenCache) Token(ctx context.Context) (string, error) {
	t, err := c.get(ctx)
	if err != nil {
		return "", err
	}
	return t.value.Reveal(), nil
}

func (c *TokenCache) get(ctx context.Context) (token, error) {
	c.mu.Lock()
	now := time.Now()
	if usable(c.cur, now) {
		if !now.Before(c.refreshAt) && c.inflight == nil {
			c.log.WithFields(logrus.Fields{"resource": c.resource, "expires": c.cur.expiresOn.Format(time.RFC3339)}).
				Debug("auth: refreshing token ahead of expiry")
			c.start(ctx, true)
		}
		t := c.cur
		c.mu.Unlock()
		return t, nil
	}
	ch := c.inflight
	if ch == nil {
		ch = c.start(ctx, false)
	}
	c.mu.Unlock()
	return c.wait(ctx, ch)
}

func (c *TokenCache) wait(ctx context.Context, ch chan struct{}) (token, error) {
	select {
	case <-ch:
	case <-ctx.Done():
		return token{}, fmt.Errorf("waiting for a token for %s: %w", c.resource, ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if usable(c.cur, time.Now()) {
		return c.cur, nil
	}
	if c.lastErr != nil {
		return token{}, c.lastErr
	}
	return token{}, fmt.Errorf("token for %s expired as soon as it was fetched: is the clock right?", c.resource)
}

// start begins a fetch; c.mu is held. The fetch outlives the caller's
// context: other callers may be waiting for it, and a cancelled FUSE call
// should not throw away a token everyone needs.
func (c *TokenCache) start(ctx context.Context, early bool) chan struct{} {
	ch := make(chan struct{})
	c.inflight = ch
	fctx := context.WithoutCancel(ctx)
	go func() {
		if c.onFetch != nil {
			c.onFetch()
		}
		t, err := c.fetch(fctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		now := time.Now()
		if err != nil {
			c.lastErr = err
			if early && usable(c.cur, now) {
				c.refreshAt = now.Add(retryGap(c.cur.expiresOn.Sub(now)))
				c.log.WithError(err).WithFields(logrus.Fields{"resource": c.resource, "next_try": c.refreshAt.Format(time.RFC3339)}).
					Warn("auth: early token refresh failed; keeping the current token")
			}
		} else {
			c.lastErr = nil
			if !c.cur.value.Empty() && !t.value.Equal(c.cur.value) {
				c.changedAt = now
			}
			c.cur = t
			c.refreshAt = refreshPoint(t, now)
			c.log.WithFields(logrus.Fields{"resource": c.resource, "expires": t.expiresOn.Format(time.RFC3339),
				"refresh_at": c.refreshAt.Format(time.RFC3339)}).Debug("auth: token cached")
		}
		c.inflight = nil
		close(ch)
	}()
	return ch
}

// Refresh is called when a service refused the token (expired early,
// revoked). It fetches a new one unless one arrived moments ago, which the
// caller most likely did not use yet, and at most once per 30 s (less for
// short-lived tokens), so that a token refused for good does not make
// every request hit IMDS.
func (c *TokenCache) Refresh(ctx context.Context) (bool, error) {
	c.mu.Lock()
	now := time.Now()
	life := c.cur.expiresOn.Sub(c.cur.fetched)
	if !c.changedAt.IsZero() && now.Sub(c.changedAt) < min(5*time.Second, life/4) {
		c.mu.Unlock()
		return true, nil
	}
	if !c.forcedAt.IsZero() && now.Sub(c.forcedAt) < retryGap(life) {
		c.mu.Unlock()
		return false, nil
	}
	c.forcedAt = now
	before := c.cur.value
	ch := c.inflight
	if ch == nil {
		ch = c.start(ctx, false)
	}
	c.mu.Unlock()
	t, err := c.wait(ctx, ch)
	if err != nil {
		return false, err
	}
	return !t.value.Equal(before), nil
}

// refreshFrom replaces used, a token a service refused, unless it was
// replaced already; it reports whether the current token differs from used.
func (c *TokenCache) refreshFrom(ctx context.Context, used Secret) (bool, error) {
	c.mu.Lock()
	if !c.cur.value.Equal(used) {
		c.mu.Unlock()
		return true, nil
	}
	now := time.Now()
	if !c.forcedAt.IsZero() && now.Sub(c.forcedAt) < retryGap(c.cur.expiresOn.Sub(c.cur.fetched)) {
		c.mu.Unlock()
		return false, nil
	}
	c.forcedAt = now
	ch := c.inflight
	if ch == nil {
		ch = c.start(ctx, false)
	}
	c.mu.Unlock()
	t, err := c.wait(ctx, ch)
	if err != nil {
		return false, err
	}
	return !t.value.Equal(used), nil
}
