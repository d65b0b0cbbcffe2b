package fs_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/blobfs/blobfs/fs"
)

func ts(t syscall.Timespec) time.Time { return time.Unix(t.Sec, t.Nsec) }

// ctime moves on chmod, chown, write, truncate and rename; an explicit
// atime is stored and returned, and reading does not move it (noatime).
func TestCtimeAndAtime(t *testing.T) {
	e := newEnv(t)
	dir, mt := e.mountShared(t, fs.Options{})
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"chmod", func() error { return os.Chmod(f, 0o600) }},
		{"chown", func() error { return os.Chown(f, 42, 43) }},
		{"write", func() error {
			w, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			if _, err := w.Write([]byte("two")); err != nil {
				return err
			}
			return w.Close()
		}},
		{"truncate", func() error { return os.Truncate(f, 2) }},
		{"rename", func() error { g := f + "2"; err := os.Rename(f, g); f = g; return err }},
	}
	for _, s := range steps {
		before := lstat(t, f)
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		after := lstat(t, f)
		if !ts(after.Ctim).After(ts(before.Ctim)) {
			t.Errorf("%s: ctime %v, was %v: did not move", s.name, ts(after.Ctim), ts(before.Ctim))
		}
	}
	last := lstat(t, f)
	atime := time.Date(2001, 2, 3, 4, 5, 6, 123456789, time.UTC)
	tsAt := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), {Nsec: unix.UTIME_OMIT}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, f, tsAt, 0); err != nil {
		t.Fatalf("utimensat atime: %v", err)
	}
	check := func(f, when string) *syscall.Stat_t {
		t.Helper()
		st := lstat(t, f)
		if !ts(st.Atim).Equal(atime) || !ts(st.Mtim).Equal(ts(last.Mtim)) {
			t.Errorf("%s: atime %v mtime %v; want %v and %v", when, ts(st.Atim), ts(st.Mtim), atime, ts(last.Mtim))
		}
		return st
	}
	st := check(f, "after touch -a")
	if !ts(st.Ctim).After(ts(last.Ctim)) {
		t.Errorf("touch -a: ctime %v did not move from %v", ts(st.Ctim), ts(last.Ctim))
	}
	if b, err := os.ReadFile(f); err != nil || string(b) != "on" {
		t.Fatalf("read: %q, %v", b, err)
	}
	st = check(f, "after a read")
	unmount(t, mt)
	dir, _ = e.mountShared(t, fs.Options{})
	re := check(filepath.Join(dir, "f2"), "after remount")
	// The ctime of the last change (the utimensat) survives, to the second.
	if d := ts(st.Ctim).Sub(ts(re.Ctim)); d < 0 || d >= 2*time.Second {
		t.Errorf("after remount ctime %v, was %v", ts(re.Ctim), ts(st.Ctim))
	}
}

// Making, removing or renaming an entry moves the directory's mtime and
// ctime, without a call of its own; st_nlink of a directory is 2 + its
// subdirectories, or 1 when they are not known, never a wrong 2.
func TestDirectoryTimesAndLinks(t *testing.T) {
	e := newEnv(t)
	dir, mt := e.mountShared(t, fs.Options{})
	d, o := filepath.Join(dir, "d"), filepath.Join(dir, "o")
	for _, p := range []string{d, o} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	made := lstat(t, d)
	in := func(n string) string { return filepath.Join(d, n) }
	steps := []struct {
		name  string
		do    func() error
		dirs  []string
		nlink uint64
		calls map[string]int // nil: not checked
	}{
		{"create", func() error { return os.WriteFile(in("f"), []byte("x"), 0o644) }, []string{d}, 2, map[string]int{"PutBlob": 1}},
		{"mkdir", func() error { return os.Mkdir(in("s"), 0o755) }, []string{d}, 3, nil},
		{"mkdir 2", func() error { return os.Mkdir(in("s2"), 0o755) }, []string{d}, 4, nil},
		{"symlink", func() error { return os.Symlink("f", in("l")) }, []string{d}, 4, map[string]int{"PutBlob": 1}},
		{"mkfifo", func() error { return syscall.Mkfifo(in("p"), 0o644) }, []string{d}, 4, map[string]int{"PutBlob": 1}},
		{"rename within", func() error { return os.Rename(in("f"), in("g")) }, []string{d}, 4, nil},
		{"rename out", func() error { return os.Rename(in("g"), filepath.Join(o, "g")) }, []string{d, o}, 4, nil},
		{"unlink", func() error { return os.Remove(filepath.Join(o, "g")) }, []string{o}, 4, nil},
		{"rmdir", func() error { return os.Remove(in("s")) }, []string{d}, 3, nil},
		{"rename dir out", func() error { return os.Rename(in("s2"), filepath.Join(o, "s2")) }, []string{d, o}, 2, nil},
	}
	for _, s := range steps {
		before := map[string]*syscall.Stat_t{}
		for _, p := range s.dirs {
			before[p] = lstat(t, p)
		}
		e.calls.take()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.calls != nil {
			sameCalls(t, s.name, e.calls.take(), s.calls)
		}
		for _, p := range s.dirs {
			st := lstat(t, p)
			if !ts(st.Mtim).After(ts(before[p].Mtim)) || !ts(st.Ctim).After(ts(before[p].Ctim)) {
				t.Errorf("%s: %s mtime %v ctime %v, were %v %v", s.name, filepath.Base(p),
					ts(st.Mtim), ts(st.Ctim), ts(before[p].Mtim), ts(before[p].Ctim))
			}
		}
		if st := lstat(t, d); uint64(st.Nlink) != s.nlink {
			t.Errorf("%s: d has st_nlink %d, want %d", s.name, st.Nlink, s.nlink)
		}
	}
	if st := lstat(t, o); st.Nlink != 3 {
		t.Errorf("o has st_nlink %d, want 3 (s2)", st.Nlink)
	}
	unmount(t, mt)
	// No attribute cache in the kernel now: every stat asks the mount.
	dir, _ = e.mountShared(t, fs.Options{AttrTTL: -1})
	d, o = filepath.Join(dir, "d"), filepath.Join(dir, "o")
	// Directory times live in memory: after a remount a directory shows
	// the mtime stored by mkdir (or utimens).
	if st := lstat(t, d); !ts(st.Mtim).Equal(ts(made.Mtim)) {
		t.Errorf("after remount d mtime %v, want mkdir's %v", ts(st.Mtim), ts(made.Mtim))
	}
	// Not listed yet: unknown (1); listed: 2 + subdirectories.
	if st := lstat(t, o); st.Nlink != 1 {
		t.Errorf("after remount, before a listing, o has st_nlink %d, want 1", st.Nlink)
	}
	for p, want := range map[string]uint64{d: 2, o: 3} {
		if _, err := os.ReadDir(p); err != nil {
			t.Fatal(err)
		}
		if st := lstat(t, p); uint64(st.Nlink) != want {
			t.Errorf("after remount and ls, %s has st_nlink %d, want %d", filepath.Base(p), st.Nlink, want)
		}
	}
}
