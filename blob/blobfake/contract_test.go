package blobfake_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobfake"
	"github.com/blobfs/blobfs/blob/blobtest"
)

// backend is what the contract holds *blob.Container and the fake to.
type backend interface {
	List(ctx context.Context, opts blob.ListOptions) (*blob.ListPage, error)
	GetProperties(ctx context.Context, name string) (*blob.Properties, error)
	Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error)
	Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error)
	PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error
	PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error)
	GetBlockList(ctx context.Context, name string) ([]blob.Block, string, error)
	Delete(ctx context.Context, name string, cond blob.Conditions) error
	SetMetadata(ctx context.Context, name string, md map[string]string, cond blob.Conditions) (*blob.Properties, error)
	SetContentType(ctx context.Context, name, contentType string, md5 []byte, cond blob.Conditions) (*blob.Properties, error)
	Copy(ctx context.Context, req blob.CopyRequest) (*blob.Properties, error)
	CopyFrom(ctx context.Context, dst string, src *blob.Properties, md map[string]string, dstCond blob.Conditions) (*blob.Properties, error)
	GetTags(ctx context.Context, name string) (map[string]string, error)
}

var (
	_ backend = (*blob.Container)(nil)
	_ backend = (*blobfake.Store)(nil)
)

var shared blobtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}

