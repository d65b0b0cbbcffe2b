package blob_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/blobfs/blobfs/blob"
)

// Append Block lands where Position says, keeps the blob an append blob
// with its metadata and content headers, and refuses to interleave with
// another appender.
func TestAppendBlock(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "append", envOptions{})
	md := map[string]string{"project_id": "7", "ProjectOwner": "ann"}
	created, err := e.ct.CreateAppendBlob(ctx, "log", blob.PutOptions{Metadata: md, ContentType: "text/plain",
		ContentHeaders: blob.ContentHeaders{CacheControl: "no-cache"}})
	if err != nil {
		t.Fatal(err)
	}
	first := []byte("first line\n")
	p, err := e.ct.AppendBlock(ctx, "log", first, blob.AppendOptions{Position: 0, Conditions: blob.Conditions{IfMatch: created.ETag}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Size != int64(len(first)) || p.ETag == "" || p.ETag == created.ETag || p.ContentMD5 != nil {
		t.Errorf("answer to the first append: %+v", p)
	}
	big := randomBytes(blob.MaxAppendBlock, 5)
	p2, err := e.ct.AppendBlock(ctx, "log", big, blob.AppendOptions{Position: p.Size, Conditions: blob.Conditions{IfMatch: p.ETag}})
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, first...), big...)
	if p2.Size != int64(len(want)) {
		t.Errorf("size after two appends: %d, want %d", p2.Size, len(want))
	}
	for _, tc := range []struct {
		name string
		opts blob.AppendOptions
		data []byte
		kind error
	}{
		{"wrong position", blob.AppendOptions{Position: 3}, []byte("x"), blob.ErrPrecondition},
		{"stale ETag", blob.AppendOptions{Position: p2.Size, Conditions: blob.Conditions{IfMatch: p.ETag}}, []byte("x"), blob.ErrPrecondition},
		{"too large", blob.AppendOptions{Position: p2.Size}, make([]byte, blob.MaxAppendBlock+1), nil},
		{"empty", blob.AppendOptions{Position: p2.Size}, nil, nil},
	} {
		_, err := e.ct.AppendBlock(ctx, "log", tc.data, tc.opts)
		if err == nil || (tc.kind != nil && !errors.Is(err, tc.kind)) {
			t.Errorf("%s: %v, want an error of kind %v", tc.name, err, tc.kind)
		}
	}
	got, _, _ := download(t, e.ct, "log")
	if !bytes.Equal(got, want) {
		t.Errorf("content: %d bytes, want %d", len(got), len(want))
	}
	cur, err := e.ct.GetProperties(ctx, "log")
	if err != nil {
		t.Fatal(err)
	}
	if cur.BlobType != "AppendBlob" || cur.ContentType != "text/plain" || cur.CacheControl != "no-cache" || cur.ETag != p2.ETag {
		t.Errorf("properties after appends: %+v", cur)
	}
	page, err := e.ct.List(ctx, blob.ListOptions{Prefix: "log", IncludeMetadata: true})
	if err != nil || len(page.Blobs) != 1 || !sameMap(page.Blobs[0].Metadata, md) {
		t.Errorf("metadata after appends: %v %+v, want %v", err, page, md)
	}
	// A block blob takes no Append Block.
	if _, err := e.ct.Upload(ctx, "block", []byte("x"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ct.AppendBlock(ctx, "block", []byte("y"), blob.AppendOptions{Position: 1}); err == nil {
		t.Error("Append Block to a block blob succeeded")
	}
}

func download(t *testing.T, ct *blob.Container, name string) ([]byte, *blob.Properties, error) {
	t.Helper()
	rc, p, err := ct.Download(testContext(t), name, 0, -1, blob.Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(rc)
	return b.Bytes(), p, err
}
