package fs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobfake"
	"github.com/blobfs/blobfs/fs"
	"github.com/blobfs/blobfs/fs/clock"
)

// Issue 20's scenarios, on the core alone: the in-memory fake for the
// service and go-fuse's raw interface for the kernel (see rawFS). Gates of
// the fake put each race in a known order, so these run in milliseconds
// and need neither Azurite nor /dev/fuse. The same scenarios run through
// a real mount on Azurite in lifecycle_test.go, failedclose_test.go and
// cachefull_test.go.

// blobs lists what the fake holds, markers of directories left out.
func blobs(st *blobfake.Store) []string {
	var out []string
	for _, n := range st.Names() {
		if !strings.HasSuffix(n, "/") {
			out = append(out, n)
		}
	}
	return out
}

func unmountCore(t *testing.T, mt *fs.Mounted) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mt.Unmount(ctx); err != nil {
		t.Fatalf("unmount: %v", err)
	}
}

// Scenarios 1 and 2: rm or mv of a new file while its first upload is
// held in the service. The removal or move waits for the upload and acts
// on the blob it made.
func TestCoreRemovalDuringFirstUpload(t *testing.T) {
	tests := []struct {
		name string
		op   func(r *rawFS) error
		want []string
	}{
		{"rm", func(r *rawFS) error { return r.Remove("new") }, nil},
		{"mv", func(r *rawFS) error { return r.Rename("new", "moved") }, []string{"moved"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st := blobfake.New(blobfake.Options{})
			cache := t.TempDir()
			r, mt := mountKernelFree(t, st, fs.Options{CacheDir: cache})
			f, err := r.OpenFile("new", syscall.O_WRONLY|syscall.O_CREAT, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("data"); err != nil {
				t.Fatal(err)
			}
			gate := st.Hold(blobfake.OpPut, "new")
			closed := make(chan error, 1)
			go func() { closed <- f.Close() }()
			if err := gate.WaitHeld(ctx, 1); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- tt.op(r) }()
			select {
			case err := <-done:
				t.Fatalf("%s returned (%v) while the upload it must wait for was held", tt.name, err)
			case <-time.After(50 * time.Millisecond):
			}
			gate.Release()
			if err := <-done; err != nil {
				t.Errorf("%s during the upload: %v", tt.name, err)
			}
			if err := <-closed; err != nil {
				t.Errorf("close: %v", err)
			}
			if _, err := r.ReadFile("new"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("read of the old name: %v, want ENOENT", err)
			}
			unmountCore(t, mt)
			if got := blobs(st); !slices.Equal(got, tt.want) {
				t.Errorf("blobs %q, want %q", got, tt.want)
			}
			for _, n := range tt.want {
				if b, _, _ := st.Content(n); string(b) != "data" {
					t.Errorf("%s = %q, want %q", n, b, "data")
				}
			}
			_, mt2 := mountKernelFree(t, st, fs.Options{CacheDir: cache})
			unmountCore(t, mt2)
			if got := blobs(st); !slices.Equal(got, tt.want) {
				t.Errorf("after a remount: blobs %q, want %q", got, tt.want)
			}
			if kept, _ := filepath.Glob(filepath.Join(cache, "*", "*", "lost+found", "*")); len(kept) != 0 {
				t.Errorf("lost+found holds %q, want nothing", kept)
			}
		})
	}
}

// Scenario 3's cause, without the kernel: a metadata change made by this
// mount (here a chmod, as the kernel's setuid clear is) while a writer has
// the file open goes with the writer's commit: the blob's ETag does not
// move under the writer, so its close() does not conflict with itself.
func TestCoreSetattrDuringWriteDoesNotConflict(t *testing.T) {
	st := blobfake.New(blobfake.Options{})
	r, mt := mountKernelFree(t, st, fs.Options{})
	if err := r.WriteFile("f", []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		f, err := r.OpenFile("f", syscall.O_WRONLY|syscall.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(fmt.Sprintf("new %d", round)); err != nil {
			t.Fatal(err)
		}
		if err := r.Chmod("f", 0o600); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("round %d: close after a chmod of the open file: %v", round, err)
		}
	}
	unmountCore(t, mt)
	if got := blobs(st); !slices.Equal(got, []string{"f"}) {
		t.Errorf("blobs %q, want only f (no conflict copy)", got)
	}
	b, p, _ := st.Content("f")
	if string(b) != "new 1" || p.Metadata["mode"] != "0600" {
		t.Errorf("f = %q, mode %q; want %q, 0600", b, p.Metadata["mode"], "new 1")
	}
}

