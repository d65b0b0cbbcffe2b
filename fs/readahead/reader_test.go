package readahead_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/readahead"
)

func TestSmallFileIsOneGet(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	data := pattern(4096, 1)
	p := upload(t, ct, "small", data)
	cs := &counting{Container: ct}
	r := readahead.New(cs, "small", int64(len(data)), p.ETag, readahead.Options{})
	defer r.Close()
	buf := make([]byte, 128<<10) // what the kernel asks for
	n, err := r.ReadAt(ctx, buf, 0)
	if n != len(data) || err != io.EOF || !bytes.Equal(buf[:n], data) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if n, err := r.ReadAt(ctx, buf, int64(len(data))); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
	if gets, got := cs.stats(); gets != 1 || got != int64(len(data)) {
		t.Errorf("%d GETs of %d bytes, want 1 of %d", gets, got, len(data))
	}
	if cs.conds[0].IfMatch != p.ETag {
		t.Errorf("GET without If-Match: %+v", cs.conds[0])
	}
}

func TestPatterns(t *testing.T) {
	ct := newContainer(t)
	const bs = 256 << 10
	data := pattern(40*bs+1234, 2)
	p := upload(t, ct, "big", data)
	for _, tc := range []struct {
		name     string
		offsets  func(*rand.Rand) []int64
		readSize int
		// bounds on bytes downloaded, as a multiple of bytes read
		maxRatio float64
	}{
		{"sequential from 0", func(*rand.Rand) []int64 {
			var o []int64
			for off := int64(0); off < int64(len(data)); off += 128 << 10 {
				o = append(o, off)
			}
			return o
		}, 128 << 10, 1.0},
		{"sequential from the middle", func(*rand.Rand) []int64 {
			var o []int64
			for off := int64(10*bs + 5000); off < int64(len(data)); off += 100 << 10 {
				o = append(o, off)
			}
			return o
		}, 100 << 10, 1.05},
		{"random 4 KiB", func(rng *rand.Rand) []int64 {
			var o []int64
			for range 300 {
				o = append(o, rng.Int64N(int64(len(data))-4096))
			}
			return o
		}, 4096, 2.0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cs := &counting{Container: ct}
			r := readahead.New(cs, "big", int64(len(data)), p.ETag, readahead.Options{BlockSize: bs, Concurrency: 4})
			defer r.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			var read int64
			buf := make([]byte, tc.readSize)
			for _, off := range tc.offsets(rng) {
				n, err := r.ReadAt(ctx, buf, off)
				if err != nil && err != io.EOF {
					t.Fatal(err)
				}
				if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					t.Fatalf("wrong bytes at %d", off)
				}
				read += int64(n)
			}
			r.Close()
			gets, got := cs.stats()
			t.Logf("%d GETs, %d bytes for %d read", gets, got, read)
			if float64(got) > tc.maxRatio*float64(read) {
				t.Errorf("downloaded %d bytes for %d read: more than %.2f×", got, read, tc.maxRatio)
			}
		})
	}
}

func TestChangedBlobFailsReads(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 64 << 10
	data := pattern(20*bs, 3)
	p := upload(t, ct, "moving", data)
	r := readahead.New(ct, "moving", int64(len(data)), p.ETag, readahead.Options{BlockSize: bs, Concurrency: 2})
	defer r.Close()
	buf := make([]byte, 4096)
	if _, err := r.ReadAt(ctx, buf, 0); err != nil {
		t.Fatal(err)
	}
	upload(t, ct, "moving", pattern(20*bs, 4))
	for _, off := range []int64{10 * bs, 15*bs + 7} { // beyond the window, and random
		_, err := r.ReadAt(ctx, buf, off)
		if !errors.Is(err, blob.ErrPrecondition) {
			t.Errorf("ReadAt(%d) after the blob changed = %v, want ErrPrecondition", off, err)
		}
	}
}

