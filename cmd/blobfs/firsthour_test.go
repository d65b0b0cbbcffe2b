package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob/blobtest"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/mountpoint"
)

// A new user's first mistakes: each must fail within seconds, naming the
// cause. The time bound is functional (the old behaviour took 1.5 to 2
// minutes), not a speed target.
const promptly = 15 * time.Second

// timedMount runs blobfs mount in daemon mode and returns its stderr,
// exit status and how long it took.
func (w *world) timedMount(env []string, mp string, extra ...string) (string, string, int, time.Duration) {
	w.t.Helper()
	if st, _ := mountpoint.Inspect(mp); st == mountpoint.Missing {
		if err := os.MkdirAll(mp, 0o755); err != nil {
			w.t.Fatal(err)
		}
	}
	w.cleanupMount(mp)
	t0 := time.Now()
	stdout, stderr, code := w.blobfs(env, w.mountArgs(mp, extra...)...)
	return stdout, stderr, code, time.Since(t0)
}

func writeSecret(t *testing.T, dir, content string, mode os.FileMode) string {
	t.Helper()
	f := filepath.Join(dir, "secret")
	if err := os.WriteFile(f, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, mode); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFirstHourFailuresNameTheCause(t *testing.T) {
	needFUSE(t)
	az := blobtest.StartT(t, blobtest.Options{})
	refused := "http://" + freePort(t)
	tests := []struct {
		name  string
		env   func(w *world) []string // extra environment
		extra func(w *world) []string // extra flags
		want  []string
	}{
		{
			name: "wrong account key",
			extra: func(w *world) []string {
				return []string{"--auth-mode", "key", "--account-key-file", writeSecret(t, w.dir, authtest.RandomKey()+"\n", 0o600)}
			},
			want: []string{"the account key is wrong"},
		},
		{
			name: "key file readable by others",
			extra: func(w *world) []string {
				return []string{"--auth-mode", "key", "--account-key-file", writeSecret(t, w.dir, w.az.Key()+"\n", 0o644)}
			},
			want: []string{"other users may read it", "chmod 600"},
		},
		{
			name: "blob endpoint refuses connections",
			env: func(w *world) []string {
				return []string{"BLOBFS_BLOB_ENDPOINT=" + refused + "/" + w.az.Account()}
			},
			want: []string{"connection refused", "--blob-endpoint"},
		},
		{
			name: "emulator endpoint without the account path",
			env: func(w *world) []string {
				return []string{"BLOBFS_BLOB_ENDPOINT=http://" + w.az.Addr()}
			},
			want: []string{"no account in its path", "--blob-endpoint http://" + az.Addr() + "/" + az.Account()},
		},
		{
			name: "auth-wait 0 does not wait for a refusing IMDS",
			env:  func(w *world) []string { return []string{"BLOBFS_IMDS_ENDPOINT=" + refused} },
			extra: func(w *world) []string {
				return []string{"--auth-wait", "0"}
			},
			want: []string{"IMDS", "connection refused", "after 1 attempts"},
		},
		{
			name: "a longer wait for IMDS is announced",
			env:  func(w *world) []string { return []string{"BLOBFS_IMDS_ENDPOINT=" + refused} },
			extra: func(w *world) []string {
				return []string{"--auth-wait", "6s"}
			},
			want: []string{"waiting for IMDS token", "connection refused", "retrying until", "--auth-wait"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{az: az})
			var env, extra []string
			if tt.env != nil {
				env = tt.env(w)
			}
			if tt.extra != nil {
				extra = tt.extra(w)
			}
			_, stderr, code, took := w.timedMount(w.env(env...), filepath.Join(w.dir, "mnt"), extra...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			for _, s := range tt.want {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if took > promptly {
				t.Errorf("took %v to fail, want seconds (< %v)", took, promptly)
			}
			t.Logf("failed in %v: %s", took.Round(time.Millisecond), stderr)
		})
	}
}

// A non-root user who may not open /dev/fuse hears why and what to do,
// from mount and from check, instead of "fusermount exited with code 256"
// and "modprobe fuse".
func TestFuseDevicePermissionDenied(t *testing.T) {
	needFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as another user")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	asNobody := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
	if exec.Command("setpriv", append(asNobody, "sh", "-c", "exec 3<>/dev/fuse")...).Run() == nil {
		t.Skip("/dev/fuse is open to every user on this machine")
	}
	az := blobtest.StartT(t, blobtest.Options{})
	w := newWorld(t, worldOptions{az: az})
	mp := filepath.Join(w.dir, "mnt")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "chown", "-R", "65534:65534", w.dir)
	os.Chmod(filepath.Dir(w.dir), 0o755) // t.TempDir's parent is private
	w.cleanupMount(mp)

	t0 := time.Now()
	cmd := exec.Command("setpriv", append(asNobody, append([]string{binPath}, w.mountArgs(mp)...)...)...)
	cmd.Env = w.env()
	out, err := cmd.CombinedOutput()
	took := time.Since(t0)
	if err == nil {
		t.Fatalf("mount as nobody succeeded:\n%s", out)
	}
	for _, s := range []string{"/dev/fuse", "permission denied", "chmod 0666 /dev/fuse"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("mount output lacks %q:\n%s", s, out)
		}
	}
	if took > promptly {
		t.Errorf("took %v to fail", took)
	}

	cmd = exec.Command("setpriv", append(asNobody, binPath, "check", "--account", az.Account(), "--container", w.container)...)
	cmd.Env = w.env()
	out, _ = cmd.CombinedOutput()
	if !strings.Contains(string(out), "FAIL  /dev/fuse") || !strings.Contains(string(out), "chmod 0666 /dev/fuse") {
		t.Errorf("check as nobody does not give the permissions fix:\n%s", out)
	}
	if strings.Contains(string(out), "modprobe") {
		t.Errorf("check suggests modprobe for a permission problem:\n%s", out)
	}
}

