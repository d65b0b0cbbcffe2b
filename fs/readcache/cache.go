// Package readcache keeps what was read through the mount (and what a
// commit uploaded) on local disk, so that reading it again, also after a
// remount, costs no call to the service while the blob is unchanged.
//
// Layout: Dir (0700) holds the pieces, each the bytes [offset,
// offset+length) of one version of one blob. What is read is stored block
// by block (BlockSize, the readahead's block), never across a block
// boundary: a sequential reader stores whole blocks, a random reader only
// the ranges it read. A file written through the mount is taken over whole
// at its close (Adopt), one piece for all its blocks. Every piece repeats
// the version's key (the SHA-256 of the blob's name, ETag and size), name,
// ETag and size in a header, so that the index is rebuilt at Open from
// what is on disk.
//
// A piece of up to packMax (128 KiB) bytes is a record in a pack file
// (0600) in packs/: appended at a 4 KiB boundary in one pwrite to a file
// kept open, it costs no file creation, which on the daemon's ext4 was
// most of what a small file written through the mount cost (see pack.go);
// a removed record's blocks are punched out of its pack, and a pack
// without records is removed (on a file system that cannot punch holes
// small pieces are files too). A larger piece (and an adopted file) is a
// file (0600) of its own, named "<key>.<offset>-<length>", in a
// subdirectory named by the key's first two hex digits (made on first
// use), its header after its data (see piece.go); a block-sized piece is
// written with O_DIRECT.
//
// Versions: the cache holds at most one version per blob name. A lookup
// or store with another ETag or size drops the version held (the blob was
// rewritten; the caller knows the current ETag from the listing or its
// attribute cache, so checking costs no call), and every piece's header
// repeats the key, checked before any byte is served.
//
// Crash safety, without fsync (which would make every block read cost
// a disk flush): a piece file is written to a ".tmp-" file, then renamed
// to its name. A crash of the daemon mid-fill leaves only the temporary
// file, removed at the next Open; an adopted file is renamed in once its
// header is written, and until then it is still staging's (whose journal
// says committed: it is removed at the next mount). A record is indexed
// only once its pwrite returned; a crash mid-write leaves a record cut
// short or with a torn header, which Open does not index (it scans the
// pack 4 KiB at a time where no valid header says how far a record goes,
// and takes a header only if it names the pack and its own offset: a blob
// holding a copy of a record is not one). After a power loss a piece may
// come back short or with blocks of zeros (its data never reached the
// disk): a file's length is checked against its name at Open, a record's
// against the pack's, and every header carries a CRC-32 of every 64 KiB
// of data and of itself, checked on every read, so such a piece is a miss
// (and is removed), never served.
//
// Space: the cache shares the mount's --cache-size with staging (see
// Options.Staged); staged data always wins: staging evicts the read cache
// (Evict) before anything of its own, and the read cache stores nothing
// that does not fit beside what is staged. Clean pieces are evicted least
// recently used first; the order survives a remount approximately (by the
// files' modification times and the records' store times). Bytes are
// counted in whole 4 KiB blocks: a file's, a record's; the blocks of a
// removed record that could not be punched stay counted until its pack
// is removed.
package readcache

