package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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
	"github.com/blobfs/blobfs/fs/mountinfo"
)

// binPath is the blobfs binary the end-to-end tests run, built once by
// TestMain into a directory every user may read (the allow_other check
// runs it as nobody).
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "blobfs-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	binPath = filepath.Join(dir, "blobfs")
	out, err := exec.Command("go", "build", "-o", binPath, "-ldflags", "-X main.version=e2e-test", ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building blobfs: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// world is one test's Azurite, IMDS/ARM emulator and container, all on
// loopback.
type world struct {
	t         *testing.T
	az        *blobtest.Azurite
	emu       *authtest.Server
	ct        *blob.Container // REST view of the container, with the key
	container string
	dir       string // scratch: logs, cache, run dir
	runDir    string
}

type worldOptions struct {
	emu           authtest.Options  // Accounts filled in from Azurite when empty
	container     string            // default "data"
	skipContainer bool              // don't create it
	az            *blobtest.Azurite // share this Azurite instead of starting one
}

func needFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse on this machine")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil && os.Geteuid() != 0 {
		t.Skip("fusermount3 not installed")
	}
}

func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	az := o.az
	if az == nil {
		az = blobtest.StartT(t, blobtest.Options{})
	}
	if o.emu.Accounts == nil {
		o.emu.Accounts = []authtest.Account{{Name: az.Account(), Key1: az.Key(), Key2: authtest.RandomKey()}}
	}
	emu := authtest.StartT(t, o.emu)
	if o.container == "" {
		o.container = "data"
	}
	c, err := blob.NewClient(az.Endpoint(), &blob.SharedKey{Account: az.Account(), Keys: blob.StaticKey(az.Key())}, blob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ct := c.Container(o.container)
	if !o.skipContainer {
		if err := ct.Create(context.Background()); err != nil && !errors.Is(err, blob.ErrExists) {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	return &world{t: t, az: az, emu: emu, ct: ct, container: o.container, dir: dir, runDir: filepath.Join(dir, "run")}
}

// env is the environment blobfs runs in: the caller's without anything
// that could point blobfs at Azure or at another test's settings, plus the
// loopback endpoints.
func (w *world) env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "BLOBFS_") || strings.HasPrefix(k, "AZURE_") || strings.HasPrefix(k, "IDENTITY_") || strings.HasPrefix(k, "MSI_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"BLOBFS_BLOB_ENDPOINT="+w.az.Endpoint(),
		"BLOBFS_IMDS_ENDPOINT="+w.emu.IMDSURL(),
		"BLOBFS_ARM_ENDPOINT="+w.emu.ARMURL(),
		"BLOBFS_RUN_DIR="+w.runDir,
	)
	return append(env, extra...)
}

// args are the settings of a mount of the world's container at mp.
func (w *world) mountArgs(mp string, extra ...string) []string {
	return append([]string{"mount", mp,
		"--account", w.az.Account(), "--container", w.container,
		"--cache-dir", filepath.Join(w.dir, "cache"),
		"--log-file", filepath.Join(w.dir, "blobfs.log"),
		"--log-level", "debug",
		"--attr-ttl", "0", "--entry-ttl", "0", "--negative-ttl", "0",
	}, extra...)
}