// contract is the behaviour of the Blob service, as the blob package
// presents it, that code under test may rely on. Every case runs against
// the fake and against Azurite; a case that passes on one only is a drift
// to fix in the fake (or a case to fix, when Azurite is the odd one).
var contract = []struct {
	name string
	run  func(t *testing.T, ctx context.Context, b backend)
}{
	{"conditional upload", func(t *testing.T, ctx context.Context, b backend) {
		v1 := mustUpload(t, ctx, b, "f", "v1", blob.PutOptions{Conditions: blob.Conditions{IfNoneMatch: "*"}})
		_, err := b.Upload(ctx, "f", []byte("x"), blob.PutOptions{Conditions: blob.Conditions{IfNoneMatch: "*"}})
		wantKind(t, "If-None-Match: * on an existing blob", err, blob.ErrExists)
		wantStatus(t, err, 409)
		v2 := mustUpload(t, ctx, b, "f", "v2", blob.PutOptions{Conditions: blob.Conditions{IfMatch: v1.ETag}})
		if v2.ETag == v1.ETag {
			t.Errorf("ETag %s unchanged by a rewrite", v2.ETag)
		}
		_, err = b.Upload(ctx, "f", []byte("x"), blob.PutOptions{Conditions: blob.Conditions{IfMatch: v1.ETag}})
		wantKind(t, "If-Match with the old ETag", err, blob.ErrPrecondition)
		wantStatus(t, err, 412)
		mustUpload(t, ctx, b, "f", "v3", blob.PutOptions{Conditions: blob.Conditions{IfMatch: "*"}})
		_, err = b.Upload(ctx, "missing", []byte("x"), blob.PutOptions{Conditions: blob.Conditions{IfMatch: v1.ETag}})
		wantKind(t, "If-Match on a missing blob", err, blob.ErrPrecondition)
		// (If-Match: * on a missing blob is left out: Azurite creates
		// the blob, HTTP says 412, and nothing in blobfs sends it.)
		wantContent(t, ctx, b, "f", "v3")
		wantAbsent(t, ctx, b, "missing")
	}},
	{"etag changes on every write", func(t *testing.T, ctx context.Context, b backend) {
		p := mustUpload(t, ctx, b, "f", "data", blob.PutOptions{})
		seen := map[string]string{p.ETag: "Upload"}
		etag := func(what string, p *blob.Properties, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			head := mustHead(t, ctx, b, "f")
			if p != nil && p.ETag != head.ETag {
				t.Errorf("%s answered ETag %s, the blob has %s", what, p.ETag, head.ETag)
			}
			if prev, ok := seen[head.ETag]; ok {
				t.Errorf("%s left ETag %s, the one %s gave", what, head.ETag, prev)
			}
			seen[head.ETag] = what
		}
		md, err := b.SetMetadata(ctx, "f", map[string]string{"mode": "0644"}, blob.Conditions{IfMatch: p.ETag})
		etag("SetMetadata", md, err)
		// The same metadata again is still a write.
		md, err = b.SetMetadata(ctx, "f", map[string]string{"mode": "0644"}, blob.Conditions{})
		etag("SetMetadata with the same metadata", md, err)
		sc, err := b.SetContentType(ctx, "f", "text/plain", nil, blob.Conditions{})
		etag("SetContentType", sc, err)
		cp, err := b.Copy(ctx, blob.CopyRequest{Dst: "f", Src: "f"})
		etag("Copy onto itself", cp, err)
		// Staging a block does not change the blob.
		before := mustHead(t, ctx, b, "f")
		if err := b.PutBlock(ctx, "f", blob.BlockID(0), strings.NewReader("blk"), 3); err != nil {
			t.Fatal(err)
		}
		if after := mustHead(t, ctx, b, "f"); after.ETag != before.ETag || after.Size != before.Size {
			t.Errorf("PutBlock changed the blob: ETag %s → %s, size %d → %d", before.ETag, after.ETag, before.Size, after.Size)
		}
		pl, err := b.PutBlockList(ctx, "f", []string{blob.BlockID(0)}, blob.PutOptions{})
		etag("PutBlockList", pl, err)
	}},
	{"answers of writes", func(t *testing.T, ctx context.Context, b backend) {
		// What callers may take from a write's answer: the ETag and
		// Last-Modified of the version written, in whole seconds.
		data := []byte("twelve bytes")
		up, err := b.Upload(ctx, "f", data, blob.PutOptions{ContentType: "text/plain", Metadata: map[string]string{"k": "v"}})
		if err != nil {
			t.Fatal(err)
		}
		head := mustHead(t, ctx, b, "f")
		for _, p := range []*blob.Properties{up, head} {
			if p.ETag != head.ETag || !strings.HasPrefix(p.ETag, `"`) || !strings.HasSuffix(p.ETag, `"`) {
				t.Errorf("ETag %q, blob has %q; want it quoted and equal", p.ETag, head.ETag)
			}
			if p.LastModified.IsZero() || p.LastModified.Nanosecond() != 0 || !p.LastModified.Equal(head.LastModified) {
				t.Errorf("Last-Modified %v, blob has %v; want whole seconds and equal", p.LastModified, head.LastModified)
			}
			if since := time.Since(p.LastModified); since > time.Hour || since < -time.Hour {
				t.Errorf("Last-Modified %v is not now", p.LastModified)
			}
		}
		sum := md5.Sum(data)
		// A new blob is a block blob in the account's default tier (Hot
		// in Azurite and new accounts), inferred: none was set on it. The
		// metadata came through a HEAD: names lower-cased by Go's HTTP
		// client, which blob says.
		want := blob.Properties{Name: "f", Size: 12, ETag: head.ETag, LastModified: head.LastModified,
			ContentType: "text/plain", ContentMD5: sum[:], Metadata: map[string]string{"k": "v"}, MetaNamesLowered: true,
			BlobType: "BlockBlob", AccessTier: "Hot", AccessTierInferred: true}
		if !reflect.DeepEqual(*head, want) {
			t.Errorf("GetProperties after Upload:\n got %+v\nwant %+v", *head, want)
		}
		// Put Blob stores the data's MD5; Put Block List only the one given.
		if err := b.PutBlock(ctx, "g", blob.BlockID(0), bytes.NewReader(data), 12); err != nil {
			t.Fatal(err)
		}
		if _, err := b.PutBlockList(ctx, "g", []string{blob.BlockID(0)}, blob.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if p := mustHead(t, ctx, b, "g"); p.ContentMD5 != nil || p.ContentType != "application/octet-stream" {
			t.Errorf("PutBlockList without an MD5 left MD5 %x, type %q; want none and application/octet-stream", p.ContentMD5, p.ContentType)
		}
		if _, err := b.PutBlockList(ctx, "g", []string{blob.BlockID(0)}, blob.PutOptions{ContentMD5: sum[:]}); err != nil {
			t.Fatal(err)
		}
		if p := mustHead(t, ctx, b, "g"); !bytes.Equal(p.ContentMD5, sum[:]) {
			t.Errorf("PutBlockList with an MD5 stored %x, want %x", p.ContentMD5, sum)
		}
		// An MD5 that does not match the data is refused. (Azure's code
		// is Md5Mismatch, ErrIntegrity; Azurite's InvalidOperation: only
		// the status is common. The fake answers as Azure.)
		_, err = b.Upload(ctx, "h", data, blob.PutOptions{ContentMD5: make([]byte, 16)})
		wantStatus(t, err, 400)
		wantAbsent(t, ctx, b, "h")
	}},
	{"what write answers carry", func(t *testing.T, ctx context.Context, b backend) {
		// A write's answer has the new version's ETag and Last-Modified,
		// and little else: Size 0, no content type, no metadata. Code
		// that takes more from it (rather than from a HEAD) works on
		// neither the service nor the fake.
		data := []byte("hello")
		sum := md5.Sum(data)
		shape := func(what string, got *blob.Properties, err error, name string, md5 []byte) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			head := mustHead(t, ctx, b, name)
			want := blob.Properties{Name: name, ETag: head.ETag, LastModified: head.LastModified, ContentMD5: md5}
			g := *got
			if len(g.ContentMD5) == 0 && md5 == nil {
				g.ContentMD5 = nil
			}
			if !reflect.DeepEqual(g, want) {
				t.Errorf("%s answered\n %+v\nwant\n %+v", what, g, want)
			}
		}
		up, err := b.Upload(ctx, "f", data, blob.PutOptions{ContentType: "text/plain", Metadata: map[string]string{"a": "b"}})
		shape("Upload", up, err, "f", sum[:])
		md, err := b.SetMetadata(ctx, "f", map[string]string{"x": "y"}, blob.Conditions{})
		shape("SetMetadata", md, err, "f", nil)
		sc, err := b.SetContentType(ctx, "f", "a/b", nil, blob.Conditions{})
		shape("SetContentType", sc, err, "f", nil)
		if err := b.PutBlock(ctx, "g", blob.BlockID(0), strings.NewReader("abc"), 3); err != nil {
			t.Fatal(err)
		}
		pl, err := b.PutBlockList(ctx, "g", []string{blob.BlockID(0)}, blob.PutOptions{})
		// Its MD5 is the service's for the request body, not the blob's:
		// not compared (the fake gives none).
		if pl != nil {
			pl.ContentMD5 = nil
		}
		shape("PutBlockList", pl, err, "g", nil)
		// A ranged read describes the whole blob, as a HEAD does, but
		// for the access tier: Get Blob does not report it (Azure's
		// documented answer has no x-ms-access-tier; Azurite sends none).
		rc, p, err := b.Download(ctx, "f", 2, 2, blob.Conditions{})
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		head := mustHead(t, ctx, b, "f")
		if head.AccessTier != "Hot" || !head.AccessTierInferred || p.AccessTier != "" || p.AccessTierInferred {
			t.Errorf("access tier %q (inferred %v) from a HEAD, %q (inferred %v) from a GET; want Hot (inferred) and none",
				head.AccessTier, head.AccessTierInferred, p.AccessTier, p.AccessTierInferred)
		}
		head.AccessTier, head.AccessTierInferred = "", false
		if !reflect.DeepEqual(p, head) {
			t.Errorf("ranged Download's properties\n %+v\nthe blob's but for the tier\n %+v", p, head)
		}
		// A range of an empty blob does not exist.
		mustUpload(t, ctx, b, "empty", "", blob.PutOptions{})
		_, _, err = b.Download(ctx, "empty", 0, 10, blob.Conditions{})
		wantKind(t, "Download(0, 10) of an empty blob", err, blob.ErrInvalidRange)
		// CopyFrom's answer has no copy source: the Copy answer has none.
		cf, err := b.CopyFrom(ctx, "h", mustHead(t, ctx, b, "f"), nil, blob.Conditions{})
		if err != nil {
			t.Fatal(err)
		}
		if cf.CopySource != "" || cf.CopyStatus != "success" || cf.CopyID == "" || cf.Size != 5 || cf.ContentType != "a/b" {
			t.Errorf("CopyFrom answered %+v", cf)
		}
	}},
	{"block lists", func(t *testing.T, ctx context.Context, b backend) {
		blk := []string{"zero-", "one--", "two--", "three"}
		for i, s := range blk[:3] {
			if err := b.PutBlock(ctx, "f", blob.BlockID(i), strings.NewReader(s), int64(len(s))); err != nil {
				t.Fatal(err)
			}
		}
		// Staged blocks are not a blob yet.
		wantAbsent(t, ctx, b, "f")
		if names := listAll(t, ctx, b, blob.ListOptions{}); len(names) != 0 {
			t.Errorf("listing shows %v with only staged blocks", names)
		}
		// A failed conditional commit keeps the staged blocks.
		_, err := b.PutBlockList(ctx, "f", []string{blob.BlockID(0)}, blob.PutOptions{Conditions: blob.Conditions{IfMatch: `"0x8D000000000000"`}})
		wantKind(t, "PutBlockList If-Match on a missing blob", err, blob.ErrPrecondition)
		p, err := b.PutBlockList(ctx, "f", []string{blob.BlockID(0), blob.BlockID(2)}, blob.PutOptions{Conditions: blob.Conditions{IfNoneMatch: "*"}})
		if err != nil {
			t.Fatal(err)
		}
		wantContent(t, ctx, b, "f", "zero-two--")
		wantBlocks(t, ctx, b, "f", p.ETag, []blob.Block{{ID: blob.BlockID(0), Size: 5}, {ID: blob.BlockID(2), Size: 5}})
		// The staged block left out of the commit is gone.
		_, err = b.PutBlockList(ctx, "f", []string{blob.BlockID(1)}, blob.PutOptions{})
		wantNoKind(t, "PutBlockList of a block dropped by the last commit", err)
		wantStatus(t, err, 400)
		// Committed blocks may be committed again, in any order, with
		// new ones.
		if err := b.PutBlock(ctx, "f", blob.BlockID(3), strings.NewReader(blk[3]), 5); err != nil {
			t.Fatal(err)
		}
		p, err = b.PutBlockList(ctx, "f", []string{blob.BlockID(2), blob.BlockID(3), blob.BlockID(0)}, blob.PutOptions{Conditions: blob.Conditions{IfMatch: p.ETag}})
		if err != nil {
			t.Fatal(err)
		}
		wantContent(t, ctx, b, "f", "two--threezero-")
		wantBlocks(t, ctx, b, "f", p.ETag, []blob.Block{{ID: blob.BlockID(2), Size: 5}, {ID: blob.BlockID(3), Size: 5}, {ID: blob.BlockID(0), Size: 5}})
		// A staged block of the same ID wins over the committed one.
		if err := b.PutBlock(ctx, "f", blob.BlockID(0), strings.NewReader("ZERO!"), 5); err != nil {
			t.Fatal(err)
		}
		if _, err := b.PutBlockList(ctx, "f", []string{blob.BlockID(0), blob.BlockID(2)}, blob.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		wantContent(t, ctx, b, "f", "ZERO!two--")
		// An unknown ID fails and changes nothing.
		_, err = b.PutBlockList(ctx, "f", []string{blob.BlockID(9)}, blob.PutOptions{})
		wantStatus(t, err, 400)
		wantContent(t, ctx, b, "f", "ZERO!two--")
		// An empty list makes an empty blob.
		if _, err := b.PutBlockList(ctx, "e", nil, blob.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		wantContent(t, ctx, b, "e", "")
		// Put Blob replaces the blocks: the blob has none. (Azure also
		// drops the blocks staged before it; Azurite keeps them. The
		// fake does as Azure: see TestPutBlobDropsStagedBlocks.)
		up := mustUpload(t, ctx, b, "f", "whole", blob.PutOptions{})
		wantBlocks(t, ctx, b, "f", up.ETag, []blob.Block{})
		_, _, err = b.GetBlockList(ctx, "missing")
		wantKind(t, "GetBlockList of a missing blob", err, blob.ErrNotFound)
	}},
	{"listing with a delimiter and pages", func(t *testing.T, ctx context.Context, b backend) {
		names := []string{"a", "b/1", "b/2", "b/c/3", "b/c/4", "c/", "d", "d-e", "e/f/g", "z"}
		for _, n := range names {
			mustUpload(t, ctx, b, n, n, blob.PutOptions{Metadata: map[string]string{"name": strings.ReplaceAll(n, "/", "_")}})
		}
		tests := []struct {
			opts blob.ListOptions
			want []string // prefixes end in '/'
		}{
			{blob.ListOptions{}, names},
			{blob.ListOptions{Delimiter: "/"}, []string{"a", "b/", "c/", "d", "d-e", "e/", "z"}},
			{blob.ListOptions{Prefix: "b/", Delimiter: "/"}, []string{"b/1", "b/2", "b/c/"}},
			{blob.ListOptions{Prefix: "b/c/", Delimiter: "/"}, []string{"b/c/3", "b/c/4"}},
			{blob.ListOptions{Prefix: "d"}, []string{"d", "d-e"}},
			{blob.ListOptions{Prefix: "e/", Delimiter: "/"}, []string{"e/f/"}},
			{blob.ListOptions{Prefix: "nothing"}, nil},
		}
		for _, tt := range tests {
			for _, max := range []int{0, 1, 2, 3} {
				opts := tt.opts
				opts.MaxResults = max
				if got := listAll(t, ctx, b, opts); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("List %+v: %q, want %q", opts, got, tt.want)
				}
			}
		}
		// What a listing says of a blob, with and without metadata.
		for _, withMD := range []bool{false, true} {
			page, err := b.List(ctx, blob.ListOptions{Prefix: "b/1", IncludeMetadata: withMD})
			if err != nil || len(page.Blobs) != 1 {
				t.Fatalf("List b/1: %v, %+v", err, page)
			}
			head := mustHead(t, ctx, b, "b/1")
			want := *head
			// A listing has the names as stored, not lowered as a
			// HEAD's are (see "metadata round trip" for case).
			want.Metadata, want.MetaNamesLowered = nil, false
			if withMD {
				want.Metadata = map[string]string{"name": "b_1"}
			}
			got := *page.Blobs[0]
			// blob parses a listing's dates into a zone named GMT, a
			// HEAD's into UTC: the same instant.
			if !got.LastModified.Equal(want.LastModified) {
				t.Errorf("listed Last-Modified %v, HEAD says %v", got.LastModified, want.LastModified)
			}
			got.LastModified = want.LastModified
			if !reflect.DeepEqual(got, want) {
				t.Errorf("listed (metadata %v):\n got %+v\nwant %+v", withMD, got, want)
			}
		}
	}},
	{"copy", func(t *testing.T, ctx context.Context, b backend) {
		src := mustUpload(t, ctx, b, "dir/src file", "content", blob.PutOptions{ContentType: "text/plain", Metadata: map[string]string{"mode": "0600"}})
		srcHead := mustHead(t, ctx, b, "dir/src file")
		cp, err := b.Copy(ctx, blob.CopyRequest{Dst: "dst", Src: "dir/src file", SrcCond: blob.Conditions{IfMatch: src.ETag}, DstCond: blob.Conditions{IfNoneMatch: "*"}})
		if err != nil {
			t.Fatal(err)
		}
		head := mustHead(t, ctx, b, "dst")
		if !reflect.DeepEqual(cp, head) {
			t.Errorf("Copy answered\n %+v\nthe blob is\n %+v", cp, head)
		}
		if head.CopyStatus != "success" || head.CopyID == "" || !strings.HasSuffix(head.CopySource, "/dir/src%20file") || strings.Contains(head.CopySource, "?") {
			t.Errorf("copy properties: status %q, id %q, source %q", head.CopyStatus, head.CopyID, head.CopySource)
		}
		if head.ETag == src.ETag || head.ContentType != "text/plain" || !bytes.Equal(head.ContentMD5, srcHead.ContentMD5) ||
			!reflect.DeepEqual(head.Metadata, map[string]string{"mode": "0600"}) || head.Size != 7 {
			t.Errorf("copy of %+v is %+v", srcHead, head)
		}
		wantContent(t, ctx, b, "dst", "content")
		_, err = b.Copy(ctx, blob.CopyRequest{Dst: "dst", Src: "dir/src file", DstCond: blob.Conditions{IfNoneMatch: "*"}})
		wantKind(t, "Copy If-None-Match: * onto an existing blob", err, blob.ErrExists)
		_, err = b.Copy(ctx, blob.CopyRequest{Dst: "dst", Src: "dir/src file", DstCond: blob.Conditions{IfMatch: src.ETag}})
		wantKind(t, "Copy If-Match with another blob's ETag", err, blob.ErrPrecondition)
		_, err = b.Copy(ctx, blob.CopyRequest{Dst: "dst2", Src: "dir/src file", SrcCond: blob.Conditions{IfMatch: head.ETag}})
		wantKind(t, "Copy with a stale source ETag", err, blob.ErrPrecondition)
		wantAbsent(t, ctx, b, "dst2")
		_, err = b.Copy(ctx, blob.CopyRequest{Dst: "dst2", Src: "no such"})
		wantKind(t, "Copy of a missing source", err, blob.ErrNotFound)
		// New metadata replaces the source's.
		cp, err = b.Copy(ctx, blob.CopyRequest{Dst: "dst", Src: "dir/src file", Metadata: map[string]string{"Other": "x"}, DstCond: blob.Conditions{IfMatch: head.ETag}})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cp.Metadata, map[string]string{"other": "x"}) {
			t.Errorf("Copy with metadata: %v", cp.Metadata)
		}
		// CopyFrom: the source's properties under the new name and version.
		cf, err := b.CopyFrom(ctx, "dst3", srcHead, nil, blob.Conditions{IfNoneMatch: "*"})
		if err != nil {
			t.Fatal(err)
		}
		h3 := mustHead(t, ctx, b, "dst3")
		if cf.Name != "dst3" || cf.ETag != h3.ETag || !cf.LastModified.Equal(h3.LastModified) || cf.Size != 7 ||
			!reflect.DeepEqual(cf.Metadata, srcHead.Metadata) || cf.CopyStatus != "success" || cf.CopyID != h3.CopyID {
			t.Errorf("CopyFrom answered %+v; the blob is %+v", cf, h3)
		}
	}},
	{"metadata round trip", func(t *testing.T, ctx context.Context, b backend) {
		// The service stores metadata names in the case they are sent
		// (blob sends them as given) and lists them so. A HEAD or GET
		// answer loses the case in Go's HTTP client: blob lower-cases
		// those names and sets MetaNamesLowered. Values keep their case.
		in := map[string]string{"Mode": "0644", "uid": "1000", "MiXeD_Case": "Value With Spaces", "_x9": ""}
		lowered := map[string]string{"mode": "0644", "uid": "1000", "mixed_case": "Value With Spaces", "_x9": ""}
		p := mustUpload(t, ctx, b, "f", "x", blob.PutOptions{Metadata: in})
		check := func(what string, got *blob.Properties, want map[string]string, wantLowered bool) {
			t.Helper()
			if !reflect.DeepEqual(got.Metadata, want) || got.MetaNamesLowered != wantLowered {
				t.Errorf("%s: metadata %q (names lowered: %v), want %q (%v)", what, got.Metadata, got.MetaNamesLowered, want, wantLowered)
			}
		}
		check("GetProperties", mustHead(t, ctx, b, "f"), lowered, true)
		rc, dp, err := b.Download(ctx, "f", 0, -1, blob.Conditions{})
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		check("Download", dp, lowered, true)
		list := func() *blob.Properties {
			t.Helper()
			page, err := b.List(ctx, blob.ListOptions{IncludeMetadata: true})
			if err != nil || len(page.Blobs) != 1 {
				t.Fatalf("List: %v %+v", err, page)
			}
			return page.Blobs[0]
		}
		check("List", list(), in, false)
		if v, ok := blob.MetaValue(list().Metadata, "mixed_case"); !ok || v != "Value With Spaces" {
			t.Errorf("MetaValue(listed, mixed_case) = %q, %v", v, ok)
		}
		// SetMetadata replaces all of it, names as sent.
		if _, err := b.SetMetadata(ctx, "f", map[string]string{"Only": "one"}, blob.Conditions{IfMatch: p.ETag}); err != nil {
			t.Fatal(err)
		}
		check("GetProperties after SetMetadata", mustHead(t, ctx, b, "f"), map[string]string{"only": "one"}, true)
		check("List after SetMetadata", list(), map[string]string{"Only": "one"}, false)
		// Of names that differ only in case one goes out (the service
		// refuses duplicates): the lower-case one.
		if _, err := b.SetMetadata(ctx, "f", map[string]string{"Dup": "upper", "dup": "lower", "DUP": "all"}, blob.Conditions{}); err != nil {
			t.Fatal(err)
		}
		check("List after SetMetadata of names differing in case", list(), map[string]string{"dup": "lower"}, false)
		// No metadata reads back as nil.
		if _, err := b.SetMetadata(ctx, "f", nil, blob.Conditions{}); err != nil {
			t.Fatal(err)
		}
		check("GetProperties after clearing", mustHead(t, ctx, b, "f"), nil, false)
		_, err = b.SetMetadata(ctx, "f", map[string]string{"k": "v"}, blob.Conditions{IfMatch: p.ETag})
		wantKind(t, "SetMetadata with a stale ETag", err, blob.ErrPrecondition)
	}},
	{"content headers, tier and tags", func(t *testing.T, ctx context.Context, b backend) {
		// What a Put sends besides data and metadata is stored as sent,
		// reported by HEAD, GET (but the tier) and listings, kept by
		// writes of metadata, and replaced by the next Put.
		hdrs := blob.ContentHeaders{CacheControl: "max-age=60", ContentEncoding: "gzip", ContentLanguage: "fr-CA", ContentDisposition: `attachment; filename="a b.txt"`}
		tags := map[string]string{"project": "blob fs", "Team": "a=b+c/d:e_f.g-h"}
		mustUpload(t, ctx, b, "f", "data", blob.PutOptions{ContentType: "text/plain", ContentHeaders: hdrs, AccessTier: "Cool", Tags: tags})
		check := func(what string, p *blob.Properties, tier string, inferred bool) {
			t.Helper()
			if p.ContentHeaders != hdrs || p.BlobType != "BlockBlob" || p.AccessTier != tier || p.AccessTierInferred != inferred ||
				p.TagCount != 2 || p.Tags != nil || p.ContentType != "text/plain" {
				t.Errorf("%s: %+v\nwant headers %+v, BlockBlob, tier %q (inferred %v), 2 tags not read", what, *p, hdrs, tier, inferred)
			}
		}
		check("GetProperties", mustHead(t, ctx, b, "f"), "Cool", false)
		rc, dp, err := b.Download(ctx, "f", 1, 2, blob.Conditions{})
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		check("Download", dp, "", false)
		page, err := b.List(ctx, blob.ListOptions{Prefix: "f"})
		if err != nil || len(page.Blobs) != 1 {
			t.Fatalf("List: %v %+v", err, page)
		}
		check("List", page.Blobs[0], "Cool", false)
		if got, err := b.GetTags(ctx, "f"); err != nil || !reflect.DeepEqual(got, tags) {
			t.Errorf("GetTags: %q, %v; want %q", got, err, tags)
		}
		if _, err := b.SetMetadata(ctx, "f", map[string]string{"k": "v"}, blob.Conditions{}); err != nil {
			t.Fatal(err)
		}
		check("GetProperties after SetMetadata", mustHead(t, ctx, b, "f"), "Cool", false)
		// CopyFrom carries the tags and the explicit tier over.
		cf, err := b.CopyFrom(ctx, "g", mustHead(t, ctx, b, "f"), nil, blob.Conditions{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cf.Tags, tags) {
			t.Errorf("CopyFrom answered tags %q, want %q", cf.Tags, tags)
		}
		cf.Tags = nil
		check("CopyFrom's answer", cf, "Cool", false)
		check("GetProperties of CopyFrom's copy", mustHead(t, ctx, b, "g"), "Cool", false)
		if got, err := b.GetTags(ctx, "g"); err != nil || !reflect.DeepEqual(got, tags) {
			t.Errorf("GetTags of CopyFrom's copy: %q, %v; want %q", got, err, tags)
		}
		// Copy keeps the content headers, not the tags (nor, on Azure, an
		// explicit tier: see TestAzureOnlyBehaviour).
		if _, err := b.Copy(ctx, blob.CopyRequest{Dst: "c", Src: "f"}); err != nil {
			t.Fatal(err)
		}
		if p := mustHead(t, ctx, b, "c"); p.ContentHeaders != hdrs || p.TagCount != 0 {
			t.Errorf("Copy: headers %+v, %d tags; want %+v and none", p.ContentHeaders, p.TagCount, hdrs)
		}
		// Set Blob Properties clears the content headers it is not sent
		// (SetContentType sends none), and keeps the tier and tags.
		if _, err := b.SetContentType(ctx, "f", "a/b", nil, blob.Conditions{}); err != nil {
			t.Fatal(err)
		}
		if p := mustHead(t, ctx, b, "f"); p.ContentHeaders != (blob.ContentHeaders{}) || p.AccessTier != "Cool" || p.TagCount != 2 {
			t.Errorf("after SetContentType: headers %+v, tier %q, %d tags; want none, Cool, 2", p.ContentHeaders, p.AccessTier, p.TagCount)
		}
		// A Put without them clears them all; the tier is the default again.
		mustUpload(t, ctx, b, "f", "new", blob.PutOptions{})
		p := mustHead(t, ctx, b, "f")
		if p.ContentHeaders != (blob.ContentHeaders{}) || p.AccessTier != "Hot" || !p.AccessTierInferred || p.TagCount != 0 {
			t.Errorf("after a Put without them: %+v", *p)
		}
		if got, err := b.GetTags(ctx, "f"); err != nil || len(got) != 0 || got == nil {
			t.Errorf("GetTags of a blob without tags: %#v, %v; want an empty map", got, err)
		}
		_, err = b.GetTags(ctx, "missing")
		wantKind(t, "GetTags of a missing blob", err, blob.ErrNotFound)
		// An archived blob cannot be read.
		mustUpload(t, ctx, b, "cold", "x", blob.PutOptions{AccessTier: "Archive"})
		if p := mustHead(t, ctx, b, "cold"); p.AccessTier != "Archive" || p.AccessTierInferred {
			t.Errorf("blob put in Archive: tier %q (inferred %v)", p.AccessTier, p.AccessTierInferred)
		}
		_, _, err = b.Download(ctx, "cold", 0, -1, blob.Conditions{})
		wantKind(t, "Download of an archived blob", err, blob.ErrArchived)
		wantStatus(t, err, 409)
		// Characters a tag may not have are refused, and nothing is written.
		_, err = b.Upload(ctx, "h", []byte("x"), blob.PutOptions{Tags: map[string]string{"k": "a&b"}})
		wantStatus(t, err, 400)
		wantAbsent(t, ctx, b, "h")
	}},
	{"delete conditions", func(t *testing.T, ctx context.Context, b backend) {
		v1 := mustUpload(t, ctx, b, "f", "1", blob.PutOptions{})
		v2 := mustUpload(t, ctx, b, "f", "2", blob.PutOptions{})
		wantKind(t, "Delete with a stale ETag", b.Delete(ctx, "f", blob.Conditions{IfMatch: v1.ETag}), blob.ErrPrecondition)
		wantContent(t, ctx, b, "f", "2")
		if err := b.Delete(ctx, "f", blob.Conditions{IfMatch: v2.ETag}); err != nil {
			t.Fatal(err)
		}
		wantAbsent(t, ctx, b, "f")
		wantKind(t, "Delete of a missing blob", b.Delete(ctx, "f", blob.Conditions{}), blob.ErrNotFound)
		// A condition on a missing blob fails as a condition (so
		// Azurite does, and HTTP says), not as ErrNotFound.
		wantKind(t, "Delete If-Match of a missing blob", b.Delete(ctx, "f", blob.Conditions{IfMatch: v2.ETag}), blob.ErrPrecondition)
		_, err := b.SetMetadata(ctx, "f", nil, blob.Conditions{IfMatch: v2.ETag})
		wantKind(t, "SetMetadata If-Match of a missing blob", err, blob.ErrPrecondition)
		_, err = b.SetContentType(ctx, "f", "text/plain", nil, blob.Conditions{IfMatch: v2.ETag})
		wantKind(t, "SetContentType If-Match of a missing blob", err, blob.ErrPrecondition)
		_, _, err = b.Download(ctx, "f", 0, -1, blob.Conditions{IfMatch: v2.ETag})
		wantKind(t, "Download If-Match of a missing blob", err, blob.ErrPrecondition)
		// A missing copy source is missing, whatever its condition.
		_, err = b.Copy(ctx, blob.CopyRequest{Dst: "g", Src: "f", SrcCond: blob.Conditions{IfMatch: v2.ETag}})
		wantKind(t, "Copy source If-Match of a missing blob", err, blob.ErrNotFound)
		// If-None-Match with an ETag holds for a missing blob.
		if _, err := b.PutBlockList(ctx, "f", nil, blob.PutOptions{Conditions: blob.Conditions{IfNoneMatch: v2.ETag}}); err != nil {
			t.Errorf("PutBlockList If-None-Match an ETag, on a missing blob: %v", err)
		}
		// A blob re-created under the name has another ETag.
		v3 := mustUpload(t, ctx, b, "f", "2", blob.PutOptions{})
		if v3.ETag == v2.ETag {
			t.Errorf("re-created blob has the deleted one's ETag %s", v3.ETag)
		}
		wantKind(t, "Delete with the deleted blob's ETag", b.Delete(ctx, "f", blob.Conditions{IfMatch: v2.ETag}), blob.ErrPrecondition)
	}},
	{"ranges", func(t *testing.T, ctx context.Context, b backend) {
		mustUpload(t, ctx, b, "f", "0123456789", blob.PutOptions{})
		tests := []struct {
			off, n int64
			want   string
		}{{0, -1, "0123456789"}, {0, 3, "012"}, {4, 3, "456"}, {7, -1, "789"}, {8, 100, "89"}, {9, 1, "9"}}
		for _, tt := range tests {
			rc, p, err := b.Download(ctx, "f", tt.off, tt.n, blob.Conditions{})
			if err != nil {
				t.Errorf("Download(%d, %d): %v", tt.off, tt.n, err)
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(got) != tt.want || p.Size != 10 {
				t.Errorf("Download(%d, %d) = %q (size %d), %v; want %q (size 10)", tt.off, tt.n, got, p.Size, err, tt.want)
			}
		}
		for _, off := range []int64{10, 11} {
			_, _, err := b.Download(ctx, "f", off, 1, blob.Conditions{})
			wantKind(t, fmt.Sprintf("Download at %d of a 10-byte blob", off), err, blob.ErrInvalidRange)
		}
		p := mustHead(t, ctx, b, "f")
		_, _, err := b.Download(ctx, "f", 0, -1, blob.Conditions{IfMatch: `"0x8D000000000000"`})
		wantKind(t, "Download If-Match another ETag", err, blob.ErrPrecondition)
		rc, _, err := b.Download(ctx, "f", 0, -1, blob.Conditions{IfMatch: p.ETag})
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		// A whole read is checked against the MD5 the service holds.
		if _, err := b.SetContentType(ctx, "f", "application/octet-stream", make([]byte, 16), blob.Conditions{}); err != nil {
			t.Fatal(err)
		}
		rc, _, err = b.Download(ctx, "f", 0, -1, blob.Conditions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(rc)
		rc.Close()
		wantKind(t, "whole read against a wrong MD5", err, blob.ErrIntegrity)
		var ie *blob.IntegrityError
		if !errors.As(err, &ie) {
			t.Errorf("errors.As(%v, *IntegrityError) = false", err)
		}
	}},
	{"not found", func(t *testing.T, ctx context.Context, b backend) {
		calls := map[string]func() error{
			"GetProperties": func() error { _, err := b.GetProperties(ctx, "nope"); return err },
			"Download":      func() error { _, _, err := b.Download(ctx, "nope", 0, -1, blob.Conditions{}); return err },
			"SetMetadata":   func() error { _, err := b.SetMetadata(ctx, "nope", nil, blob.Conditions{}); return err },
			"SetContentType": func() error {
				_, err := b.SetContentType(ctx, "nope", "text/plain", nil, blob.Conditions{})
				return err
			},
			"GetBlockList": func() error { _, _, err := b.GetBlockList(ctx, "nope"); return err },
			"Delete":       func() error { return b.Delete(ctx, "nope", blob.Conditions{}) },
			"Copy": func() error {
				_, err := b.Copy(ctx, blob.CopyRequest{Dst: "x", Src: "nope"})
				return err
			},
		}
		for what, call := range calls {
			err := call()
			wantKind(t, what+" of a missing blob", err, blob.ErrNotFound)
			var se *blob.StorageError
			if !errors.As(err, &se) || se.Status != 404 || se.Op == "" || se.Name == "" {
				t.Errorf("%s: %#v, want a *StorageError with status 404, its op and name", what, err)
			}
		}
		// Names the service would refuse are refused before any call.
		_, err := b.GetProperties(ctx, "a//b")
		wantKind(t, "GetProperties of a//b", err, blob.ErrInvalidName)
		var ne *blob.NameError
		if !errors.As(err, &ne) {
			t.Errorf("%v is not a *NameError", err)
		}
	}},
}

func TestContract(t *testing.T) {
	backends := []struct {
		name string
		new  func(t *testing.T, i int) backend
	}{
		{"fake", func(t *testing.T, i int) backend { return newFake() }},
		{"azurite", newAzurite},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			for i, c := range contract {
				t.Run(c.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					c.run(t, ctx, be.new(t, i))
				})
			}
		})
	}
}