import (
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Staged is the staging area sharing the budget (*stage.Manager).
type Staged interface {
	// Used is how many bytes staging holds or has reserved.
	Used() int64
}

// Options configure a Cache.
type Options struct {
	Dir       string // created 0700
	BlockSize int64  // pieces never cross a multiple of it
	// MaxBytes bounds the cache and the staging area together
	// (--cache-size); 0 means no bound.
	MaxBytes int64
	// Staged, when set, is the staging area whose bytes count against
	// MaxBytes first.
	Staged Staged
	Log    logrus.FieldLogger
}

var errSkipped = errors.New("readcache: piece no longer wanted")

// maxPieces bounds the pieces kept of one block: a random reader making
// ever new small ones would otherwise cost a file each without end.
const maxPieces = 64

// Cache is the read cache of one mount.
type Cache struct {
	dir    string
	bs     int64
	max    int64
	staged Staged
	log    logrus.FieldLogger
	lock   *os.File

	packDir string
	roll    int64 // packRoll

	mu      sync.Mutex
	entries map[string]*entry // by blob name: the one version held
	lru     *list.List        // of *piece, least recently used first
	used    int64             // bytes on disk, reservations included
	closed  bool
	packs   map[*pack]struct{} // open
	cur     *pack              // appended to; nil: none yet
	// noPacks: the file system cannot punch holes (see newPack), small
	// pieces are files too.
	noPacks bool
	// queued counts the small stores the filler has not finished, by
	// blob name; drained (on mu) is broadcast as each finishes.
	queued  map[string]int
	drained *sync.Cond

	fill filler // stores small pieces off the caller's path (filler.go)
}

// entry is one version of one blob.
type entry struct {
	name, etag string
	size       int64
	key        [32]byte
	base       string             // path of its pieces without ".<offset>-<length>"
	pieces     map[int64][]*piece // by block index
	gone       bool               // dropped: its pieces must not be added to
	pending    int                // pieces being written
}

type piece struct {
	e    *entry
	off  int64 // in the blob
	n    int64
	disk int64 // bytes counted for it
	elem *list.Element
	pk   *pack // a record at at of pk (see pack.go); nil: a file
	at   int64
}

// victim is the disk of a piece taken out of the index, to be given back:
// its file removed, or its record's blocks punched.
type victim struct {
	path     string
	pk       *pack
	at, disk int64
}

func (p *piece) victim() victim {
	if p.pk != nil {
		return victim{pk: p.pk, at: p.at, disk: p.disk}
	}
	return victim{path: p.path()}
}

func (p *piece) path() string { return p.e.base + "." + pieceName(p.off, p.n) }

func pieceName(off, n int64) string { return fmt.Sprintf("%d-%d", off, n) }

// shard is the subdirectory of a version's pieces.
func (c *Cache) shard(key [32]byte) string { return filepath.Join(c.dir, hex.EncodeToString(key[:1])) }

func (c *Cache) newEntry(name, etag string, size int64) *entry {
	key := versionKey(name, etag, size)
	return &entry{name: name, etag: etag, size: size, key: key,
		base: filepath.Join(c.shard(key), hex.EncodeToString(key[:])), pieces: map[int64][]*piece{}}
}

// metaLen is what a version's name and ETag take in a piece's header.
func (e *entry) metaLen() int { return len(e.name) + len(e.etag) }

func versionKey(name, etag string, size int64) [32]byte {
	return sha256.Sum256([]byte(name + "\x00" + etag + "\x00" + strconv.FormatInt(size, 10)))
}

// Open opens (and creates) the cache directory and rebuilds the index
// from what is in it: pieces of earlier mounts are served again.
func Open(opts Options) (*Cache, error) {
	if opts.Dir == "" {
		return nil, errors.New("readcache: no directory given")
	}
	if opts.BlockSize <= 0 {
		return nil, errors.New("readcache: no block size given")
	}
	if opts.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opts.Log = l
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("readcache: creating %s: %w", opts.Dir, err)
	}
	if err := os.Chmod(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("readcache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(opts.Dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("readcache: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("readcache: %s is in use by another blobfs mount: give this mount its own --cache-dir (%w)", opts.Dir, err)
	}
	c := &Cache{
		dir: opts.Dir, bs: opts.BlockSize, max: opts.MaxBytes, staged: opts.Staged,
		log: opts.Log.WithField("read_cache", opts.Dir), lock: lock,
		packDir: filepath.Join(opts.Dir, packsDir), roll: packRoll,
		entries: map[string]*entry{}, lru: list.New(), packs: map[*pack]struct{}{},
	}
	if err := c.rebuild(); err != nil {
		c.Close()
		return nil, err
	}
	c.startFiller()
	return c, nil
}

// SetStaged sets the staging area sharing the budget, when it is made
// after the cache (it evicts through the cache, so it needs it first).
// Call it before any read or store.
func (c *Cache) SetStaged(s Staged) { c.staged = s }

// Close releases the directory; what is cached stays for the next Open.
func (c *Cache) Close() error {
	c.stopFiller()
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		for pk := range c.packs {
			pk.f.Close() // a read still running is a miss
		}
	}
	c.mu.Unlock()
	return c.lock.Close()
}

