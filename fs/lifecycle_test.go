package fs_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blobfs/blobfs/fs"
)

// These are issue 20's scenarios: a file's commit racing a removal, a
// move or a metadata change made by this mount, and a blob replaced by
// another client. Each names its scenario.

// conflicts lists the ".conflict-" blobs: none may appear unless another
// client wrote.
func (e *env) conflicts(t *testing.T) []string {
	var out []string
	for _, n := range e.names(t) {
		if strings.Contains(n, ".conflict-") {
			out = append(out, n)
		}
	}
	return out
}

// Scenarios 1 and 2: rm or mv of a new file while its first upload is
// under way. The removal or move waits for the upload and then acts on
// the blob it made: nothing is left under a removed name, the moved data
// is under the new name only, and nobody conflicts with himself.
func TestRemovalDuringFirstUpload(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(dir string) error
		want []string // blobs afterwards
	}{
		{"rm", func(dir string) error { return os.Remove(filepath.Join(dir, "new")) }, nil},
		{"mv", func(dir string) error { return os.Rename(filepath.Join(dir, "new"), filepath.Join(dir, "moved")) }, []string{"moved"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			st := &held{Store: e.mct, op: "Upload", delay: 500 * time.Millisecond, started: make(chan struct{}, 1)}
			cache := t.TempDir()
			dir, mt := e.mountStore(t, st, fs.Options{CacheDir: cache})
			f, err := os.Create(filepath.Join(dir, "new"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("data")); err != nil {
				t.Fatal(err)
			}
			closed := make(chan error, 1)
			go func() { closed <- f.Close() }()
			<-st.started
			time.Sleep(150 * time.Millisecond) // into the upload, as in the report
			if err := tc.op(dir); err != nil {
				t.Fatalf("%s during the upload: %v", tc.name, err)
			}
			if err := <-closed; err != nil {
				t.Errorf("close: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "new")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stat of the old name: %v, want ENOENT", err)
			}
			unmount(t, mt)
			if names := e.names(t); !slices.Equal(names, tc.want) {
				t.Errorf("blobs %q, want %q", names, tc.want)
			}
			if len(tc.want) > 0 {
				if got, _, _ := e.get(t, tc.want[0]); got != "data" {
					t.Errorf("%s = %q, want %q", tc.want[0], got, "data")
				}
			}
			// Nothing of it waits for the next mount either.
			_, mt2 := e.mount(t, fs.Options{CacheDir: cache})
			unmount(t, mt2)
			if names := e.names(t); !slices.Equal(names, tc.want) {
				t.Errorf("after a remount: blobs %q, want %q", names, tc.want)
			}
			if kept, _ := filepath.Glob(filepath.Join(cache, "*", "*", "lost+found", "*")); len(kept) != 0 {
				t.Errorf("lost+found holds %q, want nothing", kept)
			}
		})
	}
}

// openToOthers lets another user reach dir (t.TempDir makes 0700 parents).
func openToOthers(t *testing.T, dir string) {
	for d := filepath.Dir(dir); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// Scenario 3: a non-owner writes to a setuid file; the kernel clears the
// bit with a setattr of its own in the middle of the write. That change
// goes with the writer's commit instead of changing the blob's ETag under
// it: close() succeeds, the content is the new one, and no conflict copy
// appears, twice in a row.
func TestSetuidClearDoesNotConflict(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to act as another user")
	}
	e := newEnv(t)
	dir, _ := e.mountStore(t, e.mct, fs.Options{AllowOther: true})
	openToOthers(t, dir)
	name := filepath.Join(dir, "s")
	if err := os.WriteFile(name, []byte("root's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, content := range []string{"first\n", "second\n"} {
		if err := os.Chmod(name, 0o4777); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			"sh", "-c", `printf %s "$1" >> "$2"`, "sh", content, name).CombinedOutput()
		if err != nil {
			t.Fatalf("write %d as nobody: %v: %s", i, err, out)
		}
	}
	got, p, ok := e.get(t, "s")
	if want := "root's\nfirst\nsecond\n"; !ok || got != want {
		t.Errorf("blob = %q (exists %v), want %q", got, ok, want)
	}
	if c := e.conflicts(t); len(c) != 0 {
		t.Errorf("conflict copies %q, want none", c)
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSetuid != 0 {
		t.Errorf("mode %v: the kernel's clearing of setuid was lost", fi.Mode())
	}
	if p != nil && p.Metadata["mode"] != "0777" {
		t.Errorf("stored mode %q, want 0777", p.Metadata["mode"])
	}
}

// Scenario 4: a blob listed by this mount, then replaced by another
// client before anyone opened it: reading it gives the new version (a
// consistent one), not ESTALE for the attribute TTL.
func TestReplacedAfterListing(t *testing.T) {
	e := newEnv(t)
	e.put(t, "f", "listed version", nil)
	dir, _ := e.mount(t, fs.Options{})
	if _, err := os.ReadDir(dir); err != nil {
		t.Fatal(err)
	}
	e.put(t, "f", "the other client's version", nil)
	for i := range 2 {
		got, err := os.ReadFile(filepath.Join(dir, "f"))
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if string(got) != "the other client's version" {
			t.Errorf("read %d = %q, want the new version", i, got)
		}
	}
}

// Scenario 8: two mounts write one file; the second's close() fails
// ESTALE and saves its data beside it. Reading the file on that mount
// then gives the winner's content, not ESTALE.
func TestConflictLoserReadsWinner(t *testing.T) {
	e := newEnv(t)
	e.put(t, "f", "base", nil)
	a, _ := e.mount(t, fs.Options{})
	b, _ := e.mount(t, fs.Options{})
	fa, err := os.OpenFile(filepath.Join(a, "f"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.OpenFile(filepath.Join(b, "f"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fa.Write([]byte("winner"))
	fb.Write([]byte("loser"))
	if err := fa.Close(); err != nil {
		t.Fatalf("first close: %v", err)
	}
	if err := fb.Close(); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("second close: %v, want ESTALE", err)
	}
	// The kernel sends the loser's RELEASE after close() returned.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := os.ReadFile(filepath.Join(b, "f"))
		if err == nil && string(got) == "winner" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading f on the losing mount: %q, %v; want %q", got, err, "winner")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := e.conflicts(t); len(c) != 1 {
		t.Errorf("conflict copies %q, want the loser's one", c)
	}
}
