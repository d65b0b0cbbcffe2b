package stage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/stage"
)

func TestSmallFileIsOnePutBlob(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	cs := newCounting(ct)
	m := newManager(t, cs, stage.Options{})
	f, err := m.Open(ctx, "small.txt", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(4096, 1)
	for off := 0; off < len(data); off += 1000 {
		if _, err := f.WriteAt(ctx, data[off:min(off+1000, len(data))], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := f.Commit(ctx, blob.PutOptions{ContentType: "text/plain", Metadata: map[string]string{"mode": "0644"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := cs.snapshot(); len(got) != 1 || got["Upload"] != 1 {
		t.Errorf("calls = %v, want exactly one Put Blob", got)
	}
	got, props := download(t, ct, "small.txt")
	if !bytes.Equal(got, data) {
		t.Errorf("content differs")
	}
	if props.ETag != p.ETag || props.Metadata["mode"] != "0644" || props.ContentType != "text/plain" {
		t.Errorf("props = %+v, commit said %+v", props, p)
	}
	if left := stagedData(t, m.Dir()); len(left) != 0 {
		t.Errorf("data left in the cache dir after a committed close: %v", left)
	}
}

func TestSequentialWriteStreamsBlocks(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	cs := newCounting(ct)
	const bs = 64 << 10
	m := newManager(t, cs, stage.Options{BlockSize: bs, Concurrency: 4})
	f, err := m.Open(ctx, "dir/big", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(20*bs+123, 2)
	for off := 0; off < len(data); off += 4096 {
		if _, err := f.WriteAt(ctx, data[off:min(off+4096, len(data))], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// Before close, every full block but the last one is up already.
	if got := cs.snapshot()["PutBlock"]; got != 20 {
		t.Errorf("Put Block before commit: %d, want 20", got)
	}
	if p := m.Pending(); len(p) != 1 || p[0].Uploaded != 20*bs || p[0].Size != int64(len(data)) {
		t.Errorf("Pending = %+v", p)
	}
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := cs.snapshot(); got["PutBlock"] != 21 || got["PutBlockList"] != 1 || got["Download"] != 0 || got["Upload"] != 0 {
		t.Errorf("calls = %v", got)
	}
	f.Close()
	if got, _ := download(t, ct, "dir/big"); !bytes.Equal(got, data) {
		t.Errorf("content differs")
	}
}

func TestEditExistingFetchesOnlyTouchedBlocks(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 64 << 10
	data := pattern(10*bs+500, 3)
	base := upload(t, ct, "edit", data)
	cs := newCounting(ct)
	m := newManager(t, cs, stage.Options{BlockSize: bs})
	f, err := m.Open(ctx, "edit", base, false)
	if err != nil {
		t.Fatal(err)
	}
	// A small write in block 3, a full overwrite of block 5 and an append.
	patch := []byte("patched!")
	copy(data[3*bs+100:], patch)
	full := pattern(bs, 4)
	copy(data[5*bs:], full)
	tail := pattern(3000, 5)
	for _, w := range []struct {
		p   []byte
		off int64
	}{{patch, 3*bs + 100}, {full, 5 * bs}, {tail, int64(len(data))}} {
		if _, err := f.WriteAt(ctx, w.p, w.off); err != nil {
			t.Fatal(err)
		}
	}
	data = append(data, tail...)
	if got := cs.snapshot()["Download"]; got != 2 { // block 3, and the old last block the append lands in
		t.Errorf("downloads while writing: %d, want 2", got)
	}
	buf := make([]byte, len(data)+10)
	n, err := f.ReadAt(ctx, buf, 0)
	if n != len(data) || err != io.EOF || !bytes.Equal(buf[:n], data) {
		t.Errorf("ReadAt = %d, %v; content equal: %v", n, err, bytes.Equal(buf[:n], data))
	}
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := download(t, ct, "edit"); !bytes.Equal(got, data) {
		t.Errorf("content differs")
	}
}

func TestConflict(t *testing.T) {
	const bs = 64 << 10
	for _, tc := range []struct {
		name   string
		exists bool
		size   int
	}{
		{"changed small", true, 1000},
		{"changed large", true, 5*bs + 7},
		{"created meanwhile", false, 1000},
		{"created meanwhile large", false, 3 * bs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ct := newContainer(t)
			m := newManager(t, ct, stage.Options{BlockSize: bs})
			var base *blob.Properties
			if tc.exists {
				base = upload(t, ct, "f", pattern(2*bs, 9))
			}
			f, err := m.Open(ctx, "f", base, true)
			if err != nil {
				t.Fatal(err)
			}
			mine := pattern(tc.size, 10)
			if _, err := f.WriteAt(ctx, mine, 0); err != nil {
				t.Fatal(err)
			}
			theirs := []byte("the other writer's version")
			upload(t, ct, "f", theirs)
			_, err = f.Commit(ctx, blob.PutOptions{})
			var ce *stage.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, blob.ErrPrecondition) {
				t.Fatalf("Commit = %v, want a ConflictError matching ErrPrecondition", err)
			}
			if !strings.HasPrefix(ce.SavedAs, "f.conflict-") || ce.Local || !strings.Contains(err.Error(), ce.SavedAs) {
				t.Errorf("saved as %q (local %v): %v", ce.SavedAs, ce.Local, err)
			}
			if got, _ := download(t, ct, "f"); !bytes.Equal(got, theirs) {
				t.Errorf("the other writer's version was overwritten")
			}
			if got, _ := download(t, ct, ce.SavedAs); !bytes.Equal(got, mine) {
				t.Errorf("the saved version differs from what was written")
			}
			// Asking again does not make a second copy.
			if _, err2 := f.Commit(ctx, blob.PutOptions{}); !errors.As(err2, &ce) {
				t.Errorf("second Commit = %v", err2)
			}
			f.Close()
		})
	}
}

// Moved follows a blob that the fs layer copied to a new name: what was
// committed stays committed, what was not still goes out, to the new name.
func TestMoved(t *testing.T) {
	for _, tc := range []struct {
		name      string
		writeMore bool // a change after the last commit
		want      string
	}{
		{"clean", false, "committed"},
		{"changed since the commit", true, "committed, then more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ct := newContainer(t)
			cs := newCounting(ct)
			m := newManager(t, cs, stage.Options{})
			f, err := m.Open(ctx, "old", nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(ctx, []byte("committed"), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if tc.writeMore {
				if _, err := f.WriteAt(ctx, []byte(", then more"), 9); err != nil {
					t.Fatal(err)
				}
			}
			// The fs layer's move: a copy of what was committed.
			moved := upload(t, ct, "new", []byte("committed"))
			f.Moved("new", moved)
			if f.Dirty() != tc.writeMore {
				t.Errorf("Dirty after the move = %v, want %v", f.Dirty(), tc.writeMore)
			}
			cs.reset()
			if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if n := len(cs.snapshot()); (n > 0) != tc.writeMore {
				t.Errorf("Commit after the move sent %v", cs.snapshot())
			}
			if got, _ := download(t, ct, "new"); string(got) != tc.want {
				t.Errorf("new = %q, want %q", got, tc.want)
			}
			f.Close()
		})
	}
}

func TestUnconditionalOverwrites(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	m := newManager(t, ct, stage.Options{})
	base := upload(t, ct, "u", []byte("old"))
	f, err := m.Open(ctx, "u", base, true)
	if err != nil {
		t.Fatal(err)
	}
	f.Unconditional()
	f.WriteAt(ctx, []byte("mine"), 0)
	upload(t, ct, "u", []byte("theirs"))
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := download(t, ct, "u"); string(got) != "mine" {
		t.Errorf("got %q", got)
	}
}

func TestCacheDirIsPrivate(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	dir := filepath.Join(t.TempDir(), "cache")
	m := newManager(t, ct, stage.Options{Dir: dir, Account: "acct", Container: ct.Name()})
	if want := filepath.Join(dir, "acct", ct.Name()); m.Dir() != want {
		t.Errorf("Dir = %s, want %s", m.Dir(), want)
	}
	f, err := m.Open(ctx, "x", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte("secret"), 0)
	for _, d := range []string{dir, filepath.Dir(m.Dir()), m.Dir()} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", d, st.Mode(), err)
		}
	}
	ents, _ := os.ReadDir(m.Dir())
	for _, e := range ents {
		if st, _ := e.Info(); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", e.Name(), st.Mode())
		}
	}
	if len(ents) < 3 {
		t.Errorf("expected lock, data and journal, got %v", ents)
	}
	// A second mount of the same container on the same directory is refused.
	if _, err := stage.NewManager(ct, stage.Options{Dir: dir, Account: "acct", Container: ct.Name()}); err == nil {
		t.Errorf("a second Manager on the same directory was allowed")
	}
	f.Commit(ctx, blob.PutOptions{})
	f.Close()
}

func TestDiscardLeavesNothing(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	m := newManager(t, ct, stage.Options{})
	f, err := m.Open(ctx, "gone", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte("never to be seen"), 0)
	if err := f.Discard(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(m.Dir()); len(ents) != 1 { // the lock file only
		t.Errorf("cache dir after Discard: %v", ents)
	}
	if rec, err := m.Recover(ctx); err != nil || len(rec) != 0 {
		t.Errorf("Recover = %v, %v", rec, err)
	}
	if _, err := ct.GetProperties(ctx, "gone"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("blob exists after Discard: %v", err)
	}
}

func TestNoSpaceIsENOSPC(t *testing.T) {
	var e syscall.Errno
	err := fmt.Errorf("writing: %w", stage.ErrNoSpace)
	if !errors.As(err, &e) || e != syscall.ENOSPC || !errors.Is(err, stage.ErrNoSpace) {
		t.Errorf("errors.As = %v", e)
	}
}

// TestConcurrentWriters has several goroutines write interleaved chunks of
// one file (as FUSE does with parallel writes) while others read back and
// a small cache forces eviction.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 32 << 10
	m := newManager(t, ct, stage.Options{BlockSize: bs, Concurrency: 3, MaxBytes: 12 * bs})
	f, err := m.Open(ctx, "par", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	const chunk, writers, rounds = 8 << 10, 4, 24
	data := pattern(chunk*writers*rounds, 11)
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds+1)
	// Like the kernel: a few writes in flight at once, in any order.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := range rounds {
			var round sync.WaitGroup
			for w := range writers {
				round.Add(1)
				go func() {
					defer round.Done()
					off := (r*writers + w) * chunk
					if _, err := f.WriteAt(ctx, data[off:off+chunk], int64(off)); err != nil {
						errs <- err
					}
				}()
			}
			round.Wait()
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, chunk)
		for r := range rounds * writers {
			off := int64(r * chunk)
			n, err := f.ReadAt(ctx, buf, off)
			if errors.Is(err, stage.ErrEvicted) || errors.Is(err, io.EOF) {
				continue
			}
			if err != nil {
				errs <- err
				return
			}
			// Either not written yet (zeros) or written.
			if !bytes.Equal(buf[:n], data[off:off+int64(n)]) && !bytes.Equal(buf[:n], make([]byte, n)) {
				errs <- fmt.Errorf("read at %d saw a torn chunk", off)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := download(t, ct, "par"); !bytes.Equal(got, data) {
		t.Errorf("content differs")
	}
}

// TestAppendReusesCommittedBlocks appends to a large blob this package
// wrote: the commit lists the unchanged blocks instead of moving them.
func TestAppendReusesCommittedBlocks(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	cs := newCounting(ct)
	const bs = 64 << 10
	m := newManager(t, cs, stage.Options{BlockSize: bs})
	data := pattern(10*bs+500, 12)
	f, err := m.Open(ctx, "log", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, data, 0)
	p, err := f.Commit(ctx, blob.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for round := range 3 {
		cs.reset()
		if f, err = m.Open(ctx, "log", p, false); err != nil {
			t.Fatal(err)
		}
		more := pattern(1000, byte(round))
		if _, err := f.WriteAt(ctx, more, int64(len(data))); err != nil {
			t.Fatal(err)
		}
		data = append(data, more...)
		if p, err = f.Commit(ctx, blob.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		// The old last block is fetched to append to, then uploaded.
		want := map[string]int{"Download": 1, "GetBlockList": 1, "PutBlock": 1, "PutBlockList": 1}
		if got := cs.snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("round %d: calls %v, want %v", round, got, want)
		}
		if got, _ := download(t, ct, "log"); !bytes.Equal(got, data) {
			t.Fatalf("round %d: content differs", round)
		}
	}
	// Blocks written elsewhere (8 blocks of another size) are moved as usual.
	other := pattern(5*bs, 13)
	ids := []string{}
	for i := range 5 {
		id := blob.BlockID(i)
		if err := ct.PutBlock(ctx, "foreign", id, bytes.NewReader(other[i*bs:(i+1)*bs]), bs); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	fp, err := ct.PutBlockList(ctx, "foreign", ids, blob.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fp.Name, fp.Size = "foreign", int64(len(other))
	if f, err = m.Open(ctx, "foreign", fp, false); err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte("x"), 3)
	other[3] = 'x'
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := download(t, ct, "foreign"); !bytes.Equal(got, other) {
		t.Errorf("foreign blob: content differs")
	}
}

// Blocks streamed to the service while the writer goes on leave the page
// cache (written to disk first), so that a large file does not take its
// whole size in memory; the cache file still holds every byte.
func TestStreamedBlocksLeaveThePageCache(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 1 << 20
	m := newManager(t, ct, stage.Options{BlockSize: bs, Concurrency: 4})
	f, err := m.Open(ctx, "streamed", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := pattern(8*bs+5000, 3)
	for off := 0; off < len(data); off += 128 << 10 {
		if _, err := f.WriteAt(ctx, data[off:min(off+128<<10, len(data))], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	cf, err := os.Open(f.CachePath())
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	mapped, err := syscall.Mmap(int(cf.Fd()), 0, len(data), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mapped)
	resident := func() int {
		vec := make([]byte, (7*bs)/os.Getpagesize())
		if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&mapped[0])), 7*bs, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatal(e)
		}
		n := 0
		for _, v := range vec {
			n += int(v & 1)
		}
		return n
	}
	// Blocks 0-6 are uploaded (the writer moved past them); the drop runs
	// beside the uploads, so give it a moment.
	deadline := time.Now().Add(10 * time.Second)
	for resident() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := resident(); n > 0 {
		t.Errorf("%d pages of the uploaded blocks are still in the page cache", n)
	}
	got := make([]byte, len(data))
	if n, err := f.ReadAt(ctx, got, 0); (err != nil && !errors.Is(err, io.EOF)) || n != len(data) || !bytes.Equal(got, data) {
		t.Fatalf("reading back the staged file: %d bytes, %v, equal %v", n, err, bytes.Equal(got, data))
	}
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := download(t, ct, "streamed"); !bytes.Equal(got, data) {
		t.Errorf("committed content differs")
	}
}

// gated holds every Put Block until open is closed.
type gated struct {
	stage.Store
	open    chan struct{}
	started chan struct{} // one send per Put Block that began
}

func (g *gated) PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error {
	g.started <- struct{}{}
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.PutBlock(ctx, name, id, data, size)
}

// A writer faster than the service is held a few blocks ahead of the
// uploads instead of filling the cache file, and goes on once they move.
func TestWriterWaitsForUploads(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs, conc, blocks = 64 << 10, 2, 20
	g := &gated{Store: ct, open: make(chan struct{}), started: make(chan struct{}, blocks+1)}
	m := newManager(t, g, stage.Options{BlockSize: bs, Concurrency: conc})
	f, err := m.Open(ctx, "held", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := pattern(blocks*bs+100, 5)
	var written sync.WaitGroup
	var progress atomic.Int64
	written.Add(1)
	go func() {
		defer written.Done()
		for off := 0; off < len(data); off += 16 << 10 {
			if _, err := f.WriteAt(ctx, data[off:min(off+16<<10, len(data))], int64(off)); err != nil {
				t.Error(err)
				return
			}
			progress.Store(int64(off + 16<<10))
		}
	}()
	for range conc {
		<-g.started // both uploads are stuck
	}
	time.Sleep(300 * time.Millisecond) // time to run ahead, if it could
	// conc blocks in flight and conc+2-conc queued make the limit; the
	// write that finds one more waits, and the writer can be at most in
	// the block after the last one scheduled.
	if got, most := progress.Load(), int64(conc+2+1+1)*bs; got > most {
		t.Errorf("the writer got %d bytes ahead with every upload stuck; at most %d", got, most)
	}
	close(g.open)
	written.Wait()
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := download(t, ct, "held"); !bytes.Equal(got, data) {
		t.Errorf("committed content differs")
	}
}

// holdFirst holds the first Put Block of every block ID until release is
// closed: before sending it, or with after set, once it has landed and
// before it answers. Later ones of the same ID go straight through.
type holdFirst struct {
	stage.Store
	after   bool
	release chan struct{}
	mu      sync.Mutex
	seen    map[string]bool
	held    chan struct{} // one send per Put Block held
}

func (h *holdFirst) PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error {
	h.mu.Lock()
	first := !h.seen[id]
	h.seen[id] = true
	h.mu.Unlock()
	hold := func() {
		h.held <- struct{}{}
		<-h.release
	}
	if first && !h.after {
		hold()
	}
	err := h.Store.PutBlock(ctx, name, id, data, size)
	if first && h.after {
		hold()
	}
	return err
}

// A truncate that cuts a block whose Put Block is under way, and a write
// that makes that block again, must not let the old upload land after the
// new one: both use the block's ID, and the service keeps the last.
func TestTruncateDuringUploadOfCutBlock(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 4 << 10
	h := &holdFirst{Store: ct, release: make(chan struct{}), seen: map[string]bool{}, held: make(chan struct{}, 16)}
	m := newManager(t, h, stage.Options{BlockSize: bs, Concurrency: 8})
	f, err := m.Open(ctx, "cut", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(ctx, pattern(5*bs+1, 1), 0); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		<-h.held // blocks 0-4 are on their way, with their old content
	}
	if err := f.Truncate(ctx, 4*bs-10); err != nil {
		t.Fatal(err)
	}
	tail := pattern(67, 2)
	if _, err := f.WriteAt(ctx, tail, 4*bs-10); err != nil {
		t.Fatal(err)
	}
	want := append(pattern(5*bs+1, 1)[:4*bs-10], tail...)
	done := make(chan error, 1)
	go func() {
		_, err := f.Commit(ctx, blob.PutOptions{})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // the commit's own uploads go first, if they may
	close(h.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, _ := download(t, ct, "cut"); !bytes.Equal(got, want) {
		t.Errorf("committed %d bytes that differ from the %d written", len(got), len(want))
	}
}

// A new file that sent blocks and then shrank to one block commits
// through its block list: a Put Blob would find the blob "existing" (it has
// uncommitted blocks), and would drop a block whose Put Block landed but
// has not answered yet, to be counted as uploaded afterwards.
func TestCommitAfterShrinkToOneBlock(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 4 << 10
	h := &holdFirst{Store: ct, after: true, release: make(chan struct{}), seen: map[string]bool{}, held: make(chan struct{}, 16)}
	m := newManager(t, h, stage.Options{BlockSize: bs, Concurrency: 8})
	f, err := m.Open(ctx, "shrunk", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var once sync.Once
	release := func() { once.Do(func() { close(h.release) }) }
	defer release() // before Close, which waits for the uploads
	data := pattern(3*bs, 3)
	if _, err := f.WriteAt(ctx, data[:2*bs+1], 0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		<-h.held // blocks 0 and 1 are in the service, their answers held
	}
	if err := f.Truncate(ctx, bs); err != nil { // block 0 unchanged
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.Commit(ctx, blob.PutOptions{})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // a Put Blob would go now
	release()
	if err := <-done; err != nil {
		t.Fatalf("commit after the file shrank to one block: %v", err)
	}
	if got, _ := download(t, ct, "shrunk"); !bytes.Equal(got, data[:bs]) {
		t.Errorf("first commit: %d bytes that differ from the %d written", len(got), bs)
	}
	if _, err := f.WriteAt(ctx, data[bs:], bs); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatalf("commit after the file grew again: %v", err)
	}
	if got, _ := download(t, ct, "shrunk"); !bytes.Equal(got, data) {
		t.Errorf("committed %d bytes that differ from the %d written", len(got), len(data))
	}
}
