package fs_test

// Interop: the official Azure SDK for Go (azblob, a test-only dependency)
// on one side of Azurite, a blobfs mount on the other. What the SDK
// writes, the mount reads exactly; what the mount writes, the SDK reads
// with the properties other tools depend on intact and a correct
// whole-blob MD5. docs/SHARING.md says what this covers.

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	sdkblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs"
)

// sdk is the env's container seen through the Azure SDK.
func (e *env) sdk(t *testing.T) *container.Client {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(e.az.Account(), e.az.Key())
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(e.az.Endpoint()+"/"+e.name, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// sdkPut writes a block blob of several blocks (blockSize each) with the
// SDK, and everything a blob can carry.
func sdkPut(t *testing.T, cc *container.Client, name string, data []byte, blockSize int, hdr *sdkblob.HTTPHeaders, md map[string]*string, tags map[string]string, tier *sdkblob.AccessTier) {
	t.Helper()
	ctx := context.Background()
	bb := cc.NewBlockBlobClient(name)
	var ids []string
	for off := 0; off < len(data) || off == 0; off += blockSize {
		id := blockID(len(ids))
		ids = append(ids, id)
		end := min(off+blockSize, len(data))
		if _, err := bb.StageBlock(ctx, id, streaming.NopCloser(bytes.NewReader(data[off:end])), nil); err != nil {
			t.Fatalf("SDK StageBlock %q: %v", name, err)
		}
		if len(data) == 0 {
			break
		}
	}
	if hdr == nil {
		hdr = &sdkblob.HTTPHeaders{}
	}
	sum := md5.Sum(data)
	hdr.BlobContentMD5 = sum[:]
	if _, err := bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{HTTPHeaders: hdr, Metadata: md, Tags: tags, Tier: tier}); err != nil {
		t.Fatalf("SDK CommitBlockList %q: %v", name, err)
	}
}

func blockID(n int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "sdk-%06d", n))
}

// str shows an optional SDK string.
func str(p *string) string {
	if p == nil {
		return "<none>"
	}
	return *p
}

