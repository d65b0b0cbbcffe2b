package blob_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/transfer"
)

func TestContainer(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "ctr", envOptions{})
	if err := e.ct.Check(ctx); err != nil {
		t.Fatalf("check existing: %v", err)
	}
	if err := e.ct.Create(ctx); !errors.Is(err, blob.ErrExists) {
		t.Errorf("create twice: %v, want ErrExists", err)
	}
	missing := e.ct.Client().Container("missing")
	if err := missing.Check(ctx); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("check missing: %v, want ErrNotFound", err)
	}
	if _, err := missing.GetProperties(ctx, "x"); !errors.Is(err, blob.ErrNotFound) || !strings.Contains(err.Error(), "container does not exist") {
		t.Errorf("blob in missing container: %v, want ErrNotFound naming the container", err)
	}
}

func TestUploadDownloadRanges(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "ranges", envOptions{})
	data := randomBytes(100000, 3)
	md := map[string]string{"mode": "0644", "mtime": "2024-01-02T03:04:05.000000006Z"}
	up, err := e.ct.Upload(ctx, "d/f", data, blob.PutOptions{Metadata: md, ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.ct.GetProperties(ctx, "d/f")
	if err != nil {
		t.Fatal(err)
	}
	if p.Size != int64(len(data)) || p.ETag != up.ETag || p.ContentType != "text/plain" ||
		!bytes.Equal(p.ContentMD5, md5sum(data)) || p.Metadata["mode"] != "0644" || p.Metadata["mtime"] != md["mtime"] || p.LastModified.IsZero() {
		t.Errorf("properties %+v", p)
	}
	for _, tc := range []struct {
		name          string
		offset, count int64
		want          []byte
		err           error
	}{
		{"whole", 0, -1, data, nil},
		{"first byte", 0, 1, data[:1], nil},
		{"middle", 4096, 5000, data[4096:9096], nil},
		{"to the end", 99000, -1, data[99000:], nil},
		{"last byte", 99999, 1, data[99999:], nil},
		{"past the end is cut", 99990, 100, data[99990:], nil},
		{"count beyond size", 0, 1 << 30, data, nil},
		{"start at the end", 100000, 10, nil, blob.ErrInvalidRange},
		{"start past the end", 200000, -1, nil, blob.ErrInvalidRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, p, err := e.ct.Download(ctx, "d/f", tc.offset, tc.count, blob.Conditions{})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("got %d bytes, want %d (equal prefix: %v)", len(got), len(tc.want), bytes.HasPrefix(tc.want, got))
			}
			if p.Size != int64(len(data)) || p.ETag != up.ETag {
				t.Errorf("properties of a range: size %d etag %s", p.Size, p.ETag)
			}
		})
	}
	if _, _, err := e.ct.Download(ctx, "d/missing", 0, -1, blob.Conditions{}); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("missing blob: %v", err)
	}
	if _, err := e.ct.GetProperties(ctx, "d/missing"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("HEAD missing blob: %v", err)
	}
	// An empty blob reads whole, and verifies.
	if _, err := e.ct.Upload(ctx, "empty", nil, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, p, err := e.ct.Download(ctx, "empty", 0, -1, blob.Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rc); err != nil || len(got) != 0 || p.Size != 0 {
		t.Errorf("empty blob: %q %v size %d", got, err, p.Size)
	}
	rc.Close()
}

