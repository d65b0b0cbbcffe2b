package fs_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/blobfs/blobfs/fs"
)

// With DirectIO the kernel caches no file data: a file read twice is
// downloaded twice, where the default mount reads it again from the page
// cache. Contents are the same either way, and so is what lands in the
// service, through write(2) and through a shared mapping.
func TestDirectIO(t *testing.T) {
	for _, tc := range []struct {
		name     string
		directIO bool
		reread   bool // the second read reaches the service
	}{
		{"page cache", false, false},
		{"direct", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			dir, _ := e.mount(t, fs.Options{DirectIO: tc.directIO, BlockSize: 1 << 20})
			p := filepath.Join(dir, "f")
			data := make([]byte, 3<<20+1234) // streams three blocks, commits four
			r := rand.New(rand.NewPCG(1, 2))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			if err := os.WriteFile(p, data, 0644); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := e.get(t, "f"); got != string(data) {
				t.Fatalf("blob after write: %d bytes, want the %d written", len(got), len(data))
			}

			for round := range 2 {
				e.calls.take()
				got, err := os.ReadFile(p)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read %d: %d bytes (%v), want the %d written", round, len(got), err, len(data))
				}
				gets := e.calls.take()["GetBlob"]
				if round == 1 && (gets > 0) != tc.reread {
					t.Errorf("second read: %d GETs; want them: %v", gets, tc.reread)
				}
			}

			// A shared mapping, written and synced, is committed at close.
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			m, err := syscall.Mmap(int(f.Fd()), 0, len(data), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
			if err != nil {
				f.Close()
				t.Fatalf("mmap MAP_SHARED: %v", err)
			}
			if !bytes.Equal(m, data) {
				t.Error("the mapping does not hold the file's content")
			}
			copy(m[2<<20-3:], "mapped")
			copy(data[2<<20-3:], "mapped")
			if err := unix.Msync(m, unix.MS_SYNC); err != nil {
				t.Errorf("msync: %v", err)
			}
			if err := syscall.Munmap(m); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("close after writing through the mapping: %v", err)
			}
			if got, _, _ := e.get(t, "f"); got != string(data) {
				t.Errorf("blob after the mapped write differs from the file written (%d bytes)", len(got))
			}
		})
	}
}