// sdkRead downloads a blob with the SDK and returns its bytes and
// properties.
func sdkRead(t *testing.T, cc *container.Client, name string) ([]byte, sdkblob.GetPropertiesResponse) {
	t.Helper()
	ctx := context.Background()
	bc := cc.NewBlobClient(name)
	p, err := bc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatalf("SDK GetProperties %q: %v", name, err)
	}
	resp, err := bc.DownloadStream(ctx, nil)
	if err != nil {
		t.Fatalf("SDK DownloadStream %q: %v", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, p
}

// listedMeta is the blob's metadata as a listing shows it, with names
// exactly as stored. Not through the SDK: its listing lower-cases names
// (internal/generated/zz_xml_helper.go) and its HEAD goes through Go's
// header canonicalisation ("Hdi_isfolder"), so it cannot tell cases apart.
func (e *env) listedMeta(t *testing.T, name string) map[string]string {
	t.Helper()
	page, err := e.ct.List(context.Background(), blob.ListOptions{Prefix: name, MaxResults: 1, IncludeMetadata: true})
	if err != nil || len(page.Blobs) == 0 || page.Blobs[0].Name != name {
		t.Fatalf("listing %q: %v", name, err)
	}
	return page.Blobs[0].Metadata
}

func pat(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 7
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// The SDK writes; the mount reads exactly.
func TestInteropSDKWritesMountReads(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cc := e.sdk(t)
	files := map[string][]byte{
		"awk/sp ace.txt":                  []byte("space"),
		"awk/plus+and%25.bin":             []byte("plus and percent"),
		"awk/q?h#.txt":                    []byte("query and hash"),
		"awk/ünï 名前.txt":                  []byte("unicode"),
		"awk/.hidden":                     []byte("dot"),
		"awk/" + strings.Repeat("l", 250): []byte("long segment"),
		"multi/3.5MiB":                    pat(3<<20+1<<19, 1),
		"empty":                           nil,
	}
	for name, data := range files {
		sdkPut(t, cc, name, data, 1<<20, nil, nil, nil, nil)
	}
	// Directory markers of every convention, and a symlink.
	md := func(kv ...string) map[string]*string {
		m := map[string]*string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = to.Ptr(kv[i+1])
		}
		return m
	}
	sdkPut(t, cc, "m/bf", nil, 1, nil, md("hdi_isfolder", "true"), nil, nil) // blobfuse2
	sdkPut(t, cc, "m/bf/child", []byte("c"), 1, nil, nil, nil, nil)
	sdkPut(t, cc, "m/rc/", nil, 1, nil, md("hdi_isfolder", "true"), nil, nil) // rclone --azureblob-directory-markers
	sdkPut(t, cc, "m/gcs/", nil, 1, nil, nil, nil, nil)                       // gcsfuse, zero-byte "dir/"
	sdkPut(t, cc, "m/Cap", nil, 1, nil, md("Hdi_isfolder", "True"), nil, nil) // another case of the name
	sdkPut(t, cc, "m/implicit/child", []byte("c"), 1, nil, nil, nil, nil)     // a prefix only
	sdkPut(t, cc, "m/link", []byte("bf/child"), 1024, nil, md("is_symlink", "true"), nil, nil)
	// Blob types and tiers.
	ab := cc.NewAppendBlobClient("t/append")
	if _, err := ab.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"first line\n", "second line\n"} {
		if _, err := ab.AppendBlock(ctx, streaming.NopCloser(strings.NewReader(s)), nil); err != nil {
			t.Fatal(err)
		}
	}
	pb := cc.NewPageBlobClient("t/page")
	if _, err := pb.Create(ctx, 1024, nil); err != nil {
		t.Fatal(err)
	}
	page := pat(512, 3)
	if _, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(page)), sdkblob.HTTPRange{Offset: 512, Count: 512}, nil); err != nil {
		t.Fatal(err)
	}
	sdkPut(t, cc, "t/cool", []byte("cool"), 1024, nil, nil, nil, to.Ptr(sdkblob.AccessTierCool))
	sdkPut(t, cc, "t/archive", []byte("cold"), 1024, nil, nil, nil, nil)
	if _, err := cc.NewBlobClient("t/archive").SetTier(ctx, sdkblob.AccessTierArchive, nil); err != nil {
		t.Fatal(err)
	}

	dir, _ := e.mount(t, fs.Options{BlockSize: 1 << 20})
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%q: read %d bytes, %v; want %d bytes", name, len(got), err, len(want))
		}
	}
	for _, d := range []string{"m/bf", "m/rc", "m/gcs", "m/Cap", "m/implicit"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("marker %q: %v, want a directory", d, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dir, "m/bf/child")); err != nil || string(got) != "c" {
		t.Errorf("m/bf/child: %q %v", got, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "m/link")); err != nil || target != "bf/child" {
		t.Errorf("symlink: %q %v", target, err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "t/append")); err != nil || string(got) != "first line\nsecond line\n" {
		t.Errorf("append blob: %q %v", got, err)
	}
	wantPage := append(make([]byte, 512), page...)
	if got, err := os.ReadFile(filepath.Join(dir, "t/page")); err != nil || !bytes.Equal(got, wantPage) {
		t.Errorf("page blob: %d bytes %v", len(got), err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "t/cool")); err != nil || string(got) != "cool" {
		t.Errorf("cool blob: %q %v", got, err)
	}
	if _, err := os.ReadFile(filepath.Join(dir, "t/archive")); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("reading an archived blob: %v, want ENODATA", err)
	}
	// A write to a page blob, or an overwrite of an append blob, is
	// refused; the blob keeps its type (appends: TestInteropAppendBlob).
	for _, c := range []struct {
		name  string
		flags int
	}{{"t/page", os.O_WRONLY | os.O_APPEND}, {"t/page", os.O_RDWR}, {"t/append", os.O_WRONLY | os.O_TRUNC}} {
		f, err := os.OpenFile(filepath.Join(dir, c.name), c.flags, 0)
		if err == nil {
			f.Write([]byte("more"))
			f.Close()
		}
		if !errors.Is(err, syscall.EPERM) {
			t.Errorf("opening %q for writing (flags %#x): %v, want EPERM", c.name, c.flags, err)
		}
	}
	if _, p := sdkRead(t, cc, "t/append"); p.BlobType == nil || *p.BlobType != sdkblob.BlobTypeAppendBlob {
		t.Errorf("t/append is now a %v", p.BlobType)
	}
	if _, p := sdkRead(t, cc, "t/page"); p.BlobType == nil || *p.BlobType != sdkblob.BlobTypePageBlob {
		t.Errorf("t/page is now a %v", p.BlobType)
	}
}