// Used is how many bytes the cache holds on disk.
func (c *Cache) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Stats are totals for tests and the stats endpoint.
type Stats struct {
	Versions, Pieces int
	Bytes            int64
}

// Stats sums up the cache.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.awaitQueuedLocked("")
	return Stats{Versions: len(c.entries), Pieces: c.lru.Len(), Bytes: c.used}
}

type found struct {
	p     *piece
	mtime time.Time
}

// rebuild indexes the pieces on disk, in files and in packs. Temporary
// files, pieces whose file has not the length their name and header
// promise, versions whose header cannot be read and anything else are
// removed. Of two versions of one name (a crash came between storing the
// new one and dropping the old), the one with the most recent piece is
// kept: a file's modification time and a record's store time are both
// the wall clock at the store.
func (c *Cache) rebuild() error {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("readcache: reading %s: %w", c.dir, err)
	}
	type version struct {
		files []os.DirEntry
		offs  [][2]int64
	}
	cands := map[[32]byte]*candidate{}
	for _, de := range des {
		path := filepath.Join(c.dir, de.Name())
		if de.Name() == ".lock" || (de.Name() == packsDir && de.IsDir()) {
			continue
		}
		if b, err := hex.DecodeString(de.Name()); err != nil || len(b) != 1 || !de.IsDir() {
			os.RemoveAll(path)
			continue
		}
		files, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("readcache: reading %s: %w", path, err)
		}
		versions := map[string]*version{}
		for _, f := range files {
			keyHex, rest, _ := strings.Cut(f.Name(), ".")
			off, n, ok := parsePieceName(rest)
			if k, err := hex.DecodeString(keyHex); err != nil || len(k) != 32 || !ok || !strings.HasPrefix(keyHex, de.Name()) || !f.Type().IsRegular() {
				os.RemoveAll(filepath.Join(path, f.Name())) // temporary or foreign
				continue
			}
			v := versions[keyHex]
			if v == nil {
				v = &version{}
				versions[keyHex] = v
			}
			v.files = append(v.files, f)
			v.offs = append(v.offs, [2]int64{off, n})
		}
		for keyHex, v := range versions {
			e := c.loadVersion(path, keyHex, v.files, v.offs)
			if e == nil {
				continue
			}
			ps, _ := c.loadPieces(e, v.files, v.offs)
			for _, f := range ps {
				c.addCandidate(cands, f)
			}
		}
	}
	if err := c.loadPacks(cands); err != nil {
		return err
	}
	best := map[string]*candidate{}
	for _, cd := range cands {
		if b := best[cd.e.name]; b == nil || cd.newest.After(b.newest) {
			best[cd.e.name] = cd
		}
	}
	var all []found
	for _, cd := range cands {
		if best[cd.e.name] != cd {
			for _, f := range cd.ps {
				c.discardLocked(f.p.victim())
			}
			continue
		}
		c.entries[cd.e.name] = cd.e
		all = append(all, cd.ps...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mtime.Before(all[j].mtime) })
	for _, f := range all {
		c.addPiece(f.p)
	}
	for pk := range c.packs {
		if pk.live == 0 {
			c.removePackLocked(pk)
		}
	}
	return nil
}

// candidate is a version found on disk by rebuild.
type candidate struct {
	e      *entry
	ps     []found
	ranges map[[2]int64]int // index in ps by offset and length
	newest time.Time
}

// addCandidate adds a piece found on disk to its version's candidate. Of
// two pieces of the same range (a crash came between storing a record and
// dropping the one it covers) the newer is kept.
func (c *Cache) addCandidate(cands map[[32]byte]*candidate, f found) {
	cd := cands[f.p.e.key]
	if cd == nil {
		cd = &candidate{e: f.p.e, ranges: map[[2]int64]int{}}
		cands[cd.e.key] = cd
	}
	f.p.e = cd.e
	r := [2]int64{f.p.off, f.p.n}
	if i, dup := cd.ranges[r]; dup {
		if f.mtime.Before(cd.ps[i].mtime) {
			c.discardLocked(f.p.victim())
			return
		}
		c.discardLocked(cd.ps[i].p.victim())
		cd.ps[i] = f
	} else {
		cd.ranges[r] = len(cd.ps)
		cd.ps = append(cd.ps, f)
	}
	if f.mtime.After(cd.newest) {
		cd.newest = f.mtime
	}
}

