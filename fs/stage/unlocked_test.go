package stage_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobfake"
	"github.com/blobfs/blobfs/fs/stage"
)

// A download of the file's base (a read of an unchanged part, or the old
// content of a block written only in part) does not hold the file's lock:
// while it is stuck in the service, Size, reads of local parts and writes
// of other blocks go on, and the stuck call still returns the right bytes.
func TestDownloadDoesNotHoldTheFile(t *testing.T) {
	const bs = 64 << 10
	tests := []struct {
		name string
		// stuck starts the call that downloads; it returns what was read.
		stuck func(ctx context.Context, f *stage.File) ([]byte, error)
	}{
		{"read of an unchanged part", func(ctx context.Context, f *stage.File) ([]byte, error) {
			buf := make([]byte, 100)
			_, err := f.ReadAt(ctx, buf, 2*bs+10)
			return buf, err
		}},
		{"partial write of an unchanged block", func(ctx context.Context, f *stage.File) ([]byte, error) {
			if _, err := f.WriteAt(ctx, []byte("xy"), 2*bs+10); err != nil {
				return nil, err
			}
			buf := make([]byte, 100)
			_, err := f.ReadAt(ctx, buf, 2*bs+10)
			return buf, err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st := blobfake.New(blobfake.Options{})
			data := pattern(4*bs, 7)
			if _, err := st.Upload(ctx, "f", data, blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			base, err := st.GetProperties(ctx, "f")
			if err != nil {
				t.Fatal(err)
			}
			m := newManager(t, st, stage.Options{BlockSize: bs})
			f, err := m.Open(ctx, "f", base, false)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			gate := st.Hold(blobfake.OpGet, "f")
			type result struct {
				b   []byte
				err error
			}
			done := make(chan result, 1)
			go func() {
				b, err := tt.stuck(ctx, f)
				done <- result{b, err}
			}()
			held := make(chan error, 1)
			go func() { held <- gate.WaitHeld(ctx, 1) }()
			select {
			case r := <-done:
				t.Fatalf("the call ended without downloading: %v", r.err)
			case err := <-held:
				if err != nil {
					t.Fatal(err)
				}
			}
			// Each of these needs the file's lock.
			if got := f.Size(); got != 4*bs {
				t.Errorf("Size = %d while a download is stuck, want %d", got, 4*bs)
			}
			if _, err := f.WriteAt(ctx, bytes.Repeat([]byte("z"), bs), 0); err != nil {
				t.Errorf("WriteAt of another block while a download is stuck: %v", err)
			}
			buf := make([]byte, 10)
			if _, err := f.ReadAt(ctx, buf, 0); err != nil || string(buf) != "zzzzzzzzzz" {
				t.Errorf("ReadAt of a local part = %q, %v", buf, err)
			}
			gate.Release()
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			want := append([]byte(nil), data[2*bs+10:2*bs+110]...)
			if tt.name != "read of an unchanged part" {
				copy(want, "xy")
			}
			if !bytes.Equal(r.b, want) {
				t.Errorf("the stuck call read %q…, want %q…", r.b[:8], want[:8])
			}
		})
	}
}
