package fs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

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
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
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
	err = f.Close()
	close(stop)
	<-done
	return err
}
