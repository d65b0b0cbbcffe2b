package fs_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/blobfs/blobfs/fs"
)

// FIFOs, devices and sockets are zero-length blobs whose metadata keeps
// type, mode and rdev: stat, readdir, chmod, chown, mv and rm treat them
// as what they are, after a remount too, and the kernel does their I/O.
func TestSpecialFiles(t *testing.T) {
	e := newEnv(t)
	dir, mt := e.mountShared(t, fs.Options{})
	at := func(n string) string { return filepath.Join(dir, n) }
	if err := syscall.Mkfifo(at("p"), 0o640); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	if err := syscall.Mknod(at("c"), syscall.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatalf("mknod c: %v", err)
	}
	if err := syscall.Mknod(at("b"), syscall.S_IFBLK|0o660, int(unix.Mkdev(7, 9))); err != nil {
		t.Fatalf("mknod b: %v", err)
	}
	if err := syscall.Mknod(at("gone"), syscall.S_IFCHR|0o600, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatalf("mknod gone: %v", err)
	}
	l, err := net.Listen("unix", at("s"))
	if err != nil {
		t.Fatalf("bind: %v", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	defer l.Close()
	checkSocket(t, l, at("s"))
	checkFIFO(t, at("p"))

	if err := os.Chmod(at("p"), 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(at("s"), 42, 43); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(at("b"), at("b2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(at("gone")); err != nil {
		t.Fatal(err)
	}

	um := uint32(syscall.Umask(0))
	syscall.Umask(int(um))
	want := []struct {
		name     string
		typ      uint32
		perm     uint32
		rdev     uint64
		uid, gid uint32
		mode     os.FileMode // what readdir says
	}{
		{"p", syscall.S_IFIFO, 0o604, 0, 0, 0, os.ModeNamedPipe},
		{"c", syscall.S_IFCHR, 0o600 &^ um, unix.Mkdev(1, 3), 0, 0, os.ModeDevice | os.ModeCharDevice},
		{"b2", syscall.S_IFBLK, 0o660 &^ um, unix.Mkdev(7, 9), 0, 0, os.ModeDevice},
		{"s", syscall.S_IFSOCK, 0o777 &^ um, 0, 42, 43, os.ModeSocket},
	}
	check := func(dir, when string) {
		t.Helper()
		types := map[string]os.FileMode{}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range ents {
			types[de.Name()] = de.Type()
		}
		if len(types) != len(want) {
			t.Errorf("%s: readdir %v, want the %d special files only", when, types, len(want))
		}
		for _, w := range want {
			st := lstat(t, filepath.Join(dir, w.name))
			if st.Mode&syscall.S_IFMT != w.typ || st.Mode&07777 != w.perm || st.Rdev != w.rdev ||
				st.Uid != w.uid || st.Gid != w.gid || st.Size != 0 {
				t.Errorf("%s %s: mode %o rdev %#x uid %d gid %d size %d; want %o|%o rdev %#x uid %d gid %d",
					when, w.name, st.Mode, st.Rdev, st.Uid, st.Gid, st.Size, w.typ, w.perm, w.rdev, w.uid, w.gid)
			}
			if types[w.name] != w.mode {
				t.Errorf("%s: readdir type of %s is %v, want %v", when, w.name, types[w.name], w.mode)
			}
		}
	}
	check(dir, "mounted")
	for name, ft := range map[string]string{"p": "fifo", "c": "chr", "b2": "blk", "s": "sock"} {
		content, p, ok := e.get(t, name)
		if !ok || content != "" || p.Metadata["filetype"] != ft {
			t.Errorf("blob %s: %q %v, want zero-length with filetype=%s", name, content, p, ft)
		}
	}
	if _, p, _ := e.get(t, "c"); p.Metadata["rdev"] != "259" {
		t.Errorf("blob c: rdev %q, want 259 (1,3)", p.Metadata["rdev"])
	}
	l.Close() // a bound socket keeps the mount busy
	unmount(t, mt)
	dir, _ = e.mountShared(t, fs.Options{})
	check(dir, "after remount")
	checkFIFO(t, filepath.Join(dir, "p"))
	if err := os.Remove(filepath.Join(dir, "p")); err != nil {
		t.Fatalf("rm fifo after remount: %v", err)
	}
	if _, _, ok := e.get(t, "p"); ok {
		t.Error("rm of the fifo left its blob")
	}
}

// checkFIFO passes a message through the FIFO at p.
func checkFIFO(t *testing.T, p string) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err == nil {
			_, err = w.Write([]byte("through the pipe"))
			w.Close()
		}
		errc <- err
	}()
	r, err := os.Open(p)
	if err != nil {
		t.Fatalf("open fifo: %v", err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if werr := <-errc; werr != nil || err != nil || string(b) != "through the pipe" {
		t.Fatalf("fifo: read %q, %v; writer %v", b, err, werr)
	}
}

// checkSocket connects to the socket bound at p.
func checkSocket(t *testing.T, l net.Listener, p string) {
	t.Helper()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := net.Dial("unix", p)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close()
	if b, err := io.ReadAll(c); err != nil || string(b) != "hi" {
		t.Fatalf("socket: %q, %v", b, err)
	}
}
