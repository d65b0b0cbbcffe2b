package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs"
)

// A signal that reaches a program while close() uploads its file must not
// fail the close: Go's runtime sends SIGURG to its threads all the time,
// a program cannot retry a close, and the data would otherwise wait in the
// cache until the next mount.
func TestCloseIsNotFailedBySignals(t *testing.T) {
	e := newEnv(t)
	dir, _ := e.mount(t, fs.Options{})
	// Big enough that the upload at close takes many signal periods.
	data := bytes.Repeat([]byte("signal\n"), 1<<20)
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("f%d", i)
		if err := closeUnderSignals(filepath.Join(dir, name), data); err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		if got, _, ok := e.get(t, name); !ok || got != string(data) {
			t.Fatalf("blob %s after close: present %v, %d bytes, want %d", name, ok, len(got), len(data))
		}
	}
}

// closeUnderSignals writes path and closes it while its thread receives a
// SIGURG every millisecond.
func closeUnderSignals(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return underSignals(f.Close)
}

// underSignals runs fn on a thread of its own that receives a SIGURG
// every millisecond, as a thread of a busy Go program or a shell reaping
// children may: every FUSE request fn makes is interrupted.
func underSignals(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := os.Getpid(), syscall.Gettid()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = syscall.Tgkill(pid, tid, syscall.SIGURG)
			time.Sleep(time.Millisecond)
		}
	}()
	err := fn()
	close(stop)
	<-done
	return err
}

// slow delays the calls that only look at the service, as a distant or
// busy one would; the delay ends early if the call's context does.
type slow struct {
	fs.Store
	delay atomic.Int64 // nanoseconds
}

func (s *slow) wait(ctx context.Context) error {
	select {
	case <-time.After(time.Duration(s.delay.Load())):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slow) List(ctx context.Context, opts blob.ListOptions) (*blob.ListPage, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.Store.List(ctx, opts)
}

func (s *slow) GetProperties(ctx context.Context, name string) (*blob.Properties, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.Store.GetProperties(ctx, name)
}

func (s *slow) Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error) {
	if err := s.wait(ctx); err != nil {
		return nil, nil, err
	}
	return s.Store.Download(ctx, name, offset, count, cond)
}

// A signal that reaches a program while the service answers its stat,
// open, readdir or read must not fail them: the raw system calls here do
// not retry an EINTR, as most C programs do not.
func TestSignalsDoNotFailLookupsAndReads(t *testing.T) {
	e := newEnv(t)
	e.put(t, "d/f", "content", nil)
	e.put(t, "d/g", "other", nil)
	st := &slow{Store: e.mct}
	// Direct I/O: reads through the page cache are the kernel's
	// readahead, which no signal interrupts; these reach the daemon as
	// the caller's own request.
	dir, _ := e.mountStore(t, st, fs.Options{DirectIO: true})
	st.delay.Store(int64(300 * time.Millisecond))

	steps := []struct {
		what string
		fn   func() error
	}{
		{"readdir", func() error {
			fd, err := syscall.Open(filepath.Join(dir, "d"), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
			if err != nil {
				return err
			}
			defer syscall.Close(fd)
			buf := make([]byte, 4096)
			n, err := syscall.ReadDirent(fd, buf)
			if err != nil {
				return err
			}
			if !bytes.Contains(buf[:n], []byte("f\x00")) {
				return fmt.Errorf("listing lacks f: %q", buf[:n])
			}
			return nil
		}},
		{"stat", func() error {
			var s syscall.Stat_t
			if err := syscall.Stat(filepath.Join(dir, "d", "f"), &s); err != nil {
				return err
			}
			if s.Size != int64(len("content")) {
				return fmt.Errorf("size %d", s.Size)
			}
			return nil
		}},
		{"open and read", func() error {
			fd, err := syscall.Open(filepath.Join(dir, "d", "f"), syscall.O_RDONLY, 0)
			if err != nil {
				return err
			}
			defer syscall.Close(fd)
			buf := make([]byte, 64)
			n, err := syscall.Read(fd, buf)
			if err != nil {
				return err
			}
			if string(buf[:n]) != "content" {
				return fmt.Errorf("read %q", buf[:n])
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := underSignals(s.fn); err != nil {
			t.Errorf("%s under signals: %v", s.what, err)
		}
	}

	// The read alone: opened in peace, read under signals.
	fd, err := syscall.Open(filepath.Join(dir, "d", "g"), syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	buf := make([]byte, 64)
	var n int
	err = underSignals(func() (err error) {
		n, err = syscall.Read(fd, buf)
		return err
	})
	n = max(n, 0) // -1 with an error
	if err != nil || string(buf[:n]) != "other" {
		t.Errorf("read under signals: %q, %v; want %q", buf[:n], err, "other")
	}
}

// A program killed while the service hangs must not wait out the client's
// whole retry budget: the interrupted lookup ends with EINTR, after a
// grace of a few seconds rather than at the first signal.
func TestInterruptEndsAHungLookup(t *testing.T) {
	e := newEnv(t)
	e.put(t, "f", "content", nil)
	st := &slow{Store: e.mct}
	dir, _ := e.mountStore(t, st, fs.Options{})
	st.delay.Store(int64(time.Minute))

	start := time.Now()
	err := underSignals(func() error {
		var s syscall.Stat_t
		return syscall.Stat(filepath.Join(dir, "f"), &s)
	})
	took := time.Since(start)
	if !errors.Is(err, syscall.EINTR) {
		t.Fatalf("stat of a hung service under signals: %v, want EINTR", err)
	}
	if took < time.Second || took > 20*time.Second {
		t.Errorf("stat gave up after %v, want the grace (2 s): not at the first signal, not after the delay", took)
	}
}
