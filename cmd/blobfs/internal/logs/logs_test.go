package logs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// logrotate moves the file away and sends SIGHUP; Reopen must start a new
// file at the old path and leave the moved one alone.
func TestReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "blobfs.log")
	l, err := New(Options{Level: "info", Format: "json", Target: path})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.WithField("n", 1).Info("before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.WithField("n", 2).Info("still old")
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.WithField("n", 3).Info("after")
	l.Debug("filtered by level")

	tests := []struct {
		file string
		msgs []string
	}{
		{path + ".1", []string{"before", "still old"}},
		{path, []string{"after"}},
	}
	for _, tt := range tests {
		data, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("%s: not JSON: %q", tt.file, line)
			}
			got = append(got, rec["msg"].(string))
		}
		if strings.Join(got, "|") != strings.Join(tt.msgs, "|") {
			t.Errorf("%s: %q, want %q", tt.file, got, tt.msgs)
		}
	}
}

func TestBadOptions(t *testing.T) {
	tests := []Options{
		{Level: "loud", Format: "text"},
		{Level: "info", Format: "xml"},
		{Level: "info", Format: "text", Target: "/nonexistent-dir/x/blobfs.log"},
	}
	for _, o := range tests {
		if l, err := New(o); err == nil {
			l.Close()
			t.Errorf("%+v accepted", o)
		}
	}
}
