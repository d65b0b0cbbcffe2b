// Package readcache keeps what was read through the mount (and what a
// commit uploaded) on local disk, so that reading it again, also after a
// remount, costs no call to the service while the blob is unchanged.
//
// Layout: Dir (0700) holds one directory per blob version, named by the
// SHA-256 of name, ETag and size (the key), with a "meta" file (name, ETag,
// size, block size: JSON, written to a temporary file and renamed) and one
// file per piece: "<offset>-<length>", the bytes [offset, offset+length)
// of that version, never across a block boundary (BlockSize, the
// readahead's block). A sequential reader stores whole blocks; a random
// reader only the ranges it read. All files are 0600.
//
// Versions: the cache holds at most one version per blob name. A lookup
// or store with another ETag or size drops the version held (the blob was
// rewritten; the caller knows the current ETag from the listing or its
// attribute cache, so checking costs no call), and every piece's header
// repeats the key, checked before any byte is served.
//
// Crash safety: a piece is written to a ".tmp-" file, then renamed to its
// name, without fsync. A crash of the daemon mid-fill leaves only the
// temporary file, removed at the next Open. After a power loss a renamed
// piece may come back short or with blocks of zeros (its data never
// reached the disk): its length is checked against its name at Open, and
// its header carries a CRC-32C of every 64 KiB of data, checked on every
// read, so such a piece is a miss (and is removed), never served. Fsync
// would make every block read cost a disk flush.
//
// Space: the cache shares the mount's --cache-size with staging (see
// Options.Staged); staged data always wins: staging evicts the read cache
// (Evict) before anything of its own, and the read cache stores nothing
// that does not fit beside what is staged. Clean pieces are evicted least
// recently used first; the order survives a remount approximately (by the
// files' modification times).
package readcache

import (
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

	mu      sync.Mutex
	entries map[string]*entry // by blob name: the one version held
	lru     *list.List        // of *piece, least recently used first
	used    int64             // bytes on disk, reservations included
	closed  bool
}

// entry is one version of one blob.
type entry struct {
	name, etag string
	size       int64
	key        [32]byte
	dir        string
	pieces     map[int64][]*piece // by block index
	gone       bool               // dropped: its pieces must not be added to
	pending    int                // pieces being written
}

// entryDisk is what a version costs besides its pieces: its directory
// and meta file.
const entryDisk = 8 << 10

type piece struct {
	e    *entry
	off  int64 // in the blob
	n    int64
	disk int64 // bytes counted for it
	elem *list.Element
}

func (p *piece) path() string { return filepath.Join(p.e.dir, pieceName(p.off, p.n)) }

func pieceName(off, n int64) string { return fmt.Sprintf("%d-%d", off, n) }

// meta is an entry's "meta" file.
type meta struct {
	Name      string `json:"name"`
	ETag      string `json:"etag"`
	Size      int64  `json:"size"`
	BlockSize int64  `json:"block_size"`
}

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
		entries: map[string]*entry{}, lru: list.New(),
	}
	if err := c.rebuild(); err != nil {
		lock.Close()
		return nil, err
	}
	return c, nil
}

// SetStaged sets the staging area sharing the budget, when it is made
// after the cache (it evicts through the cache, so it needs it first).
// Call it before any read or store.
func (c *Cache) SetStaged(s Staged) { c.staged = s }

// Close releases the directory; what is cached stays for the next Open.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
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
	return Stats{Versions: len(c.entries), Pieces: c.lru.Len(), Bytes: c.used}
}

type found struct {
	p     *piece
	mtime time.Time
}