// The mount writes; the SDK reads the properties other tools depend on
// intact and a correct whole-blob MD5.
func TestInteropMountWritesSDKReads(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cc := e.sdk(t)
	full := &sdkblob.HTTPHeaders{
		BlobContentType: to.Ptr("text/html"), BlobCacheControl: to.Ptr("public, max-age=600"),
		BlobContentEncoding: to.Ptr("gzip"), BlobContentLanguage: to.Ptr("de-CH"),
		BlobContentDisposition: to.Ptr(`inline; filename="page.html"`),
	}
	theirs := map[string]*string{"project_id": to.Ptr("7"), "ProjectOwner": to.Ptr("ann")}
	tags := map[string]string{"team": "web", "stage": "prod"}
	sdkPut(t, cc, "o/small.html.gz", pat(5000, 4), 1<<20, full, theirs, tags, to.Ptr(sdkblob.AccessTierCool))
	sdkPut(t, cc, "o/big.html.gz", pat(3<<20, 5), 1<<20, full, theirs, tags, to.Ptr(sdkblob.AccessTierCool))
	sdkPut(t, cc, "o/append-to", pat(2<<20, 6), 1<<20, nil, nil, nil, nil)
	sdkPut(t, cc, "s/snapped", []byte("v1"), 1024, nil, nil, nil, nil)
	if _, err := cc.NewBlobClient("s/snapped").CreateSnapshot(ctx, nil); err != nil {
		t.Fatal(err)
	}

	dir, mt := e.mount(t, fs.Options{BlockSize: 1 << 20})

	// kept checks what an overwrite or a rename must keep.
	kept := func(name string, want []byte) {
		t.Helper()
		// The SDK's download would gunzip a Content-Encoding: gzip body
		// (Go's transport does): the bytes come from ours, the
		// properties from the SDK.
		gotS, _, _ := e.get(t, name)
		got := []byte(gotS)
		p, err := cc.NewBlobClient(name).GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum(want)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content differs", name)
		}
		if !bytes.Equal(p.ContentMD5, sum[:]) {
			t.Errorf("%s: MD5 %x, want %x", name, p.ContentMD5, sum)
		}
		for what, pair := range map[string][2]*string{
			"Content-Type": {p.ContentType, full.BlobContentType}, "Cache-Control": {p.CacheControl, full.BlobCacheControl},
			"Content-Encoding": {p.ContentEncoding, full.BlobContentEncoding}, "Content-Language": {p.ContentLanguage, full.BlobContentLanguage},
			"Content-Disposition": {p.ContentDisposition, full.BlobContentDisposition},
		} {
			if pair[0] == nil || *pair[0] != *pair[1] {
				t.Errorf("%s: %s %q, want %q", name, what, str(pair[0]), *pair[1])
			}
		}
		if p.AccessTier == nil || *p.AccessTier != "Cool" || (p.AccessTierInferred != nil && *p.AccessTierInferred) {
			t.Errorf("%s: tier %v (inferred %v), want Cool", name, p.AccessTier, p.AccessTierInferred)
		}
		md := e.listedMeta(t, name)
		if md["project_id"] != "7" || md["ProjectOwner"] != "ann" {
			t.Errorf("%s: listed metadata %v, want project_id and ProjectOwner exactly", name, md)
		}
		for k := range md {
			if k != "ProjectOwner" && k != strings.ToLower(k) {
				t.Errorf("%s: metadata name %q is not lower-case", name, k)
			}
		}
		tg, err := cc.NewBlobClient(name).GetTags(ctx, nil)
		got2 := map[string]string{}
		if err == nil {
			for _, tag := range tg.BlobTagSet {
				got2[*tag.Key] = *tag.Value
			}
		}
		if err != nil || len(got2) != len(tags) || got2["team"] != "web" || got2["stage"] != "prod" {
			t.Errorf("%s: tags %v %v, want %v", name, got2, err, tags)
		}
	}

	// A new file: a whole-blob MD5, a type from the built-in table, our
	// metadata names lower-case.
	data := pat(3<<20+12345, 7)
	if err := os.MkdirAll(filepath.Join(dir, "w/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "w/new.css"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("new.css", filepath.Join(dir, "w/link")); err != nil {
		t.Fatal(err)
	}
	got, p := sdkRead(t, cc, "w/new.css")
	sum := md5.Sum(data)
	if !bytes.Equal(got, data) || !bytes.Equal(p.ContentMD5, sum[:]) {
		t.Errorf("w/new.css: MD5 %x, want %x (content equal: %v)", p.ContentMD5, sum, bytes.Equal(got, data))
	}
	if p.ContentType == nil || *p.ContentType != "text/css; charset=utf-8" {
		t.Errorf("w/new.css: Content-Type %q", str(p.ContentType))
	}
	for name, want := range map[string]string{"w/new.css": "mode", "w/sub/": "hdi_isfolder", "w/link": "is_symlink"} {
		md := e.listedMeta(t, name)
		if _, ok := md[want]; !ok {
			t.Errorf("%s: listed metadata %v lacks %q exactly", name, md, want)
		}
		for k := range md {
			if k != strings.ToLower(k) {
				t.Errorf("%s: metadata name %q is not lower-case", name, k)
			}
		}
	}

	// Overwrites (O_TRUNC, as an editor's save) keep everything.
	small, big := pat(7000, 8), pat(2<<20+99, 9)
	if err := os.WriteFile(filepath.Join(dir, "o/small.html.gz"), small, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "o/big.html.gz"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	kept("o/small.html.gz", small)
	kept("o/big.html.gz", big)
	// So does a rename.
	if err := os.Rename(filepath.Join(dir, "o/big.html.gz"), filepath.Join(dir, "o/moved.html.gz")); err != nil {
		t.Fatal(err)
	}
	kept("o/moved.html.gz", big)

	// An append to a multi-block blob reuses blocks it never read: the
	// blob then has no MD5 or the right one, never a stale one.
	f, err := os.OpenFile(filepath.Join(dir, "o/append-to"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tail"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, p = sdkRead(t, cc, "o/append-to")
	if s := md5.Sum(got); p.ContentMD5 != nil && !bytes.Equal(p.ContentMD5, s[:]) {
		t.Errorf("o/append-to: stale MD5 %x, content's is %x", p.ContentMD5, s)
	}

	// rm keeps snapshots: EBUSY, and the blob stays...
	if err := os.Remove(filepath.Join(dir, "s/snapped")); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("rm of a blob with a snapshot: %v, want EBUSY", err)
	}
	if _, p := sdkRead(t, cc, "s/snapped"); p.ETag == nil {
		t.Error("the blob is gone")
	}
	unmount(t, mt)
	// ...unless the mount opted in (--delete-snapshots).
	dir2, _ := e.mountStore(t, e.mct.DeletingSnapshots(), fs.Options{BlockSize: 1 << 20})
	if err := os.Remove(filepath.Join(dir2, "s/snapped")); err != nil {
		t.Fatal(err)
	}
	pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr("s/"), Include: container.ListBlobsInclude{Snapshots: true}})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			if *b.Name != "s/snapped" {
				continue // the directory's marker, left by rm of its last file
			}
			t.Errorf("left after rm with --delete-snapshots: %s snapshot %q", *b.Name, str(b.Snapshot))
		}
	}
}

