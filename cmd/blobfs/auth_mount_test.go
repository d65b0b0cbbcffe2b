package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/metrics"
)

// These tests prove issue 3's authentication behaviour through the real
// binary and a real mount, not through the blob client: every mount logs
// at debug level, and whatever blobfs printed or logged is searched for
// the keys, tokens and SAS signatures of the test when it ends.

// authWorld is a world whose blobfs runs are all searched for secrets
// when the test ends.
type authWorld struct {
	*world
	extraEnv []string // e.g. SSL_CERT_FILE for OAuth-mode Azurite

	mu      sync.Mutex
	secrets []string // besides the tokens the emulator minted
	outputs []string // stdout and stderr of every blobfs run
}

// newAuthWorld is newWorld with the emulator's keys known (so that they
// can be looked for) and, for an OAuth-mode Azurite, the container made
// over HTTPS and the binary told to trust Azurite's certificate.
func newAuthWorld(t *testing.T, az *blobtest.Azurite, emu authtest.Options) *authWorld {
	t.Helper()
	key2 := authtest.RandomKey()
	if emu.Accounts == nil {
		emu.Accounts = []authtest.Account{{Name: az.Account(), Key1: az.Key(), Key2: key2}}
	}
	oauth := az.CertPool() != nil
	w := newWorld(t, worldOptions{az: az, emu: emu, skipContainer: oauth})
	a := &authWorld{world: w}
	for _, acct := range emu.Accounts {
		a.secrets = append(a.secrets, acct.Key1, acct.Key2)
	}
	if oauth {
		// The binary trusts the self-signed certificate the way an
		// operator would make it trust a private CA.
		pem := filepath.Join(w.dir, "azurite-cert.pem")
		if err := os.WriteFile(pem, az.CertPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
		a.extraEnv = append(a.extraEnv, "SSL_CERT_FILE="+pem)
		tr := blob.DefaultTransport()
		tr.TLSClientConfig = az.TLSConfig()
		c, err := blob.NewClient(az.Endpoint(), &blob.SharedKey{Account: az.Account(), Keys: blob.StaticKey(az.Key())}, blob.Options{Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		w.ct = c.Container(w.container)
		if err := w.ct.Create(context.Background()); err != nil && !errors.Is(err, blob.ErrExists) {
			t.Fatal(err)
		}
	}
	// Registered before any mount, so it runs after the mounts' cleanups
	// have unmounted: the log is complete by then.
	t.Cleanup(a.assertNoSecrets)
	return a
}

func (a *authWorld) addSecrets(s ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.secrets = append(a.secrets, s...)
}

// run runs blobfs to completion and keeps what it printed.
func (a *authWorld) run(env []string, args ...string) (stdout, stderr string, code int) {
	a.t.Helper()
	stdout, stderr, code = a.blobfs(append(a.env(a.extraEnv...), env...), args...)
	a.mu.Lock()
	a.outputs = append(a.outputs, stdout, stderr)
	a.mu.Unlock()
	return stdout, stderr, code
}

// mountWith mounts the container at mp in daemon mode, with env added to
// blobfs's environment, and unmounts it when the test ends.
func (a *authWorld) mountWith(mp string, env []string, extra ...string) {
	a.t.Helper()
	if err := os.MkdirAll(mp, 0o755); err != nil {
		a.t.Fatal(err)
	}
	a.cleanupMount(mp)
	_, stderr, code := a.run(env, a.mountArgs(mp, extra...)...)
	if code != 0 {
		a.t.Fatalf("blobfs mount exited %d: %s\nlog:\n%s", code, stderr, a.log())
	}
	ownDaemon(a.t, a.runDir, mp, a.pid(mp))
}

// assertNoSecrets fails the test if a key, a minted token (or its payload
// or signature alone), or a SAS signature occurs in anything blobfs
// printed or logged, raw or URL-escaped.
func (a *authWorld) assertNoSecrets() {
	a.t.Helper()
	a.mu.Lock()
	text := strings.Join(a.outputs, "\n") + "\n" + a.log()
	secrets := append([]string(nil), a.secrets...)
	a.mu.Unlock()
	if !strings.Contains(text, "level=debug") {
		a.t.Errorf("no debug line was logged: the search for secrets proves nothing")
	}
	for _, tok := range a.emu.Tokens() {
		secrets = append(secrets, tok)
		// header.payload.signature: the header is the same for every
		// token, the other two parts are the secret.
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			secrets = append(secrets, parts[1], parts[2])
		}
	}
	for _, s := range secrets {
		if len(s) < 8 {
			continue
		}
		for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			if strings.Contains(text, form) {
				a.t.Errorf("a secret (%d chars, starting %.4q) appears in blobfs's output or log", len(s), s)
				break
			}
		}
	}
}

// scrape reads the mount's Prometheus metrics.
func scrape(t *testing.T, addr string) metrics.Samples {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	ss, err := metrics.ParseText(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	return ss
}

// roundTripFile writes a file through the mount, stats it and reads it
// back.
func roundTripFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != int64(len(data)) {
		return fmt.Errorf("stat %s: %v, err %w", filepath.Base(path), fi, err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("read %s: %q, wrote %q", filepath.Base(path), got, data)
	}
	return nil
}

// msi-key: IMDS answers 410 (as during an IMDS update) then 429 with
// Retry-After before it gives a token; the mount waits it out and works.
func TestMountRidesOutIMDS410And429(t *testing.T) {
	needFUSE(t)
	a := newAuthWorld(t, blobtest.StartT(t, blobtest.Options{}), authtest.Options{})
	a.emu.FailIMDS(
		authtest.Fault{Status: http.StatusGone},
		authtest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second},
	)
	mp := filepath.Join(a.dir, "mnt")
	a.mountWith(mp, nil)

	var imds []int
	for _, r := range a.emu.Requests() {
		if r.Server == "imds" {
			imds = append(imds, r.Status)
		}
	}
	if len(imds) < 3 || imds[0] != http.StatusGone || imds[1] != http.StatusTooManyRequests || imds[2] != http.StatusOK {
		t.Errorf("IMDS answers %v, want 410, 429, then 200", imds)
	}
	if !strings.Contains(a.log(), "retry_after=1s") {
		t.Errorf("the log does not show the 429's Retry-After being honoured:\n%s", a.log())
	}
	if err := roundTripFile(filepath.Join(mp, "after-imds-trouble.txt"), []byte("mounted despite IMDS\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := a.restGet("after-imds-trouble.txt"); err != nil || string(b) != "mounted despite IMDS\n" {
		t.Errorf("the blob written through the mount: %q, %v", b, err)
	}
}

// msi: bearer tokens living 4 s are renewed while file operations run,
// before they expire: no operation fails and storage refuses nothing.
func TestMountRenewsShortLivedBearerTokens(t *testing.T) {
	needFUSE(t)
	az := blobtest.StartT(t, blobtest.Options{OAuth: true})
	a := newAuthWorld(t, az, authtest.Options{TokenTTL: 4 * time.Second})
	mp := filepath.Join(a.dir, "mnt")
	metricsAddr := freePort(t)
	a.mountWith(mp, nil, "--auth-mode", "msi", "--metrics-addr", metricsAddr)

	// Three renewals at least: operations run across several expiries.
	deadline := time.Now().Add(90 * time.Second)
	ops := 0
	start := time.Now()
	for a.emu.Count("token") < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d tokens fetched in 90 s of file operations", a.emu.Count("token"))
		}
		name := fmt.Sprintf("f%d.txt", ops%10)
		if err := roundTripFile(filepath.Join(mp, name), []byte(fmt.Sprintf("operation %d\n", ops))); err != nil {
			t.Fatalf("operation %d, %v after mount, with %d tokens fetched: %v\nlog:\n%s", ops, time.Since(start).Round(time.Millisecond), a.emu.Count("token"), err, a.log())
		}
		ops++
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.ReadDir(mp); err != nil {
		t.Fatalf("listing after the renewals: %v", err)
	}
	ss := scrape(t, metricsAddr)
	if n := ss.Sum("blobfs_rest_requests_total", "status", "403"); n != 0 {
		t.Errorf("storage refused %v requests: a token was renewed after it failed, not before", n)
	}
	if n := ss.Sum("blobfs_rest_requests_total"); n < float64(ops) {
		t.Errorf("only %v REST calls for %d round trips: the operations did not reach storage", n, ops)
	}
	c := a.emu.Counts()
	if c["listKeys"]+c["getAccount"]+c["listAccounts"] != 0 {
		t.Errorf("msi mode asked ARM: %v", c)
	}
	t.Logf("%d write+stat+read round trips over %v, %d tokens minted, no refusal", ops, time.Since(start).Round(time.Millisecond), c["token"])
}

// msi-key: the account's keys are regenerated while the mount lives
// (Azurite restarted with new keys, ARM listing them); reads and writes
// through the mount carry on without a failed operation.
func TestMountSurvivesKeyRotation(t *testing.T) {
	needFUSE(t)
	az := blobtest.StartT(t, blobtest.Options{Dir: t.TempDir()})
	a := newAuthWorld(t, az, authtest.Options{})
	mp := filepath.Join(a.dir, "mnt")
	metricsAddr := freePort(t)
	a.mountWith(mp, nil, "--metrics-addr", metricsAddr)

	content := func(name string) []byte { return []byte("content of " + name + "\n") }
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("before-%d", i)
		if err := roundTripFile(filepath.Join(mp, name), content(name)); err != nil {
			t.Fatal(err)
		}
	}
	listKeysAtMount := a.emu.Count("listKeys")

	k1, k2 := authtest.RandomKey(), authtest.RandomKey()
	a.addSecrets(k1, k2)
	a.emu.SetKeys(az.Account(), k1, k2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := az.Restart(ctx, az.Account()+":"+k1+":"+k2); err != nil {
		t.Fatal(err)
	}
	t.Logf("Azurite restarted with new keys in %v", time.Since(t0).Round(time.Millisecond))

	// Eight processes' worth of reads and writes hit the rotated key at
	// once, then a few more one at a time.
	t0 = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			before := fmt.Sprintf("before-%d", i%4)
			got, err := os.ReadFile(filepath.Join(mp, before))
			if err == nil && !bytes.Equal(got, content(before)) {
				err = fmt.Errorf("read %s: %q", before, got)
			}
			if err == nil {
				after := fmt.Sprintf("after-%d", i)
				err = roundTripFile(filepath.Join(mp, after), content(after))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("operation after the rotation: %v", err)
		}
	}
	t.Logf("8 concurrent reads+writes across the rotation took %v", time.Since(t0).Round(time.Millisecond))
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("later-%d", i)
		if err := roundTripFile(filepath.Join(mp, name), content(name)); err != nil {
			t.Errorf("operation after the rotation: %v", err)
		}
	}
	entries, err := os.ReadDir(mp)
	if err != nil || len(entries) != 16 {
		t.Errorf("listing after the rotation: %d entries, %v; want 16", len(entries), err)
	}

	// What the mount wrote after the rotation is in the service, under
	// the new key.
	c, err := blob.NewClient(az.Endpoint(), &blob.SharedKey{Account: az.Account(), Keys: blob.StaticKey(k1)}, blob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ct := c.Container(a.container)
	for _, name := range []string{"before-0", "after-7", "later-3"} {
		rc, _, err := ct.Download(ctx, name, 0, -1, blob.Conditions{})
		if err != nil {
			t.Errorf("REST read of %s with the new key: %v", name, err)
			continue
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, content(name)) {
			t.Errorf("blob %s: %q", name, got)
		}
	}

	ss := scrape(t, metricsAddr)
	if ss.Sum("blobfs_rest_requests_total", "status", "403") == 0 {
		t.Error("storage never refused the old key: the rotation did not reach the mount")
	}
	n := a.emu.Count("listKeys")
	if n <= listKeysAtMount || n > 4 {
		t.Errorf("listKeys called %d times (%d at mount); want a re-listing or two for the rotation, not one per operation", n, listKeysAtMount)
	}
	t.Logf("listKeys: %d at mount, %d in all; emulator requests %v", listKeysAtMount, n, a.emu.Counts())
}

