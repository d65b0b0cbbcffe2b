package stage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/stage"
)

// refusing is the container with commits (Put Blob, Put Block List)
// failing with err while it is set, as during an outage longer than the
// retry budget (blob.ErrUnavailable) or while another client holds a
// lease (blob.ErrBusy). With stall set instead, a commit waits for its
// context to end: a commit cut short, as by a crash.
type refusing struct {
	*blob.Container
	err     atomic.Pointer[error]
	stall   atomic.Bool
	stalled chan struct{} // a commit is waiting in stall (buffered)
	commits atomic.Int64  // commits that reached the service
}

func (r *refusing) refuse(err error) {
	if err == nil {
		r.err.Store(nil)
		return
	}
	r.err.Store(&err)
}

func (r *refusing) check(ctx context.Context, name string) error {
	if r.stall.Load() {
		select {
		case r.stalled <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	if p := r.err.Load(); p != nil {
		return fmt.Errorf("committing %q: %w", name, *p)
	}
	r.commits.Add(1)
	return nil
}

func (r *refusing) Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error) {
	if err := r.check(ctx, name); err != nil {
		return nil, err
	}
	return r.Container.Upload(ctx, name, data, opts)
}

func (r *refusing) PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error) {
	if err := r.check(ctx, name); err != nil {
		return nil, err
	}
	return r.Container.PutBlockList(ctx, name, ids, opts)
}

// lostFound lists the staging area's lost+found (none when it does not
// exist).
func lostFound(tb testing.TB, m *stage.Manager) []string {
	tb.Helper()
	if _, err := os.Stat(m.LostFound()); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return dirNames(tb, m.LostFound())
}

// staged lists the journals and cache files left in a staging directory.
func staged(tb testing.TB, dir string) []string {
	var out []string
	for _, n := range stagedData(tb, dir) {
		if strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".data") {
			out = append(out, n)
		}
	}
	return out
}

func blobAbsent(tb testing.TB, ct *blob.Container, name string) {
	tb.Helper()
	if p, err := ct.GetProperties(context.Background(), name); !errors.Is(err, blob.ErrNotFound) {
		tb.Errorf("blob %q exists (%+v, %v): something the program was told had failed was published", name, p, err)
	}
}

