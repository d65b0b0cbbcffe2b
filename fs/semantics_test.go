package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs"
)

// names lists the container's blob names.
func (e *env) names(t *testing.T) []string {
	t.Helper()
	var out []string
	marker := ""
	for {
		page, err := e.ct.List(context.Background(), blob.ListOptions{Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Blobs {
			out = append(out, b.Name)
		}
		if page.NextMarker == "" {
			return out
		}
		marker = page.NextMarker
	}
}

func TestNamesRoundTrip(t *testing.T) {
	e := newEnv(t)
	dir, _ := e.mount(t, fs.Options{})
	names := []string{"with space", "per%cent", "hash#tag", "what?", "plus+sign", "ünïcødé", "日本語/ファイル", "a&b=c;d", "x%2Fy"}
	for _, n := range names {
		p := filepath.Join(dir, n)
		os.MkdirAll(filepath.Dir(p), 0755)
		if err := os.WriteFile(p, []byte("via mount "+n), 0644); err != nil {
			t.Fatalf("%q: %v", n, err)
		}
		e.put(t, "ext/"+n, "via service "+n, nil)
	}
	for _, n := range names {
		if got, _, ok := e.get(t, n); !ok || got != "via mount "+n {
			t.Errorf("blob %q = %q (exists %v)", n, got, ok)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "ext", n)); err != nil || string(b) != "via service "+n {
			t.Errorf("file ext/%q = %q, %v", n, b, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "trailing."), nil, 0644); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("name with a trailing dot: %v, want EINVAL", err)
	}
}

func TestDirectories(t *testing.T) {
	e := newEnv(t)
	e.put(t, "implicit/f", "x", nil)
	e.put(t, "bf", "", map[string]string{"hdi_isfolder": "true"})
	e.put(t, "slash/", "", nil)
	e.put(t, "both", "a blob named like a directory", nil)
	e.put(t, "both/inner", "inner", nil)
	dir, _ := e.mount(t, fs.Options{})

	for _, d := range []string{"implicit", "bf", "slash", "both"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s is not a directory: %v", d, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "both/inner")); err != nil || string(b) != "inner" {
		t.Errorf("both/inner = %q, %v", b, err)
	}

	// mkdir writes our marker style; the empty directory persists.
	if err := os.Mkdir(filepath.Join(dir, "made"), 0750); err != nil {
		t.Fatal(err)
	}
	_, p, ok := e.get(t, "made/")
	if !ok || p.Metadata["hdi_isfolder"] != "true" || p.Metadata["mode"] != "0750" {
		t.Fatalf("marker of mkdir: exists %v, %+v", ok, p)
	}

	// rmdir of a non-empty directory.
	if err := os.Remove(filepath.Join(dir, "implicit")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir non-empty: %v, want ENOTEMPTY", err)
	}
	// The last file of a marker-less directory goes while a user is in it.
	if err := os.Remove(filepath.Join(dir, "implicit/f")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "implicit")); err != nil || !fi.IsDir() {
		t.Fatalf("emptied directory vanished: %v", err)
	}
	// Its marker is written a moment later (not at once: rm -r would
	// remove the directory next).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, _, ok := e.get(t, "implicit/"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("emptied directory got no marker")
		}
	}
	for _, d := range []string{"implicit", "bf", "slash", "made"} {
		if err := os.Remove(filepath.Join(dir, d)); err != nil {
			t.Errorf("rmdir %s: %v", d, err)
		}
	}
	left := e.names(t)
	want := []string{"both", "both/inner"}
	if !slices.Equal(left, want) {
		t.Errorf("after rmdirs the container holds %q, want %q", left, want)
	}
}