// msi-key: 1,000 file operations ask IMDS and ARM only what the mount
// itself needed, not once per operation.
func TestMountThousandOperationsAskIMDSAndARMAFewTimes(t *testing.T) {
	needFUSE(t)
	a := newAuthWorld(t, blobtest.StartT(t, blobtest.Options{}), authtest.Options{})
	mp := filepath.Join(a.dir, "mnt")
	a.mountWith(mp, nil)
	atMount := a.emu.Counts()

	// 100 creates, 700 stats, 199 reads and a listing: 1,000 operations,
	// each of which reaches storage (the TTLs are 0).
	const files = 100
	name := func(i int) string { return filepath.Join(mp, fmt.Sprintf("f%03d", i%files)) }
	ops := 0
	t0 := time.Now()
	for i := 0; i < files; i++ {
		if err := os.WriteFile(name(i), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		ops++
	}
	for i := 0; i < 700; i++ {
		if fi, err := os.Stat(name(i)); err != nil || fi.Size() != int64(len(fmt.Sprint(i%files))) {
			t.Fatalf("stat %d: %v %v", i, fi, err)
		}
		ops++
	}
	for i := 0; i < 199; i++ {
		if b, err := os.ReadFile(name(i)); err != nil || string(b) != fmt.Sprint(i%files) {
			t.Fatalf("read %d: %q %v", i, b, err)
		}
		ops++
	}
	entries, err := os.ReadDir(mp)
	if err != nil || len(entries) != files {
		t.Fatalf("listing: %d entries, %v", len(entries), err)
	}
	ops++

	c := a.emu.Counts()
	var arm int
	for _, r := range a.emu.Requests() {
		if r.Server == "arm" {
			arm++
		}
	}
	t.Logf("%d file operations in %v; emulator requests at mount %v, after %v", ops, time.Since(t0).Round(time.Millisecond), atMount, c)
	if c["token"] > 3 || arm > 3 || c["listKeys"] > 1 {
		t.Errorf("IMDS token requests %d, ARM calls %d (listKeys %d) for a mount and %d operations; want a handful at most", c["token"], arm, c["listKeys"], ops)
	}
	if c["token"] != atMount["token"] || c["listKeys"] != atMount["listKeys"] {
		t.Errorf("the operations asked for credentials again: at mount %v, after %v", atMount, c)
	}
}

// A refusal that no retry can fix fails `blobfs mount`, daemon or
// foreground, before anything is mounted, saying what to change.
func TestMountRefusedCredentialsFailBeforeMounting(t *testing.T) {
	needFUSE(t)
	az := blobtest.StartT(t, blobtest.Options{})
	tests := []struct {
		name  string
		setup func(a *authWorld)
		want  []string
	}{
		{
			name:  "listKeys role denied",
			setup: func(a *authWorld) { a.emu.SetDenied("", true, false) },
			want:  []string{"Storage Account Key Operator Service Role", "/providers/Microsoft.Storage/storageAccounts/" + az.Account()},
		},
		{
			name:  "shared keys disabled",
			setup: func(a *authWorld) { a.emu.SetSharedKeyDisabled(az.Account(), true) },
			want:  []string{"--auth-mode msi", "Storage Blob Data Contributor"},
		},
	}
	for _, tt := range tests {
		for _, fg := range []bool{false, true} {
			name := tt.name + "/daemon"
			if fg {
				name = tt.name + "/foreground"
			}
			t.Run(name, func(t *testing.T) {
				a := newAuthWorld(t, az, authtest.Options{})
				tt.setup(a)
				mp := filepath.Join(a.dir, "mnt")
				if err := os.MkdirAll(mp, 0o755); err != nil {
					t.Fatal(err)
				}
				a.cleanupMount(mp)
				args := a.mountArgs(mp, "--auth-wait", "2s")
				if fg {
					args = append(args, "--foreground")
				}
				_, stderr, code := a.run(nil, args...)
				if code == 0 {
					t.Fatalf("blobfs mount exited 0; want a failure naming %q", tt.want)
				}
				for _, w := range tt.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr does not say %q:\n%s", w, stderr)
					}
				}
				mi, err := os.ReadFile("/proc/self/mountinfo")
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(mi), " "+mp+" ") {
					t.Errorf("%s is in /proc/self/mountinfo after a failed mount", mp)
				}
				if a.emu.Count("listKeys") > 1 {
					t.Errorf("listKeys asked %d times: a lasting refusal was retried", a.emu.Count("listKeys"))
				}
			})
		}
	}
}

