package readahead_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/blobfs/blobfs/fs/readahead"
	"github.com/blobfs/blobfs/fs/readcache"
)

// With a read cache, a second reader of the same version reads what the
// first one read without a GET: whole blocks after a sequential read,
// exactly the ranges read after random reads, and nothing of a version
// it was not opened at.
func TestCacheServesSecondReader(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 256 << 10
	data := pattern(6*bs+1000, 3)
	p := upload(t, ct, "c", data)
	rc, err := readcache.Open(readcache.Options{Dir: t.TempDir(), BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	opts := readahead.Options{BlockSize: bs, Concurrency: 4, Cache: rc}
	readAll := func(r *readahead.Reader) {
		t.Helper()
		buf := make([]byte, 128<<10)
		var got []byte
		for off := int64(0); ; {
			n, err := r.ReadAt(ctx, buf, off)
			got = append(got, buf[:n]...)
			off += int64(n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatal("wrong content")
		}
	}

	cs := &counting{Container: ct}
	r := readahead.New(cs, "c", int64(len(data)), p.ETag, opts)
	readAll(r)
	r.Close()
	if gets, _ := cs.stats(); gets == 0 {
		t.Fatal("the first read made no GET")
	}
	cs2 := &counting{Container: ct}
	r = readahead.New(cs2, "c", int64(len(data)), p.ETag, opts)
	readAll(r)
	r.Close()
	if gets, _ := cs2.stats(); gets != 0 {
		t.Errorf("re-read of a cached version: %d GETs, want 0", gets)
	}

	// Random reads of another version: only what was read is kept.
	p2 := upload(t, ct, "c", data)
	cs3 := &counting{Container: ct}
	r = readahead.New(cs3, "c", int64(len(data)), p2.ETag, opts)
	defer r.Close()
	buf := make([]byte, 4096)
	offs := []int64{5 * bs / 2, 100000, 4*bs + 7}
	for _, off := range offs {
		if n, err := r.ReadAt(ctx, buf, off); err != nil || !bytes.Equal(buf[:n], data[off:off+4096]) {
			t.Fatalf("random read at %d: %d, %v", off, n, err)
		}
	}
	gets, got := cs3.stats()
	if gets != len(offs) || got != int64(len(offs))*4096 {
		t.Errorf("random reads of the new version: %d GETs of %d bytes, want %d of %d (nothing from the old version's blocks)", gets, got, len(offs), len(offs)*4096)
	}
	if s := rc.Stats(); s.Pieces != len(offs) {
		t.Errorf("after %d random reads the cache holds %+v, want %d pieces", len(offs), s, len(offs))
	}
	for _, off := range offs {
		if n, err := r.ReadAt(ctx, buf, off); err != nil || !bytes.Equal(buf[:n], data[off:off+4096]) {
			t.Fatalf("random re-read at %d: %d, %v", off, n, err)
		}
	}
	if gets2, _ := cs3.stats(); gets2 != gets {
		t.Errorf("random re-reads cost %d GETs, want 0", gets2-gets)
	}
}