func TestPoolBoundsMemory(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 64 << 10
	data := pattern(30*bs, 5)
	p := upload(t, ct, "shared", data)
	pool := readahead.NewPool(bs, 5*bs)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := readahead.New(ct, "shared", int64(len(data)), p.ETag, readahead.Options{Pool: pool, Concurrency: 4})
			defer r.Close()
			buf := make([]byte, 32<<10)
			for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
				n, err := r.ReadAt(ctx, buf, off)
				if err != nil && err != io.EOF {
					errs <- err
					return
				}
				if pool.InUse() > pool.Max() {
					errs <- errors.New("pool over its bound")
					return
				}
				if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					errs <- errors.New("wrong bytes")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if pool.InUse() != 0 {
		t.Errorf("%d buffers still lent after every reader closed", pool.InUse())
	}
}

// A block that a Result points into (a FUSE reply being written) must not
// go back to the pool, where another block's download would overwrite it,
// until the Result is released: not when the window moves past it, not
// when its reader closes.
func TestHeldBlockIsNotReused(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 64 << 10
	data := pattern(16*bs, 6)
	other := pattern(16*bs, 7)
	p := upload(t, ct, "held", data)
	po := upload(t, ct, "other", other)
	pool := readahead.NewPool(bs, 3*bs)
	opts := readahead.Options{Pool: pool, Concurrency: 2}

	r := readahead.New(ct, "held", int64(len(data)), p.ETag, opts)
	first, err := r.ReadRef(ctx, make([]byte, 32<<10), 0) // a read at 0 starts the streak
	if err != nil {
		t.Fatal(err)
	}
	first.Release()
	const off = 32 << 10
	res, err := r.ReadRef(ctx, make([]byte, 32<<10), off)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	// Move the window past the held block, then cycle every free buffer
	// through other bytes.
	buf := make([]byte, 32<<10)
	for o := int64(off + 64<<10); o < int64(len(data)); o += int64(len(buf)) {
		n, err := r.ReadAt(ctx, buf, o)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], data[o:o+int64(n)]) {
			t.Fatalf("wrong bytes at %d", o)
		}
	}
	r.Close()
	r2 := readahead.New(ct, "other", int64(len(other)), po.ETag, opts)
	for o := int64(0); o < int64(len(other)); o += int64(len(buf)) {
		if _, err := r2.ReadAt(ctx, buf, o); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	r2.Close()

	if pool.InUse() != 1 {
		t.Fatalf("%d buffers lent with both readers closed, want 1 (the held block)", pool.InUse())
	}
	var got []byte
	for _, s := range res.Segments {
		got = append(got, s...)
	}
	if res.N != len(got) || !bytes.Equal(got, data[off:off+len(got)]) {
		t.Fatalf("held bytes changed: %d bytes, equal %v", len(got), bytes.Equal(got, data[off:off+len(got)]))
	}
	res.Release()
	res.Release() // twice is harmless
	if pool.InUse() != 0 {
		t.Errorf("%d buffers lent after the release, want 0", pool.InUse())
	}
}

// A read that spans two blocks comes back as two segments, each pointing
// into its block, with the bytes in order.
func TestReadRefAcrossBlocks(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 64 << 10
	data := pattern(8*bs+100, 8)
	p := upload(t, ct, "span", data)
	r := readahead.New(ct, "span", int64(len(data)), p.ETag, readahead.Options{BlockSize: bs, Concurrency: 2})
	defer r.Close()
	buf := make([]byte, 48<<10)
	for o := int64(0); o < int64(len(data)); o += int64(len(buf)) {
		res, err := r.ReadRef(ctx, buf, o)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		var got []byte
		for _, s := range res.Segments {
			got = append(got, s...)
		}
		if len(got) != res.N || !bytes.Equal(got, data[o:o+int64(res.N)]) {
			t.Fatalf("wrong bytes at %d", o)
		}
		res.Release()
	}
}