// loadPacks adds the records of every pack to cands, punches what lies
// between them, and removes what is not a pack.
func (c *Cache) loadPacks(cands map[[32]byte]*candidate) error {
	des, err := os.ReadDir(c.packDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("readcache: reading %s: %w", c.packDir, err)
	}
	for _, de := range des {
		path := filepath.Join(c.packDir, de.Name())
		if !de.Type().IsRegular() {
			os.RemoveAll(path)
			continue
		}
		pk, recs, garbage, err := scanPack(path)
		if err != nil {
			c.log.WithError(err).Warn("removing a read cache pack that cannot be read")
			os.Remove(path)
			continue
		}
		c.packs[pk] = struct{}{}
		for _, g := range garbage {
			if err := pk.punch(g[0], g[1]-g[0]); err != nil {
				pk.stuck += g[1] - g[0]
				c.used += g[1] - g[0]
			}
		}
		pk.live = len(recs) // before any is discarded: the pack goes only after the last
		for _, r := range recs {
			e := c.newEntry(r.name, r.etag, r.size)
			p := &piece{e: e, off: r.off, n: r.n, disk: recordSize(r.n, e.metaLen()), pk: pk, at: r.at}
			if e.key != r.key || r.off+r.n > r.size {
				c.discardLocked(p.victim())
				continue
			}
			c.addCandidate(cands, found{p, r.stored})
		}
	}
	return nil
}

// discardLocked gives back the disk of a piece not (or no longer)
// indexed. Called with c.mu held (or alone, in rebuild): an unlink or a
// punch.
func (c *Cache) discardLocked(v victim) {
	if v.pk == nil {
		os.Remove(v.path)
		return
	}
	if c.closed {
		return // the pack is closed; the record stays for the next Open, checked as any
	}
	c.releasedLocked(v, v.pk.punch(v.at, v.disk))
}

// release gives back the disk of victims, without c.mu, and returns the
// bytes of those that stay on disk (and counted).
func (c *Cache) release(vs []victim) (kept int64) {
	var recs []victim
	var errs []error
	for _, v := range vs {
		if v.pk == nil {
			os.Remove(v.path)
			continue
		}
		recs = append(recs, v)
		errs = append(errs, v.pk.punch(v.at, v.disk))
	}
	if len(recs) == 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0
	}
	for i, v := range recs {
		if errs[i] != nil {
			kept += v.disk
		}
		c.releasedLocked(v, errs[i])
	}
	return kept
}

// releasedLocked accounts for a record whose blocks were punched (err
// nil) or not, and removes its pack if it was the last record in it but
// for the one appended to. Called with c.mu held.
func (c *Cache) releasedLocked(v victim, err error) {
	pk := v.pk
	if err != nil {
		c.log.WithError(err).Warn("a removed read cache record keeps its disk until its whole pack is removed")
		c.used += v.disk
		pk.stuck += v.disk
	}
	pk.live--
	if pk.live == 0 && pk != c.cur {
		c.removePackLocked(pk)
	}
}

// removePackLocked removes a pack without records. Called with c.mu held.
func (c *Cache) removePackLocked(pk *pack) {
	c.used -= pk.stuck
	pk.f.Close()
	os.Remove(pk.path)
	delete(c.packs, pk)
	if c.cur == pk {
		c.cur = nil
	}
}

// packForLocked is the pack a piece of n bytes of a version whose name
// and ETag take metaLen bytes is appended to, or nil when it is kept in a
// file. A new pack is made here, under c.mu: once every packRoll bytes of
// records, an open and a punch.
func (c *Cache) packForLocked(n int64, metaLen int) *pack {
	if !packable(n, metaLen) || c.noPacks || c.closed {
		return nil
	}
	if c.cur != nil && c.cur.end+recordSize(n, metaLen) > c.roll {
		old := c.cur
		c.cur = nil
		if old.live == 0 {
			c.removePackLocked(old)
		}
	}
	if c.cur == nil {
		pk, err := newPack(c.packDir)
		if err != nil {
			if errors.Is(err, errNoPunch) {
				c.log.WithError(err).Warn("small pieces of the read cache are kept in files")
				c.noPacks = true
			}
			return nil
		}
		c.packs[pk] = struct{}{}
		c.cur = pk
	}
	return c.cur
}