// A close() that failed (an outage past the retry budget) is never
// published later, whatever comes next: issue 20 scenario 7.
func TestFailedCommitIsNeverPublished(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 16 << 10
	tests := []struct {
		name string
		size int
		// after the failed commit, before the daemon stops
		removed bool // the name is removed while the file is open
		closed  bool // the last handle goes (Close) before the stop
		// the next mount's lost+found holds the data
		wantLostFound bool
	}{
		{name: "crash right after the failure", size: 3000, wantLostFound: true},
		{name: "crash right after the failure, large", size: 5*bs + 7, wantLostFound: true},
		{name: "closed after the failure", size: 5*bs + 7, closed: true, wantLostFound: true},
		{name: "removed while open, then crash", size: 5*bs + 7, removed: true},
		{name: "removed while open, then closed", size: 3000, removed: true, closed: true},
	}
	for k, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			store := &refusing{Container: ct}
			name := fmt.Sprintf("failed-%d", k)
			m := newManager(t, store, stage.Options{Dir: dir, BlockSize: bs})
			f, err := m.Open(ctx, name, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			data := pattern(tc.size, byte(k))
			if _, err := f.WriteAt(ctx, data, 0); err != nil {
				t.Fatal(err)
			}
			store.refuse(blob.ErrUnavailable)
			if _, err := f.Commit(ctx, blob.PutOptions{}); !errors.Is(err, blob.ErrUnavailable) {
				t.Fatalf("Commit during the outage = %v, want ErrUnavailable", err)
			}
			if st := f.State(); st != "failed" {
				t.Errorf("State after the failed commit = %q, want failed", st)
			}
			store.refuse(nil) // the service is back: recovery could commit
			if tc.removed {
				if err := f.Removed(); err != nil {
					t.Fatal(err)
				}
				if _, err := f.Commit(ctx, blob.PutOptions{}); !errors.Is(err, stage.ErrRemoved) {
					t.Errorf("Commit after Removed = %v, want ErrRemoved", err)
				}
				if p := m.Pending(); len(p) != 0 {
					t.Errorf("Pending lists a removed file: %+v", p)
				}
			}
			if tc.closed {
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if st := m.Stats(); st.CachedBytes != 0 {
					t.Errorf("after Close the cache still counts %d bytes", st.CachedBytes)
				}
			}
			m.Close()

			m2 := newManager(t, store, stage.Options{Dir: dir, BlockSize: bs})
			rec, err := m2.Recover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			blobAbsent(t, ct, name)
			if n := store.commits.Load(); n != 0 {
				t.Errorf("%d commits reached the service", n)
			}
			if left := staged(t, m2.Dir()); len(left) != 0 {
				t.Errorf("still staged after Recover: %v", left)
			}
			lf := lostFound(t, m2)
			kept, err := m2.Kept()
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantLostFound {
				if len(lf) != 0 || len(kept) != 0 || len(rec) != 0 {
					t.Errorf("a removed file was kept: lost+found %v, Kept %+v, Recover %+v", lf, kept, rec)
				}
				return
			}
			if len(kept) != 1 || !kept[0].InLostFound || kept[0].State != "failed" || kept[0].Name != name ||
				!strings.Contains(kept[0].Reason, blob.ErrUnavailable.Error()) {
				t.Fatalf("Kept = %+v, want the failed file in lost+found with its reason", kept)
			}
			if got, err := os.ReadFile(kept[0].Path); err != nil || !bytes.Equal(got, data) {
				t.Errorf("kept copy: %d bytes, %v; want the %d bytes written", len(got), err, len(data))
			}
			// Closed before the stop, it was in lost+found already.
			wantRec := 1
			if tc.closed {
				wantRec = 0
			}
			if len(rec) != wantRec || (wantRec == 1 && !errors.Is(rec[0].Err, stage.ErrCommitFailed)) {
				t.Errorf("Recover = %+v, want %d file(s) kept with ErrCommitFailed", rec, wantRec)
			}
		})
	}
}

