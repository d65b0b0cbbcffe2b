package readcache

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// packFiles lists the pack files of the cache at dir.
func packFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, packsDir, "*"+packExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// recordsOnDisk counts the valid records in the packs of the cache at
// dir, as Open would find them.
func recordsOnDisk(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, path := range packFiles(t, dir) {
		pk, recs, _, err := scanPack(path)
		if err != nil {
			t.Fatal(err)
		}
		pk.f.Close()
		n += len(recs)
	}
	return n
}

// packBlocks is the disk the packs of the cache at dir take.
func packBlocks(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, path := range packFiles(t, dir) {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		n += st.Blocks * 512
	}
	return n
}

// where is the pack and offset of the record holding off of name.
func where(t *testing.T, c *Cache, name string, off int64) (*pack, int64) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[name]
	if e == nil {
		t.Fatalf("%s not held", name)
	}
	for _, p := range e.pieces[off/c.bs] {
		if p.off <= off && off < p.off+p.n {
			if p.pk == nil {
				t.Fatalf("%s at %d is a file, want a record", name, off)
			}
			return p.pk, p.at
		}
	}
	t.Fatalf("%s at %d not held", name, off)
	return nil, 0
}

func smallName(i int) string { return fmt.Sprintf("small/%04d", i) }

// Small files and the small ranges a random reader reads are records in
// one pack, not a file each, and are served again after a reopen.
func TestSmallPiecesAreRecords(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 0, nil)
	const files = 100
	var want int64
	for i := range files {
		v := content(uint64(i), int64(1+i*1000)) // 1 byte to 99 KB
		storeWait(c, smallName(i), "e", int64(len(v)), v, 0)
		want += diskSize(int64(len(v)), len(smallName(i))+1)
	}
	big := content(1000, 4*testBS)
	for _, r := range [][2]int64{{100, 4096}, {testBS + 5000, packMax}, {3 * testBS, 1}} {
		storeWait(c, "big", "e", int64(len(big)), big[r[0]:r[0]+r[1]], r[0])
		want += diskSize(r[1], 4)
	}
	if n := countPieceFiles(t, dir); n != 0 {
		t.Errorf("%d piece files, want none: small pieces are records", n)
	}
	if p := packFiles(t, dir); len(p) != 1 {
		t.Errorf("%d packs, want 1", len(p))
	}
	if s := c.Stats(); s.Pieces != files+3 || s.Bytes != want {
		t.Errorf("%+v, want %d pieces of %d bytes", s, files+3, want)
	}
	// Only what was stored: the 4 KiB blocks the records take.
	if b := packBlocks(t, dir); b != want {
		t.Errorf("packs take %d bytes on disk, counted %d", b, want)
	}
	for _, reopen := range []bool{false, true} {
		if reopen {
			c.Close()
			c = open(t, dir, 0, nil)
			if s := c.Stats(); s.Pieces != files+3 || s.Bytes != want {
				t.Errorf("after reopening: %+v, want %d pieces of %d bytes", s, files+3, want)
			}
		}
		for i := range files {
			v := content(uint64(i), int64(1+i*1000))
			hit(t, c, smallName(i), "e", v, 0, int64(len(v)))
		}
		hit(t, c, "big", "e", big, 100, 4096)
		hit(t, c, "big", "e", big, testBS+5000+chunkSize-10, 20) // across a chunk
		hit(t, c, "big", "e", big, 3*testBS, 1)
		miss(t, c, "big", "e", int64(len(big)), 99, 2)
	}
	// A piece over packMax is a file.
	storeWait(c, "big", "e", int64(len(big)), big[testBS:2*testBS], testBS)
	if n := countPieceFiles(t, dir); n != 1 {
		t.Errorf("%d piece files, want the block's", n)
	}
}