// syncBuffer is a log sink tests read while the mount writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `>>` onto an append blob the SDK made is Append Block calls: the blob
// stays an append blob with the other program's metadata, which can go on
// appending; what an append blob cannot take is EPERM with a log line
// naming the blob type.
func TestInteropAppendBlob(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cc := e.sdk(t)
	ab := cc.NewAppendBlobClient("logs/app.log")
	if _, err := ab.Create(ctx, &appendblob.CreateOptions{Metadata: map[string]*string{"project_id": to.Ptr("7"), "Owner": to.Ptr("ann")}}); err != nil {
		t.Fatal(err)
	}
	head := "first line\nsecond line\n"
	if _, err := ab.AppendBlock(ctx, streaming.NopCloser(strings.NewReader(head)), nil); err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	l := logrus.New()
	l.SetOutput(io.MultiWriter(&log, testWriter{t}))
	dir, _ := e.mount(t, fs.Options{BlockSize: 1 << 20, Log: l})
	path := filepath.Join(dir, "logs/app.log")

	// echo third line >> logs/app.log
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	e.calls.take()
	if _, err := f.WriteString("third line\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if calls := e.calls.take(); calls["AppendBlock"] != 1 || calls["GetBlob"]+calls["PutBlob"]+calls["PutBlockList"]+calls["PutBlock"]+calls["SetBlobMetadata"] != 0 {
		t.Errorf("an append: calls %v, want one AppendBlock and nothing else (no download of the blob's end either)", calls)
	}
	// A large append: 4 MiB per Append Block.
	big := pat(9<<20+5, 11)
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if calls := e.calls.take(); calls["AppendBlock"] != 3 || calls["PutBlob"]+calls["PutBlockList"]+calls["PutBlock"] != 0 {
		t.Errorf("close of a 9 MiB append: calls %v, want three AppendBlock", calls)
	}
	want := append([]byte(head+"third line\n"), big...)
	got, p := sdkRead(t, cc, "logs/app.log")
	if !bytes.Equal(got, want) {
		t.Errorf("content: %d bytes, want %d", len(got), len(want))
	}
	if p.BlobType == nil || *p.BlobType != sdkblob.BlobTypeAppendBlob {
		t.Errorf("blob type %v, want AppendBlob", p.BlobType)
	}
	if md := e.listedMeta(t, "logs/app.log"); len(md) != 2 || md["project_id"] != "7" || md["Owner"] != "ann" {
		t.Errorf("listed metadata %v, want the SDK's exactly", md)
	}
	// The owning program appends on, at the position it expects.
	if _, err := ab.AppendBlock(ctx, streaming.NopCloser(strings.NewReader("sdk again\n")), &appendblob.AppendBlockOptions{
		AppendPositionAccessConditions: &appendblob.AppendPositionAccessConditions{AppendPosition: to.Ptr(int64(len(want)))},
	}); err != nil {
		t.Errorf("the SDK's next Append Block: %v", err)
	}

	// What an append blob cannot take: EPERM, and a log line that says why.
	f, err = os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), 3); !errors.Is(err, syscall.EPERM) {
		t.Errorf("write in the middle: %v, want EPERM", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close after a refused write: %v", err)
	}
	if err := os.Truncate(path, 5); !errors.Is(err, syscall.EPERM) {
		t.Errorf("truncate: %v, want EPERM", err)
	}
	if err := os.WriteFile(path, []byte("overwrite"), 0o644); !errors.Is(err, syscall.EPERM) {
		t.Errorf("overwrite (O_TRUNC): %v, want EPERM", err)
	}
	if n := strings.Count(log.String(), "is an AppendBlob"); n < 3 {
		t.Errorf("%d log lines name the blob type, want one per refusal:\n%s", n, log.String())
	}
	got, p = sdkRead(t, cc, "logs/app.log")
	if !bytes.Equal(got, append(want, "sdk again\n"...)) || *p.BlobType != sdkblob.BlobTypeAppendBlob {
		t.Errorf("after the refusals: %d bytes, a %s", len(got), *p.BlobType)
	}
}

