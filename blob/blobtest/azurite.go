// Package blobtest runs a real Azurite blob service on loopback for tests,
// benchmarks and the demo. It is not a fake: Azurite checks SharedKey
// signatures and implements the REST operations the blob package uses.
package blobtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The well-known Azurite development account.
const (
	DevAccount = "devstoreaccount1"
	DevKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Options configure an Azurite instance. The zero value is an in-memory
// service for the development account on a free loopback port.
type Options struct {
	// Dir, when set, persists blobs on disk there, so that Restart keeps them.
	Dir string
	// Accounts replaces the development account, in Azurite's
	// AZURITE_ACCOUNTS form "name:key1:key2". Empty means the dev account.
	Accounts string
	// Log receives Azurite's own output; nil discards it.
	Log io.Writer
	// OAuth serves HTTPS with a self-signed certificate made at start and
	// accepts bearer tokens (--oauth basic), which Azurite refuses over
	// plain http. Clients trust it through TLSConfig or CertPool.
	OAuth bool
}

// Azurite is a running Azurite blob service.
type Azurite struct {
	opts Options
	port int
	tls  *selfSigned // OAuth mode only

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start launches Azurite and waits until it accepts connections.
func Start(ctx context.Context, opts Options) (*Azurite, error) {
	a := &Azurite{opts: opts}
	if opts.OAuth {
		s, err := newSelfSigned()
		if err != nil {
			return nil, fmt.Errorf("blobtest: make a test certificate: %w", err)
		}
		a.tls = s
	}
	if err := a.start(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// StartT starts Azurite for a test and stops it when the test ends. The test
// is skipped, not failed, only when Azurite is not installed and
// BLOBFS_REQUIRE_AZURITE is unset; CI sets it so that nothing is skipped there.
func StartT(tb testing.TB, opts Options) *Azurite {
	tb.Helper()
	Require(tb)
	if opts.Log == nil && os.Getenv("BLOBFS_AZURITE_LOG") != "" {
		opts.Log = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := Start(ctx, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.Stop)
	return a
}

// Endpoint is the path-style blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1.
func (a *Azurite) Endpoint() string {
	scheme := "http"
	if a.tls != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d/%s", scheme, a.port, a.Account())
}

// Addr is the host:port Azurite listens on.
func (a *Azurite) Addr() string { return fmt.Sprintf("127.0.0.1:%d", a.port) }

// Account is the storage account name Azurite serves.
func (a *Azurite) Account() string {
	if a.opts.Accounts == "" {
		return DevAccount
	}
	return strings.SplitN(a.opts.Accounts, ":", 2)[0]
}

// Key is the first key of the account Azurite serves.
func (a *Azurite) Key() string {
	if a.opts.Accounts == "" {
		return DevKey
	}
	parts := strings.Split(a.opts.Accounts, ":")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

// Restart stops Azurite and starts it again on the same port, with accounts
// replaced when accounts is not empty: this is how tests rotate keys.
// Blobs survive only when Options.Dir is set.
func (a *Azurite) Restart(ctx context.Context, accounts string) error {
	a.shutdown(ctx)
	if accounts != "" {
		a.opts.Accounts = accounts
	}
	return a.start(ctx)
}

// shutdown asks Azurite to exit cleanly, so that it writes its metadata to
// Dir (it saves only every 5 s otherwise, and a kill loses the rest), and
// kills it if it does not exit within 10 s.
func (a *Azurite) shutdown(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(done) }()
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	<-done
	a.cmd = nil
}

// Stop ends the Azurite process and everything it started.
func (a *Azurite) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	_ = a.cmd.Wait()
	a.cmd = nil
}

// Bin finds the azurite-blob launcher installed from package.json beside
// this file (npm ci --prefix blob/blobtest), or names it in BLOBFS_AZURITE.
func Bin() (string, error) {
	if p := os.Getenv("BLOBFS_AZURITE"); p != "" {
		return p, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("blobtest: cannot locate package directory")
	}
	p := filepath.Join(filepath.Dir(file), "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("azurite is not installed at %s: run 'make deps' (npm ci --prefix blob/blobtest)", p)
	}
	return p, nil
}

var listening = regexp.MustCompile(`listens on https?://127\.0\.0\.1:(\d+)`)

func (a *Azurite) start(ctx context.Context) error {
	bin, err := Bin()
	if err != nil {
		return err
	}
	args := []string{
		"--blobHost", "127.0.0.1",
		"--blobPort", fmt.Sprint(a.port), // 0 on first start: Azurite picks one
		"--loose", "--skipApiVersionCheck",
		// Azurite otherwise reports telemetry to a public endpoint; tests
		// must not send a packet beyond loopback.
		"--disableTelemetry",
	}
	if a.opts.Dir != "" {
		args = append(args, "--location", a.opts.Dir)
	} else {
		args = append(args, "--inMemoryPersistence")
	}
	if a.tls != nil {
		dir, certFile, keyFile, err := a.tls.writeFiles()
		if err != nil {
			return err
		}
		// Azurite reads them once at start; the key need not outlive that.
		defer os.RemoveAll(dir)
		args = append(args, "--cert", certFile, "--key", keyFile, "--oauth", "basic")
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = os.Environ()
	if a.opts.Accounts != "" {
		cmd.Env = append(cmd.Env, "AZURITE_ACCOUNTS="+a.opts.Accounts)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start azurite: %w", err)
	}
	a.mu.Lock()
	a.cmd = cmd
	a.mu.Unlock()

	ports := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if a.opts.Log != nil {
				fmt.Fprintln(a.opts.Log, "azurite:", line)
			}
			if m := listening.FindStringSubmatch(line); m != nil && !sent {
				var p int
				fmt.Sscan(m[1], &p)
				ports <- p
				sent = true
			}
		}
		close(ports)
	}()
	select {
	case p, ok := <-ports:
		if !ok {
			a.Stop()
			return errors.New("azurite exited before listening")
		}
		a.port = p
	case <-ctx.Done():
		a.Stop()
		return fmt.Errorf("azurite did not start: %w", ctx.Err())
	}
	// It prints the line just before accepting; make sure it does.
	for {
		c, err := net.DialTimeout("tcp", a.Addr(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			a.Stop()
			return fmt.Errorf("azurite not accepting on %s: %w", a.Addr(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