// A failed commit does not stick: the program may retry its fsync() or
// write on, and the next successful commit publishes as usual.
func TestRetryAfterFailedCommit(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	store := &refusing{Container: ct}
	m := newManager(t, store, stage.Options{BlockSize: 16 << 10})
	f, err := m.Open(ctx, "retried", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(40<<10, 3)
	if _, err := f.WriteAt(ctx, data[:30<<10], 0); err != nil {
		t.Fatal(err)
	}
	store.refuse(blob.ErrUnavailable)
	if _, err := f.Commit(ctx, blob.PutOptions{}); err == nil {
		t.Fatal("Commit during the outage succeeded")
	}
	store.refuse(nil)
	if _, err := f.WriteAt(ctx, data[30<<10:], 30<<10); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatalf("Commit after the outage = %v", err)
	}
	if got, _ := download(t, ct, "retried"); !bytes.Equal(got, data) {
		t.Errorf("blob is %d bytes, want %d", len(got), len(data))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if lf := lostFound(t, m); len(lf) != 0 {
		t.Errorf("lost+found after a successful retry: %v", lf)
	}
}

// A commit the service refuses because another client holds a lease is
// not made later by recovery, whether the refusal came before the daemon
// stopped or at recovery itself: issue 21.
func TestLeasedCommitIsNeverPublished(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	leased := fmt.Errorf("LeaseIdMissing: there is currently a lease on the blob: %w", blob.ErrBusy)
	tests := []struct {
		name string
		// cutShort: the daemon stopped during the commit (which then
		// says closing) and the lease is met by Recover; otherwise
		// the commit itself met it.
		cutShort bool
	}{
		{name: "refused at close"},
		{name: "refused at recovery", cutShort: true},
	}
	for k, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			name := fmt.Sprintf("leased-%d", k)
			theirs := upload(t, ct, name, []byte("the lease holder's"))
			store := &refusing{Container: ct}
			m := newManager(t, store, stage.Options{Dir: dir, BlockSize: 16 << 10})
			f, err := m.Open(ctx, name, theirs, true)
			if err != nil {
				t.Fatal(err)
			}
			ours := pattern(50<<10, byte(k))
			if _, err := f.WriteAt(ctx, ours, 0); err != nil {
				t.Fatal(err)
			}
			if tc.cutShort {
				store.stall.Store(true)
				store.stalled = make(chan struct{}, 1)
				cctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() {
					_, err := f.Commit(cctx, blob.PutOptions{})
					done <- err
				}()
				// The commit reaches the service, then the daemon dies.
				select {
				case <-store.stalled:
				case err := <-done:
					t.Fatalf("Commit ended before the service got it: %v", err)
				}
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("cut-short Commit = %v", err)
				}
				store.stall.Store(false)
				store.refuse(leased)
			} else {
				store.refuse(leased)
				if _, err := f.Commit(ctx, blob.PutOptions{}); !errors.Is(err, blob.ErrBusy) {
					t.Fatalf("Commit under a lease = %v, want ErrBusy", err)
				}
				// The lease holder is done by the next mount: recovery
				// could overwrite its blob now.
				store.refuse(nil)
			}
			m.Close()

			m2 := newManager(t, store, stage.Options{Dir: dir, BlockSize: 16 << 10})
			rec, err := m2.Recover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rec) != 1 || rec[0].Err == nil || !strings.HasPrefix(rec[0].SavedAs, m2.LostFound()) {
				t.Fatalf("Recover = %+v, want the file kept in lost+found", rec)
			}
			if got, err := os.ReadFile(rec[0].SavedAs); err != nil || !bytes.Equal(got, ours) {
				t.Errorf("kept copy: %d bytes, %v", len(got), err)
			}
			// The lease is gone: a later mount must still not commit it.
			store.refuse(nil)
			m2.Close()
			m3 := newManager(t, store, stage.Options{Dir: dir, BlockSize: 16 << 10})
			if rec, err := m3.Recover(ctx); err != nil || len(rec) != 0 {
				t.Errorf("second Recover = %+v, %v; want nothing left to do", rec, err)
			}
			if got, _ := download(t, ct, name); string(got) != "the lease holder's" {
				t.Errorf("blob is %d bytes %.20q, want the lease holder's", len(got), got)
			}
		})
	}
}