func TestConditions(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "cond", envOptions{})
	ct := e.ct
	v1, err := ct.Upload(ctx, "f", []byte("v1"), blob.PutOptions{Conditions: blob.Conditions{IfNoneMatch: "*"}})
	if err != nil {
		t.Fatalf("create-only on a new name: %v", err)
	}
	v2, err := ct.Upload(ctx, "f", []byte("v2"), blob.PutOptions{Conditions: blob.Conditions{IfMatch: v1.ETag}})
	if err != nil {
		t.Fatalf("If-Match on the current ETag: %v", err)
	}
	stale := blob.Conditions{IfMatch: v1.ETag}
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"create-only upload of an existing blob", func() error {
			_, err := ct.Upload(ctx, "f", []byte("x"), blob.PutOptions{Conditions: blob.Conditions{IfNoneMatch: "*"}})
			return err
		}, blob.ErrExists},
		{"upload on a stale ETag", func() error {
			_, err := ct.Upload(ctx, "f", []byte("x"), blob.PutOptions{Conditions: stale})
			return err
		}, blob.ErrPrecondition},
		{"download pinned to a stale ETag", func() error {
			_, _, err := ct.Download(ctx, "f", 0, -1, stale)
			return err
		}, blob.ErrPrecondition},
		{"set metadata on a stale ETag", func() error {
			_, err := ct.SetMetadata(ctx, "f", map[string]string{"a": "b"}, stale)
			return err
		}, blob.ErrPrecondition},
		{"set content type on a stale ETag", func() error {
			_, err := ct.SetContentType(ctx, "f", "text/plain", nil, stale)
			return err
		}, blob.ErrPrecondition},
		{"put block list on a stale ETag", func() error {
			if err := ct.PutBlock(ctx, "f", blob.BlockID(0), strings.NewReader("x"), 1); err != nil {
				return err
			}
			_, err := ct.PutBlockList(ctx, "f", []string{blob.BlockID(0)}, blob.PutOptions{Conditions: stale})
			return err
		}, blob.ErrPrecondition},
		{"copy from a stale source", func() error {
			_, err := ct.Copy(ctx, blob.CopyRequest{Dst: "g", Src: "f", SrcCond: stale})
			return err
		}, blob.ErrPrecondition},
		{"copy onto an existing blob, create-only", func() error {
			_, err := ct.Copy(ctx, blob.CopyRequest{Dst: "f", Src: "f", DstCond: blob.Conditions{IfNoneMatch: "*"}})
			return err
		}, blob.ErrExists},
		{"delete on a stale ETag", func() error {
			return ct.Delete(ctx, "f", stale)
		}, blob.ErrPrecondition},
		{"download to on a stale ETag", func() error {
			_, err := transfer.DownloadTo(ctx, ct, "f", &memFile{}, transfer.Options{PutOptions: blob.PutOptions{Conditions: stale}})
			return err
		}, blob.ErrPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	p, err := ct.GetProperties(ctx, "f")
	if err != nil || p.ETag != v2.ETag {
		t.Fatalf("refused writes changed the blob: %+v %v", p, err)
	}
	if err := ct.Delete(ctx, "f", blob.Conditions{IfMatch: v2.ETag}); err != nil {
		t.Fatalf("delete on the current ETag: %v", err)
	}
	if err := ct.Delete(ctx, "f", blob.Conditions{}); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("delete of a missing blob: %v, want ErrNotFound", err)
	}
}

