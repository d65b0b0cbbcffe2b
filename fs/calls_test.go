package fs_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs"
)

func sameCalls(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s: calls %v, want %v", what, got, want)
	}
}

func TestCallCounts(t *testing.T) {
	e := newEnv(t)
	e.put(t, "big", string(bytes.Repeat([]byte("x"), 1<<20)), nil)
	dir, _ := e.mount(t, fs.Options{})
	if err := os.Mkdir(filepath.Join(dir, "d"), 0755); err != nil {
		t.Fatal(err)
	}
	e.calls.take()

	// A 4 KiB file in a directory made here: one Put Blob and nothing else.
	data := bytes.Repeat([]byte("y"), 4096)
	if err := os.WriteFile(filepath.Join(dir, "d/small"), data, 0644); err != nil {
		t.Fatal(err)
	}
	sameCalls(t, "create 4 KiB", e.calls.take(), map[string]int{"PutBlob": 1})

	// Overwriting it (O_TRUNC: the kernel truncates with a SETATTR of its
	// own, without the handle) is one Put Blob too: no empty version in
	// between for other clients to see.
	if err := os.WriteFile(filepath.Join(dir, "d/small"), data[:100], 0644); err != nil {
		t.Fatal(err)
	}
	sameCalls(t, "overwrite with O_TRUNC", e.calls.take(), map[string]int{"PutBlob": 1})

	// After ls, reading a file back is one GET and no HEAD.
	if _, err := os.ReadDir(dir); err != nil {
		t.Fatal(err)
	}
	e.calls.take()
	b, err := os.ReadFile(filepath.Join(dir, "big"))
	if err != nil || len(b) != 1<<20 {
		t.Fatalf("read: %d bytes, %v", len(b), err)
	}
	got := e.calls.take()
	if got["GetBlobProperties"] != 0 || got["GetBlob"] < 1 || len(got) != 1 {
		t.Errorf("read after ls: calls %v, want GETs only", got)
	}

	// Rename: one Copy Blob and one Delete, no data through the client.
	if err := os.Rename(filepath.Join(dir, "big"), filepath.Join(dir, "d/big")); err != nil {
		t.Fatal(err)
	}
	sameCalls(t, "rename", e.calls.take(), map[string]int{"CopyBlob": 1, "DeleteBlob": 1})
}

func TestListingCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 5,001 blobs")
	}
	e := newEnv(t)
	// 5,001 blobs need two pages of 5,000 as 10,000 do, in half the time
	// (uploading them is most of this test).
	const n = 5001
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := e.ct.Upload(context.Background(), fmt.Sprintf("many/f%05d", i), []byte("z"), blob.PutOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	dir, _ := e.mount(t, fs.Options{})
	if _, err := os.Stat(filepath.Join(dir, "many")); err != nil {
		t.Fatal(err)
	}
	e.calls.take()
	// ls -l: readdir plus an lstat of every entry.
	ents, err := os.ReadDir(filepath.Join(dir, "many"))
	if err != nil || len(ents) != n {
		t.Fatalf("readdir: %d entries, %v", len(ents), err)
	}
	for _, de := range ents {
		fi, err := de.Info()
		if err != nil || fi.Size() != 1 {
			t.Fatalf("%s: %v %v", de.Name(), fi, err)
		}
	}
	sameCalls(t, "ls -l of 5,001", e.calls.take(), map[string]int{"ListBlobs": 2})
	// stat after ls, within the TTL: no calls.
	for _, name := range []string{"f00000", "f02500", "f05000"} {
		if _, err := os.Stat(filepath.Join(dir, "many", name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "many", "absent")); !os.IsNotExist(err) {
		t.Fatalf("absent: %v", err)
	}
	sameCalls(t, "stat after ls", e.calls.take(), map[string]int{})
}

// flushCounter counts the FLUSH requests in go-fuse's debug log, which
// the log package writes a line at a time.
type flushCounter struct{ n atomic.Int64 }

func (c *flushCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(": FLUSH ")) {
		c.n.Add(1)
	}
	return len(p), nil
}

// A reader's close() costs no round trip to the daemon (FOPEN_NOFLUSH);
// a writer's still sends the FLUSH that commits it.
func TestReaderCloseSendsNoFlush(t *testing.T) {
	e := newEnv(t)
	e.put(t, "r", "read me", nil)
	var flushes flushCounter
	log.SetOutput(&flushes)
	defer log.SetOutput(os.Stderr)
	dir, _ := e.mount(t, fs.Options{Debug: true})
	flushes.n.Store(0) // go-fuse's own FLUSH probe at mount time
	for range 3 {
		if b, err := os.ReadFile(filepath.Join(dir, "r")); err != nil || string(b) != "read me" {
			t.Fatalf("read: %q, %v", b, err)
		}
	}
	if n := flushes.n.Load(); n != 0 {
		t.Errorf("3 reads sent %d FLUSH requests, want 0", n)
	}
	if err := os.WriteFile(filepath.Join(dir, "w"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := flushes.n.Load(); n != 1 {
		t.Errorf("a write sent %d FLUSH requests, want 1", n)
	}
}