func TestWrites(t *testing.T) {
	e := newEnv(t)
	dir, _ := e.mount(t, fs.Options{})
	p := filepath.Join(dir, "f")

	// touch: an empty blob.
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := e.get(t, "f"); !ok || got != "" {
		t.Fatalf("touch: %q %v", got, ok)
	}

	steps := []struct {
		name string
		do   func(f *os.File) error
		want []byte
	}{
		{"write at offsets out of order", func(f *os.File) error {
			if _, err := f.WriteAt([]byte("world"), 6); err != nil {
				return err
			}
			_, err := f.WriteAt([]byte("hello "), 0)
			return err
		}, []byte("hello world")},
		{"sparse write past the end", func(f *os.File) error {
			_, err := f.WriteAt([]byte("!"), 20)
			return err
		}, append([]byte("hello world"), append(make([]byte, 9), '!')...)},
		{"truncate down", func(f *os.File) error { return f.Truncate(5) }, []byte("hello")},
		{"truncate up", func(f *os.File) error { return f.Truncate(8) }, []byte("hello\x00\x00\x00")},
	}
	for _, s := range steps {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.do(f); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		// Reading while open for write returns what was written.
		got := make([]byte, len(s.want)+10)
		n, err := f.ReadAt(got, 0)
		if (err != nil && err != io.EOF) || !bytes.Equal(got[:n], s.want) {
			t.Fatalf("%s: read while open %q, %v; want %q", s.name, got[:n], err, s.want)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("%s: close: %v", s.name, err)
		}
		if got, _, _ := e.get(t, "f"); got != string(s.want) {
			t.Fatalf("%s: blob %q, want %q", s.name, got, s.want)
		}
	}

	// O_APPEND and O_TRUNC.
	os.WriteFile(p, []byte("abc"), 0644)
	a, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	a.Write([]byte("def"))
	a.Write([]byte("ghi"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := e.get(t, "f"); got != "abcdefghi" {
		t.Fatalf("append: %q", got)
	}
	// truncate(2) of a closed file.
	if err := os.Truncate(p, 2); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := e.get(t, "f"); got != "ab" {
		t.Fatalf("truncate(2): %q", got)
	}
}

// The kernel sends RELEASE after close() has returned, so a truncate(2)
// by path can arrive while the writer's handle is flushed but not yet
// released. A mapping holds that window open: close() flushes, RELEASE
// waits for munmap. The truncate must still reach the service.
func TestTruncateBetweenCloseAndRelease(t *testing.T) {
	e := newEnv(t)
	dir, _ := e.mount(t, fs.Options{})
	p := filepath.Join(dir, "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, 5, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 1); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(p); err != nil || fi.Size() != 1 {
		t.Errorf("after truncate: %v, %v; want size 1", fi, err)
	}
	if got, _, _ := e.get(t, "f"); got != "h" {
		t.Errorf("blob before release = %q, want %q", got, "h")
	}
	if err := syscall.Munmap(m); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := e.get(t, "f"); got != "h" {
		t.Errorf("blob after release = %q, want %q", got, "h")
	}
}

// TestTruncateRightAfterClose truncates by path the moment close() has
// returned, many times: the writer's RELEASE then races the truncate, and
// used to close the staged file between the truncate and its commit,
// losing it (about 2 in 100 here; the file went to lost+found). Every
// truncate must reach the service.
func TestTruncateRightAfterClose(t *testing.T) {
	e := newEnv(t)
	dir, _ := e.mount(t, fs.Options{})
	const n = 300
	var lost []string
	for i := range n {
		name := fmt.Sprintf("f%03d", i)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Truncate(p, 1); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := e.get(t, name); got != "h" {
			lost = append(lost, fmt.Sprintf("%s=%q", name, got))
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d truncates did not reach the service: %v", len(lost), n, lost)
	}
}

// TestMappedWriteAfterClose stores through a shared mapping after the
// file's close(): the kernel writes the page back when the mapping goes,
// after the last FLUSH and before the RELEASE, so no close() commits it.
// It used to stay in the cache for lost+found, the blob unchanged and the
// file reading its old content; the last RELEASE now commits it.
func TestMappedWriteAfterClose(t *testing.T) {
	e := newEnv(t)
	dir, _ := e.mount(t, fs.Options{})
	p := filepath.Join(dir, "m")
	if err := os.WriteFile(p, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, 5, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	copy(m, "HELLO")
	if err := syscall.Munmap(m); err != nil {
		t.Fatal(err)
	}
	// The RELEASE, and with it the commit, comes after munmap returns.
	deadline := time.Now().Add(10 * time.Second)
	got, _, _ := e.get(t, "m")
	for got != "HELLO" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		got, _, _ = e.get(t, "m")
	}
	if got != "HELLO" {
		t.Errorf("blob = %q, want %q", got, "HELLO")
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "HELLO" {
		t.Errorf("file reads %q, %v; want %q", b, err, "HELLO")
	}
}

// failing makes commits fail as an authorization failure would.
type failing struct {
	fs.Store
}

var errDenied = &blob.StorageError{Op: "PutBlob", Status: 403, Code: "AuthorizationPermissionMismatch"}

func (failing) Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error) {
	return nil, errDenied
}

func (failing) PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error) {
	return nil, errDenied
}

func TestFailedUploadIsAnError(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	mt, err := fs.MountStore(context.Background(), dir, failing{e.mct}, fs.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mt.Unmount(context.Background()) })
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("data"))
	if err := f.Sync(); !errors.Is(err, syscall.EACCES) {
		t.Errorf("fsync: %v, want EACCES", err)
	}
	if err := f.Close(); !errors.Is(err, syscall.EACCES) {
		t.Errorf("close: %v, want EACCES", err)
	}
}

