package transfer_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobfake"
	"github.com/blobfs/blobfs/blob/transfer"
)

// memFile is an io.WriterAt safe for DownloadTo's parallel writes.
type memFile struct {
	mu sync.Mutex
	b  []byte
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	copy(m.b[off:], p)
	return len(p), nil
}

// A round trip through the in-memory store: one Put Blob up to
// SingleShot, blocks and a Put Block List above, the whole-blob MD5
// stored either way; the same Buffers serve every transfer. The
// service-side checks (against Azurite) are blob's TestTransfers.
func TestRoundTripOnFake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var bufs transfer.Buffers
	tests := []struct {
		name                string
		size                int
		opts                transfer.Options
		wantPuts, wantBlock int
	}{
		{"empty", 0, transfer.Options{}, 1, 0},
		{"one block", 100 << 10, transfer.Options{BlockSize: 100 << 10}, 1, 0},
		{"blocks", 1<<20 + 7, transfer.Options{BlockSize: 128 << 10, Concurrency: 3}, 0, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := blobfake.New(blobfake.Options{})
			data := make([]byte, tt.size)
			for i := range data {
				data[i] = byte(i * 7)
			}
			tt.opts.Buffers = &bufs
			if _, err := transfer.UploadFrom(ctx, s, "f", bytes.NewReader(data), int64(len(data)), tt.opts); err != nil {
				t.Fatal(err)
			}
			if got := s.Calls(blobfake.OpPut); got != tt.wantPuts {
				t.Errorf("%d Put Blob calls, want %d", got, tt.wantPuts)
			}
			if got := s.Calls(blobfake.OpPutBlock); got != tt.wantBlock {
				t.Errorf("%d Put Block calls, want %d", got, tt.wantBlock)
			}
			if left := s.UncommittedBlocks("f"); len(left) != 0 {
				t.Errorf("blocks left uncommitted: %v", left)
			}
			_, p, _ := s.Content("f")
			if sum := md5.Sum(data); !bytes.Equal(p.ContentMD5, sum[:]) {
				t.Errorf("stored MD5 %x, want %x", p.ContentMD5, sum)
			}
			var m memFile
			if _, err := transfer.DownloadTo(ctx, s, "f", &m, tt.opts); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.b, data) && !(len(m.b) == 0 && len(data) == 0) {
				t.Errorf("downloaded %d bytes, not the %d uploaded", len(m.b), len(data))
			}
		})
	}
}

// A failed block fails the upload, and nothing is committed.
func TestUploadFailsOnABlock(t *testing.T) {
	ctx := context.Background()
	s := blobfake.New(blobfake.Options{})
	n := 0
	var mu sync.Mutex
	s.SetHook(func(op, name string) error {
		mu.Lock()
		defer mu.Unlock()
		if op == blobfake.OpPutBlock {
			if n++; n == 3 {
				return blobfake.Injected(op, name)
			}
		}
		return nil
	})
	data := make([]byte, 1<<20)
	_, err := transfer.UploadFrom(ctx, s, "f", bytes.NewReader(data), int64(len(data)), transfer.Options{BlockSize: 128 << 10, Concurrency: 2})
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Errorf("upload with a failing block: %v, want ErrUnavailable", err)
	}
	if s.Calls(blobfake.OpPutBlockList) != 0 {
		t.Error("the blocks were committed after one failed")
	}
	if _, _, ok := s.Content("f"); ok {
		t.Error("a blob exists after a failed upload")
	}
}
