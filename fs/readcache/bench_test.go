package readcache

import (
	"fmt"
	"testing"
)

// BenchmarkStoreSmallFile is what a small file read (or committed) for
// the first time costs the cache: a version and one piece. "full": the
// cache is at its bound (--cache-size reached), so every store also
// evicts the least recently used piece.
func BenchmarkStoreSmallFile(b *testing.B) {
	p := content(1, 4096)
	const held = 1000
	for _, full := range []bool{false, true} {
		b.Run(map[bool]string{false: "empty", true: "full"}[full], func(b *testing.B) {
			var max int64
			if full {
				max = held * diskSize(int64(len(p)), len("small/000000")+len("etag"))
			}
			c, err := Open(Options{Dir: b.TempDir(), BlockSize: 8 << 20, MaxBytes: max})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if full {
				for i := range held {
					storeWait(c, fmt.Sprintf("full/%06d", i), "etag", int64(len(p)), p, 0)
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				c.Store(fmt.Sprintf("small/%06d", i), "etag", int64(len(p)), p, 0)
			}
			c.waitFills() // the stores queued, made: part of the time
		})
	}
}

// BenchmarkReadSmallFile is a hit on a small file.
func BenchmarkReadSmallFile(b *testing.B) {
	c, err := Open(Options{Dir: b.TempDir(), BlockSize: 8 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	p := content(1, 4096)
	const n = 1000
	for i := range n {
		c.Store(fmt.Sprintf("small/%06d", i), "etag", int64(len(p)), p, 0)
	}
	buf := make([]byte, len(p))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if !c.ReadAt(fmt.Sprintf("small/%06d", i%n), "etag", int64(len(p)), buf, 0) {
			b.Fatal("miss")
		}
	}
}

// BenchmarkStoreLargeFile is what a cold sequential read of a large file
// costs the cache: one 8 MiB piece per block (SetBytes: MB/s of blocks
// stored).
func BenchmarkStoreLargeFile(b *testing.B) {
	const bs = 8 << 20
	c, err := Open(Options{Dir: b.TempDir(), BlockSize: bs})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	p := content(1, bs)
	const size = 64 * bs
	b.SetBytes(bs)
	for i := 0; b.Loop(); i++ {
		c.Store(fmt.Sprintf("large/%d", i/64), "etag", size, p, int64(i%64)*bs)
	}
}

// BenchmarkOpenSmallFiles is what rebuilding the index of 2,000 small
// files costs a mount.
func BenchmarkOpenSmallFiles(b *testing.B) {
	dir := b.TempDir()
	c, err := Open(Options{Dir: dir, BlockSize: 8 << 20})
	if err != nil {
		b.Fatal(err)
	}
	p := content(1, 4096)
	const n = 2000
	for i := range n {
		c.Store(fmt.Sprintf("small/%06d", i), "etag", int64(len(p)), p, 0)
	}
	c.Close()
	for b.Loop() {
		c, err := Open(Options{Dir: dir, BlockSize: 8 << 20})
		if err != nil {
			b.Fatal(err)
		}
		if c.Stats().Pieces != n {
			b.Fatalf("%+v after reopening, want %d pieces", c.Stats(), n)
		}
		c.Close()
	}
}
