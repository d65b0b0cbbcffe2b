package blob_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/blobfs/blobfs/blob"
)

// Metadata names go out in the case they are given, and a listing shows
// them so: case-sensitive readers (an SDK's metadata["hdi_isfolder"])
// depend on it. Azurite checks every signature, so this also shows that
// names set as raw map keys are signed as the service expects.
func TestMetadataNamesKeepTheirCase(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "metacase", envOptions{})
	md := map[string]string{"hdi_isfolder": "true", "is_symlink": "false", "project_id": "7", "ProjectOwner": "ann", "mode": "0644"}
	if _, err := e.ct.Upload(ctx, "f", []byte("x"), blob.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	page, err := e.ct.List(ctx, blob.ListOptions{Prefix: "f", IncludeMetadata: true})
	if err != nil || len(page.Blobs) != 1 {
		t.Fatalf("listing: %v %+v", err, page)
	}
	if got := page.Blobs[0].Metadata; !sameMap(got, md) {
		t.Errorf("listed metadata %v, want exactly %v", got, md)
	}
	// A HEAD loses the case in Go's HTTP client: names come lower-cased,
	// and MetaValue finds them either way.
	p, err := e.ct.GetProperties(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := blob.MetaValue(p.Metadata, "ProjectOwner"); !ok || v != "ann" {
		t.Errorf("HEAD metadata %v: ProjectOwner not found", p.Metadata)
	}
	// Set Blob Metadata and Copy send names the same way.
	md2 := map[string]string{"Project_ID": "8", "hdi_isfolder": "true"}
	if _, err := e.ct.SetMetadata(ctx, "f", md2, blob.Conditions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ct.Copy(ctx, blob.CopyRequest{Dst: "g", Src: "f", Metadata: map[string]string{"CopiedName": "1"}}); err != nil {
		t.Fatal(err)
	}
	page, err = e.ct.List(ctx, blob.ListOptions{IncludeMetadata: true})
	if err != nil || len(page.Blobs) != 2 {
		t.Fatalf("listing: %v %+v", err, page)
	}
	if got := page.Blobs[0].Metadata; !sameMap(got, md2) {
		t.Errorf("after Set Blob Metadata: %v, want exactly %v", got, md2)
	}
	if got := page.Blobs[1].Metadata; !sameMap(got, map[string]string{"CopiedName": "1"}) {
		t.Errorf("after Copy: %v", got)
	}
}

func TestSetMetaReplacesOtherCases(t *testing.T) {
	md := map[string]string{"Mode": "0600", "Hdi_isfolder": "true", "x": "1"}
	blob.SetMeta(md, "mode", "0644")
	if len(md) != 3 || md["mode"] != "0644" {
		t.Errorf("SetMeta: %v", md)
	}
	if v, ok := blob.MetaValue(md, "hdi_isfolder"); !ok || v != "true" {
		t.Errorf("MetaValue: %q %v", v, ok)
	}
}

// What a rewrite or a copy must keep is reported by HEAD and by listings,
// and Put Blob, Put Block List and Copy send it.
func TestContentHeadersTierAndTags(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "keep", envOptions{})
	hdr := blob.ContentHeaders{CacheControl: "public, max-age=600", ContentEncoding: "gzip", ContentLanguage: "de-CH", ContentDisposition: `attachment; filename="a b.txt"`}
	tags := map[string]string{"project": "x 1", "stage/env": "prod+1"}
	opts := blob.PutOptions{ContentType: "text/plain", ContentHeaders: hdr, AccessTier: "Cool", Tags: tags}
	if _, err := e.ct.Upload(ctx, "small", []byte("x"), opts); err != nil {
		t.Fatal(err)
	}
	ids := []string{blob.BlockID(0)}
	if err := e.ct.PutBlock(ctx, "big", ids[0], bytes.NewReader([]byte("yy")), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ct.PutBlockList(ctx, "big", ids, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ct.Upload(ctx, "plain", []byte("z"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	check := func(how string, p *blob.Properties) {
		t.Helper()
		if p.ContentHeaders != hdr || p.AccessTier != "Cool" || p.AccessTierInferred || p.TagCount != 2 || p.BlobType != "BlockBlob" {
			t.Errorf("%s %s: %+v", how, p.Name, p)
		}
	}
	for _, name := range []string{"small", "big"} {
		p, err := e.ct.GetProperties(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		check("HEAD", p)
		got, err := e.ct.GetTags(ctx, name)
		if err != nil || !sameMap(got, tags) {
			t.Errorf("tags of %s: %v %v", name, got, err)
		}
	}
	page, err := e.ct.List(ctx, blob.ListOptions{IncludeMetadata: true})
	if err != nil || len(page.Blobs) != 3 {
		t.Fatalf("listing: %v %+v", err, page)
	}
	check("listed", page.Blobs[0])
	check("listed", page.Blobs[2])
	if p := page.Blobs[1]; p.Name != "plain" || p.TagCount != 0 || !p.AccessTierInferred || p.ExplicitTier() != "" {
		t.Errorf("listed plain: %+v", p)
	}
	// A copy keeps tags and the tier too (Copy Blob copies neither by itself).
	cp, err := e.ct.CopyFrom(ctx, "copy", page.Blobs[2], nil, blob.Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.ct.GetProperties(ctx, "copy")
	if err != nil {
		t.Fatal(err)
	}
	check("HEAD of the copy", p)
	if got, err := e.ct.GetTags(ctx, "copy"); err != nil || !sameMap(got, tags) || !sameMap(cp.Tags, tags) {
		t.Errorf("tags of the copy: %v %v (CopyFrom said %v)", got, err, cp.Tags)
	}
}

// rm does not destroy snapshots unless the handle says so; the refusal
// names them and matches ErrBusy.
func TestDeleteKeepsSnapshots(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "snaps", envOptions{})
	if _, err := e.ct.Upload(ctx, "f", []byte("v1"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	snap, err := e.ct.Snapshot(ctx, "f")
	if err != nil || snap == "" {
		t.Fatalf("snapshot: %q %v", snap, err)
	}
	err = e.ct.Delete(ctx, "f", blob.Conditions{})
	var se *blob.SnapshotsError
	if !errors.As(err, &se) || !errors.Is(err, blob.ErrBusy) || len(se.Snapshots) != 1 || !strings.Contains(err.Error(), snap) {
		t.Fatalf("Delete of a blob with a snapshot: %v", err)
	}
	if _, err := e.ct.GetProperties(ctx, "f"); err != nil {
		t.Fatalf("the blob is gone after a refused delete: %v", err)
	}
	if err := e.ct.DeletingSnapshots().Delete(ctx, "f", blob.Conditions{}); err != nil {
		t.Fatal(err)
	}
	page, err := e.ct.List(ctx, blob.ListOptions{IncludeSnapshots: true})
	if err != nil || len(page.Blobs) != 0 {
		t.Errorf("left after a delete with snapshots: %v %+v", err, page)
	}
}

// MetaNamesAs takes the stored case for names a HEAD lower-cased, leaves
// the caller's own names and names already in another case alone.
func TestMetaNamesAs(t *testing.T) {
	stored := map[string]string{"Project_ID": "7", "ownerName": "ann", "Mode": "0644", "gone": "x"}
	md := map[string]string{"project_id": "7", "ownername": "bob", "mode": "0600", "NewOne": "n", "extra": "e"}
	got := blob.MetaNamesAs(md, stored, func(k string) bool { return k == "mode" })
	want := map[string]string{"Project_ID": "7", "ownerName": "bob", "mode": "0600", "NewOne": "n", "extra": "e"}
	if !sameMap(got, want) {
		t.Errorf("MetaNamesAs = %v, want %v", got, want)
	}
	if _, ok := md["project_id"]; !ok {
		t.Error("MetaNamesAs changed its argument")
	}
}
