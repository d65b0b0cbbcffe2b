package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// ErrStalled is wrapped by the transport error of an attempt abandoned
// because the connection made no progress for RetryPolicy.AttemptTimeout.
var ErrStalled = errors.New("connection stalled")

// watchdog cancels an attempt that has been silent for too long. It starts
// armed (covering the send and the wait for headers); the request body
// kicks it on every Read, and the answer's body arms it only for the
// duration of each Read.
type watchdog struct {
	d     time.Duration
	t     *time.Timer
	fired atomic.Bool
}

func newWatchdog(d time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{d: d}
	w.t = time.AfterFunc(d, func() {
		w.fired.Store(true)
		cancel()
	})
	return w
}

// arm (re)starts the countdown.
func (w *watchdog) arm() {
	if !w.fired.Load() {
		w.t.Reset(w.d)
	}
}

func (w *watchdog) disarm() { w.t.Stop() }

// kickingBody is a request body that proves progress to the watchdog each
// time the transport takes more of it.
type kickingBody struct {
	io.ReadCloser
	wd *watchdog
}

func (b *kickingBody) Read(p []byte) (int, error) {
	b.wd.arm()
	return b.ReadCloser.Read(p)
}

// watchedBody is an accepted answer's body. A Read that stalls is abandoned
// after the attempt timeout; a failure mid-body (reset, truncated, stalled)
// comes back as a transport error, which a resuming reader may retry.
// Closing it releases the attempt.
type watchedBody struct {
	rc     io.ReadCloser
	wd     *watchdog
	cancel context.CancelFunc
	ctx    context.Context // the caller's, to tell its cancellation from a stall
	op     string
	name   string
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.wd.arm()
	n, err := b.rc.Read(p)
	b.wd.disarm()
	if err == nil || err == io.EOF {
		return n, err
	}
	switch {
	case b.ctx.Err() != nil:
		err = fmt.Errorf("%s %q: reading the answer: %w", b.op, b.name, b.ctx.Err())
	case b.wd.fired.Load():
		err = &transportError{op: b.op, name: b.name, err: fmt.Errorf("%w: the answer's body sent nothing for %v", ErrStalled, b.wd.d)}
	default:
		err = &transportError{op: b.op, name: b.name, err: fmt.Errorf("reading the answer: %w", err)}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.rc.Close()
	b.wd.disarm()
	b.cancel()
	return err
}