func newFake() backend { return blobfake.New(blobfake.Options{}) }

// newAzurite is a new container in the shared Azurite.
func newAzurite(t *testing.T, i int) backend {
	az := shared.Get(t)
	c, err := blob.NewClient(az.Endpoint(), &blob.SharedKey{Account: az.Account(), Keys: blob.StaticKey(az.Key())}, blob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ct := c.Container(fmt.Sprintf("contract-%d-%d", i, time.Now().UnixNano()%1e9))
	if err := ct.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ct
}

func mustUpload(t *testing.T, ctx context.Context, b backend, name, data string, opts blob.PutOptions) *blob.Properties {
	t.Helper()
	p, err := b.Upload(ctx, name, []byte(data), opts)
	if err != nil {
		t.Fatalf("Upload %q: %v", name, err)
	}
	return p
}

func mustHead(t *testing.T, ctx context.Context, b backend, name string) *blob.Properties {
	t.Helper()
	p, err := b.GetProperties(ctx, name)
	if err != nil {
		t.Fatalf("GetProperties %q: %v", name, err)
	}
	return p
}

func wantContent(t *testing.T, ctx context.Context, b backend, name, want string) {
	t.Helper()
	rc, p, err := b.Download(ctx, name, 0, -1, blob.Conditions{})
	if err != nil {
		t.Errorf("Download %q: %v", name, err)
		return
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || string(got) != want || p.Size != int64(len(want)) {
		t.Errorf("%q holds %q (size %d), %v; want %q", name, got, p.Size, err, want)
	}
}

func wantAbsent(t *testing.T, ctx context.Context, b backend, name string) {
	t.Helper()
	if _, err := b.GetProperties(ctx, name); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("GetProperties %q: %v, want ErrNotFound", name, err)
	}
}

func wantBlocks(t *testing.T, ctx context.Context, b backend, name, etag string, want []blob.Block) {
	t.Helper()
	got, gotETag, err := b.GetBlockList(ctx, name)
	if err != nil {
		t.Errorf("GetBlockList %q: %v", name, err)
		return
	}
	if len(got) == 0 && len(want) == 0 {
		got = want
	}
	if !reflect.DeepEqual(got, want) || gotETag != etag {
		t.Errorf("GetBlockList %q = %v, %s; want %v, %s", name, got, gotETag, want, etag)
	}
}

// wantKind checks that err matches kind and no other kind.
func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: %v, want %v", what, err, kind)
		return
	}
	for _, k := range blob.Kinds() {
		if k != kind && errors.Is(err, k) {
			t.Errorf("%s: %v matches %v as well as %v", what, err, k, kind)
		}
	}
}

