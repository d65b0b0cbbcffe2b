package fs_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blobfs/blobfs/fs"
)

// Unmount (SIGTERM) commits what was closed, refuses new changes, and does
// not commit a file still open for writing: its data stays in the cache
// directory, and the next mount keeps it in lost+found. A close() after
// shutdown began fails (EIO) rather than publish what may be a prefix.
func TestUnmountKeepsOpenFiles(t *testing.T) {
	e := newEnv(t)
	cache := t.TempDir()
	dir, mt := e.mount(t, fs.Options{CacheDir: cache})
	if err := os.WriteFile(filepath.Join(dir, "closed"), []byte("closed before"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	written := []byte("not closed yet")
	if _, err := f.Write(written); err != nil {
		t.Fatal(err)
	}
	// Deleted while open: nothing of it may be kept.
	gone, err := os.Create(filepath.Join(dir, "gone"))
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	goneData := []byte("unlinked while open, nobody can reach this")
	if _, err := gone.Write(goneData); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- mt.Unmount(ctx)
	}()
	// Writes go on succeeding until shutdown begins, then fail with EIO.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := f.Write([]byte("x"))
		if err != nil {
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("write after shutdown began: %v, want EIO", err)
			}
			break
		}
		written = append(written, 'x')
		if time.Now().After(deadline) {
			t.Fatal("writes still accepted 20s after Unmount was called")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Create(filepath.Join(dir, "new")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("create after shutdown began: %v, want EROFS", err)
	}
	if err := f.Close(); !errors.Is(err, syscall.EIO) {
		t.Errorf("close after shutdown began: %v, want EIO", err)
	}
	if err := gone.Close(); err != nil {
		t.Errorf("close of the unlinked file: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("unmount: %v", err)
	}

	if got, _, ok := e.get(t, "closed"); !ok || got != "closed before" {
		t.Errorf("closed file: %q (exists %v)", got, ok)
	}
	if got, _, ok := e.get(t, "open"); ok {
		t.Fatalf("a file open at unmount was committed: %q", got)
	}
	if n := countStaged(t, cache, written); n != 1 {
		t.Fatalf("%d cache files hold the written bytes, want 1", n)
	}
	if n := countStaged(t, cache, goneData); n != 0 {
		t.Errorf("%d cache files hold the unlinked file's bytes, want none", n)
	}

	// The next mount does not commit it either: it goes to lost+found.
	_, mt2 := e.mount(t, fs.Options{CacheDir: cache})
	if _, _, ok := e.get(t, "open"); ok {
		t.Fatal("the next mount committed a file that was never closed")
	}
	kept, err := filepath.Glob(filepath.Join(cache, "lost+found", "open.*"))
	if err != nil || len(kept) != 2 { // data and journal
		t.Fatalf("lost+found: %v, %v", kept, err)
	}
	if b, err := os.ReadFile(strings.TrimSuffix(kept[0], ".json")); err != nil || !bytes.Equal(b, written) {
		t.Errorf("kept copy: %q, %v; want %q", b, err, written)
	}
	unmount(t, mt2)
}

// countStaged counts the regular files under dir whose content is want.
func countStaged(t *testing.T, dir string, want []byte) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, want) {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
