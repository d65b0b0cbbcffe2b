package fs

import (
	"context"
	"sync"
	"time"
)

// The kernel interrupts a FUSE request whenever the calling thread gets a
// signal, any signal: a SIGCHLD to make, a SIGALRM, Go's SIGURG. Local
// filesystems and NFS hard mounts never fail open(), stat() or read() for
// that (since Linux 2.6.25 only a fatal signal ends an NFS wait), so few
// programs retry an EINTR from them. The interrupt cannot tell a fatal
// signal from a harmless one; what tells them apart is time: a harmless
// one needs nothing from us, a Ctrl-C of a program stuck on an unreachable
// service needs the request to end soon.

// uninterruptible detaches a changing operation from FUSE interrupts. Few
// programs retry an EINTR from close, rename or unlink, and a change
// abandoned half-way (a copy without its delete, an upload left in the
// cache) is worse than waiting: the client's retry budget still bounds
// the wait.
func uninterruptible(ctx context.Context) context.Context {
	return context.WithoutCancel(ctx)
}

// interruptGrace is how long a looking operation (lookup, stat, open,
// readdir, read) goes on after the kernel interrupted it; one not done by
// then fails with EINTR. Operations that the service answers in time
// succeed whatever signals come; a program killed while the service hangs
// is let go after this long, not after the client's whole retry budget.
const interruptGrace = 2 * time.Second

// patient returns ctx for an operation that may be abandoned when
// interrupted, but only interruptGrace after the interrupt. Call release
// when the operation ends.
//
// Its Done channel is made on first use, and only then does a goroutine
// watch for the interrupt: the common operation, answered from the
// caches, never blocks, never asks, and costs no goroutine.
func patient(ctx context.Context) (_ context.Context, release func()) {
	p := &patientCtx{Context: ctx}
	return p, p.release
}

type patientCtx struct {
	context.Context // the request's: its values, and the interrupt

	mu       sync.Mutex
	done     chan struct{} // nil until Done is first called
	stop     chan struct{} // closed by release: the watcher exits
	err      error
	released bool
}

func (p *patientCtx) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		p.done = make(chan struct{})
		if !p.released {
			p.stop = make(chan struct{})
			go p.watch(p.stop)
		}
	}
	return p.done
}

func (p *patientCtx) watch(stop <-chan struct{}) {
	select {
	case <-stop:
		return
	case <-p.Context.Done():
	}
	t := time.NewTimer(interruptGrace)
	defer t.Stop()
	select {
	case <-stop:
	case <-t.C:
		p.mu.Lock()
		p.err = context.Cause(p.Context)
		if p.err == nil {
			p.err = context.Canceled
		}
		close(p.done)
		p.mu.Unlock()
	}
}

// Err is nil until Done is closed, as the context package requires; it
// starts the watcher so that a caller that only polls Err sees the end.
func (p *patientCtx) Err() error {
	p.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *patientCtx) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return
	}
	p.released = true
	if p.stop != nil {
		close(p.stop)
	}
}
