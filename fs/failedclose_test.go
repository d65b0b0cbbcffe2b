package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs"
)

// refuseCommits fails every commit (Put Blob, Put Block List) with err
// while it is set.
type refuseCommits struct {
	fs.Store
	err atomic.Pointer[error]
}

func (r *refuseCommits) refused(name string) error {
	if p := r.err.Load(); p != nil {
		return fmt.Errorf("committing %q: %w", name, *p)
	}
	return nil
}

func (r *refuseCommits) Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error) {
	if err := r.refused(name); err != nil {
		return nil, err
	}
	return r.Store.Upload(ctx, name, data, opts)
}

func (r *refuseCommits) PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error) {
	if err := r.refused(name); err != nil {
		return nil, err
	}
	return r.Store.PutBlockList(ctx, name, ids, opts)
}

// A close() that failed is never committed by a later mount: issue 20
// scenario 7 (an outage past the retry budget, then rm) and issue 21's
// lease row (another client's lease refused the commit; the lease is
// gone by the next mount).
func TestFailedCloseIsNeverPublishedLater(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		errno  syscall.Errno
		theirs string // the blob before, written by another client
		rm     bool   // rm the file after the failed close
		// copies of the data in lost+found afterwards; -1: 0 or 1. The
		// rm may reach the mount before the kernel's RELEASE of the
		// closed file (it is sent after close() returns): a file
		// removed while open is dropped, one closed first is kept.
		wantCache int
	}{
		{name: "outage then rm", err: blob.ErrUnavailable, errno: syscall.EIO, rm: true, wantCache: -1},
		{name: "lease", err: blob.ErrBusy, errno: syscall.EBUSY, theirs: "the lease holder's", wantCache: 1},
	}
	for k, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			name := fmt.Sprintf("f%d", k)
			if tc.theirs != "" {
				e.put(t, name, tc.theirs, nil)
			}
			cache := t.TempDir()
			store := &refuseCommits{Store: e.mct}
			dir, mt := e.mountStore(t, store, fs.Options{CacheDir: cache, BlockSize: 1 << 20})
			data := bytes.Repeat([]byte("never published "), (3<<20)/16)
			f, err := os.Create(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			refusal := tc.err
			store.err.Store(&refusal)
			if err := f.Close(); !errors.Is(err, tc.errno) {
				t.Errorf("close() = %v, want %v", err, tc.errno)
			}
			store.err.Store(nil) // the service takes commits again
			if tc.rm {
				if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Errorf("rm after the failed close: %v", err)
				}
			}
			unmount(t, mt)

			_, mt2 := e.mount(t, fs.Options{CacheDir: cache, BlockSize: 1 << 20})
			got, _, ok := e.get(t, name)
			switch {
			case tc.theirs == "" && ok:
				t.Errorf("the next mount published %d bytes under %s, which the program was told had failed", len(got), name)
			case tc.theirs != "" && got != tc.theirs:
				t.Errorf("the next mount replaced the lease holder's blob with %d bytes", len(got))
			}
			kept, _ := filepath.Glob(filepath.Join(cache, "lost+found", name+".*"))
			var data0 []string
			for _, p := range kept {
				if filepath.Ext(p) != ".json" {
					data0 = append(data0, p)
				}
			}
			if len(data0) != tc.wantCache && (tc.wantCache >= 0 || len(data0) > 1) {
				t.Errorf("lost+found holds %v, want %d copy of the data", kept, tc.wantCache)
			} else if len(data0) == 1 {
				if b, err := os.ReadFile(data0[0]); err != nil || !bytes.Equal(b, data) {
					t.Errorf("the copy in lost+found: %d bytes, %v; want the %d written", len(b), err, len(data))
				}
			}
			unmount(t, mt2)
		})
	}
}