// What fusermount3 writes on stderr reaches the caller.
func TestCaptureStderrSeesChildren(t *testing.T) {
	stop := captureStderr()
	cmd := exec.Command("sh", "-c", "echo 'fusermount3: failed to open /dev/fuse: Permission denied' >&2")
	cmd.Stderr = os.Stderr // as go-fuse starts fusermount3
	err := cmd.Run()
	got := stop()
	if err != nil {
		t.Fatal(err)
	}
	if got != "fusermount3: failed to open /dev/fuse: Permission denied" {
		t.Errorf("captured %q", got)
	}
	mixed := "time=... level=debug msg=\"mounting\"\nfusermount3: mount failed: Operation not permitted\nfuse: device not found\n"
	if got, want := fusermountLines(mixed), "fusermount3: mount failed: Operation not permitted; fuse: device not found"; got != want {
		t.Errorf("fusermountLines = %q, want %q", got, want)
	}
}

// A typo in a flag gets one line naming the flag meant, exit status 2, and
// no help on stdout.
func TestUnknownFlagSuggests(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"mount", "/mnt", "--read-onyl"}, "unknown flag --read-onyl: did you mean --read-only?"},
		{[]string{"mount", "--acount", "x", "/mnt"}, "did you mean --account?"},
		{[]string{"check", "--write-prob"}, "did you mean --write-probe?"},
		{[]string{"unmount", "--lazzy", "/mnt"}, "did you mean --lazy?"},
		{[]string{"stats", "--jsn", "/mnt"}, "did you mean --json?"},
		{[]string{"mount", "--frobnicate", "/mnt"}, "unknown flag --frobnicate (see blobfs mount --help)"},
		{[]string{"mnt"}, `unknown command "mnt": did you mean "mount"?`},
	}
	for _, tt := range tests {
		t0 := time.Now()
		out, errOut, code := runInProcess(tt.args, nil)
		if code != 2 || out != "" {
			t.Errorf("%v: exit %d, stdout %d bytes; want 2 and nothing", tt.args, code, len(out))
		}
		if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: stderr %q, want one line with %q", tt.args, errOut, tt.want)
		}
		if took := time.Since(t0); took > promptly {
			t.Errorf("%v took %v", tt.args, took)
		}
	}
}

// Every command's --help lists every flag it takes, and the mount(8)
// helper answers --help too.
func TestEveryHelpListsItsFlags(t *testing.T) {
	for cmd, flags := range map[string][]string{
		"unmount": {"--run-dir", "--lazy", "--timeout"},
		"stats":   {"--run-dir", "--json", "--prometheus"},
		"mount":   {"--run-dir", "--nonempty", "--read-only"},
		"check":   {"--run-dir", "--write-probe"},
	} {
		out, _, code := runInProcess([]string{cmd, "--help"}, nil)
		if code != 0 {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
		for _, f := range flags {
			if !strings.Contains(out, f) {
				t.Errorf("%s --help does not list %s", cmd, f)
			}
		}
	}
	var o, e strings.Builder
	code := run([]string{"/sbin/mount.fuse.blobfs", "--help"}, env{getenv: func(string) string { return "" }, stdout: &o, stderr: &e})
	if code != 0 || !strings.Contains(o.String(), "fuse.blobfs") || !strings.Contains(o.String(), "nonempty") {
		t.Errorf("mount.fuse.blobfs --help: exit %d, stdout:\n%s\nstderr: %s", code, o.String(), e.String())
	}
}

// A successful mount says so in one line; a non-empty mountpoint is
// refused unless --nonempty; check on the live mount asks its daemon.
func TestMountSaysWhatItDid(t *testing.T) {
	needFUSE(t)
	w := newWorld(t, worldOptions{})
	mp := filepath.Join(w.dir, "mnt")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "local.txt"), []byte("hidden by a mount"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code, took := w.timedMount(w.env(), mp)
	if code != 1 || !strings.Contains(stderr, "is not empty") || !strings.Contains(stderr, `"local.txt"`) || !strings.Contains(stderr, "--nonempty") {
		t.Fatalf("mount over a non-empty directory: exit %d, stderr:\n%s", code, stderr)
	}
	if took > promptly {
		t.Errorf("took %v to refuse", took)
	}
	if _, ok := mountpoint.MountType(mp); ok {
		t.Fatal("the refused mount is mounted")
	}

	stdout, stderr, code, _ := w.timedMount(w.env(), mp, "--nonempty")
	if code != 0 {
		t.Fatalf("mount --nonempty: exit %d: %s", code, stderr)
	}
	pid := w.pid(mp)
	ownDaemon(t, w.runDir, mp, pid)
	want := fmt.Sprintf("blobfs: mounted %s/%s at %s (pid %d, log %s)\n", w.az.Account(), w.container, mp, pid, filepath.Join(w.dir, "blobfs.log"))
	if stdout != want {
		t.Errorf("mount printed %q, want %q", stdout, want)
	}

	t0 := time.Now()
	out, _, code := w.blobfs(w.env(), "check", "--account", w.az.Account(), "--container", w.container, mp)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("ok    mountpoint                         %s is mounted: blobfs e2e-test, pid %d", mp, pid)) {
		t.Errorf("check on the live mount: exit %d\n%s", code, out)
	}
	if took := time.Since(t0); took > promptly {
		t.Errorf("check took %v", took)
	}
}