// chmod and utimens of a blob known from a HEAD (another tool changed it
// after the mount listed it) keep the other tool's metadata names exactly
// as written: the HEAD answer's names come canonicalised by Go's HTTP
// client, and the mount must not write them back so.
func TestInteropSetattrKeepsMetadataNames(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cc := e.sdk(t)
	theirs := map[string]*string{"Project_ID": to.Ptr("7"), "ownerName": to.Ptr("ann"), "project_id_lower": to.Ptr("x")}
	sdkPut(t, cc, "h/f.txt", []byte("data"), 1024, nil, theirs, nil, nil)
	dir, _ := e.mount(t, fs.Options{BlockSize: 1 << 20, AttrTTL: 10 * time.Millisecond})
	path := filepath.Join(dir, "h/f.txt")
	if _, err := os.Stat(path); err != nil { // known from the listing
		t.Fatal(err)
	}
	theirs["BuildTag"] = to.Ptr("b2")
	if _, err := cc.NewBlobClient("h/f.txt").SetMetadata(ctx, theirs, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	e.calls.take()
	if _, err := os.Stat(path); err != nil { // the attribute TTL ran out: a HEAD
		t.Fatal(err)
	}
	if n := e.calls.take()["GetBlobProperties"]; n != 1 {
		t.Fatalf("stat made %d HEADs, want 1 (the test needs the blob known from a HEAD)", n)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if calls := e.calls.take(); calls["SetBlobMetadata"] != 1 || calls["ListBlobs"] != 1 {
		t.Errorf("chmod after a HEAD: calls %v, want one SetBlobMetadata and one ListBlobs (for the names)", calls)
	}
	want := map[string]string{"Project_ID": "7", "ownerName": "ann", "project_id_lower": "x", "BuildTag": "b2"}
	check := func(what string) {
		t.Helper()
		md := e.listedMeta(t, "h/f.txt")
		for k, v := range want {
			if md[k] != v {
				t.Errorf("after %s: listed metadata %v, want %q=%q exactly", what, md, k, v)
			}
		}
		for k := range md {
			if _, theirs := want[k]; !theirs && k != strings.ToLower(k) {
				t.Errorf("after %s: our metadata name %q is not lower-case", what, k)
			}
		}
		if md["mode"] == "" {
			t.Errorf("after %s: no mode in %v", what, md)
		}
	}
	check("chmod")
	// Again, after the attribute TTL: utimens, from what the chmod left.
	time.Sleep(50 * time.Millisecond)
	if err := os.Chtimes(path, time.Now(), time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if calls := e.calls.take(); calls["SetBlobMetadata"] != 1 || calls["ListBlobs"] != 0 {
		t.Errorf("utimens of a version the mount wrote: calls %v, want one SetBlobMetadata and no listing", calls)
	}
	check("utimens")
	if got, _ := sdkRead(t, cc, "h/f.txt"); string(got) != "data" {
		t.Errorf("content %q", got)
	}
}

// snapshotsOf lists the snapshots of the blobs below prefix, by name.
func snapshotsOf(t *testing.T, cc *container.Client, prefix string) map[string]int {
	t.Helper()
	out := map[string]int{}
	pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(prefix), Include: container.ListBlobsInclude{Snapshots: true}})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			if b.Snapshot != nil && *b.Snapshot != "" {
				out[*b.Name]++
			}
		}
	}
	return out
}