func TestBlocks(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "blocks", envOptions{})
	parts := [][]byte{randomBytes(300000, 4), randomBytes(5, 5), randomBytes(70000, 6)}
	var ids []string
	var all []byte
	for i, b := range parts {
		id := blob.BlockID(i)
		ids = append(ids, id)
		all = append(all, b...)
		if err := e.ct.PutBlock(ctx, "b", id, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	if len(blob.BlockID(0)) != len(blob.BlockID(49999)) {
		t.Errorf("block IDs differ in length: %q %q", blob.BlockID(0), blob.BlockID(49999))
	}
	// Not committed yet: the blob does not exist.
	if _, err := e.ct.GetProperties(ctx, "b"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("before commit: %v", err)
	}
	p, err := e.ct.PutBlockList(ctx, "b", ids, blob.PutOptions{ContentMD5: md5sum(all), Metadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	rc, got, err := e.ct.Download(ctx, "b", 0, -1, blob.Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, all) || got.ETag != p.ETag || !bytes.Equal(got.ContentMD5, md5sum(all)) || got.Metadata["k"] != "v" {
		t.Errorf("committed blob: %d bytes, %v, props %+v", len(b), err, got)
	}
	// Recommitting a subset of the committed blocks rewrites the blob.
	if _, err := e.ct.PutBlockList(ctx, "b", ids[1:2], blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if p, err := e.ct.GetProperties(ctx, "b"); err != nil || p.Size != 5 {
		t.Errorf("after recommit: %+v %v", p, err)
	}
	// A corrupted block is refused by the service's MD5 check.
}

func TestMetadataPropertiesCopyDelete(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "meta", envOptions{})
	ct := e.ct
	data := []byte("hello, copy")
	v1, err := ct.Upload(ctx, "src", data, blob.PutOptions{Metadata: map[string]string{"a": "1", "b": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := ct.SetMetadata(ctx, "src", map[string]string{"c": "3"}, blob.Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ct.GetProperties(ctx, "src")
	if v2.ETag == v1.ETag || p.ETag != v2.ETag || len(p.Metadata) != 1 || p.Metadata["c"] != "3" {
		t.Errorf("set metadata replaces the set and bumps the ETag: %+v (was %s)", p, v1.ETag)
	}
	if _, err := ct.SetContentType(ctx, "src", "image/png", p.ContentMD5, blob.Conditions{IfMatch: p.ETag}); err != nil {
		t.Fatal(err)
	}
	p, _ = ct.GetProperties(ctx, "src")
	if p.ContentType != "image/png" || !bytes.Equal(p.ContentMD5, md5sum(data)) || p.Metadata["c"] != "3" {
		t.Errorf("set content type: %+v", p)
	}
	for _, tc := range []struct {
		name string
		md   map[string]string
		want map[string]string
	}{
		{"inherits metadata", nil, map[string]string{"c": "3"}},
		{"replaces metadata", map[string]string{"d": "4"}, map[string]string{"d": "4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := "dst/" + strings.ReplaceAll(tc.name, " ", "-")
			cp, err := ct.Copy(ctx, blob.CopyRequest{Dst: dst, Src: "src", Metadata: tc.md, SrcCond: blob.Conditions{IfMatch: p.ETag}, DstCond: blob.Conditions{IfNoneMatch: "*"}})
			if err != nil {
				t.Fatal(err)
			}
			if cp.Size != int64(len(data)) || cp.ContentType != "image/png" || !sameMap(cp.Metadata, tc.want) || cp.CopyStatus != "success" {
				t.Errorf("copy properties %+v", cp)
			}
			rc, _, err := ct.Download(ctx, dst, 0, -1, blob.Conditions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("copied content %q %v", got, err)
			}
		})
	}
	if err := ct.Delete(ctx, "src", blob.Conditions{IfMatch: p.ETag}); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.GetProperties(ctx, "src"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if _, err := ct.Copy(ctx, blob.CopyRequest{Dst: "x", Src: "src"}); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("copy of a missing source: %v, want ErrNotFound", err)
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// The service's MD5 is checked on whole downloads: a blob whose recorded
// MD5 does not match its bytes fails loudly, both ways of downloading.
func TestIntegrity(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "integrity", envOptions{})
	data := randomBytes(3<<20, 7)
	if _, err := transfer.UploadFrom(ctx, e.ct, "f", bytes.NewReader(data), int64(len(data)), transfer.Options{BlockSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	p, err := e.ct.GetProperties(ctx, "f")
	if err != nil || !bytes.Equal(p.ContentMD5, md5sum(data)) {
		t.Fatalf("UploadFrom stored MD5 %x, want %x (%v)", p.ContentMD5, md5sum(data), err)
	}
	// Record a wrong MD5, as a damaged blob would have.
	if _, err := e.ct.SetContentType(ctx, "f", "application/octet-stream", md5sum([]byte("other")), blob.Conditions{}); err != nil {
		t.Fatal(err)
	}
	rc, _, err := e.ct.Download(ctx, "f", 0, -1, blob.Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, blob.ErrIntegrity) {
		t.Errorf("whole download: %v, want ErrIntegrity", err)
	}
	opts := transfer.Options{BlockSize: 1 << 20, Concurrency: 3}
	if _, err := transfer.DownloadTo(ctx, e.ct, "f", &memFile{}, opts); !errors.Is(err, blob.ErrIntegrity) {
		t.Errorf("DownloadTo: %v, want ErrIntegrity", err)
	}
	opts.NoVerify = true
	var m memFile
	if _, err := transfer.DownloadTo(ctx, e.ct, "f", &m, opts); err != nil || !bytes.Equal(m.bytes(), data) {
		t.Errorf("DownloadTo without verification: %v", err)
	}
	// Ranged reads are not checked against the whole-blob MD5.
	rc, _, err = e.ct.Download(ctx, "f", 10, 100, blob.Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data[10:110]) {
		t.Errorf("ranged read: %v", err)
	}
}

func TestTransfers(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "transfers", envOptions{proxy: true})
	for _, tc := range []struct {
		name       string
		size       int
		opts       transfer.Options
		putBlocks  int // PutBlock calls expected; 0 means one Put Blob
		rangedGETs int
	}{
		{"empty", 0, transfer.Options{}, 0, 2},
		{"one byte", 1, transfer.Options{}, 0, 1},
		{"one block exactly", 1 << 20, transfer.Options{BlockSize: 1 << 20}, 0, 1},
		{"one block and a byte", 1<<20 + 1, transfer.Options{BlockSize: 1 << 20}, 2, 2},
		{"odd size, narrow", 5<<20 + 12345, transfer.Options{BlockSize: 1 << 20, Concurrency: 2}, 6, 6},
		{"single shot above the block size", 3 << 20, transfer.Options{BlockSize: 1 << 20, SingleShot: 4 << 20}, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randomBytes(tc.size, uint64(tc.size))
			name := "t/" + tc.name
			e.proxy.ResetCounts()
			up, err := transfer.UploadFrom(ctx, e.ct, name, bytes.NewReader(data), int64(len(data)), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			c := e.proxy.Counts()
			if tc.putBlocks == 0 && (c["PutBlob"] != 1 || c["PutBlock"] != 0) || tc.putBlocks > 0 && (c["PutBlock"] != tc.putBlocks || c["PutBlockList"] != 1) {
				t.Errorf("upload calls %v", c)
			}
			e.proxy.ResetCounts()
			var m memFile
			p, err := transfer.DownloadTo(ctx, e.ct, name, &m, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.bytes(), data) && !(len(data) == 0 && len(m.bytes()) == 0) {
				t.Errorf("downloaded %d bytes differ from %d", len(m.bytes()), len(data))
			}
			if p.Size != int64(len(data)) || p.ETag != up.ETag || !bytes.Equal(p.ContentMD5, md5sum(data)) {
				t.Errorf("properties %+v", p)
			}
			if c := e.proxy.Counts(); c["GetBlob"] != tc.rangedGETs {
				t.Errorf("download calls %v, want %d GetBlob", c, tc.rangedGETs)
			}
		})
	}
}

// Names are checked before anything is sent.
func TestInvalidNamesSendNothing(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "badnames", envOptions{proxy: true})
	e.proxy.ResetCounts()
	for _, name := range []string{"", "/a", "a//b", "a.", "a/./b", "dir./f", strings.Repeat("x", 1025), strings.Repeat("a/", 254) + "b", "a\x00b", "\uffff"} {
		if _, err := e.ct.Upload(ctx, name, []byte("x"), blob.PutOptions{}); !errors.Is(err, blob.ErrInvalidName) && !errors.Is(err, blob.ErrNameTooLong) {
			t.Errorf("upload %q: %v", name, err)
		}
		if _, err := transfer.UploadFrom(ctx, e.ct, name, bytes.NewReader(nil), 0, transfer.Options{}); err == nil {
			t.Errorf("UploadFrom %q succeeded", name)
		}
		if _, err := e.ct.Copy(ctx, blob.CopyRequest{Dst: "ok", Src: name}); err == nil {
			t.Errorf("copy from %q succeeded", name)
		}
	}
	if n := e.proxy.Total(); n != 0 {
		t.Errorf("%d requests were sent for invalid names: %v", n, e.proxy.Counts())
	}
}

// Azurite checks every signature: metadata names that sort differently
// bytewise and culture-aware, and values with whitespace runs, must sign
// as the service expects.
func TestSigningEdgeCasesAgainstService(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "signing", envOptions{})
	md := map[string]string{"i_": "1", "i0": "2", "ia": "3", "hdi_isfolder": "true", "a_b": "4", "ab": "5", "a0": "6", "sp": " two   words "}
	if _, err := e.ct.Upload(ctx, "f", []byte("x"), blob.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	p, err := e.ct.GetProperties(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"i_": "1", "i0": "2", "ia": "3", "hdi_isfolder": "true", "a_b": "4", "ab": "5", "a0": "6", "sp": "two words"}
	if !sameMap(p.Metadata, want) {
		t.Errorf("metadata %v, want %v", p.Metadata, want)
	}
	page, err := e.ct.List(ctx, blob.ListOptions{Prefix: "f", IncludeMetadata: true, Delimiter: "/", MaxResults: 10, Marker: ""})
	if err != nil || len(page.Blobs) != 1 || !sameMap(page.Blobs[0].Metadata, want) {
		t.Errorf("listing: %v %+v", err, page)
	}
}
