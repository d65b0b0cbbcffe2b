package fs_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/blobfs/blobfs/fs"
)

func TestReadOnlyTree(t *testing.T) {
	e := newEnv(t)
	e.put(t, "top.txt", "top", nil)
	e.put(t, "a/b/deep.txt", "deep", nil)
	e.put(t, "marker/", "", map[string]string{"hdi_isfolder": "true"})
	e.put(t, "bfdir", "", map[string]string{"hdi_isfolder": "true"})
	dir, _ := e.mount(t, fs.Options{ReadOnly: true})

	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
	}
	want := []string{"a", "bfdir", "marker", "top.txt"}
	if !slices.Equal(names, want) {
		t.Fatalf("ls = %v, want %v", names, want)
	}
	for _, d := range []string{"a", "a/b", "marker", "bfdir"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil || !fi.IsDir() {
			t.Errorf("%s: %v, dir=%v", d, err, err == nil && fi.IsDir())
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "a/b/deep.txt"))
	if err != nil || string(b) != "deep" {
		t.Fatalf("read = %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0644); err == nil {
		t.Fatal("write to a read-only mount succeeded")
	}
}