// mv of a blob with snapshots, or of a directory holding one, does not
// leave both names: it is refused (EBUSY, a log line naming the
// snapshots and --delete-snapshots) and nothing moves; a mount with
// --delete-snapshots moves it and the source's snapshots go.
func TestInteropRenameWithSnapshots(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cc := e.sdk(t)
	for _, name := range []string{"s/a", "d/x", "d/y", "d/sub/z"} {
		sdkPut(t, cc, name, []byte("content of "+name), 1024, nil, nil, nil, nil)
	}
	for _, name := range []string{"s/a", "d/sub/z"} {
		if _, err := cc.NewBlobClient(name).CreateSnapshot(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	var log syncBuffer
	l := logrus.New()
	l.SetOutput(io.MultiWriter(&log, testWriter{t}))
	dir, mt := e.mount(t, fs.Options{BlockSize: 1 << 20, Log: l})
	if err := os.Rename(filepath.Join(dir, "s/a"), filepath.Join(dir, "s/b")); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("mv of a blob with a snapshot: %v, want EBUSY", err)
	}
	if err := os.Rename(filepath.Join(dir, "d"), filepath.Join(dir, "d2")); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("mv of a directory holding a blob with a snapshot: %v, want EBUSY", err)
	}
	for _, want := range []string{"snapshot", "--delete-snapshots", "s/a", "d/sub/z"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, log.String())
		}
	}
	names := func() []string {
		var out []string
		pager := cc.NewListBlobsFlatPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range page.Segment.BlobItems {
				out = append(out, *b.Name)
			}
		}
		return out
	}
	if got := strings.Join(names(), " "); got != "d/sub/z d/x d/y s/a" {
		t.Errorf("after the refused renames the container holds %q, want everything where it was", got)
	}
	if got := snapshotsOf(t, cc, ""); got["s/a"] != 1 || got["d/sub/z"] != 1 {
		t.Errorf("snapshots after the refused renames: %v", got)
	}
	for _, p := range []string{"s/a", "d/x", "d/sub/z"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s after the refused rename: %v", p, err)
		}
	}
	unmount(t, mt)

	// --delete-snapshots: the renames happen, the snapshots go with the sources.
	dir2, _ := e.mountStore(t, e.mct.DeletingSnapshots(), fs.Options{BlockSize: 1 << 20})
	if err := os.Rename(filepath.Join(dir2, "s/a"), filepath.Join(dir2, "s/b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir2, "d"), filepath.Join(dir2, "d2")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(), " "); got != "d2/sub/z d2/x d2/y s/b" {
		t.Errorf("after the renames the container holds %q", got)
	}
	if got := snapshotsOf(t, cc, ""); len(got) != 0 {
		t.Errorf("snapshots left after the renames with --delete-snapshots: %v", got)
	}
	if got, err := os.ReadFile(filepath.Join(dir2, "d2/sub/z")); err != nil || string(got) != "content of d/sub/z" {
		t.Errorf("d2/sub/z: %q %v", got, err)
	}
}

