package fs_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs"
)

func readBack(t *testing.T, path string, want []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("%s: read %d bytes that are not the %d expected", filepath.Base(path), len(b), len(want))
	}
}

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// What was read, and what was written, is read again after a remount
// from the cache directory: no GET while the blobs are unchanged. Off,
// the same remount downloads again.
func TestReadCacheSurvivesRemount(t *testing.T) {
	e := newEnv(t)
	big := payload(5<<20+123, 1) // several blocks
	e.put(t, "d/big", string(big), nil)
	e.put(t, "d/small", "a small file", nil)
	opts := fs.Options{CacheDir: t.TempDir(), BlockSize: 1 << 20, ReadCache: true}

	dir, mt := e.mount(t, opts)
	readBack(t, filepath.Join(dir, "d/big"), big)
	readBack(t, filepath.Join(dir, "d/small"), []byte("a small file"))
	written := payload(700<<10+7, 2) // one block: a commit copies it (see stage's keepCommitted)
	if err := os.WriteFile(filepath.Join(dir, "d/written"), written, 0o644); err != nil {
		t.Fatal(err)
	}
	// Several blocks: the read cache takes the staged file over at close.
	writtenLarge := payload(3<<20+4321, 3)
	if err := os.WriteFile(filepath.Join(dir, "d/written-large"), writtenLarge, 0o644); err != nil {
		t.Fatal(err)
	}
	unmount(t, mt)

	dir, mt = e.mount(t, opts)
	if _, err := os.ReadDir(filepath.Join(dir, "d")); err != nil {
		t.Fatal(err)
	}
	e.calls.take()
	readBack(t, filepath.Join(dir, "d/big"), big)
	readBack(t, filepath.Join(dir, "d/small"), []byte("a small file"))
	readBack(t, filepath.Join(dir, "d/written"), written)
	readBack(t, filepath.Join(dir, "d/written-large"), writtenLarge)
	if got := e.calls.take(); got["GetBlob"] != 0 {
		t.Errorf("re-read after remount: calls %v, want no GetBlob", got)
	}
	unmount(t, mt)

	// Files of the cache are private.
	filepath.Walk(filepath.Join(opts.CacheDir, fs.ReadCacheSubdir), func(path string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", path, fi.Mode())
		}
		return nil
	})

	off := opts
	off.ReadCache = false
	dir, _ = e.mount(t, off)
	if _, err := os.ReadDir(filepath.Join(dir, "d")); err != nil {
		t.Fatal(err)
	}
	e.calls.take()
	readBack(t, filepath.Join(dir, "d/small"), []byte("a small file"))
	if got := e.calls.take(); got["GetBlob"] != 1 {
		t.Errorf("read with the read cache off: calls %v, want 1 GetBlob", got)
	}
}

// Another client rewrites a cached blob (same size): once the mount's
// attribute cache has expired, the next open reads the new content, never
// the cached old one, and the cache then holds the new version.
func TestReadCacheNeverServesChangedBlob(t *testing.T) {
	e := newEnv(t)
	v1, v2 := payload(2<<20+10, 3), payload(2<<20+10, 4)
	e.put(t, "f", string(v1), nil)
	opts := fs.Options{CacheDir: t.TempDir(), BlockSize: 1 << 20, ReadCache: true,
		AttrTTL: time.Second, EntryTTL: time.Second, NegativeTTL: time.Second}
	dir, mt := e.mount(t, opts)
	p := filepath.Join(dir, "f")
	readBack(t, p, v1)
	e.put(t, "f", string(v2), nil)
	time.Sleep(1500 * time.Millisecond)
	readBack(t, p, v2)
	unmount(t, mt)

	dir, _ = e.mount(t, opts)
	if _, err := os.Stat(filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	e.calls.take()
	readBack(t, filepath.Join(dir, "f"), v2)
	if got := e.calls.take(); got["GetBlob"] != 0 {
		t.Errorf("re-read of the new version after remount: calls %v, want no GetBlob", got)
	}
	// Changed again while unmounted: the new mount's listing has the new
	// ETag, and the cached copy is not served.
	ctx := context.Background()
	if _, err := e.ct.Upload(ctx, "f", v1, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	readBack(t, filepath.Join(dir, "f"), v1)
}
