package stage_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/stage"
)

// tagCounting counts Get Blob Tags calls.
type tagCounting struct {
	*blob.Container
	getTags atomic.Int32
}

func (c *tagCounting) GetTags(ctx context.Context, name string) (map[string]string, error) {
	c.getTags.Add(1)
	return c.Container.GetTags(ctx, name)
}

// An overwrite keeps what the blob had that Put Blob and Put Block List
// would clear: content headers, index tags and an explicit tier. Tags
// cost one Get Blob Tags, and none for a blob without tags.
func TestOverwriteKeepsProperties(t *testing.T) {
	const bs = 1 << 20
	ctx := context.Background()
	ct := newContainer(t)
	tc := &tagCounting{Container: ct}
	m := newManager(t, tc, stage.Options{BlockSize: bs})
	hdr := blob.ContentHeaders{CacheControl: "max-age=60", ContentEncoding: "gzip", ContentLanguage: "en", ContentDisposition: "inline"}
	tags := map[string]string{"owner": "pipeline"}
	for _, size := range []int{100, 3*bs + 5} {
		for _, withTags := range []bool{true, false} {
			opts := blob.PutOptions{ContentType: "text/css", ContentHeaders: hdr, AccessTier: "Cool", Metadata: map[string]string{"project_id": "7"}}
			if withTags {
				opts.Tags = tags
			}
			if _, err := ct.Upload(ctx, "k", pattern(10, 1), opts); err != nil {
				t.Fatal(err)
			}
			page, err := ct.List(ctx, blob.ListOptions{Prefix: "k", IncludeMetadata: true})
			if err != nil || len(page.Blobs) != 1 {
				t.Fatal(err)
			}
			base := page.Blobs[0]
			tc.getTags.Store(0)
			f, err := m.Open(ctx, "k", base, true)
			if err != nil {
				t.Fatal(err)
			}
			data := pattern(size, 3)
			if _, err := f.WriteAt(ctx, data, 0); err != nil {
				t.Fatal(err)
			}
			// What the fs layer passes: the type and the metadata.
			if _, err := f.Commit(ctx, blob.PutOptions{ContentType: base.ContentType, Metadata: base.Metadata}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			got, p := download(t, ct, "k")
			if !bytes.Equal(got, data) {
				t.Fatal("content differs")
			}
			p, err = ct.GetProperties(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			wantTags := 0
			if withTags {
				wantTags = 1
			}
			if p.ContentHeaders != hdr || p.ContentType != "text/css" || p.ExplicitTier() != "Cool" || p.TagCount != wantTags {
				t.Errorf("size %d tags %v: after the overwrite %+v", size, withTags, p)
			}
			if n := tc.getTags.Load(); n != int32(wantTags) {
				t.Errorf("size %d tags %v: %d Get Blob Tags calls, want %d", size, withTags, n, wantTags)
			}
			if withTags {
				if got, err := ct.GetTags(ctx, "k"); err != nil || len(got) != 1 || got["owner"] != "pipeline" {
					t.Errorf("tags after the overwrite: %v %v", got, err)
				}
			}
		}
	}
}

// A rewrite of a blob known through a HEAD (which loses the case of
// metadata names in Go's HTTP client) sends other tools' names in the
// case the blob stores them, ours lower-case.
func TestRewriteKeepsMetadataNameCase(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	m := newManager(t, ct, stage.Options{})
	md := map[string]string{"ProjectOwner": "ann", "project_id": "7", "Mode": "0600"}
	if _, err := ct.Upload(ctx, "f", []byte("old"), blob.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	base, err := ct.GetProperties(ctx, "f")
	if err != nil || !base.MetaNamesLowered {
		t.Fatalf("HEAD: %v %+v", err, base)
	}
	f, err := m.Open(ctx, "f", base, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(ctx, []byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	// What the fs layer passes: the HEAD's names, ours normalised.
	if _, err := f.Commit(ctx, blob.PutOptions{Metadata: map[string]string{"projectowner": "ann", "project_id": "7", "mode": "0644"}}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	page, err := ct.List(ctx, blob.ListOptions{Prefix: "f", IncludeMetadata: true})
	if err != nil || len(page.Blobs) != 1 {
		t.Fatal(err)
	}
	want := map[string]string{"ProjectOwner": "ann", "project_id": "7", "mode": "0644"}
	if got := page.Blobs[0].Metadata; len(got) != len(want) || got["ProjectOwner"] != "ann" || got["project_id"] != "7" || got["mode"] != "0644" {
		t.Errorf("listed metadata %v, want exactly %v", got, want)
	}
}