// rm of an append or page blob that a program has open works as for a
// block blob: the blob goes, the program reads on from a local copy (it
// failed with EPERM while the mount could not stage those types).
func TestInteropRemoveOpenAppendAndPageBlobs(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cc := e.sdk(t)
	ab := cc.NewAppendBlobClient("r/append")
	if _, err := ab.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ab.AppendBlock(ctx, streaming.NopCloser(strings.NewReader("appended\n")), nil); err != nil {
		t.Fatal(err)
	}
	pb := cc.NewPageBlobClient("r/page")
	if _, err := pb.Create(ctx, 1024, nil); err != nil {
		t.Fatal(err)
	}
	page := pat(512, 5)
	if _, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(page)), sdkblob.HTTPRange{Offset: 0, Count: 512}, nil); err != nil {
		t.Fatal(err)
	}
	dir, _ := e.mount(t, fs.Options{BlockSize: 1 << 20})
	for name, want := range map[string][]byte{"r/append": []byte("appended\n"), "r/page": append(append([]byte{}, page...), make([]byte, 512)...)} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Errorf("rm %s while open: %v", name, err)
		}
		got, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s read after rm: %d bytes, %v; want %d", name, len(got), err, len(want))
		}
		if err := f.Close(); err != nil {
			t.Errorf("close of %s after rm: %v", name, err)
		}
		if _, _, ok := e.get(t, name); ok {
			t.Errorf("%s still exists after rm", name)
		}
	}
}