// loadVersion reads the version of keyHex from the header of one of its
// pieces; if none has a good header, it removes them all.
func (c *Cache) loadVersion(dir, keyHex string, files []os.DirEntry, offs [][2]int64) *entry {
	for i, f := range files {
		name, etag, size, err := readVersion(filepath.Join(dir, f.Name()), offs[i][0], offs[i][1])
		if err != nil {
			continue
		}
		e := c.newEntry(name, etag, size)
		if hex.EncodeToString(e.key[:]) == keyHex {
			return e
		}
	}
	for _, f := range files {
		os.Remove(filepath.Join(dir, f.Name()))
	}
	return nil
}

// loadPieces checks the pieces of e by their lengths and returns them with
// the most recent modification time; the others it removes.
func (c *Cache) loadPieces(e *entry, files []os.DirEntry, offs [][2]int64) ([]found, time.Time) {
	var ps []found
	var newest time.Time
	for i, f := range files {
		off, n := offs[i][0], offs[i][1]
		p := &piece{e: e, off: off, n: n, disk: diskSize(n, e.metaLen())}
		fi, err := f.Info()
		if err != nil || n <= 0 || off+n > e.size || fi.Size() != fileSize(n, e.metaLen()) {
			os.Remove(p.path()) // cut short
			continue
		}
		ps = append(ps, found{p, fi.ModTime()})
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	return ps, newest
}

func parsePieceName(s string) (off, n int64, ok bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, false
	}
	off, err1 := strconv.ParseInt(a, 10, 64)
	n, err2 := strconv.ParseInt(b, 10, 64)
	return off, n, err1 == nil && err2 == nil && off >= 0 && pieceName(off, n) == s
}

// diskSize is what a piece of n bytes costs, in whole 4 KiB blocks, as a
// record if it is one (on a file system that punches holes).
func diskSize(n int64, metaLen int) int64 {
	if packable(n, metaLen) {
		return recordSize(n, metaLen)
	}
	return fileSize(n, metaLen)
}

// blocks are the first and last block a piece of n bytes at off is in.
func (c *Cache) blocks(off, n int64) (int64, int64) { return off / c.bs, (off + n - 1) / c.bs }

// addPiece indexes p, under every block it covers, as the most recently
// used. Called with c.mu held.
func (c *Cache) addPiece(p *piece) {
	p.elem = c.lru.PushBack(p)
	c.used += p.disk
	first, last := c.blocks(p.off, p.n)
	for i := first; i <= last; i++ {
		p.e.pieces[i] = append(p.e.pieces[i], p)
	}
}

// ReadAt fills p with the bytes at off of the version (name, etag, size)
// and reports true when the cache held them all. Another version held of
// name is dropped. A piece that fails its checks is removed and the read
// is a miss: the caller then downloads.
func (c *Cache) ReadAt(name, etag string, size int64, p []byte, off int64) bool {
	if len(p) == 0 || off < 0 || off+int64(len(p)) > size || etag == "" {
		return false // without an ETag there is no version to check
	}
	for done := int64(0); done < int64(len(p)); {
		pos := off + done
		end := min(off+int64(len(p)), (pos/c.bs+1)*c.bs)
		if !c.readBlock(name, etag, size, p[done:end-off], pos) {
			return false
		}
		done = end - off
	}
	return true
}