// Evicted or dropped, a record's blocks are punched: the disk is given
// back, counted so, and the record is a miss, also after a reopen.
func TestRemovedRecordsArePunched(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove func(c *Cache) // removes small/0000 (the oldest)
	}{
		{"evicted", func(c *Cache) { c.Evict(1) }},
		{"another version asked for", func(c *Cache) { c.ReadAt(smallName(0), "other", 4096, make([]byte, 1), 0) }},
		{"covered by a larger piece", func(c *Cache) {
			storeWait(c, smallName(0), "e", 4096, content(0, 4096), 0)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := open(t, dir, 0, nil)
			if tc.name == "covered by a larger piece" {
				storeWait(c, smallName(0), "e", 4096, content(0, 4096)[:100], 0)
			} else {
				storeWait(c, smallName(0), "e", 4096, content(0, 4096), 0)
			}
			for i := 1; i < 4; i++ {
				storeWait(c, smallName(i), "e", 4096, content(uint64(i), 4096), 0)
			}
			pk, at := where(t, c, smallName(0), 0)
			used, disk := c.Used(), packBlocks(t, dir)
			tc.remove(c)
			var freed int64 = diskSize(4096, len(smallName(0))+1)
			if tc.name == "covered by a larger piece" {
				freed = diskSize(100, len(smallName(0))+1) - diskSize(4096, len(smallName(0))+1)
			}
			if u := c.Used(); u != used-freed {
				t.Errorf("used %d, want %d", u, used-freed)
			}
			if d := packBlocks(t, dir); d != disk-freed {
				t.Errorf("packs take %d bytes on disk, want %d", d, disk-freed)
			}
			// The record's blocks read as zeros.
			old := make([]byte, diskSize(100, len(smallName(0))+1))
			if _, err := pk.f.ReadAt(old, at); err != nil || !bytes.Equal(old, make([]byte, len(old))) {
				t.Errorf("the removed record still on disk (%v)", err)
			}
			if tc.name != "covered by a larger piece" {
				miss(t, c, smallName(0), "e", 4096, 0, 10)
			}
			c.Close()
			c = open(t, dir, 0, nil)
			if tc.name == "covered by a larger piece" {
				hit(t, c, smallName(0), "e", content(0, 4096), 0, 4096)
			} else {
				miss(t, c, smallName(0), "e", 4096, 0, 10)
			}
			hit(t, c, smallName(1), "e", content(1, 4096), 0, 4096)
		})
	}
}

