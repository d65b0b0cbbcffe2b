// Package stage keeps data written through the mount in a private cache
// directory until the blob service has committed it, and uploads it as
// blocks: streaming, in parallel, while a sequential writer is still writing.
//
// Layout: Options.Dir/<account>/<container>/ (0700) holds, per file open for
// writing, <id>.data (0600, sparse, exactly the file's size) and <id>.json,
// its journal (JSON lines, the last one current; see journal.go), and a
// few emptied pairs of committed files, kept open for the next files
// (spare.go).
// lost+found/ below it receives staged files that could be neither
// committed nor saved under a conflict name.
//
// A sequential writer's full blocks are Put Block'ed in the background as
// soon as the writer moves past them, so Commit (at close) only uploads the
// last block and sends Put Block List. The data also lands in the cache
// file so that a crash of the daemon loses nothing; once a streamed block
// is in the service it is written back to disk and dropped from the page
// cache (see dropCached), so a large file takes a few blocks of memory,
// not its size. A writer that gets more than Concurrency+2 blocks ahead
// of the uploads waits for them (see waitBacklog). When the cache is
// full, uploaded blocks are punched out of their files (LRU), so a file
// larger than the cache streams through it.
//
// Durability: a write is in the cache file (page cache) when WriteAt
// returns, and the journal says how to finish it, so a SIGKILL or crash of
// the daemon loses nothing acknowledged; File.Sync (fsync) extends that to
// power loss. A successful Commit means the service has the data. A
// Commit marks the journal "closing" before it sends anything (the
// program asked for this content), and the next change clears the mark:
// Recover finishes only marked files and keeps the others, which may be
// prefixes of what their program meant, in lost+found. A failed commit,
// a write that failed half-way and a removal are journaled (fsynced)
// before the caller hears of them, and such files are never published:
// see state for the whole life of a staged file.
//
// Memory does not grow with file sizes: data moves between the cache files
// and the network through the page cache; the package's own memory is a
// few dozen bytes per block of each open file, plus at most Concurrency
// block buffers (BlockSize each) per Manager for uploading unchanged parts
// of existing blobs and small files.
package stage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/blockbuf"
	"github.com/blobfs/blobfs/fs/readcache"
)

// Store is what the write path needs from the blob layer (*blob.Container).
type Store interface {
	Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error)
	Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error)
	PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error
	PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error)
}

// BlockLister is implemented by Stores that can list a blob's committed
// blocks (*blob.Container does). With it, the commit of a large blob that
// was appended to or edited in place lists the base's unchanged blocks
// instead of downloading and uploading them again, when they line up with
// this package's blocks (blobs it wrote itself, with the same block size).
type BlockLister interface {
	GetBlockList(ctx context.Context, name string) ([]blob.Block, string, error)
}

// Defaults for Options' zero values.
const (
	DefaultBlockSize   = 8 << 20
	DefaultConcurrency = 8
)

// Options tune the staging area. Zero values take the defaults.
type Options struct {
	Dir string // created 0700; files inside are 0600
	// MaxBytes bounds the data held in the cache (--cache-size); 0 means
	// no bound, and less than 3 blocks is raised to 3. Writers wait for
	// uploads to free room; the bound should be a few blocks per file
	// written at once.
	MaxBytes    int64
	BlockSize   int64 // default 8 MiB; fixed per staged file
	Concurrency int   // parallel Put Block calls per file; default 8
	// NoMD5 commits blobs without the whole blob's MD5 (--put-md5=false):
	// no CPU spent hashing. By default every commit that can stores it.
	NoMD5 bool
	Log   logrus.FieldLogger
	// Account and Container, when set, put the staging area in
	// Dir/Account/Container, so that mounts of different containers can
	// share Dir without recovering each other's files.
	Account, Container string
	// ReadCache, when set, shares MaxBytes: its bytes count against the
	// bound, and staging evicts them before anything of its own (staged
	// data always wins). A commit also hands it what it uploaded, so
	// that reading the file back costs no GET.
	ReadCache ReadCache
}

// ReadCache is clean data kept in the staging area's budget
// (*readcache.Cache). It never calls the Manager with its own lock held.
type ReadCache interface {
	Used() int64
	// Evict drops at least need bytes if it holds that many and returns
	// how many it dropped.
	Evict(need int64) int64
	// Store keeps p, the bytes at off of the version (name, etag, size).
	Store(name, etag string, size int64, p []byte, off int64)
	// Adopt takes a closed staged file over whole as the version's copy
	// (no copy of the data); false leaves the file to the caller.
	Adopt(readcache.Adoption) bool
}