// smallDisk mounts a tmpfs of size bytes for the test, as a small cache
// disk; skips when the test may not mount.
func smallDisk(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a small tmpfs for the cache (%v): run as root", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// A write that fills the cache disk leaves a file that is never
// published, by Commit or by recovery, and whose space comes back: issue
// 20 scenario 6.
func TestFullCacheDiskIsNeverPublished(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const disk = 2 << 20
	const bs = 128 << 10
	for k, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			dir := smallDisk(t, disk)
			store := &refusing{Container: ct}
			name := fmt.Sprintf("cut-off-%d", k)
			m := newManager(t, store, stage.Options{Dir: dir, BlockSize: bs})
			f, err := m.Open(ctx, name, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			// As cp does: write on until a write fails.
			src := pattern(4*disk, byte(k))
			var werr error
			var off int64
			for ; off < int64(len(src)) && werr == nil; off += 64 << 10 {
				_, werr = f.WriteAt(ctx, src[off:off+64<<10], off)
			}
			if !errors.Is(werr, syscall.ENOSPC) {
				t.Fatalf("writing %d bytes into a %d-byte disk: %v, want ENOSPC", len(src), disk, werr)
			}
			t.Logf("the write at %d failed: %v", off-64<<10, werr)
			// Its space is back at once, while the program still has
			// the file open: for the accounting and on the disk.
			if st := m.Stats(); st.CachedBytes != 0 {
				t.Errorf("after the failed write the cache counts %d bytes", st.CachedBytes)
			}
			if free := freeBytes(t, dir); free < disk*3/4 {
				t.Errorf("after the failed write %d of %d bytes are free", free, disk)
			}
			if _, err := f.ReadAt(ctx, make([]byte, 10), 0); !errors.Is(err, stage.ErrIncomplete) {
				t.Errorf("reading the dropped data = %v, want ErrIncomplete", err)
			}
			// A new file of most of the disk can be staged meanwhile.
			next := pattern(disk*3/5, 99)
			g, err := m.Open(ctx, name+"-next", nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.WriteAt(ctx, next, 0); err != nil {
				t.Fatalf("a new file after the failed one: %v", err)
			}
			if _, err := g.Commit(ctx, blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			g.Close()
			if got, _ := download(t, ct, name+"-next"); !bytes.Equal(got, next) {
				t.Errorf("the new file's blob differs")
			}
			store.commits.Store(0)
			// close() then fails, with EIO, and publishes nothing.
			var errno syscall.Errno
			if _, err := f.Commit(ctx, blob.PutOptions{}); !errors.Is(err, stage.ErrIncomplete) || !errors.As(err, &errno) || errno != syscall.EIO {
				t.Fatalf("Commit after the failed write = %v, want ErrIncomplete (EIO)", err)
			}
			if !crash {
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if st := m.Stats(); st.CachedBytes != 0 {
					t.Errorf("after Close the cache counts %d bytes", st.CachedBytes)
				}
			}
			m.Close()

			m2 := newManager(t, store, stage.Options{Dir: dir, BlockSize: bs})
			rec, err := m2.Recover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			blobAbsent(t, ct, name)
			if n := store.commits.Load(); n != 0 {
				t.Errorf("%d commits reached the service", n)
			}
			if crash && (len(rec) != 1 || !errors.Is(rec[0].Err, stage.ErrIncomplete)) {
				t.Errorf("Recover = %+v, want the file kept aside as incomplete", rec)
			}
			if !crash && len(rec) != 0 {
				t.Errorf("Recover = %+v, want nothing: Close moved it to lost+found", rec)
			}
			kept, err := m2.Kept()
			if err != nil {
				t.Fatal(err)
			}
			if len(kept) != 1 || kept[0].Name != name || kept[0].State != "incomplete" || !kept[0].DataDropped ||
				!strings.Contains(kept[0].Reason, "no space") {
				t.Errorf("Kept = %+v, want its record in lost+found, data dropped", kept)
			}
			if lf := lostFound(t, m2); len(lf) != 1 || !strings.HasSuffix(lf[0], ".json") {
				t.Errorf("lost+found holds %v, want the record only", lf)
			}
			if free := freeBytes(t, dir); free < disk*3/4 {
				t.Errorf("after Recover %d of %d bytes are free", free, disk)
			}
		})
	}
}

// After a write that failed for lack of room in the disk, the file's
// space is given back at once, and a truncate to 0 makes it usable again:
// the program may start over.
func TestTruncateClearsIncomplete(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	dir := smallDisk(t, 1<<20)
	m := newManager(t, ct, stage.Options{Dir: dir, BlockSize: 64 << 10})
	f, err := m.Open(ctx, "again", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 2<<20)
	if _, err := f.WriteAt(ctx, big, 0); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("2 MiB into a 1 MiB disk: %v, want ENOSPC", err)
	}
	if st := m.Stats(); st.CachedBytes != 0 {
		t.Errorf("after the failed write at 0 the cache counts %d bytes", st.CachedBytes)
	}
	// Its data is gone: it refuses to be read or written on, or cut to
	// anything but empty.
	if _, err := f.WriteAt(ctx, []byte("more"), 10); !errors.Is(err, stage.ErrIncomplete) {
		t.Errorf("write after the data was dropped = %v, want ErrIncomplete", err)
	}
	if err := f.Truncate(ctx, 10); !errors.Is(err, stage.ErrIncomplete) {
		t.Errorf("truncate to 10 after the data was dropped = %v, want ErrIncomplete", err)
	}
	if err := f.Truncate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	data := pattern(100<<10, 5)
	if _, err := f.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatalf("Commit after starting over = %v", err)
	}
	if got, _ := download(t, ct, "again"); !bytes.Equal(got, data) {
		t.Errorf("blob is %d bytes, want %d", len(got), len(data))
	}
	f.Close()
}
