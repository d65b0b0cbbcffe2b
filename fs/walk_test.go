package fs_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs"
)

// putMany uploads n blobs named by name(i), 16 at a time.
func (e *env) putMany(t *testing.T, n int, name func(i int) string) {
	t.Helper()
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := e.ct.Upload(context.Background(), name(i), []byte("z"), blob.PutOptions{})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A walk of a tree (find, du) costs List calls only: directories get
// their attributes from listings, with the modes their markers hold.
func TestWalkMakesNoHead(t *testing.T) {
	e := newEnv(t)
	const dirs, files = 12, 20
	e.putMany(t, dirs*files, func(i int) string { return fmt.Sprintf("top/d%02d/f%03d", i/files, i%files) })
	e.put(t, "top/d03/", "", map[string]string{"hdi_isfolder": "true", "mode": "0700"}) // ours, rclone's
	e.put(t, "top/bf", "", map[string]string{"hdi_isfolder": "true", "mode": "0750"})   // blobfuse2's
	e.put(t, "top/bf/inner", "x", nil)
	e.put(t, "top/d05/deep/er/f", "x", nil)
	dir, _ := e.mount(t, fs.Options{})
	top := filepath.Join(dir, "top")
	if _, err := os.Stat(top); err != nil {
		t.Fatal(err)
	}
	e.calls.take()

	for _, walk := range [][]string{{"find", top}, {"du", "-s", top}} {
		out, err := exec.Command(walk[0], walk[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", walk[0], err, out)
		}
		if walk[0] == "find" {
			// top, its 14 directories and 2 below d05, and every file.
			if n, want := strings.Count(string(out), "\n"), 1+dirs+1+2+dirs*files+2; n != want {
				t.Errorf("find printed %d lines, want %d:\n%s", n, want, out)
			}
		}
	}
	got := e.calls.take()
	if got["GetBlobProperties"] != 0 {
		t.Errorf("find and du made %d HEAD calls, want 0 (calls %v)", got["GetBlobProperties"], got)
	}
	// top's own listing and one flat listing of its subtree.
	if got["ListBlobs"] > 2 || len(got) != 1 {
		t.Errorf("find and du: calls %v, want at most 2 List calls and nothing else", got)
	}
	for name, want := range map[string]os.FileMode{"d03": 0700, "bf": 0750, "d04": 0755} {
		fi, err := os.Stat(filepath.Join(top, name))
		if err != nil || fi.Mode().Perm() != want || !fi.IsDir() {
			t.Errorf("%s: %v, %v; want a directory of mode %v from its marker", name, fi.Mode(), err, want)
		}
	}

	// A directory stat'ed by path, with no walk: still no HEAD, and the
	// mode its marker holds.
	dir2, _ := e.mount(t, fs.Options{})
	e.calls.take()
	fi, err := os.Stat(filepath.Join(dir2, "top/d03"))
	if err != nil || fi.Mode().Perm() != 0700 {
		t.Errorf("stat top/d03 on a new mount: %v, %v; want mode 0700", fi, err)
	}
	if got := e.calls.take(); got["GetBlobProperties"] != 0 {
		t.Errorf("stat of a directory: calls %v, want no HEAD", got)
	}
}

// rm -rf of a tree whose removal outlasts the entry TTL: one Delete per
// blob, a List per directory and a few more, and no marker written for
// the directories it empties and then removes.
func TestRmRfCalls(t *testing.T) {
	e := newEnv(t)
	const dirs, files = 3, 150
	e.putMany(t, dirs*files, func(i int) string { return fmt.Sprintf("rm/d%d/f%03d", i/files, i%files) })
	// A short entry TTL, so that it runs out while rm is at work.
	dir, _ := e.mount(t, fs.Options{EntryTTL: 300 * time.Millisecond})
	e.calls.take()
	t0 := time.Now()
	if out, err := exec.Command("rm", "-rf", filepath.Join(dir, "rm")).CombinedOutput(); err != nil {
		t.Fatalf("rm -rf: %v: %s", err, out)
	}
	took := time.Since(t0)
	got := e.calls.take()
	if got["DeleteBlob"] != dirs*files || got["PutBlob"] != 0 {
		t.Errorf("rm -rf of %d files: %d Delete, %d Put Blob, want %d and 0 (calls %v)", dirs*files, got["DeleteBlob"], got["PutBlob"], dirs*files, got)
	}
	// Per directory (4 with rm/): its listing (taken from the flat
	// listing of rm/ while that is fresh); on a slow machine another when
	// rm opens it the second time (it opens every directory twice) or
	// looks it up after the entry TTL ran out; and rmdir's check. Plus the
	// lookup of rm/ (2) and the flat listing of its subtree. A few per
	// directory, not one per file (before: 791 for these 450 files).
	if lists, most := got["ListBlobs"], 4*4+3; lists > most {
		t.Errorf("rm -rf in %v made %d List calls, want at most %d (calls %v)", took, lists, most, got)
	}
	if got["GetBlobProperties"] != 0 {
		t.Errorf("rm -rf: %d HEAD calls (calls %v)", got["GetBlobProperties"], got)
	}
	// The keep-alive of an emptied directory would come keepDelay later.
	time.Sleep(3 * time.Second)
	if left := e.names(t); len(left) != 0 {
		t.Errorf("after rm -rf the container holds %q", left)
	}
	t.Logf("rm -rf of %d files in %v: calls %v", dirs*files, took, got)
}

// A directory emptied by removing its last file, and not removed itself,
// exists through the mount at once, also when its parent is listed again,
// and after a remount: its marker is written a moment later, or at
// unmount if that comes first.
func TestEmptiedDirectoryStays(t *testing.T) {
	e := newEnv(t)
	e.put(t, "timer/f", "x", nil)
	e.put(t, "unmount/f", "x", nil)
	dir, mt := e.mount(t, fs.Options{EntryTTL: 50 * time.Millisecond, AttrTTL: 50 * time.Millisecond})
	if err := os.Remove(filepath.Join(dir, "timer/f")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // past every TTL: listed again
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
	}
	if strings.Join(names, ",") != "timer,unmount" {
		t.Errorf("the root lists %q, want timer (emptied) and unmount", names)
	}
	if fi, err := os.Stat(filepath.Join(dir, "timer")); err != nil || !fi.IsDir() {
		t.Errorf("emptied directory: %v", err)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "timer")); err != nil || len(ents) != 0 {
		t.Errorf("emptied directory lists %v, %v", ents, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, _, ok := e.get(t, "timer/"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the emptied directory got no marker")
		}
	}
	// Emptied just before unmount: the unmount writes its marker.
	if err := os.Remove(filepath.Join(dir, "unmount/f")); err != nil {
		t.Fatal(err)
	}
	unmount(t, mt)
	if _, _, ok := e.get(t, "unmount/"); !ok {
		t.Error("unmount wrote no marker for the directory emptied just before")
	}
	dir2, _ := e.mount(t, fs.Options{})
	for _, d := range []string{"timer", "unmount"} {
		if fi, err := os.Stat(filepath.Join(dir2, d)); err != nil || !fi.IsDir() {
			t.Errorf("after remount, emptied %s: %v", d, err)
		}
	}
}