// A file the previous daemon was still writing when it was killed is put
// in lost+found by the next mount: the mount says so on the terminal, and
// stats lists it. A file fsync had committed is not mentioned.
func TestLostFoundIsAnnounced(t *testing.T) {
	needFUSE(t)
	w := newWorld(t, worldOptions{})
	mp := filepath.Join(w.dir, "mnt")
	os.MkdirAll(mp, 0o755)
	w.cleanupMount(mp)
	fg := exec.Command(binPath, w.mountArgs(mp, "--foreground")...)
	fg.Env = w.env()
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	defer fg.Process.Kill()
	w.waitServing(t, mp)
	f, err := os.Create(filepath.Join(mp, "half-written.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("the first half"); err != nil {
		t.Fatal(err)
	}
	synced, err := os.Create(filepath.Join(mp, "synced.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := synced.WriteString("fsync returned"); err != nil {
		t.Fatal(err)
	}
	if err := synced.Sync(); err != nil {
		t.Fatal(err)
	}
	fg.Process.Kill()
	waitKilled(t, fg, mp)
	f.Close() // ENOTCONN: the daemon is gone
	synced.Close()

	_, stderr, code, _ := w.timedMount(w.env(), mp)
	if code != 0 {
		t.Fatalf("mount after the crash: exit %d: %s", code, stderr)
	}
	ownDaemon(t, w.runDir, mp, w.pid(mp))
	t.Logf("mount said:\n%s", stderr)
	lf := filepath.Join(w.dir, "cache", "lost+found", "half-written.txt.")
	if !strings.Contains(stderr, lf) || !strings.Contains(stderr, "lost+found") {
		t.Errorf("the mount did not name the file it put in lost+found (%s*):\n%s", lf, stderr)
	}
	if strings.Contains(stderr, "synced.txt") {
		t.Errorf("the mount speaks of synced.txt, which fsync had committed:\n%s", stderr)
	}
	out, _, code := w.blobfs(w.env(), "stats", mp)
	if code != 0 || !strings.Contains(out, "In lost+found") || !strings.Contains(out, "half-written.txt.") {
		t.Errorf("stats does not list lost+found: exit %d\n%s", code, out)
	}
}

// An upload fs.Mount finishes for a previous run is told to the user: the
// hook turns fs's log line into one line, and fs still logs that line.
func TestRecoveryHookSaysWhatWasFinished(t *testing.T) {
	src, err := os.ReadFile("../../fs/mount.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), `"`+recoveredMsg+`"`) {
		t.Fatalf("fs/mount.go no longer logs %q: the recovery hook would stay silent", recoveredMsg)
	}
	var said []string
	h := &recoveryHook{say: func(s string) { said = append(said, s) }}
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	lg.AddHook(h)
	lg.WithFields(logrus.Fields{"blob": "a/b.txt", "size": int64(14), "saved_as": "a/b.txt"}).Info(recoveredMsg)
	h.active.Store(true)
	lg.WithFields(logrus.Fields{"blob": "a/b.txt", "size": int64(14), "saved_as": "a/b.txt"}).Info(recoveredMsg)
	lg.WithFields(logrus.Fields{"blob": "c.txt", "size": int64(3), "saved_as": "c.txt.conflict-20261206T040000Z"}).Info(recoveredMsg)
	lg.Info("something else")
	want := []string{
		`finished uploading "a/b.txt" (14 bytes), which the previous blobfs was committing when it stopped`,
		`finished uploading "c.txt" (3 bytes), which the previous blobfs was committing when it stopped; the blob had changed meanwhile, so this version is "c.txt.conflict-20261206T040000Z"`,
	}
	if strings.Join(said, "\n") != strings.Join(want, "\n") {
		t.Errorf("said:\n%s\nwant:\n%s", strings.Join(said, "\n"), strings.Join(want, "\n"))
	}
}
