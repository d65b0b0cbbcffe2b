package fs_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
			got, err := writeMapped(p, 2<<20-3, "mapped")
			if err != nil {
				t.Fatalf("writing through a shared mapping: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Error("the mapping did not hold the file's content")
			}
			copy(data[2<<20-3:], "mapped")
			if got, _, _ := e.get(t, "f"); got != string(data) {
				t.Errorf("blob after the mapped write differs from the file written (%d bytes)", len(got))
			}
		})
	}
}

// mapWriterEnv makes the test binary a mapWriter instead of running tests.
const mapWriterEnv = "BLOBFS_TEST_MAP_WRITER"

// writeMapped maps the file at path shared and writable in a child
// process, which prints the content it sees, writes text at off, msyncs
// and closes. Not in this process: a page fault on its own mount blocks a
// thread where Go cannot stop it, and a garbage collection starting then
// waits for it while the daemon's goroutines, which would answer the
// fault, wait for the collection.
func writeMapped(path string, off int, text string) ([]byte, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), mapWriterEnv+"="+path, "BLOBFS_TEST_MAP_AT="+strconv.Itoa(off), "BLOBFS_TEST_MAP_TEXT="+text)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return out, nil
}

// mapWriter is the child of writeMapped; its exit status is 0 when every
// step succeeded.
func mapWriter(path string) int {
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		return 1
	}
	off, err := strconv.Atoi(os.Getenv("BLOBFS_TEST_MAP_AT"))
	if err != nil {
		return fail("offset", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fail("open", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail("stat", err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fail("mmap MAP_SHARED", err)
	}
	if _, err := os.Stdout.Write(m); err != nil {
		return fail("printing the mapping", err)
	}
	copy(m[off:], os.Getenv("BLOBFS_TEST_MAP_TEXT"))
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		return fail("msync", err)
	}
	if err := syscall.Munmap(m); err != nil {
		return fail("munmap", err)
	}
	if err := f.Close(); err != nil {
		return fail("close after writing through the mapping", err)
	}
	return 0
}
