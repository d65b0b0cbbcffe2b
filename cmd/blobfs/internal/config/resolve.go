package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/blobfs/blobfs/blob"
)

var (
	accountRE   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	containerRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{1,61})[a-z0-9]$`)
)

// Auth modes.
const (
	ModeMSIKey = "msi-key"
	ModeMSI    = "msi"
	ModeKey    = "key"
	ModeSAS    = "sas"
)

// Resolve checks the settings of a mount or check and fills the defaults
// that depend on other settings or on who runs blobfs. It reads the key and
// SAS files. Every error names the setting to fix.
func (l *Loaded) Resolve() error {
	s := &l.Settings
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	switch {
	case s.Account == "":
		bad("the storage account is missing: pass --account (or set BLOBFS_ACCOUNT)")
	case !accountRE.MatchString(s.Account):
		bad("--account %q: a storage account name is 3-24 lowercase letters and digits", s.Account)
	}
	switch {
	case s.Container == "":
		bad("the container is missing: pass --container (or set BLOBFS_CONTAINER)")
	case !containerRE.MatchString(s.Container) || strings.Contains(s.Container, "--"):
		bad("--container %q: a container name is 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit", s.Container)
	}

	ids := 0
	for _, v := range []string{s.ClientID, s.ObjectID, s.IdentityResourceID} {
		if v != "" {
			ids++
		}
	}
	if ids > 1 {
		bad("give at most one of --client-id, --object-id and --identity-resource-id")
	}
	switch s.AuthMode {
	case ModeMSIKey, ModeMSI:
	case ModeKey:
		if s.AccountKey == "" && s.AccountKeyFile == "" {
			bad("--auth-mode key needs the account key: set AZURE_STORAGE_KEY or pass --account-key-file")
		} else if s.AccountKey == "" {
			k, err := readSecretFile(s.AccountKeyFile)
			if err != nil {
				bad("--account-key-file: %v", err)
			}
			s.AccountKey = k
		}
	case ModeSAS:
		if s.SASToken == "" && s.SASFile == "" {
			bad("--auth-mode sas needs a SAS token: set AZURE_STORAGE_SAS_TOKEN or pass --sas-file")
		} else if s.SASToken == "" {
			t, err := readSecretFile(s.SASFile)
			if err != nil {
				bad("--sas-file: %v", err)
			}
			s.SASToken = t
		}
	default:
		bad("--auth-mode %q: use msi-key, msi, key or sas", s.AuthMode)
	}

	if s.BlobEndpoint == "" && accountRE.MatchString(s.Account) {
		s.BlobEndpoint = "https://" + s.Account + ".blob.core.windows.net"
	}
	if s.BlobEndpoint != "" {
		if err := checkURL(s.BlobEndpoint, true); err != nil {
			bad("--blob-endpoint: %v", err)
		}
	}
	if s.AuthMode == ModeMSIKey || s.AuthMode == ModeMSI {
		// IMDS is plain http by design (a link-local address that never
		// leaves the host), so only its form is checked.
		if err := checkURL(s.IMDSEndpoint, false); err != nil {
			bad("--imds-endpoint: %v", err)
		}
	}
	if s.AuthMode == ModeMSIKey {
		if err := checkURL(s.ARMEndpoint, true); err != nil {
			bad("--arm-endpoint: %v", err)
		}
	}

	switch s.LogLevel {
	case "debug", "info", "warn", "warning", "error":
	default:
		bad("--log-level %q: use debug, info, warn or error", s.LogLevel)
	}
	switch s.LogFormat {
	case "text", "json":
	default:
		bad("--log-format %q: use text or json", s.LogFormat)
	}
	if s.Concurrency < 1 {
		bad("--concurrency must be at least 1")
	}
	if s.RetryBudget <= 0 || s.RetryAttemptTimeout <= 0 {
		bad("--retry-budget and --retry-attempt-timeout must be positive durations, e.g. 2m and 30s")
	}
	if s.BlockSize < 64<<10 || s.BlockSize > 4000<<20 {
		bad("--block-size %v: use between 64KiB and 4000MiB", s.BlockSize)
	}
	if s.UID < -1 || s.GID < -1 {
		bad("--uid and --gid must be user and group numbers")
	}
	if s.UID == -1 {
		s.UID = os.Getuid()
	}
	if s.GID == -1 {
		s.GID = os.Getgid()
	}
	if s.CacheDir == "" && s.Account != "" && s.Container != "" {
		s.CacheDir = filepath.Join(DefaultCacheBase(), s.Account, s.Container)
	}
	if s.CacheDir != "" {
		if abs, err := filepath.Abs(s.CacheDir); err == nil {
			s.CacheDir = abs
		}
	}
	if err := l.ResolveRunDir(); err != nil {
		errs = append(errs, err)
	}
	if s.MetricsAddr != "" {
		addr, err := MetricsListenAddr(s.MetricsAddr)
		if err != nil {
			bad("--metrics-addr: %v", err)
		}
		s.MetricsAddr = addr
	}
	return errors.Join(errs...)
}

// ResolveRunDir fills the default control-socket directory.
func (l *Loaded) ResolveRunDir() error {
	if l.RunDir == "" {
		l.RunDir = DefaultRunDir()
	}
	abs, err := filepath.Abs(l.RunDir)
	if err != nil {
		return fmt.Errorf("--run-dir: %w", err)
	}
	l.RunDir = abs
	return nil
}

// DefaultCacheBase is where caches live unless --cache-dir says otherwise.
func DefaultCacheBase() string {
	if os.Geteuid() == 0 {
		return "/var/cache/blobfs"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "blobfs")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("blobfs-cache-%d", os.Getuid()))
}

// DefaultRunDir is where control sockets live unless --run-dir says otherwise.
func DefaultRunDir() string {
	if os.Geteuid() == 0 {
		return "/run/blobfs"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "blobfs")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("blobfs-%d", os.Getuid()))
}

// MetricsListenAddr turns a --metrics-addr into a listen address: a bare
// ":PORT" stays on loopback, since metrics name blobs; a host must be given
// explicitly (e.g. 0.0.0.0:9100) to serve the network.
func MetricsListenAddr(a string) (string, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", fmt.Errorf("%q is not HOST:PORT or :PORT", a)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

func checkURL(raw string, strict bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	if u.User != nil || u.RawQuery != "" {
		return fmt.Errorf("%s://%s%s must not carry credentials or a query string; pass secrets through their own settings", u.Scheme, u.Host, u.Path)
	}
	if strict {
		return blob.CheckScheme(u)
	}
	return nil
}

func readSecretFile(path string) (string, error) {
	// As ssh does with private keys: refuse a secret others may read, so
	// that the mode gets fixed rather than ignored.
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %#o: other users may read it: chmod 600 %s (owned by the user blobfs runs as)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}
