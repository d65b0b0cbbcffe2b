package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
)

func newContainer(t *testing.T, name string) *blob.Container {
	t.Helper()
	az := blobtest.StartT(t, blobtest.Options{})
	c, err := blob.NewClient(az.Endpoint(), &blob.SharedKey{Account: az.Account(), Keys: blob.StaticKey(az.Key())}, blob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ct := c.Container(name)
	if err := ct.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ct
}

func TestRoundTripAwkwardNames(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t, "names")
	names := []string{
		"plain", "with space", "per%cent", "hash#tag", "what?", "plus+sign",
		"dir/sub/deep file", "ünïcødé/日本語", "a&b=c;d", "quote'\"", "tilde~star*", "x%2Fy",
	}
	for _, name := range names {
		data := []byte("content of " + name)
		if _, err := ct.Upload(ctx, name, data, blob.PutOptions{Metadata: map[string]string{"mode": "0644"}}); err != nil {
			t.Fatalf("upload %q: %v", name, err)
		}
		rc, p, err := ct.Download(ctx, name, 0, -1, blob.Conditions{})
		if err != nil {
			t.Fatalf("download %q: %v", name, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data) || p.Size != int64(len(data)) || p.Metadata["mode"] != "0644" {
			t.Errorf("%q: got %q size %d md %v", name, got, p.Size, p.Metadata)
		}
	}
	seen := map[string]bool{}
	marker := ""
	for {
		page, err := ct.List(ctx, blob.ListOptions{Marker: marker, MaxResults: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Blobs {
			seen[b.Name] = true
		}
		if marker = page.NextMarker; marker == "" {
			break
		}
	}
	for _, name := range names {
		if !seen[name] {
			t.Errorf("listing lacks %q (saw %v)", name, seen)
		}
	}
	for _, name := range names {
		if err := ct.Delete(ctx, name, blob.Conditions{}); err != nil {
			t.Errorf("delete %q: %v", name, err)
		}
	}
	if _, err := ct.GetProperties(ctx, "plain"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
}