func TestRename(t *testing.T) {
	e := newEnv(t)
	for i, n := range []string{"d/a", "d/sub/b", "d/sub/deeper/c"} {
		e.put(t, n, string(rune('a'+i)), map[string]string{"keep": "me"})
	}
	dir, _ := e.mount(t, fs.Options{})

	// A directory moves with everything below it.
	if err := os.Rename(filepath.Join(dir, "d"), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	names := e.names(t)
	want := []string{"moved/", "moved/a", "moved/sub/b", "moved/sub/deeper/c"}
	if !slices.Equal(names, want) && !slices.Equal(names, want[1:]) {
		t.Fatalf("after directory rename: %q", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "moved/sub/deeper/c")); string(b) != "c" {
		t.Fatalf("moved content %q", b)
	}
	if _, p, _ := e.get(t, "moved/a"); p.Metadata["keep"] != "me" {
		t.Fatalf("metadata lost in the move: %v", p.Metadata)
	}

	// A file still open for writing moves; later writes land at the new name.
	f, err := os.Create(filepath.Join(dir, "open"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("one "))
	f.Sync()
	if err := os.Rename(filepath.Join(dir, "open"), filepath.Join(dir, "moved/a")); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("two"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := e.get(t, "moved/a"); got != "one two" {
		t.Fatalf("renamed open file: %q", got)
	}
	if _, _, ok := e.get(t, "open"); ok {
		t.Fatal("source of the rename still exists")
	}
}

// A file renamed while open, with nothing written since its last commit,
// has nothing to commit at close: the move carried its content. Another
// writer may then replace the new name, and the close must not put the old
// content back, or keep it aside as a conflict, or send anything at all.
func TestRenameOfCommittedOpenFileAddsNoChange(t *testing.T) {
	e := newEnv(t)
	dir, _ := e.mount(t, fs.Options{})
	f, err := os.Create(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("published")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "tmp"), filepath.Join(dir, "shared")); err != nil {
		t.Fatal(err)
	}
	e.put(t, "shared", "theirs", nil)
	e.calls.take()
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got, _, _ := e.get(t, "shared"); got != "theirs" {
		t.Errorf("shared = %q after the close, want the other writer's %q", got, "theirs")
	}
	if names := e.names(t); !slices.Equal(names, []string{"shared"}) {
		t.Errorf("blobs %q, want only shared", names)
	}
	if c := e.calls.take(); len(c) != 0 {
		t.Errorf("close sent %v, want nothing", c)
	}
}

// held holds one kind of call ("Delete", "Copy" or "Upload") for a while, after
// saying that one started: the test acts while the service is busy.
type held struct {
	fs.Store
	op      string
	delay   time.Duration
	started chan struct{}
}

func (h *held) hold(op string) {
	if op == h.op {
		select {
		case h.started <- struct{}{}:
		default: // a second call: a regression, which must fail, not hang
		}
		time.Sleep(h.delay)
	}
}

func (h *held) Delete(ctx context.Context, name string, cond blob.Conditions) error {
	h.hold("Delete")
	return h.Store.Delete(ctx, name, cond)
}

func (h *held) Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error) {
	h.hold("Upload")
	return h.Store.Upload(ctx, name, data, opts)
}

func (h *held) Copy(ctx context.Context, req blob.CopyRequest) (*blob.Properties, error) {
	h.hold("Copy")
	return h.Store.Copy(ctx, req)
}

func (h *held) CopyFrom(ctx context.Context, dst string, src *blob.Properties, md map[string]string, dstCond blob.Conditions) (*blob.Properties, error) {
	h.hold("Copy")
	return h.Store.CopyFrom(ctx, dst, src, md, dstCond)
}

// A file closed while it is being removed, by unlink or by a rename over
// it, is gone: its close must not fail, and neither its close nor its
// RELEASE may upload anything. An upload then would race the Delete or
// the Copy: deleted or overwritten right after, or failing as a conflict
// (a .conflict-* blob). Nor may what unlink copied aside for a reader be
// kept as a change never committed, for the next mount's lost+found.
func TestCloseDuringRemoval(t *testing.T) {
	rm := func(dir string) error { return os.Remove(filepath.Join(dir, "f")) }
	mv := func(dir string) error { return os.Rename(filepath.Join(dir, "src"), filepath.Join(dir, "f")) }
	for _, tc := range []struct {
		name   string
		held   string // the call under way while the other side goes
		write  bool   // open for writing, and written; else read
		remove func(dir string) error
		// closeFirst: the close starts first and its upload is held;
		// else the removal, its Delete or Copy held.
		closeFirst bool
		uploads    int      // Put Blob and Put Block (List) calls
		want       []string // the blobs afterwards
	}{
		{"reader, unlink", "Delete", false, rm, false, 0, []string{"src"}},
		{"writer, unlink", "Delete", true, rm, false, 0, []string{"src"}},
		{"writer, rename over it", "Copy", true, mv, false, 0, []string{"f"}},
		// The upload of a close already under way lands first.
		{"unlink while a close uploads", "Upload", true, rm, true, 1, []string{"src"}},
		{"rename over a file while its close uploads", "Upload", true, mv, true, 1, []string{"f"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.put(t, "f", "old", nil)
			e.put(t, "src", "renamed", nil)
			st := &held{Store: e.mct, op: tc.held, delay: 500 * time.Millisecond, started: make(chan struct{}, 1)}
			cache := t.TempDir()
			dir, mt := e.mountStore(t, st, fs.Options{CacheDir: cache})
			os.Stat(filepath.Join(dir, "src")) // looked up before the calls are counted
			var f *os.File
			var err error
			if tc.write {
				if f, err = os.OpenFile(filepath.Join(dir, "f"), os.O_WRONLY, 0); err == nil {
					_, err = f.Write([]byte("mine"))
				}
			} else if f, err = os.Open(filepath.Join(dir, "f")); err == nil {
				_, err = io.ReadAll(f)
			}
			if err != nil {
				t.Fatal(err)
			}
			e.calls.take()
			var closeErr, removeErr error
			if tc.closeFirst {
				closed := make(chan error, 1)
				go func() { closed <- f.Close() }()
				<-st.started
				removeErr = tc.remove(dir)
				closeErr = <-closed
			} else {
				removed := make(chan error, 1)
				go func() { removed <- tc.remove(dir) }()
				<-st.started
				closeErr = f.Close()
				removeErr = <-removed
			}
			if closeErr != nil {
				t.Errorf("close: %v", closeErr)
			}
			if removeErr != nil {
				t.Fatalf("removal: %v", removeErr)
			}
			unmount(t, mt) // waits for the RELEASE, which comes after close returned
			calls := e.calls.take()
			if n := calls["PutBlob"] + calls["PutBlock"] + calls["PutBlockList"]; n != tc.uploads {
				t.Errorf("%d uploads, want %d: %v", n, tc.uploads, calls)
			}
			if names := e.names(t); !slices.Equal(names, tc.want) {
				t.Errorf("blobs %q, want %q", names, tc.want)
			}
			if got, _, ok := e.get(t, "f"); ok && got != "renamed" {
				t.Errorf("f = %q, want the renamed file's %q", got, "renamed")
			}
			_, mt2 := e.mount(t, fs.Options{CacheDir: cache})
			if kept, _ := filepath.Glob(filepath.Join(cache, "lost+found", "*")); len(kept) != 0 {
				t.Errorf("lost+found holds %q, want nothing", kept)
			}
			unmount(t, mt2)
		})
	}
}

func TestSymlinks(t *testing.T) {
	e := newEnv(t)
	e.put(t, "theirs", "target/of/theirs", map[string]string{"is_symlink": "true"})
	dir, _ := e.mount(t, fs.Options{})
	if err := os.Symlink("../some target", filepath.Join(dir, "mine")); err != nil {
		t.Fatal(err)
	}
	got, p, _ := e.get(t, "mine")
	if got != "../some target" || p.Metadata["is_symlink"] != "true" {
		t.Fatalf("symlink blob %q %v", got, p.Metadata)
	}
	for name, want := range map[string]string{"mine": "../some target", "theirs": "target/of/theirs"} {
		if l, err := os.Readlink(filepath.Join(dir, name)); err != nil || l != want {
			t.Errorf("readlink %s = %q, %v", name, l, err)
		}
	}
}

func TestUnsupported(t *testing.T) {
	e := newEnv(t)
	dir, _ := e.mount(t, fs.Options{})
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0644)
	cases := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"link", os.Link(filepath.Join(dir, "f"), filepath.Join(dir, "hard")), syscall.EPERM},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Blocks == 0 || st.Bavail == 0 || st.Bsize == 0 {
		t.Errorf("statfs: %+v %v", st, err)
	}
}

