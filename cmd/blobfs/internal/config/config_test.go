package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "blobfs.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "account: fromfile\ncontainer: filecont\nlog-level: warn\ncache-size: 1G\nattr-ttl: 7s\numask: 027\n")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		account string
		source  string
		level   string
	}{
		{"file only", []string{"--config", file}, nil, "fromfile", "file " + file, "warn"},
		{"env beats file", []string{"--config", file}, map[string]string{"BLOBFS_ACCOUNT": "fromenv"}, "fromenv", "env BLOBFS_ACCOUNT", "warn"},
		{"flag beats env", []string{"--config", file, "--account", "fromflag"}, map[string]string{"BLOBFS_ACCOUNT": "fromenv"}, "fromflag", "flag", "warn"},
		{"flag before config flag still wins", []string{"--account", "fromflag", "--config", file}, nil, "fromflag", "flag", "warn"},
		{"config named by env", nil, map[string]string{"BLOBFS_CONFIG": file, "BLOBFS_LOG_LEVEL": "debug"}, "fromfile", "file " + file, "debug"},
		{"second env name", nil, map[string]string{"AZURE_STORAGE_ACCOUNT": "azenv"}, "azenv", "env AZURE_STORAGE_ACCOUNT", "info"},
		{"first env name wins", nil, map[string]string{"AZURE_STORAGE_ACCOUNT": "azenv", "BLOBFS_ACCOUNT": "blobenv"}, "blobenv", "env BLOBFS_ACCOUNT", "info"},
		{"default", nil, nil, "", "default", "info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse("mount", tt.args, envOf(tt.env), nil)
			if err != nil {
				t.Fatal(err)
			}
			if l.Account != tt.account || l.Source["--account"] != tt.source || l.LogLevel != tt.level {
				t.Errorf("account %q from %q, level %q; want %q from %q, level %q",
					l.Account, l.Source["--account"], l.LogLevel, tt.account, tt.source, tt.level)
			}
		})
	}
}