// What a crash, a power loss or a damaged disk leaves in a pack is never
// served: a record that fails its checks is a miss and is dropped, its
// blocks punched.
func TestDamagedRecordsServeNothing(t *testing.T) {
	const files = 4
	data := func(i int) []byte { return content(uint64(100+i), 5000) }
	for _, tc := range []struct {
		name string
		// damage changes the pack of a closed cache holding files
		// records, the one of file i at at in pk; it returns the file
		// that must now be a miss.
		damage func(t *testing.T, f *os.File, rec func(i int) (int64, int64)) int
		// atOpen: found by rebuild (not even indexed); otherwise by the
		// read's checks.
		atOpen bool
	}{
		{"pack cut short mid-record", func(t *testing.T, f *os.File, rec func(int) (int64, int64)) int {
			at, hl := rec(files - 1)
			f.Truncate(at + hl + 2000)
			return files - 1
		}, true},
		{"pack cut short mid-header", func(t *testing.T, f *os.File, rec func(int) (int64, int64)) int {
			at, _ := rec(files - 1)
			f.Truncate(at + 50)
			return files - 1
		}, true},
		{"header never reached the disk", func(t *testing.T, f *os.File, rec func(int) (int64, int64)) int {
			at, _ := rec(1)
			f.WriteAt(make([]byte, 200), at)
			return 1
		}, true},
		{"data never reached the disk (zeros)", func(t *testing.T, f *os.File, rec func(int) (int64, int64)) int {
			at, hl := rec(2)
			f.WriteAt(make([]byte, 4096), at+hl)
			return 2
		}, false},
		{"a byte of data changed", func(t *testing.T, f *os.File, rec func(int) (int64, int64)) int {
			at, hl := rec(0)
			b := make([]byte, 1)
			f.ReadAt(b, at+hl+4321)
			b[0] ^= 0x40
			f.WriteAt(b, at+hl+4321)
			return 0
		}, false},
		{"another version's record in its place", func(t *testing.T, f *os.File, rec func(int) (int64, int64)) int {
			at, _ := rec(2)
			pk := &pack{}
			copy(pk.id[:], packID(t, f.Name()))
			f.WriteAt(encodeRecord(testEntry("", smallName(2), "x", 5000), pk, at, 0, content(9, 5000), time.Now()), at)
			return 2
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := open(t, dir, 0, nil)
			for i := range files {
				storeWait(c, smallName(i), "e", 5000, data(i), 0)
			}
			ats := map[int]int64{}
			for i := range files {
				_, ats[i] = where(t, c, smallName(i), 0)
			}
			hl := recHeaderLen(5000, len(smallName(0))+1)
			c.Close()
			f, err := os.OpenFile(packFiles(t, dir)[0], os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			bad := tc.damage(t, f, func(i int) (int64, int64) { return ats[i], hl })
			f.Close()

			c = open(t, dir, 0, nil)
			if s := c.Stats(); tc.atOpen && s.Pieces != files-1 {
				t.Errorf("after reopening: %d pieces indexed, want the %d intact", s.Pieces, files-1)
			}
			miss(t, c, smallName(bad), "e", 5000, 0, 5000)
			if s := c.Stats(); s.Pieces != files-1 || s.Bytes != int64(files-1)*diskSize(5000, len(smallName(0))+1) {
				t.Errorf("%+v, want the %d intact records", s, files-1)
			}
			for i := range files {
				if i != bad {
					hit(t, c, smallName(i), "e", data(i), 0, 5000)
				}
			}
			if r := recordsOnDisk(t, dir); r != files-1 && tc.name != "another version's record in its place" {
				t.Errorf("%d records on disk, want the %d intact", r, files-1)
			}
			c.Close()
			c = open(t, dir, 0, nil)
			miss(t, c, smallName(bad), "e", 5000, 0, 5000)
			if s := c.Stats(); s.Pieces != files-1 {
				t.Errorf("after another reopen: %+v, want the %d intact records", s, files-1)
			}
		})
	}
}

func packID(t *testing.T, path string) []byte {
	t.Helper()
	pk, _, _, err := scanPack(path)
	if err != nil {
		t.Fatal(err)
	}
	pk.f.Close()
	return pk.id[:]
}

// A blob may hold a copy of a record, at a 4 KiB boundary of the pack.
// Open, scanning past a record whose header is lost, looks into that data:
// the copy is taken only if it names the pack's id, which is in no blob.
func TestRecordInsideDataIsNotTaken(t *testing.T) {
	for _, knowsID := range []bool{false, true} {
		t.Run(fmt.Sprintf("knows the pack's id: %v", knowsID), func(t *testing.T) {
			dir := t.TempDir()
			c := open(t, dir, 0, nil)
			storeWait(c, "first", "e", 10, make([]byte, 10), 0) // so that the carrier is not at 0
			carrier := int64(4096)
			hl := recHeaderLen(packMax, len("carrier")+1)
			forged := content(5, 3000)
			fakeAt := carrier + 4096 // the first 4 KiB boundary in the carrier's data
			pk := &pack{}
			if knowsID {
				copy(pk.id[:], c.cur.id[:])
			}
			rec := encodeRecord(testEntry("", "victim", "e", 3000), pk, fakeAt, 0, forged, time.Now())
			blob := content(6, packMax)
			copy(blob[fakeAt-carrier-hl:], rec)
			storeWait(c, "carrier", "e", packMax, blob, 0)
			if _, at := where(t, c, "carrier", 0); at != carrier {
				t.Fatalf("the carrier's record is at %d, want %d", at, carrier)
			}
			c.Close()
			f, err := os.OpenFile(packFiles(t, dir)[0], os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(make([]byte, 100), carrier) // the carrier's header lost
			f.Close()

			c = open(t, dir, 0, nil)
			served := c.ReadAt("victim", "e", 3000, make([]byte, 3000), 0)
			if served != knowsID {
				t.Errorf("the copy was served: %v, want %v", served, knowsID)
			}
			miss(t, c, "carrier", "e", packMax, 0, 10)
		})
	}
}

// Stores, reads and evictions of small pieces at once: every hit is the
// right bytes, and what is counted is what is on disk (run with -race).
func TestConcurrentSmallPieces(t *testing.T) {
	dir := t.TempDir()
	per := diskSize(4096, len(smallName(0))+1)
	c := open(t, dir, 40*per, nil)
	c.roll = 16 * per // several packs, rolled and removed
	const names = 64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 2))
			p := make([]byte, 4096)
			for range 400 {
				i := r.IntN(names)
				want := content(uint64(i), 4096)
				if c.ReadAt(smallName(i), "e", 4096, p, 0) {
					if !bytes.Equal(p, want) {
						t.Errorf("%s: wrong bytes", smallName(i))
						return
					}
				} else {
					storeWait(c, smallName(i), "e", 4096, want, 0)
				}
				switch r.IntN(20) {
				case 0:
					c.Evict(3 * per)
				case 1: // rewritten: the version held is dropped
					c.ReadAt(smallName(i), "x", 4096, p, 0)
				}
			}
		}()
	}
	wg.Wait()
	s := c.Stats()
	if s.Bytes > 40*per || s.Bytes != int64(s.Pieces)*per {
		t.Errorf("%+v: want within %d, %d per piece", s, 40*per, per)
	}
	if r := recordsOnDisk(t, dir); r != s.Pieces {
		t.Errorf("%d records on disk, %d indexed", r, s.Pieces)
	}
	if b := packBlocks(t, dir); b != s.Bytes {
		t.Errorf("packs take %d bytes on disk, %d counted", b, s.Bytes)
	}
	if p := len(packFiles(t, dir)); p > s.Pieces+1 {
		t.Errorf("%d packs for %d records: empty packs not removed", p, s.Pieces)
	}
}

