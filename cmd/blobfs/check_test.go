package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob/blobtest"
)

// TestCheckNamesEachFailure runs `blobfs check` against every failure the
// emulator can produce and expects the failing hop, and what to do about
// it, on a FAIL line.
func TestCheckNamesEachFailure(t *testing.T) {
	tests := []struct {
		name     string
		opts     worldOptions
		setup    func(w *world)
		extra    []string
		hop      string // the FAIL line starts with it
		fix      string // and this appears after it
		wantCode int
	}{
		{name: "all good, with write probe", extra: []string{"--write-probe"}, wantCode: 0},
		{name: "IMDS unreachable", setup: func(w *world) { w.emu.StopIMDS() },
			hop: "IMDS reachable", fix: "managed identity", wantCode: 1},
		{name: "VM without identity", opts: worldOptions{emu: authtest.Options{NoSystemIdentity: true}},
			hop: "token for ARM", fix: "identity", wantCode: 1},
		{name: "unknown user-assigned identity", extra: []string{"--client-id", "00000000-0000-0000-0000-000000000042"},
			hop: "token for ARM", fix: "client", wantCode: 1},
		{name: "listKeys denied", opts: worldOptions{emu: authtest.Options{System: authtest.Identity{DenyListKeys: true}}},
			hop: "ARM listKeys", fix: "Storage Account Key Operator Service Role", wantCode: 1},
		{name: "account unknown to ARM", opts: worldOptions{emu: authtest.Options{Accounts: []authtest.Account{{Name: "someotheraccount", Key1: authtest.RandomKey()}}}},
			hop: "find the account's resource group", fix: "--account", wantCode: 1},
		{name: "shared key disabled", opts: worldOptions{emu: authtest.Options{Accounts: []authtest.Account{{Name: blobtest.DevAccount, Key1: blobtest.DevKey, SharedKeyDisabled: true}}}},
			hop: "shared key access", fix: "--auth-mode msi", wantCode: 1},
		// Azurite answers a bad signature with 403 AuthorizationFailure
		// where Azure says AuthenticationFailed, so only the hop and the
		// presence of advice are pinned here.
		{name: "key refused by storage", opts: worldOptions{emu: authtest.Options{Accounts: []authtest.Account{{Name: blobtest.DevAccount, Key1: authtest.RandomKey(), Key2: authtest.RandomKey()}}}},
			hop: "storage accepts the credential", fix: "->", wantCode: 1},
		{name: "container missing", opts: worldOptions{skipContainer: true, container: "missing"},
			hop: "container exists", fix: "--create-container", wantCode: 1},
	}
	az := blobtest.StartT(t, blobtest.Options{}) // one Azurite; each case has its own emulator
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.az = az
			w := newWorld(t, tt.opts)
			if tt.setup != nil {
				tt.setup(w)
			}
			args := append([]string{"check", "--account", w.az.Account(), "--container", w.container, "--auth-wait", "2s"}, tt.extra...)
			out, stderr, code := w.blobfs(w.env(), args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, out, stderr)
			}
			if tt.hop == "" {
				if strings.Contains(out, "FAIL") || !strings.Contains(out, "all checks passed") || !strings.Contains(out, "ok    delete probe") {
					t.Errorf("expected a clean check:\n%s", out)
				}
				return
			}
			failLine, after := "", ""
			lines := strings.Split(out, "\n")
			for i, l := range lines {
				if strings.HasPrefix(l, "FAIL") {
					failLine, after = l, strings.Join(lines[i:], "\n")
					break
				}
			}
			if !strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(failLine, "FAIL")), tt.hop) {
				t.Errorf("first FAIL line %q, want hop %q\n%s", failLine, tt.hop, out)
			}
			if !strings.Contains(after, tt.fix) || !strings.Contains(out, "the first was") {
				t.Errorf("no advice mentioning %q after the failure:\n%s", tt.fix, out)
			}
			for _, secret := range append(w.emu.Tokens(), w.az.Key()) {
				if strings.Contains(out+stderr, secret) {
					t.Fatal("check printed a secret")
				}
			}
		})
	}
}

// A non-root user asking for --allow-other without user_allow_other in
// /etc/fuse.conf is told which line to add.
func TestCheckAllowOtherNeedsFuseConf(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the check as another user")
	}
	if _, err := os.Stat(fuseConf); err == nil && mountpointAllowsOther() {
		t.Skip(fuseConf + " already has user_allow_other")
	}
	w := newWorld(t, worldOptions{})
	cmd := exec.Command(binPath, "check", "--account", w.az.Account(), "--container", w.container, "--allow-other", "--auth-wait", "2s")
	cmd.Env = w.env("HOME=/nonexistent", "BLOBFS_RUN_DIR="+filepath.Join(w.dir, "run-nobody"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "FAIL  allow_other") || !strings.Contains(string(out), "user_allow_other") {
		t.Errorf("check as nobody with --allow-other:\n%s", out)
	}
}

func mountpointAllowsOther() bool {
	b, _ := os.ReadFile(fuseConf)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "user_allow_other" {
			return true
		}
	}
	return false
}
