package stage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/stage"
)

func (c *counting) AppendBlock(ctx context.Context, name string, data []byte, opts blob.AppendOptions) (*blob.Properties, error) {
	c.count("AppendBlock")
	return c.Container.AppendBlock(ctx, name, data, opts)
}

// newAppendBlob makes an append blob as another program would: created
// with its metadata, then appended to.
func newAppendBlob(t *testing.T, ct *blob.Container, name string, content []byte, md map[string]string) *blob.Properties {
	t.Helper()
	ctx := context.Background()
	p, err := ct.CreateAppendBlob(ctx, name, blob.PutOptions{Metadata: md, ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if len(content) > 0 {
		if _, err := ct.AppendBlock(ctx, name, content, blob.AppendOptions{Position: 0, Conditions: blob.Conditions{IfMatch: p.ETag}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ct.GetProperties(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Appends to an append blob go out as Append Block calls of at most
// 4 MiB, and the blob stays an append blob with the other program's
// metadata; anything but an append is EPERM.
func TestAppendBlobTakesAppends(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	cs := newCounting(ct)
	md := map[string]string{"project_id": "7", "ProjectOwner": "ann"}
	head := []byte("first line\n")
	base := newAppendBlob(t, ct, "log", head, md)
	m := newManager(t, cs, stage.Options{BlockSize: 1 << 20})
	f, err := m.Open(ctx, "log", base, false)
	if err != nil {
		t.Fatal(err)
	}
	tail := pattern(9<<20+3, 4) // three Append Blocks: 4 + 4 + 1 MiB and 3 bytes
	for off := 0; off < len(tail); off += 128 << 10 {
		if _, err := f.WriteAt(ctx, tail[off:min(off+128<<10, len(tail))], int64(len(head)+off)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		what string
		do   func() error
	}{
		{"write in the middle", func() error { _, err := f.WriteAt(ctx, []byte("x"), 3); return err }},
		{"write across the end", func() error { _, err := f.WriteAt(ctx, []byte("xy"), int64(len(head))-1); return err }},
		{"truncate below the end", func() error { return f.Truncate(ctx, int64(len(head))-1) }},
	} {
		err := tc.do()
		var te *stage.BlobTypeError
		if !errors.As(err, &te) || !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "AppendBlob") {
			t.Errorf("%s: %v, want EPERM naming AppendBlob", tc.what, err)
		}
	}
	// Its journal says so, in a version a blobfs that cannot append
	// does not read (it would commit it as a block list).
	js, _ := filepath.Glob(filepath.Join(m.Dir(), "*.json"))
	if len(js) != 1 {
		t.Fatalf("journals %v", js)
	}
	if b, err := os.ReadFile(js[0]); err != nil || !strings.Contains(string(b), `"version":2,`) || !strings.Contains(string(b), `"append_only":true`) {
		t.Errorf("journal %s: %v\n%s", js[0], err, b)
	}
	// A change within what is not in the blob yet is still an append.
	if _, err := f.WriteAt(ctx, tail[:5], int64(len(head))); err != nil {
		t.Errorf("rewriting the part not yet appended: %v", err)
	}
	want := append(append([]byte{}, head...), tail...)
	if calls := cs.snapshot(); calls["Download"] != 0 {
		t.Errorf("appending downloaded the blob's last block (%v): an append needs none of it", calls)
	}
	// Reading it back reads the blob's part of the first block from the
	// service, the rest from the cache.
	back := make([]byte, len(want))
	if n, err := f.ReadAt(ctx, back, 0); n != len(want) || (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(back, want) {
		t.Errorf("read back %d bytes, %v; equal %v", n, err, bytes.Equal(back, want))
	}
	cs.reset()
	p, err := f.Commit(ctx, blob.PutOptions{Metadata: md, ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	calls := cs.snapshot()
	if calls["AppendBlock"] != 3 || calls["PutBlock"]+calls["PutBlockList"]+calls["Upload"] != 0 {
		t.Errorf("calls %v, want 3 AppendBlock and nothing else that writes", calls)
	}
	got, cur := download(t, ct, "log")
	if !bytes.Equal(got, want) {
		t.Errorf("content: %d bytes, want %d", len(got), len(want))
	}
	if cur.BlobType != "AppendBlob" || cur.ETag != p.ETag || p.Size != int64(len(want)) || p.BlobType != "AppendBlob" {
		t.Errorf("after the commit: service %+v, commit %+v", cur, p)
	}
	if got := listedMetadata(t, ct, "log"); len(got) != 2 || got["project_id"] != "7" || got["ProjectOwner"] != "ann" {
		t.Errorf("metadata %v, want the other program's exactly", got)
	}
	// Appending again goes on from the new end.
	if _, err := f.WriteAt(ctx, []byte("more"), int64(len(want))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Commit(ctx, blob.PutOptions{Metadata: md, ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := download(t, ct, "log"); !bytes.Equal(got, append(want, "more"...)) {
		t.Errorf("second append: %d bytes", len(got))
	}
	f.Close()

	// O_TRUNC is refused at open.
	cur, _ = ct.GetProperties(ctx, "log")
	if _, err := m.Open(ctx, "log", cur, true); !errors.Is(err, syscall.EPERM) {
		t.Errorf("open with truncate: %v, want EPERM", err)
	}
}

// Another appender in between: the commit fails (ESTALE), nothing of
// this file is appended, the other's data stays, and the file goes to
// lost+found at close.
func TestAppendBlobConcurrentAppender(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	base := newAppendBlob(t, ct, "log", []byte("a\n"), nil)
	m := newManager(t, ct, stage.Options{BlockSize: 1 << 20})
	f, err := m.Open(ctx, "log", base, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(ctx, []byte("mine\n"), base.Size); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.AppendBlock(ctx, "log", []byte("theirs\n"), blob.AppendOptions{Position: base.Size}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Commit(ctx, blob.PutOptions{}); !errors.Is(err, blob.ErrPrecondition) {
		t.Fatalf("commit after another append: %v, want ErrPrecondition", err)
	}
	if f.State() != "failed" {
		t.Errorf("state %q, want failed", f.State())
	}
	f.Close()
	if got, p := download(t, ct, "log"); string(got) != "a\ntheirs\n" || p.BlobType != "AppendBlob" {
		t.Errorf("blob %q (%s), want the other appender's data only", got, p.BlobType)
	}
	ents, _ := os.ReadDir(m.LostFound())
	if len(ents) != 2 {
		t.Errorf("lost+found holds %d files, want the data and its journal", len(ents))
	}
}

// listedMetadata is a blob's metadata with names as stored.
func listedMetadata(t *testing.T, ct *blob.Container, name string) map[string]string {
	t.Helper()
	page, err := ct.List(context.Background(), blob.ListOptions{Prefix: name, MaxResults: 1, IncludeMetadata: true})
	if err != nil || len(page.Blobs) == 0 || page.Blobs[0].Name != name {
		t.Fatalf("listing %q: %v", name, err)
	}
	return page.Blobs[0].Metadata
}

// A page blob is never staged to be written; a copy of it (for readers of
// a removed file) is never committed.
func TestPageBlobCopyIsNeverCommitted(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	base := upload(t, ct, "p", pattern(1024, 3))
	base.BlobType = "PageBlob" // as the service would say of one
	m := newManager(t, ct, stage.Options{BlockSize: 1 << 20})
	if _, err := m.Open(ctx, "p", base, false); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("Open of a page blob: %v, want EPERM", err)
	}
	f, err := m.OpenCopy(ctx, "p", base)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Localize(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Dirty() {
		t.Error("Localize made the copy dirty")
	}
	if _, err := f.WriteAt(ctx, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	var te *stage.BlobTypeError
	if _, err := f.Commit(ctx, blob.PutOptions{}); !errors.As(err, &te) {
		t.Errorf("Commit of a page blob's copy: %v, want a BlobTypeError", err)
	}
	if got, _ := download(t, ct, "p"); !bytes.Equal(got, pattern(1024, 3)) {
		t.Error("the blob changed")
	}
}
