package fs_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/blobfs/blobfs/fs"
)

// nobody is the unprivileged user the tests act as.
const nobody = 65534

// mountShared mounts with AllowOther, as a multi-user machine does: the
// kernel then checks modes and owners (default_permissions), and other
// users can reach the mountpoint (t.TempDir's parent is 0700).
func (e *env) mountShared(t *testing.T, opts fs.Options) (string, *fs.Mounted) {
	t.Helper()
	opts.AllowOther = true
	dir, mt := e.mount(t, opts)
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, mt
}

// asNobody runs a shell script in dir as uid and gid 65534 with no
// supplementary groups, so the kernel's permission checks apply, with
// umask 022.
func asNobody(t *testing.T, dir, script string) {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-ec", "umask 022\n"+script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid 65534: %s: %v\n%s", script, err, out)
	}
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return &st
}

// sharedDirs makes pub (anyone may create), sg (setgid, group 4242) and
// sticky (1777, as /tmp).
func sharedDirs(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []struct {
		name string
		gid  int
		mode os.FileMode
	}{{"pub", 0, 0o777}, {"sg", 4242, 0o777 | os.ModeSetgid}, {"sticky", 0, 0o777 | os.ModeSticky}} {
		p := filepath.Join(dir, d.name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 0, d.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			t.Fatal(err)
		}
	}
}

// New files, directories, symlinks and FIFOs belong to their creator
// (the directory's group in a setgid directory), from the first upload on.
func TestNewInodesBelongToCaller(t *testing.T) {
	e := newEnv(t)
	dir, mt := e.mountShared(t, fs.Options{UID: 1000, GID: 1000})
	sharedDirs(t, dir)
	e.calls.take()
	// cp opens, writes and closes once. (touch would add a Set Blob
	// Metadata, a shell redirection or dd a second Put Blob: they close a dup
	// of the new file, which commits it, before going on.)
	asNobody(t, dir, "cp /etc/passwd pub/one")
	sameCalls(t, "create as uid 65534", e.calls.take(), map[string]int{"PutBlob": 1})
	asNobody(t, dir, `cd pub; echo data > f; mkdir d; ln -s f l; mkfifo p; chmod 0600 f
cd ../sg; touch f; mkdir d`)
	want := []struct {
		name     string
		typ      uint32
		uid, gid uint32
		perm     uint32 // 0: not checked (symlinks)
	}{
		{"pub/one", syscall.S_IFREG, nobody, nobody, 0o644},
		{"pub/f", syscall.S_IFREG, nobody, nobody, 0o600},
		{"pub/d", syscall.S_IFDIR, nobody, nobody, 0o755},
		{"pub/l", syscall.S_IFLNK, nobody, nobody, 0},
		{"pub/p", syscall.S_IFIFO, nobody, nobody, 0o644},
		{"sg/f", syscall.S_IFREG, nobody, 4242, 0o644},
		{"sg/d", syscall.S_IFDIR, nobody, 4242, 0o755 | syscall.S_ISGID},
	}
	check := func(dir, when string) {
		t.Helper()
		for _, w := range want {
			st := lstat(t, filepath.Join(dir, w.name))
			if st.Mode&syscall.S_IFMT != w.typ || st.Uid != w.uid || st.Gid != w.gid ||
				(w.perm != 0 && st.Mode&07777 != w.perm) {
				t.Errorf("%s %s: mode %o uid %d gid %d; want type %o perm %o uid %d gid %d",
					when, w.name, st.Mode, st.Uid, st.Gid, w.typ, w.perm, w.uid, w.gid)
			}
		}
	}
	check(dir, "mounted")
	if _, p, ok := e.get(t, "pub/f"); !ok || p.Metadata["uid"] != "65534" || p.Metadata["gid"] != "65534" {
		t.Errorf("pub/f metadata: %v", p)
	}
	unmount(t, mt)
	dir, _ = e.mountShared(t, fs.Options{UID: 1000, GID: 1000})
	check(dir, "after remount")
	// Being the owner counts: the creator may chmod, write again,
	// truncate, and rename in a sticky directory.
	asNobody(t, dir, `chmod 0640 pub/f; echo more >> pub/f; truncate -s 7 pub/f
chmod 0700 pub/d; touch pub/d/in; touch sticky/a; mv sticky/a sticky/b`)
	if b, err := os.ReadFile(filepath.Join(dir, "pub/f")); err != nil || string(b) != "data\nmo" {
		t.Errorf("pub/f after the owner's append and truncate: %q, %v", b, err)
	}
	if st := lstat(t, filepath.Join(dir, "sticky/b")); st.Uid != nobody {
		t.Errorf("sticky/b: uid %d", st.Uid)
	}
}

