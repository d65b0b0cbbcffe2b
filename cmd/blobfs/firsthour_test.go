package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob/blobtest"
)

// A new user's first mistakes: each must fail within seconds, naming the
// cause. The time bound is functional (the old behaviour took 1.5 to 2
// minutes), not a speed target.
const promptly = 15 * time.Second

// timedMount runs blobfs mount in daemon mode and returns its stderr,
// exit status and how long it took.
func (w *world) timedMount(env []string, mp string, extra ...string) (string, string, int, time.Duration) {
	w.t.Helper()
	if err := os.MkdirAll(mp, 0o755); err != nil {
		w.t.Fatal(err)
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
}