// rebuild indexes the pieces on disk. A piece whose file has not the
// length its name promises, a version without a readable meta file (or
// one made with another block size) and temporary files are removed.
func (c *Cache) rebuild() error {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("readcache: reading %s: %w", c.dir, err)
	}
	var all []found
	for _, de := range des {
		path := filepath.Join(c.dir, de.Name())
		if de.Name() == ".lock" {
			continue
		}
		if !de.IsDir() {
			os.Remove(path)
			continue
		}
		e, ps, mtime, ok := c.loadEntry(path)
		if !ok {
			os.RemoveAll(path)
			continue
		}
		if old := c.entries[e.name]; old != nil && len(ps) > 0 {
			// Two versions of one name: a crash came between storing the
			// new one and removing the old. Keep the newer.
			if old.gone || mtime.Before(entryTime(old)) {
				os.RemoveAll(path)
				continue
			}
			old.gone = true
			c.used -= entryDisk
			os.RemoveAll(old.dir)
			kept := all[:0]
			for _, f := range all {
				if f.p.e != old {
					kept = append(kept, f)
				}
			}
			all = kept
		}
		if len(ps) == 0 {
			os.RemoveAll(path)
			continue
		}
		c.entries[e.name] = e
		c.used += entryDisk
		all = append(all, ps...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mtime.Before(all[j].mtime) })
	for _, f := range all {
		f.p.elem = c.lru.PushBack(f.p)
		f.p.e.pieces[f.p.off/c.bs] = append(f.p.e.pieces[f.p.off/c.bs], f.p)
		c.used += f.p.disk
	}
	return nil
}

func entryTime(e *entry) time.Time {
	fi, err := os.Stat(filepath.Join(e.dir, "meta"))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

func (c *Cache) loadEntry(dir string) (*entry, []found, time.Time, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "meta"))
	if err != nil {
		return nil, nil, time.Time{}, false
	}
	var m meta
	if json.Unmarshal(b, &m) != nil || m.BlockSize != c.bs {
		return nil, nil, time.Time{}, false
	}
	key := versionKey(m.Name, m.ETag, m.Size)
	if hex.EncodeToString(key[:]) != filepath.Base(dir) {
		return nil, nil, time.Time{}, false
	}
	e := &entry{name: m.Name, etag: m.ETag, size: m.Size, key: key, dir: dir, pieces: map[int64][]*piece{}}
	var mtime time.Time
	if fi, err := os.Stat(filepath.Join(dir, "meta")); err == nil {
		mtime = fi.ModTime()
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, time.Time{}, false
	}
	var ps []found
	for _, de := range des {
		if de.Name() == "meta" {
			continue
		}
		path := filepath.Join(dir, de.Name())
		off, n, ok := parsePieceName(de.Name())
		fi, err := de.Info()
		if !ok || err != nil || !fi.Mode().IsRegular() || n <= 0 || off+n > m.Size || off/c.bs != (off+n-1)/c.bs ||
			fi.Size() != headerSize(n)+n {
			os.Remove(path) // temporary, truncated or foreign
			continue
		}
		p := &piece{e: e, off: off, n: n, disk: diskSize(n)}
		ps = append(ps, found{p, fi.ModTime()})
	}
	return e, ps, mtime, true
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

// diskSize is what a piece of n bytes costs, in whole 4 KiB blocks.
func diskSize(n int64) int64 { return (headerSize(n) + n + 4095) &^ 4095 }

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
	path, key, poff, pn := pc.path(), e.key, pc.off, pc.n
	c.mu.Unlock()
	if err := readPiece(path, key, poff, pn, p, off); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.log.WithError(err).WithField("piece", path).Warn("dropping a read cache piece that fails its checks")
		}
		c.mu.Lock()
		if pc.elem != nil {
			c.removePiece(pc)
		}
		c.mu.Unlock()
		os.Remove(path)
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
		key := versionKey(name, etag, size)
		e = &entry{name: name, etag: etag, size: size, key: key,
			dir: filepath.Join(c.dir, hex.EncodeToString(key[:])), pieces: map[int64][]*piece{}}
		if err := c.writeMeta(e); err != nil {
			c.log.WithError(err).Warn("cannot add to the read cache")
			return nil
		}
		c.entries[name] = e
		c.used += entryDisk
	}
	return e
}

