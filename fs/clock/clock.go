// Package clock lets code that waits or expires things by time take its
// time from a Clock, so that tests of TTLs, retries and recovery move time
// forward with Fake.Advance instead of sleeping.
//
// Production code takes a Clock (Real{} by default); tests give it a
// *Fake. The interface holds only what such code needs: the time, and
// timers it can stop.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock is a source of time and timers.
type Clock interface {
	Now() time.Time
	Since(t time.Time) time.Duration
	// After is time.After: the channel receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
	// NewTimer is time.NewTimer.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer a Clock's timers offer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped
	// the timer before it fired.
	Stop() bool
	// Reset makes the timer fire d from now; it reports whether the timer
	// was active.
	Reset(d time.Duration) bool
}

// Real is the system clock.
type Real struct{}

func (Real) Now() time.Time                         { return time.Now() }
func (Real) Since(t time.Time) time.Duration        { return time.Since(t) }
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (Real) NewTimer(d time.Duration) Timer         { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// Fake is a Clock that moves only when told to. Its timers fire during
// Advance or Set, in deadline order, each at most once per arming; a
// timer's channel has room for one value, like time.Timer's, so firing
// never blocks the test.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer // armed ones
	armed  *sync.Cond   // broadcast when a timer is armed, for BlockUntil
}

// NewFake starts a fake clock at start. A zero start means a fixed,
// arbitrary instant (not the real time, so that tests are repeatable).
func NewFake(start time.Time) *Fake {
	if start.IsZero() {
		start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	f := &Fake{now: start}
	f.armed = sync.NewCond(&f.mu)
	return f
}

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

func (f *Fake) After(d time.Duration) <-chan time.Time { return f.NewTimer(d).C() }

func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arm(t, d)
	return t
}

// Advance moves the clock forward by d and fires the timers due by then.
func (f *Fake) Advance(d time.Duration) {
	if d < 0 {
		panic("clock: Advance with a negative duration")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(f.now.Add(d))
}

// Set moves the clock to t, which must not be before Now, and fires the
// timers due by then.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.Before(f.now) {
		panic("clock: Set to a time before Now")
	}
	f.setLocked(t)
}

// Timers is the number of timers armed and not yet fired or stopped.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// BlockUntil waits until at least n timers are armed: a test calls it
// before Advance so that the code under test has reached its wait, and the
// Advance is not lost on a timer armed later.
func (f *Fake) BlockUntil(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.timers) < n {
		f.armed.Wait()
	}
}

func (f *Fake) setLocked(t time.Time) {
	f.now = t
	// Deadline order, so that a test sees timers fire as they would.
	sort.SliceStable(f.timers, func(i, j int) bool { return f.timers[i].when.Before(f.timers[j].when) })
	kept := f.timers[:0]
	for _, tm := range f.timers {
		if tm.when.After(t) {
			kept = append(kept, tm)
			continue
		}
		tm.active = false
		select {
		case tm.c <- tm.when:
		default: // the last value was not received: drop this one, as time.Timer would
		}
	}
	clear(f.timers[len(kept):])
	f.timers = kept
}

// arm schedules t d from now; f.mu is held.
func (f *Fake) arm(t *fakeTimer, d time.Duration) {
	t.when = f.now.Add(d)
	t.active = true
	f.timers = append(f.timers, t)
	f.armed.Broadcast()
	if d <= 0 {
		f.setLocked(f.now)
	}
}

// disarm removes t; f.mu is held. It reports whether t was armed.
func (f *Fake) disarm(t *fakeTimer) bool {
	if !t.active {
		return false
	}
	t.active = false
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			break
		}
	}
	return true
}

type fakeTimer struct {
	f      *Fake
	c      chan time.Time
	when   time.Time // guarded by f.mu
	active bool      // guarded by f.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	// Like time.Timer since Go 1.23: after Stop, C yields nothing from
	// this arming, even a value already sent.
	select {
	case <-t.c:
	default:
	}
	return t.f.disarm(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.f.disarm(t)
	// Like time.Timer since Go 1.23: a value not yet received from the
	// previous arming is discarded, so C never yields a stale time.
	select {
	case <-t.c:
	default:
	}
	t.f.arm(t, d)
	return was
}

var (
	_ Clock = Real{}
	_ Clock = (*Fake)(nil)
)
