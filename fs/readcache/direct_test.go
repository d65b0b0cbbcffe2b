package readcache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/blobfs/blobfs/fs/blockbuf"
)

// readDirect reads whole aligned pages into an aligned buffer, and
// declines anything else, for the caller to read buffered.
func TestReadDirect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	want := content(3, 3<<20)
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	aligned := blockbuf.New(2 << 20) // on a huge-page boundary
	for _, tc := range []struct {
		name string
		p    []byte
		off  int64
		ok   bool
	}{
		{"aligned", aligned, 1 << 20, true},
		{"past the end", aligned, 2 << 20, false},
		{"unaligned offset", aligned, 100, false},
		{"unaligned buffer", aligned[512 : 512+1<<20], 0, false},
		{"partial page", aligned[:1<<20+100], 0, false},
		{"small", aligned[:64<<10], 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clear(tc.p)
			ok := readDirect(path, tc.p, tc.off)
			if ok != tc.ok {
				t.Fatalf("readDirect = %v, want %v", ok, tc.ok)
			}
			if ok && !bytes.Equal(tc.p, want[tc.off:tc.off+int64(len(tc.p))]) {
				t.Fatal("read other bytes than the file's")
			}
		})
	}
}

// A large piece read with O_DIRECT is checked as any: a byte changed on
// disk (written through the page cache, which a direct read must see) is
// a miss, never served.
func TestLargePieceReadDirectlyIsChecked(t *testing.T) {
	const bs = 2 << 20
	dir := t.TempDir()
	c, err := Open(Options{Dir: dir, BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := blockbuf.New(bs)
	copy(data, content(4, bs))
	c.Store("big", "e", bs, data, 0)
	got := blockbuf.New(bs)
	if !c.ReadAt("big", "e", bs, got, 0) || !bytes.Equal(got, data) {
		t.Fatal("the large piece was not served as stored")
	}
	c.mu.Lock()
	path := c.entries["big"].pieces[0][0].path()
	c.mu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[bs/2] ^ 0xff}, bs/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if c.ReadAt("big", "e", bs, got, 0) {
		t.Fatal("a piece changed on disk was served")
	}
	if s := c.Stats(); s.Pieces != 0 {
		t.Fatalf("%+v: the bad piece is still indexed", s)
	}
}
