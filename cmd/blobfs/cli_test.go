package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/blobfs/blobfs/cmd/blobfs/internal/config"
)

func runInProcess(args []string, envm map[string]string) (string, string, int) {
	var o, e bytes.Buffer
	code := run(append([]string{"blobfs"}, args...), env{
		getenv: func(k string) string { return envm[k] },
		stdout: &o, stderr: &e,
	})
	return o.String(), e.String(), code
}

func TestHelpHasExamples(t *testing.T) {
	for _, cmd := range []string{"mount", "unmount", "check", "stats"} {
		out, _, code := runInProcess([]string{cmd, "--help"}, nil)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "blobfs "+cmd) {
			t.Errorf("blobfs %s --help: exit %d\n%s", cmd, code, out)
		}
		if n := strings.Count(out, "Usage:"); n != 1 {
			t.Errorf("blobfs %s --help prints its help %d times", cmd, n)
		}
	}
	out, _, _ := runInProcess([]string{"mount", "--help"}, nil)
	for _, s := range config.Table() {
		if s.For("mount") && !strings.Contains(out, s.Name()) {
			t.Errorf("mount --help does not list %s", s.Name())
		}
	}
	if out, _, code := runInProcess([]string{"version"}, nil); code != 0 || !strings.HasPrefix(out, "blobfs ") {
		t.Errorf("version: %d %q", code, out)
	}
	if _, _, code := runInProcess([]string{"frobnicate"}, nil); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
}

// The configuration reference (docs/CONFIGURATION.md) is generated; it
// must not drift from the settings table.
func TestREADMEReferenceUpToDate(t *testing.T) {
	readme, err := os.ReadFile("../../docs/CONFIGURATION.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- BEGIN CONFIG REFERENCE", "<!-- END CONFIG REFERENCE"
	s := string(readme)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("docs/CONFIGURATION.md lacks the configuration reference markers")
	}
	got := s[i:j]
	got = got[strings.Index(got, "\n")+1:]
	if got != config.Reference() {
		t.Error("docs/CONFIGURATION.md is stale: run make readme")
	}
}

// Validation errors come back before anything is mounted, naming the
// setting; the mount never starts.
func TestMountRefusesBadSettings(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"no mountpoint", []string{"mount", "--account", "acct1", "--container", "data"}, nil, 2, "MOUNTPOINT"},
		{"no account", []string{"mount", "/mnt/x", "--container", "data"}, nil, 1, "--account"},
		{"bad flag", []string{"mount", "/mnt/x", "--acount", "a"}, nil, 2, "acount"},
		{"plain http off loopback", []string{"mount", "/mnt/x", "--account", "acct1", "--container", "data"},
			map[string]string{"BLOBFS_BLOB_ENDPOINT": "http://192.0.2.1/acct1"}, 1, "plain http"},
		{"key mode without key", []string{"mount", "/mnt/x", "--account", "acct1", "--container", "data", "--auth-mode", "key"}, nil, 1, "AZURE_STORAGE_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runInProcess(tt.args, tt.env)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}

func TestHelperArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
		err  string
	}{
		{"account/container with options",
			[]string{"mystorage/data", "/mnt/data", "-o", "rw,_netdev,nofail,allow_other,uid=1000,cache_size=2G,x-systemd.automount,ro"},
			"/mnt/data --account mystorage --container data --allow-other --uid=1000 --cache-size=2G --read-only", ""},
		{"container only, glued -o",
			[]string{"data", "/mnt/data", "-oaccount=acct1,blob-endpoint=http://127.0.0.1:1/acct1", "-n"},
			"/mnt/data --container data --account=acct1 --blob-endpoint=http://127.0.0.1:1/acct1", ""},
		{"nonempty", []string{"a/b", "/m", "-o", "nonempty"}, "/m --account a --container b --nonempty", ""},
		{"FUSE spelling of direct I/O", []string{"a/b", "/m", "-o", "direct_io"}, "/m --account a --container b --direct-io", ""},
		{"quoted comma", []string{"c", "/m", "-o", `log-file="/var/log/a,b.log"`}, "/m --container c --log-file=/var/log/a,b.log", ""},
		{"unknown option", []string{"a/b", "/m", "-o", "cache_sise=1G"}, "", "cache-sise"},
		{"value missing", []string{"a/b", "/m", "-o", "uid"}, "", "needs a value"},
		{"check-only setting", []string{"a/b", "/m", "-o", "write-probe"}, "", "write-probe"},
		{"missing mountpoint", []string{"a/b"}, "", "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := helperArgs(tt.args)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != tt.want {
				t.Errorf("got %q, %v\nwant %q", strings.Join(got, " "), err, tt.want)
			}
		})
	}
}
