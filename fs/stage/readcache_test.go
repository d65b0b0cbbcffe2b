package stage_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/readcache"
	"github.com/blobfs/blobfs/fs/stage"
)

// withReadCache is a read cache of block size bs and a Manager that
// fills it.
func withReadCache(t *testing.T, store stage.Store, bs int64) (*readcache.Cache, *stage.Manager) {
	t.Helper()
	rc, err := readcache.Open(readcache.Options{Dir: t.TempDir(), BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc, newManager(t, store, stage.Options{BlockSize: bs, ReadCache: rc})
}

// A commit hands the read cache what it uploaded, under the ETag the
// service gave it: reading the file back then costs no GET. Files of
// more than one block are handed over whole at Close, holes included;
// a file whose base blocks were reused, not uploaded, is not.
func TestCommitFillsReadCache(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 64 << 10
	rc, m := withReadCache(t, ct, bs)
	for _, tc := range []struct {
		name string
		size int
		hole bool // blocks 1 and 2 never written
		kept bool
	}{
		{"small", 1000, false, true},
		{"one block", bs, false, true},
		{"large", 3*bs + 500, false, true},
		{"large with a hole", 3*bs + 500, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := pattern(tc.size, 9)
			f, err := m.Open(ctx, tc.name, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			if tc.hole {
				clear(data[bs : 3*bs])
				if _, err := f.WriteAt(ctx, data[:bs], 0); err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt(ctx, data[3*bs:], 3*bs); err != nil {
					t.Fatal(err)
				}
			} else if _, err := f.WriteAt(ctx, data, 0); err != nil {
				t.Fatal(err)
			}
			p, err := f.Commit(ctx, blob.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			got := make([]byte, len(data))
			if in := rc.ReadAt(tc.name, p.ETag, int64(len(data)), got, 0); in != tc.kept {
				t.Fatalf("the committed version in the read cache: %v, want %v", in, tc.kept)
			}
			if !tc.kept {
				return
			}
			if !bytes.Equal(got, data) {
				t.Fatal("the read cache holds other bytes than were committed")
			}
		})
	}
}

// Staged data always wins: a writer that needs room takes it from the
// read cache, least recently used first, before anything of its own,
// and the two together stay within the bound.
func TestStagingEvictsReadCacheFirst(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 64 << 10
	const max = 6 * bs
	rc, err := readcache.Open(readcache.Options{Dir: t.TempDir(), BlockSize: bs, MaxBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	m := newManager(t, ct, stage.Options{BlockSize: bs, MaxBytes: max, ReadCache: rc})
	rc.SetStaged(m)
	old := pattern(5*bs, 3)
	for i := range 5 {
		rc.Store("old", "e", int64(len(old)), old[i*bs:(i+1)*bs], int64(i*bs))
	}
	if s := rc.Stats(); s.Pieces != 5 {
		t.Fatalf("read cache holds %+v before staging, want 5 pieces", s)
	}
	f, err := m.Open(ctx, "new", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Discard()
	data := pattern(4*bs, 4)
	if _, err := f.WriteAt(ctx, data, 0); err != nil {
		t.Fatalf("writing 4 blocks beside a full read cache: %v", err)
	}
	if total := rc.Used() + m.Used(); total > max {
		t.Errorf("read cache %d + staged %d = %d, over the bound %d", rc.Used(), m.Used(), total, max)
	}
	if m.Used() < 4*bs {
		t.Errorf("staging holds %d bytes, want the 4 blocks written (%d)", m.Used(), 4*bs)
	}
	// 2 blocks of room are left, less than 2 pieces with their headers:
	// only the most recently stored one stays.
	buf := make([]byte, bs)
	for i := range 4 {
		if rc.ReadAt("old", "e", int64(len(old)), buf, int64(i*bs)) {
			t.Errorf("block %d of the read cache survived, want it evicted first", i)
		}
	}
	if !rc.ReadAt("old", "e", int64(len(old)), buf, 4*bs) || !bytes.Equal(buf, old[4*bs:]) {
		t.Error("the most recently used block was evicted too")
	}
}

// A commit that reused blocks of the base blob (only part of it was
// rewritten) leaves the cache file without the whole content: nothing is
// handed over, and nothing wrong is ever served.
func TestPartialRewriteIsNotAdopted(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 64 << 10
	rc, m := withReadCache(t, ct, bs)
	data := pattern(4*bs+10, 5)
	f, err := m.Open(ctx, "p", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, data, 0)
	base, err := f.Commit(ctx, blob.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	f, err = m.Open(ctx, "p", base, false)
	if err != nil {
		t.Fatal(err)
	}
	patch := pattern(100, 6)
	f.WriteAt(ctx, patch, 10)
	p, err := f.Commit(ctx, blob.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if rc.ReadAt("p", p.ETag, int64(len(data)), make([]byte, 10), 2*bs) {
		t.Fatal("a block the commit reused from the base is served from the read cache, want a miss")
	}
	if s := rc.Stats(); s.Pieces != 0 {
		t.Errorf("read cache holds %+v, want nothing of the old or new version", s)
	}
}