// readBlock is ReadAt within one block.
func (c *Cache) readBlock(name, etag string, size int64, p []byte, off int64) bool {
	c.mu.Lock()
	c.awaitQueuedLocked(name) // a store of it still queued is served
	e := c.current(name, etag, size, false)
	var pc *piece
	if e != nil {
		for _, q := range e.pieces[off/c.bs] {
			if q.off <= off && off+int64(len(p)) <= q.off+q.n {
				pc = q
				break
			}
		}
	}
	if pc == nil {
		c.mu.Unlock()
		return false
	}
	c.lru.MoveToBack(pc.elem)
	key, ml, poff, pn, pk, at := e.key, e.metaLen(), pc.off, pc.n, pc.pk, pc.at
	var path string
	if pk == nil {
		path = pc.path()
	}
	c.mu.Unlock()
	var err error
	if pk != nil {
		err = readRecord(pk, at, key, ml, poff, pn, p, off)
	} else {
		err = readPiece(path, key, ml, poff, pn, p, off)
	}
	if err != nil {
		var vs []victim
		c.mu.Lock()
		// Removed meanwhile (evicted, dropped), its file or record may be
		// gone: a miss, nothing to warn about or remove; closed, its pack
		// is.
		if pc.elem != nil && !c.closed {
			where := path
			if pk != nil {
				where = fmt.Sprintf("%s@%d", pk.path, at)
			}
			c.log.WithError(err).WithField("piece", where).Warn("dropping a read cache piece that fails its checks")
			vs = append(vs, pc.victim())
			c.removePiece(pc)
		}
		c.mu.Unlock()
		c.release(vs)
		return false
	}
	return true
}

// current is the entry of the version, or nil; another version held of
// name is dropped. With create, a missing entry is made. Called with c.mu
// held.
func (c *Cache) current(name, etag string, size int64, create bool) *entry {
	e := c.entries[name]
	if e != nil && (e.etag != etag || e.size != size) {
		c.dropEntry(e)
		e = nil
	}
	if e == nil && create && !c.closed {
		e = c.newEntry(name, etag, size)
		c.entries[name] = e
	}
	return e
}

// dropEntry forgets e and removes its pieces. Called with c.mu held: a
// few unlinks, and holding the lock keeps a piece of the same version
// stored meanwhile from being removed with them.
func (c *Cache) dropEntry(e *entry) {
	if e.gone {
		return
	}
	e.gone = true
	for _, ps := range e.pieces {
		for _, p := range ps {
			if p.elem == nil {
				continue // met already, in another block it covers
			}
			c.lru.Remove(p.elem)
			p.elem = nil
			c.used -= p.disk
			c.discardLocked(p.victim())
		}
	}
	e.pieces = nil
	if c.entries[e.name] == e {
		delete(c.entries, e.name)
	}
}

// removePiece forgets p (the caller gives its disk back: p.victim()).
// Called with c.mu held.
func (c *Cache) removePiece(p *piece) {
	c.lru.Remove(p.elem)
	p.elem = nil
	c.used -= p.disk
	first, last := c.blocks(p.off, p.n)
	for idx := first; idx <= last; idx++ {
		ps := p.e.pieces[idx]
		for i, q := range ps {
			if q == p {
				p.e.pieces[idx] = append(ps[:i:i], ps[i+1:]...)
				break
			}
		}
		if len(p.e.pieces[idx]) == 0 {
			delete(p.e.pieces, idx)
		}
	}
	c.dropIfEmpty(p.e)
}

// dropIfEmpty forgets a version left without pieces: the index would
// otherwise keep every blob ever read. Called with c.mu held.
func (c *Cache) dropIfEmpty(e *entry) {
	if !e.gone && len(e.pieces) == 0 && e.pending == 0 {
		c.dropEntry(e)
	}
}

// Store keeps p, the bytes at off of the version (name, etag, size),
// which the caller got from the service (or uploaded): split at block
// boundaries, each part a piece. It does nothing when the parts are held
// already or do not fit beside what is staged. Errors are logged, not
// returned: the cache is only an optimisation.
func (c *Cache) Store(name, etag string, size int64, p []byte, off int64) {
	if len(p) == 0 || off < 0 || off+int64(len(p)) > size || etag == "" {
		return
	}
	if int64(len(p)) <= packMax && c.queue(name, etag, size, p, off) {
		return // the filler stores it (filler.go)
	}
	c.storeNow(name, etag, size, p, off)
}

// storeNow is Store, made by the caller.
func (c *Cache) storeNow(name, etag string, size int64, p []byte, off int64) {
	for done := int64(0); done < int64(len(p)); {
		pos := off + done
		end := min(off+int64(len(p)), (pos/c.bs+1)*c.bs)
		c.storeBlock(name, etag, size, p[done:end-off], pos)
		done = end - off
	}
}

