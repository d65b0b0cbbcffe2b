package stage_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/stage"
)

// stagedData lists the files in a staging directory that hold something:
// a committed file may leave only its emptied pair behind (a spare).
func stagedData(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	for _, n := range dirNames(tb, dir) {
		if st, err := os.Stat(filepath.Join(dir, n)); n != ".lock" && (err != nil || st.IsDir() || st.Size() > 0) {
			out = append(out, n)
		}
	}
	return out
}

func dirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func writeCommit(tb testing.TB, m *stage.Manager, name string, data []byte) *stage.File {
	tb.Helper()
	ctx := context.Background()
	f, err := m.Open(ctx, name, nil, true)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.WriteAt(ctx, data, 0); err != nil {
		tb.Fatal(err)
	}
	if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
		tb.Fatal(err)
	}
	return f
}

func TestCommittedFilesAreRecycled(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	m := newManager(t, ct, stage.Options{BlockSize: 64 << 10})

	first := writeCommit(t, m, "spare/a", pattern(5000, 1))
	firstPath := first.CachePath()
	first.Close()
	pair := dirNames(t, m.Dir())
	if len(pair) != 3 || len(stagedData(t, m.Dir())) != 0 {
		t.Fatalf("after one committed file the directory holds %v, want the lock and an empty pair", pair)
	}

	// The next file takes the pair: no new files, and it starts empty.
	second, err := m.Open(ctx, "spare/b", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if second.CachePath() != firstPath {
		t.Errorf("second file staged at %s, want the spare %s", second.CachePath(), firstPath)
	}
	if _, err := second.WriteAt(ctx, []byte("bb"), 0); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(second.CachePath()); err != nil || st.Size() != 2 {
		t.Errorf("reused cache file: %v, %v; want 2 bytes", st, err)
	}
	// The first file's handle is closed: it must not read the second's data.
	if n, err := first.ReadAt(ctx, make([]byte, 10), 0); err == nil || n != 0 {
		t.Errorf("closed file read %d bytes, err %v", n, err)
	}
	// Recover (at the next mount in real life) leaves spares and open files alone.
	if rec, err := m.Recover(ctx); err != nil || len(rec) != 0 {
		t.Errorf("Recover = %v, %v", rec, err)
	}
	if _, err := second.Commit(ctx, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	second.Close()
	if got, _ := download(t, ct, "spare/b"); string(got) != "bb" {
		t.Errorf("spare/b = %q", got)
	}
	if got, _ := download(t, ct, "spare/a"); !bytes.Equal(got, pattern(5000, 1)) {
		t.Errorf("spare/a changed")
	}
	if names := dirNames(t, m.Dir()); len(names) != 3 {
		t.Errorf("after two committed files: %v, want the same pair", names)
	}

	// A file that sent Put Blocks is not recycled: its id names blocks.
	big := writeCommit(t, m, "spare/big", pattern(200<<10, 2))
	bigPath := big.CachePath()
	big.Close()
	if _, err := os.Stat(bigPath); !os.IsNotExist(err) {
		t.Errorf("cache file of a block-uploaded file still there: %v", err)
	}

	// A file closed with changes uncommitted keeps its data, spare or not.
	kept, err := m.Open(ctx, "spare/kept", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	kept.WriteAt(ctx, []byte("keep me"), 0)
	keptPath := kept.CachePath()
	kept.Close()
	if b, err := os.ReadFile(keptPath); err != nil || string(b) != "keep me" {
		t.Errorf("uncommitted data: %q, %v", b, err)
	}

	// Close removes the spares; the kept file stays for Recover.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{".lock", filepath.Base(keptPath), filepath.Base(keptPath[:len(keptPath)-len(".data")]) + ".json"}
	sort.Strings(want)
	if got := dirNames(t, m.Dir()); !slices.Equal(got, want) {
		t.Errorf("after Close: %v, want %v", got, want)
	}
}
