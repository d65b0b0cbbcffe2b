package readcache

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testBS = 256 << 10 // 4 chunks of 64 KiB per block

func content(seed uint64, n int64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func open(t *testing.T, dir string, max int64, staged Staged) *Cache {
	t.Helper()
	c, err := Open(Options{Dir: dir, BlockSize: testBS, MaxBytes: max, Staged: staged})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// hit reads [off, off+n) of the version and fails the test unless it is
// served and equal to want's bytes there.
func hit(t *testing.T, c *Cache, name, etag string, want []byte, off, n int64) {
	t.Helper()
	p := make([]byte, n)
	if !c.ReadAt(name, etag, int64(len(want)), p, off) {
		t.Fatalf("%s@%s [%d,+%d): miss, want a hit", name, etag, off, n)
	}
	if !bytes.Equal(p, want[off:off+n]) {
		t.Fatalf("%s@%s [%d,+%d): wrong bytes served", name, etag, off, n)
	}
}

func miss(t *testing.T, c *Cache, name, etag string, size, off, n int64) {
	t.Helper()
	if c.ReadAt(name, etag, size, make([]byte, n), off) {
		t.Fatalf("%s@%s [%d,+%d): served, want a miss", name, etag, off, n)
	}
}

func TestServedOnlyForTheVersionStored(t *testing.T) {
	c := open(t, t.TempDir(), 0, nil)
	v1 := content(1, 3*testBS+100)
	storeWait(c, "a/f", "e1", int64(len(v1)), v1, 0)
	hit(t, c, "a/f", "e1", v1, 0, int64(len(v1)))
	hit(t, c, "a/f", "e1", v1, testBS-10, 20) // across a block boundary
	hit(t, c, "a/f", "e1", v1, 70000, 5)      // inside a chunk
	miss(t, c, "a/f", "e1", int64(len(v1)), int64(len(v1))-1, 2)

	for _, tc := range []struct {
		name, etag string
		size       int64
	}{
		{"a/g", "e1", int64(len(v1))},     // another blob
		{"a/f", "e1", int64(len(v1)) + 1}, // another size
		{"a/f", "e2", int64(len(v1))},     // rewritten
	} {
		miss(t, c, tc.name, tc.etag, tc.size, 0, 10)
	}
	// The lookups with another version dropped the one held, files and all.
	miss(t, c, "a/f", "e1", int64(len(v1)), 0, 10)
	if s := c.Stats(); s.Pieces != 0 || s.Bytes != 0 {
		t.Errorf("after the blob changed: %+v, want nothing held", s)
	}
	if n, r := countPieceFiles(t, c.dir), recordsOnDisk(t, c.dir); n != 0 || r != 0 {
		t.Errorf("%d piece files and %d records left of the old version, want none", n, r)
	}
	// The new version is kept under its own ETag.
	v2 := content(2, int64(len(v1)))
	storeWait(c, "a/f", "e2", int64(len(v2)), v2, 0)
	hit(t, c, "a/f", "e2", v2, 0, int64(len(v2)))
	miss(t, c, "a/f", "e1", int64(len(v1)), 0, 10)
}

// A random reader stores what it read, and only that.
func TestRandomReadsKeepOnlyWhatTheyRead(t *testing.T) {
	c := open(t, t.TempDir(), 0, nil)
	v := content(3, 4*testBS)
	size := int64(len(v))
	storeWait(c, "r", "e", size, v[300000:304096], 300000)
	hit(t, c, "r", "e", v, 300000, 4096)
	hit(t, c, "r", "e", v, 301000, 100)
	miss(t, c, "r", "e", size, 299999, 10)
	miss(t, c, "r", "e", size, 304000, 200)
	if s := c.Stats(); s.Pieces != 1 || s.Bytes != diskSize(4096, 8) {
		t.Errorf("after one 4 KiB read: %+v, want 1 piece of %d bytes", s, diskSize(4096, 8))
	}
	// The whole block, read later, replaces the pieces it covers.
	blk := v[testBS : 2*testBS]
	storeWait(c, "r", "e", size, blk, testBS)
	hit(t, c, "r", "e", v, 300000, 4096)
	if s := c.Stats(); s.Pieces != 1 || s.Bytes != diskSize(testBS, 8) {
		t.Errorf("after the whole block: %+v, want 1 piece of %d bytes", s, diskSize(testBS, 8))
	}
}

func TestLRUEvictionWithinBudget(t *testing.T) {
	per := diskSize(testBS, 8)
	c := open(t, t.TempDir(), 3*per, nil)
	v := content(4, 5*testBS)
	size := int64(len(v))
	store := func(i int64) { storeWait(c, "big", "e", size, v[i*testBS:(i+1)*testBS], i*testBS) }
	store(0)
	store(1)
	store(2)
	hit(t, c, "big", "e", v, 0, 10) // block 0 is now more recent than 1
	store(3)
	if u := c.Used(); u > 3*per {
		t.Fatalf("used %d bytes, over the budget of %d", u, 3*per)
	}
	miss(t, c, "big", "e", size, testBS, 10) // least recently used
	hit(t, c, "big", "e", v, 0, testBS)
	hit(t, c, "big", "e", v, 2*testBS, testBS)
	hit(t, c, "big", "e", v, 3*testBS, testBS)
	if n := countPieceFiles(t, c.dir); n != 3 {
		t.Errorf("%d piece files on disk, want 3", n)
	}
}

type fakeStaged struct{ n atomic.Int64 }

func (f *fakeStaged) Used() int64 { return f.n.Load() }

// Staged data always wins: what staging holds leaves the read cache less
// room, and staging takes room back with Evict.
func TestStagingPressure(t *testing.T) {
	per := diskSize(testBS, 8)
	st := &fakeStaged{}
	max := 4 * per
	c := open(t, t.TempDir(), max, st)
	v := content(5, 4*testBS)
	size := int64(len(v))
	for i := int64(0); i < 4; i++ {
		storeWait(c, "f", "e", size, v[i*testBS:(i+1)*testBS], i*testBS)
	}
	if u := c.Used(); u != max {
		t.Fatalf("used %d, want %d", u, max)
	}
	// Staging wants 2 blocks: it evicts them from the read cache, oldest
	// first.
	if freed := c.Evict(2 * per); freed < 2*per {
		t.Fatalf("Evict freed %d, want at least %d", freed, 2*per)
	}
	st.n.Store(2 * per)
	miss(t, c, "f", "e", size, 0, 10)
	miss(t, c, "f", "e", size, testBS, 10)
	hit(t, c, "f", "e", v, 2*testBS, testBS)
	// A new piece that fits beside staging only by evicting an old one
	// evicts it; one that cannot fit at all is not stored.
	w := content(6, testBS)
	storeWait(c, "g", "e", testBS, w, 0)
	if u := c.Used() + st.Used(); u > max {
		t.Errorf("cache %d + staged %d over the budget %d", c.Used(), st.Used(), max)
	}
	hit(t, c, "g", "e", w, 0, testBS)
	st.n.Store(max)
	storeWait(c, "h", "e", testBS, w, 0)
	miss(t, c, "h", "e", testBS, 0, 10)
	if u := c.Used(); u != 0 {
		t.Errorf("with staging holding the whole budget the cache still holds %d bytes", u)
	}
	// Versions left without pieces are forgotten.
	if s := c.Stats(); s.Versions != 0 {
		t.Errorf("%+v, want no version left without pieces", s)
	}
}

// What a crash (or power loss) mid-fill can leave behind is never served.
func TestCrashMidFillServesNothing(t *testing.T) {
	v := content(7, 2*testBS)
	size := int64(len(v))
	for _, tc := range []struct {
		name string
		// damage changes the files of a cache (at dir) holding both
		// blocks of "f" at e; it returns the offset that must now be a
		// miss.
		damage func(t *testing.T, dir string) int64
		// atOpen: the damage is found by rebuild (the piece is not even
		// indexed); otherwise by the read's checks.
		atOpen bool
	}{
		{"temporary file never renamed", func(t *testing.T, dir string) int64 {
			// As a fill killed before its rename: the data is there, the
			// piece is not.
			final := piecePath(dir, "f", "e", size, testBS, testBS)
			os.Remove(final)
			os.WriteFile(filepath.Join(filepath.Dir(final), ".tmp-0123"), pieceFile(testEntry(dir, "f", "e", size), testBS, v[testBS:]), 0o600)
			return testBS
		}, true},
		{"piece file cut short", func(t *testing.T, dir string) int64 {
			os.Truncate(piecePath(dir, "f", "e", size, 0, testBS), fileSize(testBS, 2)-100)
			return 0
		}, true},
		{"data never reached the disk (zeros)", func(t *testing.T, dir string) int64 {
			f, err := os.OpenFile(piecePath(dir, "f", "e", size, testBS, testBS), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(make([]byte, chunkSize), chunkSize)
			f.Close()
			return testBS + chunkSize + 10
		}, false},
		{"header never reached the disk", func(t *testing.T, dir string) int64 {
			f, _ := os.OpenFile(piecePath(dir, "f", "e", size, 0, testBS), os.O_WRONLY, 0)
			f.WriteAt(make([]byte, 4096), headerAt(testBS))
			f.Close()
			return 0
		}, false},
		{"another version's piece", func(t *testing.T, dir string) int64 {
			other := content(8, testBS)
			os.WriteFile(piecePath(dir, "f", "e", size, 0, testBS), pieceFile(testEntry(dir, "f", "x", size), 0, other), 0o600)
			return 0
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := open(t, dir, 0, nil)
			storeWait(c, "f", "e", size, v, 0)
			c.Close()
			bad := tc.damage(t, dir)
			c = open(t, dir, 0, nil)
			if tc.atOpen && c.Stats().Pieces != 1 {
				t.Errorf("after reopening: %d pieces indexed, want only the intact one", c.Stats().Pieces)
			}
			miss(t, c, "f", "e", size, bad, 10)
			// The damaged piece is gone from disk too, the other served.
			if n := countPieceFiles(t, dir); n != 1 {
				t.Errorf("%d piece files left, want the intact one only", n)
			}
			good := int64(0)
			if bad < testBS {
				good = testBS
			}
			hit(t, c, "f", "e", v, good, testBS)
		})
	}
	// A version none of whose pieces has a readable header is dropped
	// whole at Open.
	t.Run("no readable header", func(t *testing.T) {
		dir := t.TempDir()
		c := open(t, dir, 0, nil)
		storeWait(c, "f", "e", size, v, 0)
		c.Close()
		for _, off := range []int64{0, testBS} {
			f, _ := os.OpenFile(piecePath(dir, "f", "e", size, off, testBS), os.O_WRONLY, 0)
			f.WriteAt([]byte("XXXX"), headerAt(testBS))
			f.Close()
		}
		c = open(t, dir, 0, nil)
		miss(t, c, "f", "e", size, 0, 10)
		if s := c.Stats(); s.Pieces != 0 || s.Bytes != 0 || countPieceFiles(t, dir) != 0 {
			t.Errorf("%+v, %d files, want nothing", s, countPieceFiles(t, dir))
		}
	})
}

// pieceFile is what a piece file of e holding data at off holds.
func pieceFile(e *entry, off int64, data []byte) []byte {
	n := int64(len(data))
	b := make([]byte, headerAt(n), fileSize(n, e.metaLen()))
	copy(b, data)
	return append(b, encodeHeader(e, off, n, ChunkSums(nil, data))...)
}

func testEntry(dir, name, etag string, size int64) *entry {
	return (&Cache{dir: dir}).newEntry(name, etag, size)
}

// piecePath is where the cache at dir keeps [off, off+n) of a version.
func piecePath(dir, name, etag string, size, off, n int64) string {
	return testEntry(dir, name, etag, size).base + "." + pieceName(off, n)
}

func TestReopenServesFromDisk(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 0, nil)
	v := content(9, 3*testBS+5)
	small := []byte("small file")
	storeWait(c, "data/v", "e", int64(len(v)), v, 0)
	storeWait(c, "data/s", "x", int64(len(small)), small, 0)
	if _, err := Open(Options{Dir: dir, BlockSize: testBS}); err == nil {
		t.Fatal("a second Open of the same directory succeeded, want it refused")
	}
	c.Close()

	c = open(t, dir, 0, nil)
	hit(t, c, "data/v", "e", v, 0, int64(len(v)))
	hit(t, c, "data/s", "x", small, 0, int64(len(small)))
	if s := c.Stats(); s.Versions != 2 || s.Pieces != 5 || s.Bytes != 3*diskSize(testBS, 8)+diskSize(5, 8)+diskSize(int64(len(small)), 8) {
		t.Errorf("after reopening: %+v", s)
	}
	c.Close()
	// With another block size the pieces are still served: a piece may
	// cover several blocks.
	c2, err := Open(Options{Dir: dir, BlockSize: 2 * testBS})
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < int64(len(v)); off += testBS {
		hit(t, c2, "data/v", "e", v, off, min(testBS, int64(len(v))-off))
	}
	c2.Close()
	c3, err := Open(Options{Dir: dir, BlockSize: testBS / 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if s := c3.Stats(); s.Pieces != 5 {
		t.Errorf("with a smaller block size: %+v, want the 5 pieces", s)
	}
	hit(t, c3, "data/v", "e", v, 0, int64(len(v)))
	hit(t, c3, "data/s", "x", small, 0, int64(len(small)))
}

func TestFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rc")
	c := open(t, dir, 0, nil)
	storeWait(c, "p", "e", 5, []byte("hello"), 0)
	filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700 | os.ModeDir
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
		return nil
	})
}

// Readers storing and reading the same blocks at once, while staging
// evicts: every hit is the right bytes (run with -race).
func TestConcurrentUse(t *testing.T) {
	per := diskSize(testBS, 8)
	c := open(t, t.TempDir(), 6*per, nil)
	v := content(10, 8*testBS)
	size := int64(len(v))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			p := make([]byte, testBS)
			for range 200 {
				i := r.Int64N(8)
				if c.ReadAt("f", "e", size, p, i*testBS) {
					if !bytes.Equal(p, v[i*testBS:(i+1)*testBS]) {
						t.Errorf("block %d: wrong bytes", i)
						return
					}
				} else {
					storeWait(c, "f", "e", size, v[i*testBS:(i+1)*testBS], i*testBS)
				}
				if r.IntN(10) == 0 {
					c.Evict(per)
				}
			}
		}()
	}
	wg.Wait()
	s := c.Stats()
	if u := c.Used(); u > 6*per || u != int64(s.Pieces)*per {
		t.Errorf("used %d for %+v (budget %d)", u, s, 6*per)
	}
	if n := countPieceFiles(t, c.dir); n != c.Stats().Pieces {
		t.Errorf("%d piece files on disk, %d indexed", n, c.Stats().Pieces)
	}
}

