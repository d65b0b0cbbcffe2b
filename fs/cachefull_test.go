package fs_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/blobfs/blobfs/fs"
)

// Issue 20 scenario 6, through the kernel: with --cache-dir on a small
// disk, copying a file larger than the disk fails (a write with ENOSPC,
// close() with EIO); the cut-off copy is never published, not at close
// and not by the next mount's recovery, and the disk's space comes back
// at once, so the next file written succeeds.
func TestFullCacheDiskThroughMount(t *testing.T) {
	const disk = 8 << 20
	cache := t.TempDir()
	if err := unix.Mount("tmpfs", cache, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", disk)); err != nil {
		t.Skipf("cannot mount a small tmpfs as the cache disk (%v): run as root", err)
	}
	t.Cleanup(func() { unix.Unmount(cache, unix.MNT_DETACH) })
	e := newEnv(t)
	opts := fs.Options{CacheDir: cache, BlockSize: 1 << 20}
	dir, mt := e.mount(t, opts)

	// cp of 4 times the disk.
	src := bytes.Repeat([]byte("0123456789abcdef"), 4*disk/16)
	f, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	written := 0
	for written < len(src) && werr == nil {
		var n int
		n, werr = f.Write(src[written:min(written+128<<10, len(src))])
		written += n
	}
	cerr := f.Close()
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Errorf("writing %d bytes through a %d-byte cache disk: %v after %d bytes, want ENOSPC", len(src), disk, werr, written)
	}
	if !errors.Is(cerr, syscall.EIO) {
		t.Errorf("close() after the failed write = %v, want EIO", cerr)
	}
	if _, _, ok := e.get(t, "big"); ok {
		t.Errorf("the cut-off copy was published at close")
	}

	// The next file fits: the failed one's space was given back.
	next := bytes.Repeat([]byte("next file "), (disk/2)/10)
	if err := os.WriteFile(filepath.Join(dir, "next"), next, 0o644); err != nil {
		t.Errorf("a %d-byte file after the failed one: %v", len(next), err)
	} else if got, _, ok := e.get(t, "next"); !ok || got != string(next) {
		t.Errorf("next: %d bytes in the service, want %d", len(got), len(next))
	}
	unmount(t, mt)

	// The next mount's recovery publishes nothing either.
	_, mt2 := e.mount(t, opts)
	if _, _, ok := e.get(t, "big"); ok {
		t.Errorf("the next mount's recovery published the cut-off copy")
	}
	// lost+found says what happened.
	var records []string
	filepath.WalkDir(cache, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(path, "lost+found") && strings.HasPrefix(d.Name(), "big.") {
			records = append(records, d.Name())
		}
		return nil
	})
	if len(records) != 1 || !strings.HasSuffix(records[0], ".json") {
		t.Errorf("lost+found holds %v for big, want its record (data dropped)", records)
	}
	unmount(t, mt2)
}