// writeMeta creates e's directory and meta file. Called with c.mu held:
// once per version, so that a version's directory never exists without
// its meta file being complete.
func (c *Cache) writeMeta(e *entry) error {
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return fmt.Errorf("readcache: %w", err)
	}
	b, _ := json.Marshal(meta{Name: e.name, ETag: e.etag, Size: e.size, BlockSize: c.bs})
	tmp := filepath.Join(e.dir, ".tmp-meta-"+randHex())
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("readcache: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(e.dir, "meta")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("readcache: %w", err)
	}
	return nil
}

// dropEntry forgets e and removes its files. Called with c.mu held; the
// removal is a few unlinks, and holding the lock keeps a new entry of
// the same version from being made in a directory being removed.
func (c *Cache) dropEntry(e *entry) {
	if e.gone {
		return
	}
	e.gone = true
	c.used -= entryDisk
	for _, ps := range e.pieces {
		for _, p := range ps {
			c.lru.Remove(p.elem)
			p.elem = nil
			c.used -= p.disk
		}
	}
	e.pieces = nil
	if c.entries[e.name] == e {
		delete(c.entries, e.name)
	}
	if err := os.RemoveAll(e.dir); err != nil {
		c.log.WithError(err).Warn("cannot remove an old version from the read cache")
	}
}

// removePiece forgets p (the caller removes its file). Called with c.mu
// held.
func (c *Cache) removePiece(p *piece) {
	c.lru.Remove(p.elem)
	p.elem = nil
	c.used -= p.disk
	idx := p.off / c.bs
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
	c.dropIfEmpty(p.e)
}

// dropIfEmpty drops a version left without pieces: the directories of
// blobs read once would otherwise pile up. Called with c.mu held.
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
	for done := int64(0); done < int64(len(p)); {
		pos := off + done
		end := min(off+int64(len(p)), (pos/c.bs+1)*c.bs)
		c.storeBlock(name, etag, size, p[done:end-off], pos)
		done = end - off
	}
}

func (c *Cache) storeBlock(name, etag string, size int64, p []byte, off int64) {
	n := int64(len(p))
	disk := diskSize(n)
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
	e.pending++
	var victims []string
	if c.max > 0 {
		if over := c.used + disk + staged - c.max; over > 0 {
			victims = c.evictLocked(over)
		}
		if c.used+disk+staged > c.max {
			e.pending--
			c.dropIfEmpty(e)
			c.mu.Unlock()
			removeAll(victims)
			return
		}
	}
	c.used += disk // reserved while the file is written
	c.mu.Unlock()
	removeAll(victims)

	tmp, err := writePiece(e.dir, e.key, off, p)
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
	pc.elem = c.lru.PushBack(pc)
	// A piece covering others makes them useless.
	idx := off / c.bs
	var drop []*piece
	for _, q := range e.pieces[idx] {
		if off <= q.off && q.off+q.n <= off+n {
			drop = append(drop, q)
		}
	}
	for _, q := range drop {
		c.removePiece(q)
		os.Remove(q.path())
	}
	e.pieces[idx] = append(e.pieces[idx], pc)
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
// if the cache holds that many, and returns how many it dropped. Staging
// calls it when it needs room. It takes only the cache's own lock, and
// the cache never calls staging with it held.
func (c *Cache) Evict(need int64) int64 {
	c.mu.Lock()
	before := c.used
	victims := c.evictLocked(need)
	freed := before - c.used
	c.mu.Unlock()
	removeAll(victims)
	return freed
}

// evictLocked forgets pieces, oldest first, until need bytes are free,
// and returns their paths for the caller to remove without the lock.
func (c *Cache) evictLocked(need int64) []string {
	var paths []string
	for freed := int64(0); freed < need; {
		el := c.lru.Front()
		if el == nil {
			break
		}
		p := el.Value.(*piece)
		paths = append(paths, p.path())
		freed += p.disk
		c.removePiece(p)
	}
	return paths
}

func removeAll(paths []string) {
	for _, p := range paths {
		os.Remove(p)
	}
}

func randHex() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}