// Manager owns the staging directory of one mounted container.
type Manager struct {
	store Store
	opts  Options
	root  string
	log   logrus.FieldLogger
	lock  *os.File // flock: one Manager per staging directory

	ctx    context.Context // background uploads; cancelled by Close
	cancel context.CancelFunc
	bufs   chan []byte   // block buffers, at most Concurrency
	drops  chan struct{} // page-cache drops under way (see drop)
	wg     sync.WaitGroup

	mu      sync.Mutex
	files   map[*File]struct{}
	used    int64         // bytes of local blocks, reserved or held
	changed chan struct{} // closed and replaced whenever space or uploads change
	clock   int64         // LRU clock
	busy    int           // commits and uploads under way, for Wait
	frozen  bool          // Freeze: Open refuses
	spares  []spare       // emptied files for the next Opens (spare.go)
	// sparesClosed: Close removed the spares; none are kept from now on.
	sparesClosed bool
}

// NewManager opens (and creates) the staging directory.
func NewManager(store Store, opts Options) (*Manager, error) {
	if opts.Dir == "" {
		return nil, errors.New("stage: no cache directory given (--cache-dir)")
	}
	if opts.BlockSize <= 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opts.Log = l
	}
	// A writer needs room for its file's last block and the (at most two)
	// blocks one write touches; less would be ENOSPC for every write.
	if least := 3 * opts.BlockSize; opts.MaxBytes > 0 && opts.MaxBytes < least {
		opts.Log.Warnf("cache size %d is below 3 blocks; using %d", opts.MaxBytes, least)
		opts.MaxBytes = least
	}
	root := opts.Dir
	for _, part := range []string{opts.Account, opts.Container} {
		if part == "" {
			continue
		}
		if part != filepath.Base(part) || part == "." || part == ".." {
			return nil, fmt.Errorf("stage: %q cannot name a cache subdirectory", part)
		}
		root = filepath.Join(root, part)
	}
	if err := mkdirPrivate(opts.Dir, root); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("stage: cache directory %s: %w", root, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("stage: cache directory %s is in use by another blobfs mount of the same container: give this mount its own --cache-dir or unmount the other (%w)", root, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		store: store, opts: opts, root: root, lock: lock,
		log:    opts.Log.WithField("cache", root),
		ctx:    ctx,
		cancel: cancel,
		bufs:   make(chan []byte, opts.Concurrency),
		drops:  make(chan struct{}, dropsAtOnce),
		files:  map[*File]struct{}{},
	}
	m.changed = make(chan struct{})
	for range opts.Concurrency {
		m.bufs <- nil // allocated on first use
	}
	return m, nil
}

// mkdirPrivate creates root and its parents up to top with mode 0700 and
// makes sure root itself is 0700 even when it existed: staged data is
// other people's file contents.
func mkdirPrivate(top, root string) error {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("stage: cannot create the cache directory: %w", err)
	}
	for d := root; ; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("stage: cache directory: %w", err)
		}
		if d == filepath.Clean(top) || d == filepath.Dir(d) {
			return nil
		}
	}
}

// Dir is the staging directory of this container.
func (m *Manager) Dir() string { return m.root }

// LostFound is where staged files go that could not be uploaded anywhere.
func (m *Manager) LostFound() string { return filepath.Join(m.root, "lost+found") }

func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// Open starts writing blob name. base is the blob as it is now, nil when it
// does not exist; unless truncate is set its content is what the file starts
// with (fetched when first needed). Commits are conditional on base: they
// fail with a *ConflictError if the blob changed meanwhile. A page blob is
// refused, as is a truncate of an append blob (*BlobTypeError, EPERM); an
// append blob is staged to be appended to (append.go).
func (m *Manager) Open(ctx context.Context, name string, base *blob.Properties, truncate bool) (*File, error) {
	if base != nil {
		if err := m.checkType(name, base, truncate); err != nil {
			return nil, err
		}
	}
	return m.open(ctx, name, base, truncate)
}

// OpenCopy stages blob base, of any type, for a local copy (Localize)
// that readers go on with after the blob is removed. It is never
// committed as anything but what its type allows: Commit of a page blob's
// copy fails with a *BlobTypeError, like any write would.
func (m *Manager) OpenCopy(ctx context.Context, name string, base *blob.Properties) (*File, error) {
	return m.open(ctx, name, base, false)
}

