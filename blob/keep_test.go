package blob_test

import (
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
	if _, err := e.ct.Copy(ctx, "g", "f", map[string]string{"CopiedName": "1"}, blob.Conditions{}, blob.Conditions{}); err != nil {
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
