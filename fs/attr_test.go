package fs_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blobfs/blobfs/fs"
)

func TestAttrsPersist(t *testing.T) {
	e := newEnv(t)
	e.put(t, "foreign", "theirs", map[string]string{"owner": "someone", "mtime": "2010-01-02T03:04:05.000000000Z"})
	dir, mt := e.mount(t, fs.Options{UID: 1234, GID: 5678})
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("data"), 0644); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2015, 5, 5, 5, 5, 5, 5, time.UTC)
	steps := []struct {
		name string
		do   func(string) error
	}{
		{"chmod", func(p string) error { return os.Chmod(p, 0751) }},
		{"chown", func(p string) error { return os.Chown(p, 42, 43) }},
		{"chtimes", func(p string) error { return os.Chtimes(p, when, when) }},
	}
	for _, path := range []string{p, filepath.Join(dir, "foreign")} {
		for _, s := range steps {
			if err := s.do(path); err != nil {
				t.Fatalf("%s %s: %v", s.name, path, err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read after setattr: %v", err)
		}
		_ = b
	}
	unmount(t, mt)
	dir, _ = e.mount(t, fs.Options{UID: 1234, GID: 5678})
	for _, name := range []string{"f", "foreign"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		st := statT(fi)
		if fi.Mode().Perm() != 0751 || st.Uid != 42 || st.Gid != 43 || !fi.ModTime().Equal(when) {
			t.Errorf("%s: mode %v uid %d gid %d mtime %v", name, fi.Mode(), st.Uid, st.Gid, fi.ModTime())
		}
	}
	if _, p, _ := e.get(t, "foreign"); p.Metadata["owner"] != "someone" {
		t.Errorf("unknown metadata lost: %v", p.Metadata)
	}
	// Defaults for blobs without our metadata.
	e.put(t, "plain", "x", nil)
	fi, err := os.Stat(filepath.Join(dir, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	if st := statT(fi); fi.Mode().Perm() != 0644 || st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("defaults: mode %v uid %d gid %d", fi.Mode(), st.Uid, st.Gid)
	}
}
