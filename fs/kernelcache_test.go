package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/blobfs/blobfs/fs"
)

// residentPages counts the pages of [off, off+n) of the mapped file that
// are in the page cache.
func residentPages(t *testing.T, mapped []byte, off, n int) int {
	t.Helper()
	ps := os.Getpagesize()
	vec := make([]byte, (n+ps-1)/ps)
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&mapped[off])), uintptr(n), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	count := 0
	for _, v := range vec {
		count += int(v & 1)
	}
	return count
}

// A sequential writer's blocks leave the kernel's cache of the file once
// they are in the service, as they leave the staging file's; the block
// still being written stays, and every byte still reads back.
func TestWrittenBlocksLeaveTheKernelCache(t *testing.T) {
	e := newEnv(t)
	const bs = 1 << 20
	dir, _ := e.mount(t, fs.Options{BlockSize: bs, Concurrency: 4})
	path := filepath.Join(dir, "streamed")
	data := make([]byte, 8*bs+5000)
	for i := range data {
		data[i] = byte(i*7 + i/4096)
	}
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for off := 0; off < len(data); off += 128 << 10 {
		if _, err := w.Write(data[off:min(off+128<<10, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mapped, err := syscall.Mmap(int(r.Fd()), 0, len(data), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mapped)
	// Blocks 0-7 are streamed (the writer moved past them); their drop
	// runs after their upload, so give it a moment.
	deadline := time.Now().Add(10 * time.Second)
	for residentPages(t, mapped, 0, 8*bs) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := residentPages(t, mapped, 0, 8*bs); n > 0 {
		t.Errorf("%d pages of the uploaded blocks are still in the kernel's cache of the file", n)
	}
	// The last block goes up only at close: the kernel keeps it (this
	// also shows that mincore sees the file's cache at all).
	if n := residentPages(t, mapped, 8*bs, len(data)-8*bs); n == 0 {
		t.Errorf("the block still being written left the kernel's cache too")
	}
	if !bytes.Equal(mapped, data) {
		t.Errorf("reading the open file back through the mount: content differs")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := e.get(t, "streamed"); !ok || got != string(data) {
		t.Errorf("the committed blob differs (found %v, %d bytes)", ok, len(got))
	}
}