// reserveLocked reserves disk bytes for a piece of e (marked pending by
// the caller), evicting others least recently used first when the cache
// and staged (the staging area's use) would pass the budget. ok false:
// there is no room, and e's pending mark is taken back. victims are the
// evicted pieces, for the caller to release once c.mu is let go.
func (c *Cache) reserveLocked(e *entry, disk, staged int64) (victims []victim, ok bool) {
	if c.max > 0 {
		if over := c.used + disk + staged - c.max; over > 0 {
			victims = c.evictLocked(over)
		}
		if c.used+disk+staged > c.max {
			e.pending--
			c.dropIfEmpty(e)
			return victims, false
		}
	}
	c.used += disk
	return victims, true
}

func (c *Cache) storeBlock(name, etag string, size int64, p []byte, off int64) {
	n := int64(len(p))
	var staged int64
	if c.staged != nil {
		staged = c.staged.Used() // before c.mu: see the lock order in Evict
	}
	c.mu.Lock()
	e := c.current(name, etag, size, true)
	if e == nil || c.covered(e, off, n) || len(e.pieces[off/c.bs]) >= maxPieces {
		c.mu.Unlock()
		return
	}
	pk := c.packForLocked(n, e.metaLen())
	disk := fileSize(n, e.metaLen())
	if pk != nil {
		disk = recordSize(n, e.metaLen())
	}
	e.pending++
	victims, ok := c.reserveLocked(e, disk, staged) // while the piece is written
	var at int64
	if ok && pk != nil {
		// The record's place, taken now: the write goes on without c.mu,
		// beside other writers' records.
		at = pk.end
		pk.end += disk
		pk.live++
	}
	c.mu.Unlock()
	c.release(victims)
	if !ok {
		return
	}
	if pk != nil {
		c.storeRecord(e, pk, at, off, p, disk)
		return
	}

	tmp, err := c.writePiece(e, off, p)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		e.pending--
		c.dropIfEmpty(e)
	}()
	pc := &piece{e: e, off: off, n: n, disk: disk}
	// Renamed under the lock, after the check: two readers storing the
	// same piece must not have the loser remove the winner's file.
	if err == nil && !e.gone && !c.closed && !c.covered(e, off, n) {
		err = os.Rename(tmp, pc.path())
		if err == nil {
			tmp = ""
		}
	} else if err == nil {
		err = errSkipped
	}
	if err != nil {
		c.used -= disk
		if !errors.Is(err, errSkipped) {
			c.log.WithError(err).Warn("cannot write to the read cache")
		}
		if tmp != "" {
			os.Remove(tmp)
		}
		return
	}
	c.used -= disk // the reservation becomes the piece's
	c.dropCoveredLocked(e, off, n)
	c.addPiece(pc)
}

// storeRecord writes p, the bytes at off of e, as the record at at of pk
// (reserved, disk bytes) in one pwrite, and indexes it once written. Not
// wanted any more, or written in part, its blocks are punched again.
func (c *Cache) storeRecord(e *entry, pk *pack, at, off int64, p []byte, disk int64) {
	n := int64(len(p))
	_, err := pk.f.WriteAt(encodeRecord(e, pk, at, off, p, time.Now()), at)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		e.pending--
		c.dropIfEmpty(e)
	}()
	c.used -= disk // the reservation becomes the piece's, or is given back
	if err == nil && !e.gone && !c.closed && !c.covered(e, off, n) {
		c.dropCoveredLocked(e, off, n)
		c.addPiece(&piece{e: e, off: off, n: n, disk: disk, pk: pk, at: at})
		return
	}
	if err != nil && !c.closed {
		c.log.WithError(err).Warn("cannot write to the read cache")
	}
	c.discardLocked(victim{pk: pk, at: at, disk: disk})
}

// dropCoveredLocked removes the pieces of e within [off, off+n): a piece
// about to be added covers them. Called with c.mu held.
func (c *Cache) dropCoveredLocked(e *entry, off, n int64) {
	var drop []*piece
	first, last := c.blocks(off, n)
	for idx := first; idx <= last; idx++ {
		for _, q := range e.pieces[idx] {
			if off <= q.off && q.off+q.n <= off+n && !slices.Contains(drop, q) {
				drop = append(drop, q)
			}
		}
	}
	for _, q := range drop {
		c.removePiece(q)
		c.discardLocked(q.victim())
	}
}

