package stage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/stage"
)

// TestAgainstModel runs random writes, appends, truncates, reads, commits
// and reopenings against a []byte model, and compares what the service
// holds after every commit and after a remount.
func TestAgainstModel(t *testing.T) {
	const bs = 4 << 10
	for _, tc := range []struct {
		name     string
		seed     uint64
		maxBytes int64 // small: blocks get evicted, reads of them may fail
	}{
		{"seed1", 1, 0},
		{"seed2", 2, 0},
		{"seed3", 3, 0},
		{"tiny cache", 4, 6 * bs},
		{"tiny cache 2", 5, 5 * bs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ct := newContainer(t)
			dir := t.TempDir()
			m := newManager(t, ct, stage.Options{Dir: dir, BlockSize: bs, Concurrency: 3, MaxBytes: tc.maxBytes})
			rng := rand.New(rand.NewPCG(tc.seed, 99))
			var model []byte
			var base *blob.Properties
			if rng.IntN(2) == 0 {
				model = pattern(rng.IntN(10*bs), byte(tc.seed))
				base = upload(t, ct, "m", model)
			}
			f, err := m.Open(ctx, "m", base, false)
			if err != nil {
				t.Fatal(err)
			}
			evictedOK := func(err error) bool { return tc.maxBytes > 0 && errors.Is(err, stage.ErrEvicted) }
			for step := range 150 {
				size := int64(len(model))
				switch op := rng.IntN(20); {
				case op < 8: // write anywhere, holes included
					off := rng.Int64N(size + 2*bs + 1)
					p := pattern(1+rng.IntN(3*bs), byte(step))
					if _, err := f.WriteAt(ctx, p, off); err != nil {
						if evictedOK(err) {
							continue
						}
						t.Fatalf("step %d: WriteAt(%d, %d): %v", step, off, len(p), err)
					}
					if end := off + int64(len(p)); end > size {
						model = append(model, make([]byte, end-size)...)
					}
					copy(model[off:], p)
				case op < 12: // append
					p := pattern(1+rng.IntN(2*bs), byte(step))
					if _, err := f.WriteAt(ctx, p, size); err != nil {
						t.Fatalf("step %d: append: %v", step, err)
					}
					model = append(model, p...)
				case op < 14: // truncate
					n := rng.Int64N(size + 2*bs + 1)
					if err := f.Truncate(ctx, n); err != nil {
						if evictedOK(err) {
							continue
						}
						t.Fatalf("step %d: Truncate(%d): %v", step, n, err)
					}
					if n < size {
						model = model[:n]
					} else {
						model = append(model, make([]byte, n-size)...)
					}
				case op < 17: // read back
					off := rng.Int64N(size + 1)
					p := make([]byte, rng.IntN(3*bs)+1)
					n, err := f.ReadAt(ctx, p, off)
					if evictedOK(err) {
						continue
					}
					want := model[off:min(size, off+int64(len(p)))]
					if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], want) {
						t.Fatalf("step %d: ReadAt(%d, %d) = %d, %v; bytes equal: %v", step, off, len(p), n, err, bytes.Equal(p[:n], want))
					}
				case op < 19: // commit and compare
					if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
						t.Fatalf("step %d: Commit: %v", step, err)
					}
					if got, _ := download(t, ct, "m"); !bytes.Equal(got, model) {
						t.Fatalf("step %d: service holds %d bytes that differ from the model's %d", step, len(got), len(model))
					}
				default: // close and reopen on what was committed
					p, err := f.Commit(ctx, blob.PutOptions{})
					if err != nil {
						t.Fatalf("step %d: Commit: %v", step, err)
					}
					f.Close()
					if f, err = m.Open(ctx, "m", p, false); err != nil {
						t.Fatal(err)
					}
				}
				if f.Size() != int64(len(model)) {
					t.Fatalf("step %d: Size %d, model %d", step, f.Size(), len(model))
				}
				if st := m.Stats(); tc.maxBytes > 0 && st.CachedBytes > tc.maxBytes {
					t.Fatalf("step %d: cache holds %d bytes, bound %d", step, st.CachedBytes, tc.maxBytes)
				}
			}
			p, err := f.Commit(ctx, blob.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			m.Close()
			// Remount: a new Manager on the same directory reads it back.
			m2 := newManager(t, ct, stage.Options{Dir: dir, BlockSize: bs})
			if rec, err := m2.Recover(ctx); err != nil || len(rec) != 0 {
				t.Errorf("Recover after clean close = %v, %v", rec, err)
			}
			f2, err := m2.Open(ctx, "m", p, false)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(model)+1)
			n, _ := f2.ReadAt(ctx, got, 0)
			if !bytes.Equal(got[:n], model) {
				t.Errorf("after remount: %d bytes that differ from the model's %d", n, len(model))
			}
			f2.Close()
		})
	}
}

func TestCacheFull(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	const bs = 64 << 10
	const max = 4 * bs
	m := newManager(t, ct, stage.Options{BlockSize: bs, Concurrency: 2, MaxBytes: max})
	f, err := m.Open(ctx, "stream", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(40*bs+17, 7)
	for off := 0; off < len(data); off += 32 << 10 {
		if _, err := f.WriteAt(ctx, data[off:min(off+32<<10, len(data))], int64(off)); err != nil {
			t.Fatal(err)
		}
		if st := m.Stats(); st.CachedBytes > max {
			t.Fatalf("cache holds %d bytes, bound %d", st.CachedBytes, max)
		}
	}
	// The start went out to the service and left the cache.
	if _, err := f.ReadAt(ctx, make([]byte, 10), 0); !errors.Is(err, stage.ErrEvicted) {
		t.Errorf("ReadAt of an evicted block = %v, want ErrEvicted", err)
	}
	// More than the whole cache at once cannot be staged.
	if _, err := f.WriteAt(ctx, make([]byte, max+1), 0); !errors.Is(err, stage.ErrNoSpace) {
		t.Errorf("oversized write = %v, want ErrNoSpace", err)
	}
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := download(t, ct, "stream"); !bytes.Equal(got, data) {
		t.Errorf("content differs")
	}
	if st := m.Stats(); st.CachedBytes != 0 {
		t.Errorf("after close the cache still counts %d bytes", st.CachedBytes)
	}
}

func ExampleConflictName() {
	fmt.Println(stage.ConflictName("dir/report.txt", mustTime("2025-03-04T05:06:07Z")))
	// Output: dir/report.txt.conflict-20250304T050607Z
}
