package stage_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/transfer"
	"github.com/blobfs/blobfs/fs/stage"
)

// Every commit that creates or replaces a blob stores the whole blob's
// MD5 (what AzCopy --check-md5 and rclone check compare), whatever order
// the writes came in; one that reuses blocks it never had locally stores
// none rather than a stale one.
func TestCommitStoresWholeMD5(t *testing.T) {
	const bs = 1 << 20
	ctx := context.Background()
	ct := newContainer(t)
	data := pattern(3*bs+12345, 7)
	write := func(f *stage.File, p []byte, off int) {
		t.Helper()
		if _, err := f.WriteAt(ctx, p, int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		noMD5 bool
		base  []byte // an existing blob, opened without truncating
		trunc bool
		do    func(f *stage.File)
		want  []byte // content; its MD5 expected unless wantNone
		none  bool
	}{
		{name: "sequential", do: func(f *stage.File) {
			for off := 0; off < len(data); off += 128 << 10 {
				write(f, data[off:min(off+128<<10, len(data))], off)
			}
		}, want: data},
		{name: "backwards", do: func(f *stage.File) {
			for off := len(data) / bs * bs; off >= 0; off -= bs {
				write(f, data[off:min(off+bs, len(data))], off)
			}
		}, want: data},
		{name: "rewritten middle", do: func(f *stage.File) {
			write(f, make([]byte, len(data)), 0)
			write(f, data[bs:2*bs], bs)
			write(f, data[:bs], 0)
			write(f, data[2*bs:], 2*bs)
		}, want: data},
		{name: "truncated and rewritten", do: func(f *stage.File) {
			write(f, bytes.Repeat([]byte("x"), 2*bs), 0)
			if err := f.Truncate(ctx, 0); err != nil {
				t.Fatal(err)
			}
			write(f, data, 0)
		}, want: data},
		{name: "grown with a hole", do: func(f *stage.File) {
			write(f, data[:100], 0)
			if err := f.Truncate(ctx, 2*bs+1); err != nil {
				t.Fatal(err)
			}
		}, want: append(append([]byte(nil), data[:100]...), make([]byte, 2*bs+1-100)...)},
		{name: "overwrite of an existing blob", base: pattern(2*bs, 9), trunc: true, do: func(f *stage.File) {
			write(f, data, 0)
		}, want: data},
		{name: "append to an existing multi-block blob", base: data[:2*bs], do: func(f *stage.File) {
			write(f, data[2*bs:], 2*bs)
		}, want: data, none: true},
		{name: "edit of a small existing blob", base: data[:1000], do: func(f *stage.File) {
			write(f, []byte("edit"), 10)
		}, want: append(append(append([]byte(nil), data[:10]...), "edit"...), data[14:1000]...)},
		{name: "put-md5 off", noMD5: true, do: func(f *stage.File) { write(f, data, 0) }, want: data, none: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := &sentMD5{Store: ct}
			m := newManager(t, cs, stage.Options{BlockSize: bs, NoMD5: tc.noMD5})
			name := "md5/" + tc.name
			var base *blob.Properties
			if tc.base != nil {
				// A base with an MD5 of its own, which must not survive.
				var err error
				base, err = transfer.UploadFrom(ctx, ct, name, bytes.NewReader(tc.base), int64(len(tc.base)), transfer.Options{BlockSize: bs})
				if err != nil {
					t.Fatal(err)
				}
				if base, err = ct.GetProperties(ctx, name); err != nil || base.ContentMD5 == nil {
					t.Fatalf("base: %v %+v", err, base)
				}
			}
			f, err := m.Open(ctx, name, base, tc.trunc)
			if err != nil {
				t.Fatal(err)
			}
			tc.do(f)
			if tc.noMD5 && f.Hashing() {
				t.Error("with NoMD5 the writes are still hashed, want no CPU spent on it")
			}
			p, err := f.Commit(ctx, blob.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			got, props := download(t, ct, name)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("content differs (%d bytes, want %d)", len(got), len(tc.want))
			}
			want := md5.Sum(tc.want)
			// Azurite computes an MD5 for a block list that was sent none
			// (Azure does not): what was sent is what counts, and what the
			// blob has is never stale.
			switch {
			case tc.none && cs.sent != nil:
				t.Errorf("sent MD5 %x, want none", cs.sent)
			case !tc.none && !bytes.Equal(cs.sent, want[:]) && !(cs.sent == nil && len(tc.want) <= bs):
				t.Errorf("sent MD5 %x, want %x", cs.sent, want)
			case props.ContentMD5 != nil && !bytes.Equal(props.ContentMD5, want[:]):
				t.Errorf("blob MD5 %x, want %x or none", props.ContentMD5, want)
			case !tc.none && !bytes.Equal(props.ContentMD5, want[:]):
				t.Errorf("blob MD5 %x, want %x", props.ContentMD5, want)
			case cs.sent != nil && !bytes.Equal(p.ContentMD5, props.ContentMD5):
				t.Errorf("Commit reported MD5 %x, the blob has %x", p.ContentMD5, props.ContentMD5)
			}
		})
	}
}

// sentMD5 records the whole-blob MD5 of the last commit.
type sentMD5 struct {
	stage.Store
	sent []byte
}

func (s *sentMD5) Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error) {
	s.sent = opts.ContentMD5
	return s.Store.Upload(ctx, name, data, opts)
}

func (s *sentMD5) PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error) {
	s.sent = opts.ContentMD5
	return s.Store.PutBlockList(ctx, name, ids, opts)
}

// A write that lands while a commit waits for its blocks is either in
// the commit or not, and the MD5 sent always matches what was committed.
func TestWriteDuringCommitKeepsMD5True(t *testing.T) {
	const bs = 1 << 20
	ctx := context.Background()
	ct := newContainer(t)
	g := &gated{Store: ct, open: make(chan struct{}), started: make(chan struct{}, 64)}
	m := newManager(t, g, stage.Options{BlockSize: bs})
	f, err := m.Open(ctx, "racy", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(2*bs+100, 5)
	if _, err := f.WriteAt(ctx, data[2*bs:], 2*bs); err != nil { // out of order: hashed at commit
		t.Fatal(err)
	}
	if _, err := f.WriteAt(ctx, data[:2*bs], 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.Commit(ctx, blob.PutOptions{})
		done <- err
	}()
	<-g.started // the commit is uploading
	if _, err := f.WriteAt(ctx, []byte("changed"), 5); err != nil {
		t.Fatal(err)
	}
	copy(data[5:], "changed")
	close(g.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, p := download(t, ct, "racy")
	sum := md5.Sum(got)
	if !bytes.Equal(p.ContentMD5, sum[:]) {
		t.Errorf("committed MD5 %x, content's %x (the write landed: %v)", p.ContentMD5, sum, bytes.Equal(got, data))
	}
}
