package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/control"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/mountpoint"
)

// In daemon mode, blobfs mount returns non-zero with the background
// process's own reason, and nothing is left mounted.
func TestDaemonReportsFailure(t *testing.T) {
	needFUSE(t)
	az := blobtest.StartT(t, blobtest.Options{})
	tests := []struct {
		name  string
		opts  worldOptions
		extra []string
		mp    func(w *world) string
		want  string
	}{
		{name: "container missing", opts: worldOptions{skipContainer: true, container: "nope"},
			want: `container "nope" does not exist`},
		{name: "listKeys denied", opts: worldOptions{emu: authtest.Options{System: authtest.Identity{DenyListKeys: true}}},
			want: "Storage Account Key Operator Service Role"},
		{name: "mountpoint missing", mp: func(w *world) string { return filepath.Join(w.dir, "no", "such") },
			want: "does not exist: create it"},
		{name: "mountpoint is a file", mp: func(w *world) string {
			p := filepath.Join(w.dir, "file")
			os.WriteFile(p, nil, 0o644)
			return p
		}, want: "is not a directory"},
		{name: "metrics port taken", extra: []string{"--metrics-addr", "PORT"}, want: "--metrics-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.az = az
			w := newWorld(t, tt.opts)
			mp := filepath.Join(w.dir, "mnt")
			os.MkdirAll(mp, 0o755)
			if tt.mp != nil {
				mp = tt.mp(w)
			}
			w.cleanupMount(mp)
			extra := tt.extra
			if len(extra) > 0 && extra[1] == "PORT" {
				// Taken by Azurite itself.
				extra = []string{"--metrics-addr", w.az.Addr()}
			}
			_, stderr, code := w.blobfs(w.env(), w.mountArgs(mp, append(extra, "--auth-wait", "2s")...)...)
			if code == 0 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want non-zero mentioning %q", code, stderr, tt.want)
			}
			if _, mounted := mountpoint.MountType(mp); mounted {
				t.Errorf("%s is mounted after a failed mount", mp)
			}
		})
	}
}

