package blob_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/transfer"
)

// Throughput against Azurite, single stream (one Put Blob, one GET) and
// parallel (UploadFrom/DownloadTo) at several block sizes and
// concurrencies: this is how the transfer defaults were chosen. Run with
// go test -run XXX -bench Transfer -benchtime 3x ./blob/
const benchSize = 64 << 20

var benchShapes = []struct{ block, conc int }{
	{4 << 20, 8}, {8 << 20, 4}, {8 << 20, 8}, {8 << 20, 16}, {16 << 20, 8},
}

func BenchmarkTransfer(b *testing.B) {
	ctx := testContext(b)
	e := newEnv(b, "bench", envOptions{})
	data := randomBytes(benchSize, 9)
	b.Run("upload/single-stream", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := e.ct.Upload(ctx, "single", data, blob.PutOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("download/single-stream", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			rc, _, err := e.ct.Download(ctx, "single", 0, -1, blob.Conditions{})
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil || n != benchSize {
				b.Fatal(n, err)
			}
		}
	})
	var bufs transfer.Buffers // one client's, as blob.Client held before
	for _, s := range benchShapes {
		opts := transfer.Options{BlockSize: int64(s.block), Concurrency: s.conc, Buffers: &bufs}
		shape := fmt.Sprintf("%dMiBx%d", s.block>>20, s.conc)
		b.Run("upload/parallel-"+shape, func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				if _, err := transfer.UploadFrom(ctx, e.ct, "parallel", bytes.NewReader(data), benchSize, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("download/parallel-"+shape, func(b *testing.B) {
			b.SetBytes(benchSize)
			dst := &memFile{b: make([]byte, benchSize)}
			for b.Loop() {
				if _, err := transfer.DownloadTo(ctx, e.ct, "parallel", dst, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