// Adoption is a file handed to the cache whole (see Adopt).
type Adoption struct {
	Name, ETag string
	Size       int64
	// Path is a closed file holding exactly the version's Size bytes
	// from offset 0, on the cache's file system.
	Path string
	// Sums are the CRC-32 of its every ChunkSize bytes (ChunkSums), taken
	// by the caller while the data was in its memory: the file is not
	// read again.
	Sums []uint32
}

// Adopt takes the file a.Path over as the one piece of the version
// (a.Name, a.ETag, a.Size): its header is appended and the file renamed
// into the cache, so that keeping a file just written costs no copy of
// its data. It reports whether it did; if not, the file is still the
// caller's, unchanged but for bytes past a.Size. Like Store it takes
// nothing from what is staged: it refuses when the file does not fit
// beside it.
func (c *Cache) Adopt(a Adoption) bool {
	if a.Size <= 0 || a.ETag == "" || int64(len(a.Sums)) != chunks(a.Size) {
		return false
	}
	if len(a.Name) > 0xffff || len(a.ETag) > 0xffff {
		return false
	}
	if fi, err := os.Stat(a.Path); err != nil || fi.Size() != a.Size {
		return false
	}
	disk := fileSize(a.Size, len(a.Name)+len(a.ETag))
	var staged int64
	if c.staged != nil {
		staged = c.staged.Used() // before c.mu: see the lock order in Evict
	}
	c.mu.Lock()
	e := c.current(a.Name, a.ETag, a.Size, true)
	if e == nil {
		c.mu.Unlock()
		return false
	}
	e.pending++
	victims, ok := c.reserveLocked(e, disk, staged) // while the header is written
	c.mu.Unlock()
	c.release(victims)
	if !ok {
		return false
	}

	err := appendHeader(e, a)
	pc := &piece{e: e, off: 0, n: a.Size, disk: disk}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		e.pending--
		c.dropIfEmpty(e)
	}()
	c.used -= disk
	if err == nil && (e.gone || c.closed) {
		err = errSkipped
	}
	if err == nil {
		if err = os.Rename(a.Path, pc.path()); errors.Is(err, os.ErrNotExist) {
			// The version's subdirectory is made on first use.
			if err = os.MkdirAll(filepath.Dir(pc.path()), 0o700); err == nil {
				err = os.Rename(a.Path, pc.path())
			}
		}
	}
	if err != nil {
		if !errors.Is(err, errSkipped) {
			c.log.WithError(err).Warn("cannot take a written file into the read cache")
		}
		os.Truncate(a.Path, a.Size) // the header off again: the file is the caller's
		return false
	}
	os.Chmod(pc.path(), 0o600)
	c.dropCoveredLocked(e, 0, a.Size)
	c.addPiece(pc)
	return true
}

// covered reports whether e holds [off, off+n) in one piece. Called with
// c.mu held.
func (c *Cache) covered(e *entry, off, n int64) bool {
	for _, q := range e.pieces[off/c.bs] {
		if q.off <= off && off+n <= q.off+q.n {
			return true
		}
	}
	return false
}

// Evict drops at least need bytes of pieces, least recently used first,
// if the cache holds that many, and returns how many it freed. Staging
// calls it when it needs room. It takes only the cache's own lock, and
// the cache never calls staging with it held.
func (c *Cache) Evict(need int64) int64 {
	c.mu.Lock()
	before := c.used
	victims := c.evictLocked(need)
	freed := before - c.used
	c.mu.Unlock()
	return freed - c.release(victims)
}

// evictLocked forgets pieces, oldest first, until need bytes are free,
// and returns them for the caller to release without the lock.
func (c *Cache) evictLocked(need int64) []victim {
	var vs []victim
	for freed := int64(0); freed < need; {
		el := c.lru.Front()
		if el == nil {
			break
		}
		p := el.Value.(*piece)
		vs = append(vs, p.victim())
		freed += p.disk
		c.removePiece(p)
	}
	return vs
}

func randHex() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}
