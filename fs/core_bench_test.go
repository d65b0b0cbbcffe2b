package fs_test

import (
	"fmt"
	"testing"

	"github.com/blobfs/blobfs/blob/blobfake"
	"github.com/blobfs/blobfs/fs"
)

// BenchmarkCoreCreateSmall is the core's own cost of a small file made
// by cp or a shell redirect (CREATE, WRITE, FLUSH, RELEASE), on the
// in-memory fake: no kernel, no service, so what is left is blobfs's
// staging, commit and bookkeeping.
func BenchmarkCoreCreateSmall(b *testing.B) {
	st := blobfake.New(blobfake.Options{})
	r, mt := mountKernelFreeB(b, st, fs.Options{CacheDir: b.TempDir()})
	defer mt.Unmount(b.Context())
	data := make([]byte, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := r.WriteFile(fmt.Sprintf("f%07d", i), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