func (m *Manager) open(ctx context.Context, name string, base *blob.Properties, truncate bool) (*File, error) {
	if err := blob.ValidateName(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	frozen := m.frozen
	m.mu.Unlock()
	if frozen {
		return nil, ErrFrozen
	}
	sp, ok := m.takeSpare()
	if !ok {
		sp.id = newID()
		var err error
		sp.data, err = os.OpenFile(dataPath(m.root, sp.id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("stage: cannot create a cache file for %q: %w", name, err)
		}
	}
	data := sp.data
	f := &File{m: m, id: sp.id, data: data, name: name, bs: m.opts.BlockSize}
	// A spare's journal is empty, so the first record goes in place, as
	// in a new file.
	f.jlog = journalLog{path: journalPath(m.root, sp.id), f: sp.journal, exists: sp.journal != nil}
	f.changed = make(chan struct{})
	f.setBase(base)
	if base == nil || truncate || base.Size == 0 {
		f.sum.off = m.opts.NoMD5
		f.sum.start() // the content starts empty: hash it as it is written
	}
	if base != nil && !truncate {
		f.size = base.Size
		f.baseLimit = base.Size
		f.blocks = make([]block, nblocks(f.size, f.bs))
		for i := range f.blocks {
			f.blocks[i] = block{state: blkRemote, ver: f.nextVer()}
		}
		if err := data.Truncate(f.size); err != nil {
			f.discard()
			return nil, fmt.Errorf("stage: cache file for %q: %w", name, err)
		}
	}
	// A new blob must be created even if nothing is written; a truncated
	// one changes unless it was empty already.
	f.dirty = base == nil || (truncate && base.Size > 0)
	if err := f.writeJournal(); err != nil {
		f.discard()
		return nil, err
	}
	m.mu.Lock()
	m.files[f] = struct{}{}
	m.mu.Unlock()
	return f, nil
}

// checkType refuses to stage a blob this package cannot commit without
// changing its type: a page blob, and an append blob that is truncated or
// whose store cannot append. An append blob is otherwise staged to be
// appended to (append.go).
func (m *Manager) checkType(name string, base *blob.Properties, truncate bool) error {
	switch base.BlobType {
	case "", "BlockBlob":
		return nil
	case "AppendBlob":
		if _, ok := m.store.(Appender); !ok {
			return &BlobTypeError{Name: name, Type: base.BlobType, Detail: "writing: this store cannot append"}
		}
		if truncate && base.Size > 0 {
			return &BlobTypeError{Name: name, Type: base.BlobType, Detail: "truncating it (O_TRUNC): an append blob takes only appends at its end"}
		}
		return nil
	}
	return &BlobTypeError{Name: name, Type: base.BlobType}
}

// notify wakes everyone waiting for space or for uploads.
func (m *Manager) notify() {
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

func (m *Manager) getBuf(ctx context.Context) ([]byte, error) {
	select {
	case b := <-m.bufs:
		if b == nil {
			b = blockbuf.New(int(m.opts.BlockSize))
		}
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *Manager) putBuf(b []byte) { m.bufs <- b }

func (m *Manager) addBusy(d int) {
	m.mu.Lock()
	m.busy += d
	m.mu.Unlock()
	if d < 0 {
		m.notify()
	}
}

// Progress describes one staged file that is not committed yet.
type Progress struct {
	Name     string
	Size     int64
	Uploaded int64 // bytes already in the service as blocks
	// State is "writing", "closing" (a commit is under way or was cut
	// short) or "failed" (the last commit failed; a new close() or
	// fsync() of the program may still commit it).
	State string
}

// Pending lists the open files with changes not yet committed that may
// still be: not those removed or whose write failed half-way (see Kept
// for what becomes of them).
func (m *Manager) Pending() []Progress {
	var out []Progress
	for _, f := range m.openFiles() {
		f.mu.Lock()
		if f.dirty && f.state != stRemoved && f.state != stIncomplete {
			p := Progress{Name: f.name, Size: f.size, State: f.state.String()}
			for i := range f.blocks {
				if f.uploaded(i) {
					p.Uploaded += blen(i, f.size, f.bs)
				}
			}
			out = append(out, p)
		}
		f.mu.Unlock()
	}
	return out
}

// Used is how many bytes the staging area holds or has reserved, for the
// read cache that shares its bound.
func (m *Manager) Used() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}

// Stats are totals for statfs and the stats endpoint.
type Stats struct {
	Files       int   // open staged files
	DirtyFiles  int   // of which with changes not committed
	CachedBytes int64 // data held in the cache directory
	MaxBytes    int64
}

// Stats sums up the staging area.
func (m *Manager) Stats() Stats {
	files := m.openFiles()
	s := Stats{Files: len(files), MaxBytes: m.opts.MaxBytes}
	for _, f := range files {
		f.mu.Lock()
		if f.dirty {
			s.DirtyFiles++
		}
		f.mu.Unlock()
	}
	m.mu.Lock()
	s.CachedBytes = m.used
	m.mu.Unlock()
	return s
}

func (m *Manager) openFiles() []*File {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*File, 0, len(m.files))
	for f := range m.files {
		out = append(out, f)
	}
	return out
}

// Freeze makes Open fail with ErrFrozen from now on: the mount is
// shutting down and starts nothing new. Files already open carry on.
func (m *Manager) Freeze() {
	m.mu.Lock()
	m.frozen = true
	m.mu.Unlock()
}

// Close stops background uploads and releases the directory. Staged files
// stay on disk (orphans excepted); the next Manager's Recover finishes
// those whose commit had started and keeps the others in lost+found.
func (m *Manager) Close() error {
	m.cancel()
	m.wg.Wait()
	for _, f := range m.openFiles() {
		f.mu.Lock()
		f.data.Close()
		f.jlog.close()
		f.closed = true
		orphan := f.orphan
		f.mu.Unlock()
		if orphan {
			f.remove()
		}
	}
	m.closeSpares()
	return m.lock.Close()
}