func wantNoKind(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded", what)
		return
	}
	for _, k := range blob.Kinds() {
		if errors.Is(err, k) {
			t.Errorf("%s: %v matches %v, want no kind (a request the service finds wrong)", what, err, k)
		}
	}
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var se *blob.StorageError
	if !errors.As(err, &se) || se.Status != status {
		t.Errorf("%v: want a *StorageError with status %d", err, status)
	}
}

// listAll lists every page and returns the names and prefixes in order,
// checking that no page is larger than asked.
func listAll(t *testing.T, ctx context.Context, b backend, opts blob.ListOptions) []string {
	t.Helper()
	var out []string
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("List %+v: more than 100 pages", opts)
		}
		page, err := b.List(ctx, opts)
		if err != nil {
			t.Fatalf("List %+v: %v", opts, err)
		}
		if n := len(page.Blobs) + len(page.Prefixes); opts.MaxResults > 0 && n > opts.MaxResults {
			t.Errorf("List %+v: a page of %d", opts, n)
		}
		// The service gives prefixes and blobs of one page in name
		// order; merge them.
		items := make([]string, 0, len(page.Blobs)+len(page.Prefixes))
		for _, p := range page.Blobs {
			items = append(items, p.Name)
		}
		items = append(items, page.Prefixes...)
		sort.Strings(items)
		out = append(out, items...)
		if page.NextMarker == "" {
			return out
		}
		opts.Marker = page.NextMarker
	}
}
