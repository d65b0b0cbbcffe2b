package clock

import (
	"testing"
	"time"
)

func received(c <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-c:
		return v, true
	default:
		return time.Time{}, false
	}
}

func TestFakeNowAndAdvance(t *testing.T) {
	start := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	f := NewFake(start)
	if got := f.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	f.Advance(90 * time.Second)
	if got := f.Since(start); got != 90*time.Second {
		t.Errorf("Since(start) after Advance(90s) = %v", got)
	}
	f.Set(start.Add(time.Hour))
	if got := f.Now(); !got.Equal(start.Add(time.Hour)) {
		t.Errorf("Now after Set = %v", got)
	}
	if NewFake(time.Time{}).Now().IsZero() {
		t.Error("a zero start gives a zero time; want a fixed instant")
	}
}

func TestFakeTimers(t *testing.T) {
	tests := []struct {
		name     string
		run      func(f *Fake) []<-chan time.Time // timers made, in the order they must fire
		advance  []time.Duration
		wantFire []int // after each advance, how many of the timers have fired in total
	}{
		{
			name:     "fires when due, not before",
			run:      func(f *Fake) []<-chan time.Time { return []<-chan time.Time{f.After(10 * time.Second)} },
			advance:  []time.Duration{9 * time.Second, time.Second},
			wantFire: []int{0, 1},
		},
		{
			name: "several in one Advance",
			run: func(f *Fake) []<-chan time.Time {
				return []<-chan time.Time{f.After(time.Second), f.After(2 * time.Second), f.After(time.Minute)}
			},
			advance:  []time.Duration{5 * time.Second, time.Minute},
			wantFire: []int{2, 3},
		},
		{
			name:     "zero duration fires at once",
			run:      func(f *Fake) []<-chan time.Time { return []<-chan time.Time{f.After(0)} },
			advance:  []time.Duration{0},
			wantFire: []int{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake(time.Time{})
			start := f.Now()
			chans := tt.run(f)
			fired := make([]bool, len(chans))
			for i, d := range tt.advance {
				f.Advance(d)
				for j, c := range chans {
					if v, ok := received(c); ok {
						if fired[j] {
							t.Errorf("timer %d fired twice", j)
						}
						fired[j] = true
						if v.Before(start) || v.After(f.Now()) {
							t.Errorf("timer %d sent %v, outside [%v, %v]", j, v, start, f.Now())
						}
					}
				}
				n := 0
				for _, b := range fired {
					if b {
						n++
					}
				}
				if n != tt.wantFire[i] {
					t.Errorf("after advance %d: %d fired, want %d", i, n, tt.wantFire[i])
				}
			}
			if f.Timers() != len(chans)-tt.wantFire[len(tt.wantFire)-1] {
				t.Errorf("Timers() = %d with %d unfired", f.Timers(), len(chans)-tt.wantFire[len(tt.wantFire)-1])
			}
		})
	}
}

func TestFakeTimerStopReset(t *testing.T) {
	f := NewFake(time.Time{})
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Error("Stop of an armed timer = false")
	}
	if tm.Stop() {
		t.Error("second Stop = true")
	}
	f.Advance(time.Hour)
	if _, ok := received(tm.C()); ok {
		t.Error("a stopped timer fired")
	}
	if tm.Reset(time.Minute) {
		t.Error("Reset of a stopped timer reported it active")
	}
	f.Advance(59 * time.Second)
	if _, ok := received(tm.C()); ok {
		t.Error("fired before its reset deadline")
	}
	f.Advance(time.Second)
	if _, ok := received(tm.C()); !ok {
		t.Error("did not fire at its reset deadline")
	}

	// A fired value not yet received is dropped by Reset and Stop.
	tm = f.NewTimer(time.Second)
	f.Advance(time.Second)
	tm.Reset(time.Hour)
	if _, ok := received(tm.C()); ok {
		t.Error("Reset left the previous arming's value in C")
	}
	tm.Reset(time.Second)
	f.Advance(time.Second)
	tm.Stop()
	if _, ok := received(tm.C()); ok {
		t.Error("Stop left a fired value in C")
	}
}

// BlockUntil lets a test advance only once the code under test waits, so
// the advance cannot be lost.
func TestFakeBlockUntil(t *testing.T) {
	f := NewFake(time.Time{})
	done := make(chan time.Time)
	go func() { done <- <-f.After(30 * time.Second) }()
	f.BlockUntil(1)
	f.Advance(30 * time.Second)
	select {
	case v := <-done:
		if !v.Equal(f.Now()) {
			t.Errorf("woke with %v, want %v", v, f.Now())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not wake after Advance")
	}
}

func TestRealClock(t *testing.T) {
	var c Clock = Real{}
	before := time.Now()
	if now := c.Now(); now.Before(before) {
		t.Errorf("Real.Now %v before time.Now %v", now, before)
	}
	tm := c.NewTimer(time.Millisecond)
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatal("a 1 ms real timer did not fire in 10 s")
	}
	if tm.Stop() {
		t.Error("Stop after firing = true")
	}
}