// blobfs runs the binary to completion.
func (w *world) blobfs(env []string, args ...string) (stdout, stderr string, code int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatalf("blobfs %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// mount mounts in daemon mode and makes sure the mount goes away at the
// end of the test whatever happens.
func (w *world) mount(mp string, extra ...string) {
	w.t.Helper()
	if st, _ := mountpoint.Inspect(mp); st == mountpoint.Missing {
		if err := os.MkdirAll(mp, 0o755); err != nil {
			w.t.Fatal(err)
		}
	}
	w.cleanupMount(mp)
	_, stderr, code := w.blobfs(w.env(), w.mountArgs(mp, extra...)...)
	if code != 0 {
		w.t.Fatalf("blobfs mount exited %d: %s\nlog:\n%s", code, stderr, w.log())
	}
	ownDaemon(w.t, w.runDir, mp, w.pid(mp))
}

// ownDaemon checks that blobfs mount left a FUSE mount at mp and makes
// sure its daemon (pid) does not outlive the test, whatever the test does.
func ownDaemon(t *testing.T, runDir, mp string, pid int) {
	t.Helper()
	if typ, ok := mountpoint.MountType(mp); !ok || !strings.HasPrefix(typ, "fuse") {
		t.Fatalf("blobfs mount returned 0 but %s is not a FUSE mount (%q)", mp, typ)
	}
	if pid <= 0 {
		return
	}
	t.Cleanup(func() {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = control.Call(ctx, runDir, mp, "unmount", nil)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	})
}

// waitServing waits until the daemon of a foreground mount at mp serves
// its control socket: it is past go-fuse's start-up, whose check opens a
// file on the new mount from the daemon itself. A SIGKILL during that
// open leaves a process that waits on its own mount and never exits
// (until the connection is aborted), so tests that kill the daemon wait
// for this, not only for the mount to appear.
func (w *world) waitServing(t *testing.T, mp string) {
	t.Helper()
	waitFor(t, "the foreground mount to serve", 60*time.Second, func() bool { return w.pid(mp) != 0 })
}

// pid asks the daemon serving mp for its pid.
func (w *world) pid(mp string) int {
	var pid int
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = control.Call(ctx, w.runDir, mp, "stats", func(m control.Message) {
		if m.Status != nil {
			pid = m.Status.PID
		}
	})
	return pid
}

func (w *world) cleanupMount(mp string) {
	w.t.Cleanup(func() {
		if _, ok := mountpoint.MountType(mp); !ok {
			return
		}
		var pid int
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = control.Call(ctx, w.runDir, mp, "stats", func(m control.Message) {
			if m.Status != nil {
				pid = m.Status.PID
			}
		})
		_ = control.Call(ctx, w.runDir, mp, "unmount", nil)
		if _, ok := mountpoint.MountType(mp); ok {
			_ = mountpoint.Detach(context.Background(), mp)
		}
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

func (w *world) log() string {
	b, _ := os.ReadFile(filepath.Join(w.dir, "blobfs.log"))
	return string(b)
}

// restGet reads a blob through the REST client.
func (w *world) restGet(name string) ([]byte, error) {
	rc, _, err := w.ct.Download(context.Background(), name, 0, -1, blob.Conditions{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (w *world) restNames() map[string]bool {
	w.t.Helper()
	names := map[string]bool{}
	marker := ""
	for {
		page, err := w.ct.List(context.Background(), blob.ListOptions{Marker: marker})
		if err != nil {
			w.t.Fatal(err)
		}
		for _, b := range page.Blobs {
			names[b.Name] = true
		}
		if marker = page.NextMarker; marker == "" {
			return names
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitKilled waits for a daemon sent SIGKILL to exit. A killed FUSE
// daemon exits only once no thread of it waits for an answer from its
// own mount: should one (a bug: the daemon must never touch its mount),
// the connection is aborted after a while so that the test fails with the
// reason instead of hanging until the package's timeout.
func waitKilled(t *testing.T, cmd *exec.Cmd, mp string) {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(30 * time.Second):
	}
	// The connection's number is the mount's minor device number, read
	// from the table: a stat of mp itself would hang too.
	if m, found, _ := mountinfo.Lookup(mp); found {
		const conns = "/sys/fs/fuse/connections"
		if _, found, _ := mountinfo.Lookup(conns); !found {
			syscall.Mount("none", conns, "fusectl", 0, "") // root only; else the wait goes on
		}
		os.WriteFile(fmt.Sprintf("%s/%d/abort", conns, m.Minor), []byte("1"), 0o200)
	}
	<-done
	t.Errorf("the daemon killed with SIGKILL did not exit within 30 s: it waited on its own mount %s", mp)
}