func TestUnlinkOpenFile(t *testing.T) {
	e := newEnv(t)
	content := bytes.Repeat([]byte("0123456789"), 100000)
	e.put(t, "r", string(content), nil)
	dir, _ := e.mount(t, fs.Options{})
	r, err := os.Open(filepath.Join(dir, "r"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := os.Create(filepath.Join(dir, "w"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("written"))
	for _, n := range []string{"r", "w"} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("reading the unlinked file: %d bytes, %v", len(got), err)
	}
	if _, err := w.Write([]byte(" more")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if names := e.names(t); len(names) != 0 {
		t.Fatalf("unlinked files in the container: %q", names)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("unlinked files listed: %v", ents)
	}
}

// With caching off, another client's change is seen at once; a changed
// ETag at open drops the kernel's cached pages even when the size is equal.
func TestFreshness(t *testing.T) {
	e := newEnv(t)
	e.put(t, "f", "version-1", nil)
	dir, _ := e.mount(t, fs.Options{AttrTTL: -1, EntryTTL: -1, NegativeTTL: -1})
	p := filepath.Join(dir, "f")
	if b, _ := os.ReadFile(p); string(b) != "version-1" {
		t.Fatalf("first read %q", b)
	}
	e.put(t, "f", "version-2", nil)
	if b, _ := os.ReadFile(p); string(b) != "version-2" {
		t.Fatalf("after another client's change: %q", b)
	}
	e.put(t, "g", "new", nil)
	if b, err := os.ReadFile(filepath.Join(dir, "g")); err != nil || string(b) != "new" {
		t.Fatalf("new blob: %q %v", b, err)
	}
	if err := e.ct.Delete(context.Background(), "g", blob.Conditions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "g")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted blob: %v", err)
	}
}

func TestModeOptions(t *testing.T) {
	e := newEnv(t)
	e.put(t, "d/f", "x", nil)
	dir, mt := e.mount(t, fs.Options{FileMode: 0666, DirMode: 0777, Umask: 0027})
	st := mt.Stats()
	for name, want := range map[string]os.FileMode{"d": 0750 | os.ModeDir, "d/f": 0640} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: %v %v, want %v", name, fi.Mode(), err, want)
		}
	}
	if after := mt.Stats(); after.LookupCacheHits+after.LookupCacheMisses <= st.LookupCacheHits+st.LookupCacheMisses {
		t.Errorf("lookups not counted: %+v", after)
	}
}