// Many small pieces within --cache-size: the bound holds, the disk the
// packs take included, and emptied packs go.
func TestManySmallPiecesWithinBudget(t *testing.T) {
	dir := t.TempDir()
	per := diskSize(4096, len(smallName(0))+1)
	max := 50 * per
	c := open(t, dir, max, nil)
	c.roll = 20 * per
	for i := range 1000 {
		storeWait(c, smallName(i), "e", 4096, content(uint64(i), 4096), 0)
		if u := c.Used(); u > max {
			t.Fatalf("after %d stores: %d bytes used, over the budget of %d", i+1, u, max)
		}
	}
	if b := packBlocks(t, dir); b > max {
		t.Errorf("packs take %d bytes on disk, over the budget of %d", b, max)
	}
	if s := c.Stats(); s.Pieces != 50 {
		t.Errorf("%+v, want the 50 most recent", s)
	}
	if p := len(packFiles(t, dir)); p > 4 {
		t.Errorf("%d packs for 50 records of 20 a pack: emptied packs not removed", p)
	}
	hit(t, c, smallName(999), "e", content(999, 4096), 0, 4096)
	miss(t, c, smallName(949), "e", 4096, 0, 10)
}

// A record whose header holds but whose key is not its version's (no
// writer makes one) is dropped at Open; the records after it in its pack
// are kept.
func TestRecordOfAWrongKeyIsDropped(t *testing.T) {
	dir := t.TempDir()
	pk, err := newPack(filepath.Join(dir, packsDir))
	if err != nil {
		t.Fatal(err)
	}
	bad := testEntry(dir, "bad", "e", 100)
	bad.key[0] ^= 1
	good := content(3, 100)
	pk.f.WriteAt(encodeRecord(bad, pk, 0, 0, content(2, 100), time.Now()), 0)
	pk.f.WriteAt(encodeRecord(testEntry(dir, "good", "e", 100), pk, 4096, 0, good, time.Now()), 4096)
	pk.f.Close()

	c := open(t, dir, 0, nil)
	miss(t, c, "bad", "e", 100, 0, 100)
	hit(t, c, "good", "e", good, 0, 100)
	if s := c.Stats(); s.Pieces != 1 || s.Bytes != 4096 {
		t.Errorf("%+v, want the good record only", s)
	}
	if r := recordsOnDisk(t, dir); r != 1 {
		t.Errorf("%d records on disk, want the good one", r)
	}
}

// On a file system that cannot punch holes (newPack finds out) small
// pieces are files, as larger ones: removed records would keep their
// disk.
func TestWithoutPacksSmallPiecesAreFiles(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 0, nil)
	c.noPacks = true
	v := content(1, 5000)
	storeWait(c, "f", "e", 5000, v, 0)
	if n, p := countPieceFiles(t, dir), len(packFiles(t, dir)); n != 1 || p != 0 {
		t.Errorf("%d piece files and %d packs, want 1 file", n, p)
	}
	if s := c.Stats(); s.Bytes != fileSize(5000, 2) {
		t.Errorf("%+v, want %d bytes, a file's", s, fileSize(5000, 2))
	}
	hit(t, c, "f", "e", v, 0, 5000)
	c.Close()
	c = open(t, dir, 0, nil)
	hit(t, c, "f", "e", v, 0, 5000)
}