// Scenario 7: a close() that failed (the service unavailable past the
// retry budget), then rm of the file. Nothing is published later.
func TestCoreFailedCloseThenRemoveStaysRemoved(t *testing.T) {
	st := blobfake.New(blobfake.Options{})
	cache := t.TempDir()
	r, mt := mountKernelFree(t, st, fs.Options{CacheDir: cache})
	f, err := r.OpenFile("f", syscall.O_WRONLY|syscall.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("never published")
	st.SetHook(func(op, name string) error {
		if name == "f" && (op == blobfake.OpPut || op == blobfake.OpPutBlockList) {
			return fmt.Errorf("%s %q: %w", op, name, blob.ErrUnavailable)
		}
		return nil
	})
	if err := f.Close(); !errors.Is(err, syscall.EIO) {
		t.Errorf("close() = %v, want EIO", err)
	}
	st.SetHook(nil) // the service is back
	if err := r.Remove("f"); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rm after the failed close: %v", err)
	}
	unmountCore(t, mt)
	_, mt2 := mountKernelFree(t, st, fs.Options{CacheDir: cache})
	unmountCore(t, mt2)
	if got := blobs(st); len(got) != 0 {
		t.Errorf("blobs %q after a remount: a removed file whose close failed came back", got)
	}
}

// Scenario 8: two mounts write one file; the second's close() fails
// ESTALE and keeps its data beside it. That mount then reads the winner.
func TestCoreConflictLoserReadsWinner(t *testing.T) {
	st := blobfake.New(blobfake.Options{})
	if _, err := st.Upload(context.Background(), "f", []byte("base"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _ := mountKernelFree(t, st, fs.Options{})
	b, _ := mountKernelFree(t, st, fs.Options{})
	fa, err := a.OpenFile("f", syscall.O_WRONLY|syscall.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := b.OpenFile("f", syscall.O_WRONLY|syscall.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fa.WriteString("winner")
	fb.WriteString("loser")
	if err := fa.Close(); err != nil {
		t.Fatalf("first close: %v", err)
	}
	if err := fb.Close(); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("second close: %v, want ESTALE", err)
	}
	if got, err := b.ReadFile("f"); err != nil || string(got) != "winner" {
		t.Errorf("reading f on the losing mount: %q, %v; want %q", got, err, "winner")
	}
	var conflicts []string
	for _, n := range blobs(st) {
		if strings.Contains(n, ".conflict-") {
			conflicts = append(conflicts, n)
		}
	}
	if len(conflicts) != 1 {
		t.Errorf("conflict copies %q, want the loser's one", conflicts)
	}
}

// The mount's TTLs run on its clock (Options.Clock): what another client
// changed shows once the fake clock has moved past the TTL, with no
// sleeping, and not before (the mount answers from what it was told, with
// no call).
func TestCoreTTLsRunOnTheMountsClock(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Time{})
	st := blobfake.New(blobfake.Options{Clock: clk})
	if _, err := st.Upload(ctx, "f", []byte("v1"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r, _ := mountKernelFree(t, st, fs.Options{Clock: clk, AttrTTL: 30 * time.Second, EntryTTL: 30 * time.Second, NegativeTTL: 5 * time.Second})
	if _, err := r.ReadFile("g"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read of g before it exists: %v", err)
	}
	if a, err := r.Stat("f"); err != nil || a.Size != 2 {
		t.Fatalf("stat f = %d, %v", a.Size, err)
	}
	// Another client makes g and grows f.
	if _, err := st.Upload(ctx, "g", []byte("new"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Upload(ctx, "f", []byte("v2, longer"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	st.ResetCalls()
	clk.Advance(4 * time.Second)
	if _, err := r.ReadFile("g"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("4 s later, within the negative TTL: read of g = %v, want ENOENT from the cache", err)
	}
	if a, err := r.Stat("f"); err != nil || a.Size != 2 {
		t.Errorf("4 s later, within the attribute TTL: stat f = %d, %v; want the size it was told, 2", a.Size, err)
	}
	if n := st.CallCounts(); len(n) != 0 {
		t.Errorf("calls within the TTLs: %v, want none", n)
	}
	clk.Advance(2 * time.Second) // past the negative TTL
	if b, err := r.ReadFile("g"); err != nil || string(b) != "new" {
		t.Errorf("past the negative TTL: read of g = %q, %v; want %q", b, err, "new")
	}
	clk.Advance(25 * time.Second) // past the attribute and entry TTLs
	if a, err := r.Stat("f"); err != nil || a.Size != 10 {
		t.Errorf("past the attribute TTL: stat f = %d, %v; want the new size, 10", a.Size, err)
	}
}

// Scenario 4: a blob this mount knows (looked up, its attributes cached)
// is replaced by another client before anyone opens it: reading it gives
// a consistent version, the new one, not ESTALE for the attribute TTL.
func TestCoreReplacedAfterLookup(t *testing.T) {
	ctx := context.Background()
	st := blobfake.New(blobfake.Options{})
	if _, err := st.Upload(ctx, "f", []byte("listed version"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r, _ := mountKernelFree(t, st, fs.Options{AttrTTL: time.Hour, EntryTTL: time.Hour})
	if a, err := r.Stat("f"); err != nil || a.Size != 14 {
		t.Fatalf("stat f = %d, %v", a.Size, err)
	}
	if _, err := st.Upload(ctx, "f", []byte("replaced by another client"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		got, err := r.ReadFile("f")
		if err != nil || string(got) != "replaced by another client" {
			t.Errorf("read %d after the replacement: %q, %v; want the new version", i+1, got, err)
		}
	}
}