// accountSAS signs an account SAS for the blob service.
func accountSAS(t *testing.T, account, key string) (token, sig string) {
	t.Helper()
	token, sig, err := blobtest.AccountSAS(account, key)
	if err != nil {
		t.Fatal(err)
	}
	return token, sig
}

// key and sas modes, secret from a file or the environment: the mount
// works, never asks IMDS or ARM, and never prints the secret.
func TestMountWithKeyOrSAS(t *testing.T) {
	needFUSE(t)
	az := blobtest.StartT(t, blobtest.Options{})
	sas, sig := accountSAS(t, az.Account(), az.Key())
	tests := []struct {
		name   string
		secret string // file content, or environment value
		env    string // "": written to a file passed with flag
		flag   string
		mode   string
	}{
		{name: "key file", mode: "key", secret: az.Key() + "\n", flag: "--account-key-file"},
		{name: "key env", mode: "key", secret: az.Key(), env: "AZURE_STORAGE_KEY"},
		{name: "sas file", mode: "sas", secret: "?" + sas + "\n", flag: "--sas-file"},
		{name: "sas env", mode: "sas", secret: sas, env: "AZURE_STORAGE_SAS_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuthWorld(t, az, authtest.Options{})
			a.addSecrets(sig)
			mp := filepath.Join(a.dir, "mnt")
			var env, extra []string
			if tt.env != "" {
				env = []string{tt.env + "=" + tt.secret}
			} else {
				f := filepath.Join(a.dir, "secret")
				if err := os.WriteFile(f, []byte(tt.secret), 0o600); err != nil {
					t.Fatal(err)
				}
				extra = []string{tt.flag, f}
			}
			a.mountWith(mp, env, append(extra, "--auth-mode", tt.mode)...)
			if err := roundTripFile(filepath.Join(mp, "static.txt"), []byte(tt.name)); err != nil {
				t.Fatal(err)
			}
			if b, err := a.restGet("static.txt"); err != nil || string(b) != tt.name {
				t.Errorf("the blob written through the mount: %q, %v", b, err)
			}
			if r := a.emu.Requests(); len(r) != 0 {
				t.Errorf("%s mode sent %d requests to IMDS or ARM", tt.mode, len(r))
			}
		})
	}
}