// countPieceFiles counts the pieces kept in files (not in packs).
func countPieceFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() && fi.Name() == packsDir {
			return filepath.SkipDir
		}
		if err == nil && fi.Mode().IsRegular() && fi.Name() != ".lock" && !strings.HasPrefix(fi.Name(), ".tmp") {
			n++
		}
		return nil
	})
	return n
}

// A crash between storing a new version and dropping the old one leaves
// both on disk: Open keeps the one written last and removes the other,
// whether each is a file or a record (compared by a file's modification
// time and a record's store time).
func TestReopenKeepsTheNewerOfTwoVersions(t *testing.T) {
	const big = packMax + 4096 // a file piece; smaller ones are records
	for _, tc := range []struct {
		name             string
		oldSize, newSize int64
	}{
		{"files", big, big},
		{"records", 1000, 1000},
		{"old file, new record", big, 1000},
		{"old record, new file", 1000, big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, cur := content(11, tc.oldSize), content(12, tc.newSize)
			dir := t.TempDir()
			c := open(t, dir, 0, nil)
			storeWait(c, "f", "old", tc.oldSize, old, 0)
			c.Close()
			putVersion(t, dir, "f", "new", cur, time.Now().Add(time.Hour))

			c = open(t, dir, 0, nil)
			hit(t, c, "f", "new", cur, 0, tc.newSize)
			if s := c.Stats(); s.Versions != 1 || s.Pieces != 1 || s.Bytes != diskSize(tc.newSize, 4) {
				t.Errorf("%+v, want the newer version only", s)
			}
			if n := countPieceFiles(t, dir) + recordsOnDisk(t, dir); n != 1 {
				t.Errorf("%d pieces on disk, want the newer version's only", n)
			}
			c.Close()
			c = open(t, dir, 0, nil)
			miss(t, c, "f", "old", tc.oldSize, 0, 10)
		})
	}
}