// open(O_CREAT) and mkdir with mode 0 make mode 0000; the umask applies.
func TestCreateModeZero(t *testing.T) {
	e := newEnv(t)
	dir, mt := e.mountShared(t, fs.Options{})
	sharedDirs(t, dir)
	fd, err := syscall.Open(filepath.Join(dir, "f0"), syscall.O_CREAT|syscall.O_WRONLY|syscall.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Close(fd); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d0"), 0); err != nil {
		t.Fatal(err)
	}
	asNobody(t, dir, "cd pub; umask 077; touch u; mkdir ud; umask 0; touch u0; mkdir ud0")
	want := map[string]uint32{"f0": 0, "d0": 0, "pub/u": 0o600, "pub/ud": 0o700, "pub/u0": 0o666, "pub/ud0": 0o777}
	check := func(dir, when string) {
		t.Helper()
		for name, perm := range want {
			if st := lstat(t, filepath.Join(dir, name)); st.Mode&07777 != perm {
				t.Errorf("%s %s: mode %o, want %o", when, name, st.Mode&07777, perm)
			}
		}
	}
	check(dir, "mounted")
	unmount(t, mt)
	dir, _ = e.mountShared(t, fs.Options{})
	check(dir, "after remount")
}

// Every operation on a name longer than NAME_MAX (255 bytes) fails with
// ENAMETOOLONG, and nothing reaches the service; 255 bytes work.
func TestNameMax(t *testing.T) {
	e := newEnv(t)
	dir, mt := e.mountShared(t, fs.Options{})
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	ok := strings.Repeat("k", 255)
	for _, base := range []string{dir, filepath.Join(dir, "sub")} {
		long := filepath.Join(base, strings.Repeat("é", 128)) // 256 bytes
		okPath := filepath.Join(base, ok)
		if err := os.WriteFile(okPath, []byte("x"), 0o644); err != nil {
			t.Fatalf("255-byte name: %v", err)
		}
		ops := []struct {
			name string
			do   func() error
		}{
			{"lstat", func() error { _, err := os.Lstat(long); return err }},
			{"create", func() error { return os.WriteFile(long, nil, 0o644) }},
			{"mkdir", func() error { return os.Mkdir(long, 0o755) }},
			{"mkfifo", func() error { return syscall.Mkfifo(long, 0o644) }},
			{"mknod", func() error { return syscall.Mknod(long, syscall.S_IFREG|0o644, 0) }},
			{"symlink", func() error { return os.Symlink("target", long) }},
			{"rename to", func() error { return os.Rename(okPath, long) }},
			{"rename from", func() error { return os.Rename(long, okPath) }},
			{"unlink", func() error { return syscall.Unlink(long) }},
			{"rmdir", func() error { return syscall.Rmdir(long) }},
		}
		for _, op := range ops {
			if err := op.do(); !errors.Is(err, syscall.ENAMETOOLONG) {
				t.Errorf("%s of a 256-byte name in %s: %v, want ENAMETOOLONG", op.name, base, err)
			}
		}
	}
	unmount(t, mt)
	dir, _ = e.mountShared(t, fs.Options{})
	for _, base := range []string{dir, filepath.Join(dir, "sub")} {
		ents, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, de := range ents {
			if de.Name() != "sub" {
				names = append(names, de.Name())
			}
		}
		if len(names) != 1 || names[0] != ok {
			t.Errorf("after remount %s holds %q, want only the 255-byte name", base, names)
		}
	}
}
