package blobfake

import (
	"context"
	"fmt"
	"sync"
)

// Gate holds the calls it matches until the test releases them, so that a
// test can stop one call at a chosen point, do something else meanwhile
// (another client's write, a second call of the code under test) and then
// let it go: races made deterministic.
//
//	g := store.Hold(blobfake.OpPutBlockList, "f")
//	go close(file)             // its commit stops in the gate
//	g.WaitHeld(ctx, 1)         // the commit is in the gate now
//	store.Delete(ctx, "f", …)  // the race, in a known order
//	g.Release()
//
// A held call whose context ends returns the context's error, as a real
// call would.
type Gate struct {
	s     *Store
	op    string
	name  string // "" matches every name
	after bool   // hold after the write is applied, before the answer

	mu       sync.Mutex
	held     int
	total    int
	arrived  chan struct{} // closed (and replaced) at every arrival
	released chan struct{}
	once     sync.Once
}

// Hold makes the calls of op on name ("" for any name) wait, before they
// are applied, until the gate is released.
func (s *Store) Hold(op, name string) *Gate { return s.addGate(op, name, false) }

// HoldAfter makes the writes of op on name ("" for any name) wait after
// they are applied, before they answer: the service has the new state but
// the caller does not know it yet.
func (s *Store) HoldAfter(op, name string) *Gate { return s.addGate(op, name, true) }

func (s *Store) addGate(op, name string, after bool) *Gate {
	g := &Gate{s: s, op: op, name: name, after: after, arrived: make(chan struct{}), released: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gates = append(s.gates, g)
	return g
}

// matching lists the gates for a call; s.mu is held.
func (s *Store) matching(op, name string, after bool) []*Gate {
	var gs []*Gate
	for _, g := range s.gates {
		if g.op == op && g.after == after && (g.name == "" || g.name == name) {
			gs = append(gs, g)
		}
	}
	return gs
}

func (g *Gate) hold(ctx context.Context, op, name string) error {
	g.mu.Lock()
	g.held++
	g.total++
	close(g.arrived)
	g.arrived = make(chan struct{})
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.held--
		g.mu.Unlock()
	}()
	select {
	case <-g.released:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %q: %w", op, name, ctx.Err())
	}
}

// Held is the number of calls waiting in the gate now.
func (g *Gate) Held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// Arrivals is the number of calls that reached the gate so far, released
// or not.
func (g *Gate) Arrivals() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// WaitHeld waits until n calls wait in the gate, or ctx ends.
func (g *Gate) WaitHeld(ctx context.Context, n int) error {
	for {
		g.mu.Lock()
		held, arrived := g.held, g.arrived
		g.mu.Unlock()
		if held >= n {
			return nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d %s call(s) in the gate (%d there): %w", n, g.op, held, ctx.Err())
		}
	}
}

// Release lets the held calls go and removes the gate: later calls pass.
// It may be called more than once.
func (g *Gate) Release() {
	g.once.Do(func() {
		g.s.mu.Lock()
		for i, x := range g.s.gates {
			if x == g {
				g.s.gates = append(g.s.gates[:i], g.s.gates[i+1:]...)
				break
			}
		}
		g.s.mu.Unlock()
		close(g.released)
	})
}