func TestFileValues(t *testing.T) {
	file := writeFile(t, "account: a1b2c3\ncontainer: data\ncache-size: 1G\nattr-ttl: 7s\numask: 027\nread-only: true\nconcurrency: 3\n")
	l, err := Parse("mount", []string{"--config=" + file}, envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.CacheSize != 1<<30 || l.AttrTTL.D() != 7*time.Second || l.Umask != 0o27 || !l.ReadOnly || l.Concurrency != 3 {
		t.Errorf("got %+v", l.Settings)
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"unknown key", "account: a\ncontaner: typo\n", "contaner"},
		{"secret in file", "account: a\naccount-key: c2VjcmV0\n", "account-key"},
		{"config in file", "config: /other.yaml\n", "config"},
		{"bad value", "account: a\ncache-size: lots\n", "line 2: cache-size"},
		{"nested value", "account:\n  name: a\n", "single value"},
		{"bad yaml", "account: [\n", "config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, tt.body)
			_, err := Parse("mount", []string{"--config", file}, envOf(nil), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		pos  []string
		fg   bool
		err  string
	}{
		{"interspersed", []string{"/mnt/x", "--account", "abc", "--foreground"}, []string{"/mnt/x"}, true, ""},
		{"flags first", []string{"--foreground=false", "/mnt/x"}, []string{"/mnt/x"}, false, ""},
		{"double dash", []string{"--", "--foreground"}, []string{"--foreground"}, false, ""},
		{"unknown flag", []string{"--acount", "x"}, nil, false, "acount"},
		{"bad size", []string{"--cache-size", "big"}, nil, false, "cache-size"},
		{"check-only flag refused by mount", []string{"--write-probe"}, nil, false, "write-probe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse("mount", tt.args, envOf(nil), nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(l.Args, "|") != strings.Join(tt.pos, "|") || l.Foreground != tt.fg {
				t.Errorf("args %q fg %v", l.Args, l.Foreground)
			}
		})
	}
	if _, err := Parse("mount", []string{"--help"}, envOf(nil), func(*flag.FlagSet) {}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

func TestResolve(t *testing.T) {
	keyFile := writeFile(t, "a2V5\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		err  string
		chk  func(*Loaded) bool
	}{
		{"ok msi-key", []string{"--account", "acct1", "--container", "data"}, nil, "",
			func(l *Loaded) bool {
				return l.BlobEndpoint == "https://acct1.blob.core.windows.net" && l.CacheDir != ""
			}},
		{"missing account", []string{"--container", "data"}, nil, "--account", nil},
		{"bad container", []string{"--account", "acct1", "--container", "Data"}, nil, "--container", nil},
		{"key without key", []string{"--account", "acct1", "--container", "data", "--auth-mode", "key"}, nil, "AZURE_STORAGE_KEY", nil},
		{"key from file", []string{"--account", "acct1", "--container", "data", "--auth-mode", "key", "--account-key-file", keyFile}, nil, "",
			func(l *Loaded) bool { return l.AccountKey == "a2V5" }},
		{"key from env", []string{"--account", "acct1", "--container", "data", "--auth-mode", "key"}, map[string]string{"AZURE_STORAGE_KEY": "eHl6"}, "",
			func(l *Loaded) bool {
				return l.AccountKey == "eHl6" && l.Get(mustLookupEnv("AZURE_STORAGE_KEY")) == "(set)"
			}},
		{"two identities", []string{"--account", "acct1", "--container", "data", "--client-id", "x", "--object-id", "y"}, nil, "at most one", nil},
		{"plain http off loopback", []string{"--account", "acct1", "--container", "data", "--blob-endpoint", "http://10.1.2.3/acct1"}, nil, "plain http", nil},
		{"path-style loopback", []string{"--account", "acct1", "--container", "data", "--blob-endpoint", "http://127.0.0.1:10000/acct1"}, nil, "", nil},
		{"sas in endpoint", []string{"--account", "acct1", "--container", "data", "--blob-endpoint", "https://x.example/?sig=s3kr1t"}, nil, "query", nil},
		{"metrics port only", []string{"--account", "acct1", "--container", "data", "--metrics-addr", ":9100"}, nil, "",
			func(l *Loaded) bool { return l.MetricsAddr == "127.0.0.1:9100" }},
		{"bad mode", []string{"--account", "acct1", "--container", "data", "--auth-mode", "magic"}, nil, "--auth-mode", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse("mount", tt.args, envOf(tt.env), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = l.Resolve()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "s3kr1t") {
					t.Errorf("error leaks a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.chk != nil && !tt.chk(l) {
				t.Errorf("unexpected settings %+v", l.Settings)
			}
		})
	}
}

func mustLookupEnv(name string) Setting {
	for _, s := range Table() {
		for _, e := range s.Env {
			if e == name {
				return s
			}
		}
	}
	panic(name)
}

func TestSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4096", 4096, true}, {"512K", 512 << 10, true}, {"8MiB", 8 << 20, true}, {"10G", 10 << 30, true},
		{"1 GB", 1 << 30, true}, {"2t", 2 << 40, true}, {"12B", 12, true}, {"-1", 0, false}, {"x", 0, false},
	}
	for _, tt := range tests {
		var z Size
		err := z.Set(tt.in)
		if (err == nil) != tt.ok || (tt.ok && int64(z) != tt.want) {
			t.Errorf("Size(%q) = %d, %v", tt.in, z, err)
		}
	}
}

// Every setting must be documented and parse its own default.
func TestTableComplete(t *testing.T) {
	for _, s := range Table() {
		if s.Help == "" || s.Group == "" || (s.Key == "" && len(s.Env) == 0) {
			t.Errorf("setting %+v lacks help, group or a name", s)
		}
		var st Settings
		if s.Default != "" {
			if err := s.set(&st, s.Default); err != nil {
				t.Errorf("%s: default %q: %v", s.Name(), s.Default, err)
			}
		}
		if !strings.Contains(Reference(), s.Name()) && !strings.Contains(Reference(), s.Env[0]) {
			t.Errorf("reference lacks %s", s.Name())
		}
	}
}

// The read cache is on unless turned off by flag, environment or file.
func TestReadCacheSetting(t *testing.T) {
	off := writeFile(t, "read-cache: false\n")
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{"default", nil, nil, true},
		{"flag", []string{"--read-cache=false"}, nil, false},
		{"env", nil, map[string]string{"BLOBFS_READ_CACHE": "false"}, false},
		{"file", []string{"--config", off}, nil, false},
		{"flag beats file", []string{"--config", off, "--read-cache"}, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse("mount", tt.args, envOf(tt.env), nil)
			if err != nil {
				t.Fatal(err)
			}
			if l.ReadCache != tt.want {
				t.Errorf("ReadCache = %v, want %v", l.ReadCache, tt.want)
			}
		})
	}
}
