package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/blobfs/blobfs/blob"
)

// crashFile is one file being written through the mount when the daemon
// is SIGKILLed.
type crashFile struct {
	name string
	size int
	// how far the program got: "closed" (close returned), "fsynced"
	// (fsync returned, still open), "fsynced+more" (fsync returned, then
	// more writes, still open), "writing" (still open, never synced)
	state string
}

// Crash safety through the real binary: every file whose close or fsync
// returned success is in the container exactly; files still being written
// are not committed as a prefix but kept, with every byte written, in the
// cache's lost+found, which the next mount logs with the path. The cache
// stays private (files 0600, directories 0700) all along.
func TestCrashKeepsAcknowledgedData(t *testing.T) {
	needFUSE(t)
	w := newWorld(t, worldOptions{})
	mp := filepath.Join(w.dir, "mnt")
	cache := filepath.Join(w.dir, "cache")
	os.MkdirAll(mp, 0o755)
	w.cleanupMount(mp)
	// Small blocks so that the larger files are block lists with blocks
	// streamed before close.
	args := w.mountArgs(mp, "--foreground", "--block-size", "1MiB")
	fg := exec.Command(binPath, args...)
	fg.Env = w.env()
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	defer fg.Process.Kill()
	w.waitServing(t, mp)

	files := []crashFile{
		{name: "closed-small.txt", size: 100, state: "closed"},
		{name: "dir/closed-large.bin", size: 3<<20 + 7, state: "closed"},
		{name: "fsynced.bin", size: 2<<20 + 3, state: "fsynced"},
		{name: "fsynced-more.bin", size: 1<<20 + 11, state: "fsynced+more"},
		{name: "writing-small.txt", size: 5000, state: "writing"},
		{name: "dir/writing-large.bin", size: 5<<20 + 1, state: "writing"},
	}
	if err := os.MkdirAll(filepath.Join(mp, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	acked := map[string][]byte{}      // what the container must hold
	writtenAll := map[string][]byte{} // every byte written, acked or not
	var open []*os.File
	for _, cf := range files {
		data := make([]byte, cf.size)
		rand.Read(data)
		f, err := os.Create(filepath.Join(mp, cf.name))
		if err != nil {
			t.Fatal(err)
		}
		// Several writes, as a copy does.
		for off := 0; off < len(data); off += 256 << 10 {
			if _, err := f.Write(data[off:min(off+256<<10, len(data))]); err != nil {
				t.Fatalf("%s: %v", cf.name, err)
			}
		}
		writtenAll[cf.name] = data
		switch cf.state {
		case "closed":
			if err := f.Close(); err != nil {
				t.Fatalf("close %s: %v", cf.name, err)
			}
			acked[cf.name] = data
			continue
		case "fsynced", "fsynced+more":
			if err := f.Sync(); err != nil {
				t.Fatalf("fsync %s: %v", cf.name, err)
			}
			acked[cf.name] = data
		}
		if cf.state == "fsynced+more" {
			more := []byte("written after the fsync")
			if _, err := f.Write(more); err != nil {
				t.Fatal(err)
			}
			writtenAll[cf.name] = append(bytes.Clone(data), more...)
		}
		open = append(open, f)
	}
	// While files are open and staged: the cache is private.
	checkPrivate(t, cache)

	if err := fg.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitKilled(t, fg, mp)
	for _, f := range open {
		f.Close() // ENOTCONN: the daemon is gone
	}

	// The next mount over the dead one recovers.
	w.mount(mp)
	for name, want := range acked {
		got, err := w.restGet(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: close or fsync returned success, but the container has %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}
	log := w.log()
	for _, cf := range files {
		if cf.state != "writing" && cf.state != "fsynced+more" {
			continue
		}
		want := writtenAll[cf.name]
		got, err := w.restGet(cf.name)
		switch {
		case err == nil && cf.state == "writing":
			if !bytes.Equal(got, want) {
				t.Errorf("%s was never closed and is in the container as %d of %d bytes written", cf.name, len(got), len(want))
			}
			continue
		case err != nil && !errors.Is(err, blob.ErrNotFound):
			t.Fatal(err)
		}
		// Not committed: kept in lost+found, with every byte written.
		kept := filepath.Join(cache, "lost+found", strings.ReplaceAll(cf.name, "/", "_")+".")
		matches, _ := filepath.Glob(kept + "*[^n]") // the data, not its .json
		if len(matches) != 1 {
			t.Errorf("%s: lost+found holds %v, want one copy", cf.name, matches)
			continue
		}
		if b, err := os.ReadFile(matches[0]); err != nil || !bytes.Equal(b, want) {
			t.Errorf("%s: the copy in lost+found is %d bytes (%v), want the %d written", cf.name, len(b), err, len(want))
		}
		if _, err := os.Stat(matches[0] + ".json"); err != nil {
			t.Errorf("%s: no journal beside the kept copy: %v", cf.name, err)
		}
		if !strings.Contains(log, matches[0]) {
			t.Errorf("%s: the log does not say it was kept at %s:\n%s", cf.name, matches[0], log)
		}
	}
	// After recovery too.
	checkPrivate(t, cache)
}

// checkPrivate fails unless every file under dir is 0600 and every
// directory 0700: staged data is the user's, whatever the mount's modes.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, st.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("the cache directory %s holds %d entries: nothing was checked", dir, n)
	}
}