// putVersion writes data as the one piece of version (name, etag) into
// the cache directory dir, stored at when, as a file or (small) as a
// record in a pack of its own, as a store of an earlier mount killed
// before it dropped the other version would have left it.
func putVersion(t *testing.T, dir, name, etag string, data []byte, when time.Time) {
	t.Helper()
	n := int64(len(data))
	e := testEntry(dir, name, etag, n)
	if packable(n, e.metaLen()) {
		pk, err := newPack(filepath.Join(dir, packsDir))
		if err != nil {
			t.Fatal(err)
		}
		defer pk.f.Close()
		if _, err := pk.f.WriteAt(encodeRecord(e, pk, 0, 0, data, when), 0); err != nil {
			t.Fatal(err)
		}
		return
	}
	path := piecePath(dir, name, etag, n, 0, n)
	os.MkdirAll(filepath.Dir(path), 0o700)
	if err := os.WriteFile(path, pieceFile(e, 0, data), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, when, when)
}

// A file handed over whole (a staged file just committed) is served from
// every block it covers, after a reopen too, and only for its version; a
// refusal leaves the file to the caller as it was.
func TestAdoptTakesTheFileOver(t *testing.T) {
	v := content(13, 3*testBS+777) // across 4 blocks
	size := int64(len(v))
	staged := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "staged.data")
		if err := os.WriteFile(path, v, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	adoption := func(path string) Adoption {
		return Adoption{Name: "w/f", ETag: "e", Size: size, Path: path, Sums: ChunkSums(nil, v)}
	}

	t.Run("served, across blocks and after a reopen", func(t *testing.T) {
		dir := t.TempDir()
		c := open(t, dir, 0, nil)
		// A piece it covers, read before, is dropped for it.
		storeWait(c, "w/f", "e", size, v[testBS:2*testBS], testBS)
		path := staged(t)
		if !c.Adopt(adoption(path)) {
			t.Fatal("Adopt refused")
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("the adopted file is still at its old path: %v", err)
		}
		hit(t, c, "w/f", "e", v, 0, size)
		hit(t, c, "w/f", "e", v, testBS-5, 10)
		if s := c.Stats(); s.Pieces != 1 || s.Bytes != diskSize(size, 4) {
			t.Errorf("%+v, want the one adopted piece of %d bytes", s, diskSize(size, 4))
		}
		c.Close()
		c = open(t, dir, 0, nil)
		hit(t, c, "w/f", "e", v, 2*testBS, size-2*testBS)
		miss(t, c, "w/f", "e2", size, 0, 10) // rewritten: dropped
		if s := c.Stats(); s.Pieces != 0 || s.Bytes != 0 || countPieceFiles(t, dir) != 0 {
			t.Errorf("after another version was asked for: %+v, want nothing held", s)
		}
	})
	t.Run("a chunk lost on disk is a miss", func(t *testing.T) {
		dir := t.TempDir()
		c := open(t, dir, 0, nil)
		if !c.Adopt(adoption(staged(t))) {
			t.Fatal("Adopt refused")
		}
		f, err := os.OpenFile(piecePath(dir, "w/f", "e", size, 0, size), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(make([]byte, 100), 2*testBS+10)
		f.Close()
		hit(t, c, "w/f", "e", v, 0, testBS) // chunks before are intact
		miss(t, c, "w/f", "e", size, 2*testBS, 10)
		if countPieceFiles(t, dir) != 0 {
			t.Error("the damaged piece is still on disk")
		}
	})
	t.Run("refused when it does not fit", func(t *testing.T) {
		c := open(t, t.TempDir(), diskSize(size, 4)-1, nil)
		path := staged(t)
		if c.Adopt(adoption(path)) {
			t.Fatal("Adopt took a file larger than the budget")
		}
		if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, v) {
			t.Errorf("the refused file changed: %v", err)
		}
		if s := c.Stats(); s.Pieces != 0 || s.Bytes != 0 || s.Versions != 0 {
			t.Errorf("%+v, want nothing held", s)
		}
	})
	t.Run("refused with wrong sums or size", func(t *testing.T) {
		c := open(t, t.TempDir(), 0, nil)
		path := staged(t)
		a := adoption(path)
		a.Sums = a.Sums[1:]
		b := adoption(path)
		b.Size--
		if c.Adopt(a) || c.Adopt(b) {
			t.Fatal("Adopt took a file whose sums or size do not match")
		}
		if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, v) {
			t.Errorf("the refused file changed: %v", err)
		}
	})
	t.Run("evicted whole", func(t *testing.T) {
		dir := t.TempDir()
		c := open(t, dir, 0, nil)
		if !c.Adopt(adoption(staged(t))) {
			t.Fatal("Adopt refused")
		}
		if got := c.Evict(1); got != diskSize(size, 4) {
			t.Errorf("Evict freed %d, want the whole piece %d", got, diskSize(size, 4))
		}
		miss(t, c, "w/f", "e", size, testBS, 10)
		if countPieceFiles(t, dir) != 0 || c.Used() != 0 {
			t.Error("the evicted piece is still on disk or counted")
		}
	})
}

// storeWait is Store, then a wait until the filler has made it: the tests
// look at the disk right after.
func storeWait(c *Cache, name, etag string, size int64, p []byte, off int64) {
	c.Store(name, etag, size, p, off)
	c.waitFills()
}