// A blobfs killed with SIGKILL leaves "Transport endpoint is not
// connected"; the next blobfs mount detaches it and mounts, saying so.
func TestStaleMountpointRecovery(t *testing.T) {
	needFUSE(t)
	w := newWorld(t, worldOptions{})
	mp := filepath.Join(w.dir, "mnt")
	os.MkdirAll(mp, 0o755)
	if _, err := w.ct.Upload(context.Background(), "kept.txt", []byte("still here"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	w.cleanupMount(mp)
	fg := exec.Command(binPath, w.mountArgs(mp, "--foreground")...)
	fg.Env = w.env()
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	defer fg.Process.Kill()
	w.waitServing(t, mp)
	if err := fg.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitKilled(t, fg, mp)
	_, err := os.Stat(filepath.Join(mp, "kept.txt"))
	if !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after SIGKILL: stat = %v, want ENOTCONN", err)
	}
	w.mount(mp)
	if b, err := os.ReadFile(filepath.Join(mp, "kept.txt")); err != nil || string(b) != "still here" {
		t.Errorf("after recovery: %q, %v", b, err)
	}
	if !strings.Contains(w.log(), "stale FUSE mount") {
		t.Errorf("no log line about the stale mount:\n%s", w.log())
	}
}

// SIGTERM in the middle of a large copy: the blob is never a truncated
// copy. The copy had not closed the file, so blobfs does not commit it:
// writes after the signal fail, the close fails (EIO), the blob is absent,
// and every byte written is in the cache directory for the next mount.
func TestSIGTERMDuringLargeCopy(t *testing.T) {
	needFUSE(t)
	w := newWorld(t, worldOptions{})
	mp := filepath.Join(w.dir, "mnt")
	os.MkdirAll(mp, 0o755)
	w.cleanupMount(mp)
	fg := exec.Command(binPath, w.mountArgs(mp, "--foreground", "--unmount-timeout", "2m")...)
	fg.Env = w.env()
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	defer fg.Process.Kill()
	w.waitServing(t, mp)

	const chunk, total, signalAt = 1 << 20, 96 << 20, 32 << 20
	f, err := os.Create(filepath.Join(mp, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var written bytes.Buffer
	buf := make([]byte, chunk)
	exited := make(chan error, 1)
	var writeErr error
	for written.Len() < total {
		rand.Read(buf)
		n, err := f.Write(buf)
		written.Write(buf[:n])
		if err != nil {
			writeErr = err
			t.Logf("write after %d bytes: %v", written.Len(), err)
			break
		}
		if written.Len() == signalAt {
			if err := fg.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			go func() { exited <- fg.Wait() }()
		}
	}
	closeErr := f.Close()
	t.Logf("wrote %d bytes, close: %v", written.Len(), closeErr)
	select {
	case err := <-exited:
		t.Logf("blobfs exited: %v", err)
	case <-time.After(3 * time.Minute):
		t.Fatal("blobfs did not exit within 3 minutes of SIGTERM")
	}

	got, err := w.restGet("big.bin")
	switch {
	case err == nil:
		// Only possible if the whole copy got through before the
		// signal was handled, and was closed.
		if !bytes.Equal(got, written.Bytes()) || writeErr != nil || closeErr != nil {
			t.Fatalf("blob big.bin is %d bytes; %d were written (write error %v, close %v): a truncated or wrong blob", len(got), written.Len(), writeErr, closeErr)
		}
	case errors.Is(err, blob.ErrNotFound):
		if !errors.Is(writeErr, syscall.EIO) || !errors.Is(closeErr, syscall.EIO) {
			t.Errorf("blob absent, but write error %v and close error %v: want EIO for both, the program must learn its copy failed", writeErr, closeErr)
		}
		if n := stagedCopies(t, filepath.Join(w.dir, "cache"), written.Bytes()); n != 1 {
			t.Fatalf("blob absent and %d cache files hold the %d bytes written, want 1", n, written.Len())
		}
		if log := w.log(); !strings.Contains(log, "still open for writing at unmount") || !strings.Contains(log, "big.bin") {
			t.Errorf("no log line naming the kept file:\n%s", log)
		}
	default:
		t.Fatal(err)
	}
}

// stagedCopies counts the regular files under dir whose content is want.
func stagedCopies(t *testing.T, dir string, want []byte) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if st, err := d.Info(); err != nil || st.Size() != int64(len(want)) {
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

// mount(8) with -o options goes through /sbin/mount.fuse.blobfs, and
// umount unmounts; the daemon then exits by itself.
func TestMountHelperWithMount8(t *testing.T) {
	needFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("installing the mount helper into /sbin needs root")
	}
	helper := "/sbin/mount.fuse.blobfs"
	if _, err := os.Lstat(helper); err == nil {
		t.Skipf("%s exists already; not replacing an installed helper", helper)
	}
	if err := os.Symlink(binPath, helper); err != nil {
		t.Skipf("cannot install %s: %v", helper, err)
	}
	t.Cleanup(func() {
		if target, _ := os.Readlink(helper); target == binPath {
			os.Remove(helper)
		}
	})
	w := newWorld(t, worldOptions{})
	mp := filepath.Join(w.dir, "mnt")
	os.MkdirAll(mp, 0o755)
	w.cleanupMount(mp)
	opts := strings.Join([]string{
		"blob_endpoint=" + w.az.Endpoint(), "imds_endpoint=" + w.emu.IMDSURL(), "arm_endpoint=" + w.emu.ARMURL(),
		"run_dir=" + w.runDir, "cache_dir=" + filepath.Join(w.dir, "cache"), "log_file=" + filepath.Join(w.dir, "blobfs.log"),
		"allow_other", "_netdev", "nofail", "x-systemd.automount", "entry_ttl=0", "unmount-timeout=20s",
	}, ",")
	out, err := exec.Command("mount", "-t", "fuse.blobfs", w.az.Account()+"/"+w.container, mp, "-o", opts).CombinedOutput()
	if err != nil {
		t.Fatalf("mount -t fuse.blobfs: %v\n%s\nlog:\n%s", err, out, w.log())
	}
	typ, ok := mountpoint.MountType(mp)
	if !ok || typ != "fuse.blobfs" {
		t.Fatalf("mount type %q, %v; want fuse.blobfs", typ, ok)
	}
	if err := os.WriteFile(filepath.Join(mp, "via-fstab.txt"), []byte("mounted by mount(8)"), 0o644); err != nil {
		t.Fatal(err)
	}
	var pid int
	control.Call(context.Background(), w.runDir, mp, "stats", func(m control.Message) {
		if m.Status != nil {
			pid = m.Status.PID
		}
	})
	if out, err := exec.Command("umount", mp).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	if _, ok := mountpoint.MountType(mp); ok {
		t.Fatal("still mounted after umount")
	}
	if b, err := w.restGet("via-fstab.txt"); err != nil || string(b) != "mounted by mount(8)" {
		t.Errorf("blob after umount: %q, %v", b, err)
	}
	waitFor(t, "the daemon to exit after umount", 90*time.Second, func() bool {
		return pid == 0 || syscall.Kill(pid, 0) != nil
	})
	if !strings.Contains(w.log(), "unmounted cleanly") {
		t.Errorf("the daemon did not finish cleanly after umount:\n%s", w.log())
	}
}

// unmount --lazy detaches at once; the daemon finishes and exits cleanly.
func TestUnmountLazy(t *testing.T) {
	needFUSE(t)
	w := newWorld(t, worldOptions{})
	mp := filepath.Join(w.dir, "mnt")
	w.mount(mp)
	if err := os.WriteFile(filepath.Join(mp, "lazy.txt"), []byte("lazy"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := w.pid(mp)
	if out, stderr, code := w.blobfs(w.env(), "unmount", "--lazy", mp); code != 0 {
		t.Fatalf("unmount --lazy: exit %d\n%s%s", code, out, stderr)
	}
	if _, ok := mountpoint.MountType(mp); ok {
		t.Fatal("still mounted after unmount --lazy")
	}
	waitFor(t, "the daemon to exit", 90*time.Second, func() bool { return syscall.Kill(pid, 0) != nil })
	if b, err := w.restGet("lazy.txt"); err != nil || string(b) != "lazy" {
		t.Errorf("blob: %q, %v", b, err)
	}
	if !strings.Contains(w.log(), "unmounted cleanly") {
		t.Errorf("the daemon did not finish cleanly:\n%s", w.log())
	}
	// Nothing is mounted any more: unmount says so.
	if _, stderr, code := w.blobfs(w.env(), "unmount", mp); code == 0 || !strings.Contains(stderr, "nothing is mounted") {
		t.Errorf("unmount of an unmounted dir: exit %d, %q", code, stderr)
	}
}

// Issue 20, scenario 5: an unmount from outside (fusermount3 -u, or
// umount as systemd does at shutdown) followed at once by SIGTERM. The
// kernel has already let go of the mountpoint, so the daemon must finish
// its uploads and exit. When something still holds the FUSE connection
// after the unmount (a copy of the mount in another mount namespace, as
// services with private namespaces have, or a file open on a lazily
// detached mount, as systemd-shutdown leaves), the daemon used to retry
// the unmount, which fails with EINVAL on a directory no longer mounted,
// for its whole --unmount-timeout.
func TestUnmountThenSIGTERM(t *testing.T) {
	needFUSE(t)
	az := blobtest.StartT(t, blobtest.Options{})
	tests := []struct {
		name    string
		hold    string   // what keeps the connection alive after the unmount: "", "namespace", "open file"
		unmount []string // the command run before SIGTERM
	}{
		{name: "fusermount", unmount: []string{"fusermount3", "-u"}},
		{name: "umount", unmount: []string{"umount"}},
		{name: "fusermount-ns", hold: "namespace", unmount: []string{"fusermount3", "-u"}},
		{name: "umount-ns", hold: "namespace", unmount: []string{"umount"}},
		{name: "lazy-open", hold: "open file", unmount: []string{"umount", "-l"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exec.LookPath(tt.unmount[0]); err != nil {
				t.Skip(err)
			}
			w := newWorld(t, worldOptions{az: az})
			mp := filepath.Join(w.dir, "mnt")
			os.MkdirAll(mp, 0o755)
			w.cleanupMount(mp)
			// An unmount timeout far longer than the test may take: the
			// daemon must not wait for it.
			fg := exec.Command(binPath, w.mountArgs(mp, "--foreground", "--unmount-timeout", "10m")...)
			fg.Env = w.env()
			if err := fg.Start(); err != nil {
				t.Fatal(err)
			}
			defer fg.Process.Kill()
			exited := make(chan error, 1)
			go func() { exited <- fg.Wait() }()
			w.waitServing(t, mp)
			if err := os.WriteFile(filepath.Join(mp, "before.txt"), []byte("closed before the unmount"), 0o644); err != nil {
				t.Fatal(err)
			}
			switch tt.hold {
			case "namespace":
				// A private copy of the mount table, holding the mount.
				ns := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "600")
				if err := ns.Start(); err != nil {
					t.Skipf("unshare: %v", err)
				}
				t.Cleanup(func() { ns.Process.Kill(); ns.Wait() })
				waitFor(t, "the other namespace", 10*time.Second, func() bool {
					b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", ns.Process.Pid))
					return err == nil && strings.Contains(string(b), mp)
				})
			case "open file":
				f, err := os.Open(filepath.Join(mp, "before.txt"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
			}
			cmd := append(tt.unmount, mp)
			if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", cmd, err, out)
			}
			if _, ok := mountpoint.MountType(mp); ok {
				t.Fatalf("%s still mounted after %v", mp, cmd)
			}
			// Without a holder the daemon may have seen the unmount and
			// exited already: the race the issue is about is lost then,
			// and that is fine.
			if err := fg.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("blobfs exited with %v after %v and SIGTERM, want 0\nlog:\n%s", err, cmd, w.log())
				}
			case <-time.After(90 * time.Second):
				fg.Process.Kill()
				t.Fatalf("blobfs still running 90 s after %v and SIGTERM (its --unmount-timeout is 10m)\nlog:\n%s", cmd, w.log())
			}
			if b, err := w.restGet("before.txt"); err != nil || string(b) != "closed before the unmount" {
				t.Errorf("blob before.txt: %q, %v", b, err)
			}
			if log := w.log(); strings.Contains(log, "Invalid argument") {
				t.Errorf("the daemon tried to unmount a directory no longer mounted:\n%s", log)
			}
		})
	}
}
