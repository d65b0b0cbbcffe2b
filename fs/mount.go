package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/clock"
	"github.com/blobfs/blobfs/fs/readahead"
	"github.com/blobfs/blobfs/fs/readcache"
	"github.com/blobfs/blobfs/fs/stage"
)

// Options tune a mount. Zero values take the defaults.
type Options struct {
	UID, GID          uint32      // owner of files without stored ownership
	FileMode, DirMode os.FileMode // permissions of files/dirs without stored mode (0644/0755)
	Umask             os.FileMode // taken off FileMode and DirMode
	ReadOnly          bool
	AllowOther        bool

	// How long the kernel and the mount trust what they were told about
	// attributes, names and absent names. Defaults: DefaultAttrTTL,
	// DefaultEntryTTL, DefaultNegativeTTL. The entry TTL also bounds how
	// long a directory listing is reused. Negative values mean 0 (no cache).
	AttrTTL, EntryTTL, NegativeTTL time.Duration

	CacheDir  string // staging for data not yet uploaded, and the read cache
	CacheSize int64  // bytes, staging and read cache together
	// ReadCache keeps what is read (and committed) in CacheDir/read-cache,
	// served while the blob's ETag is unchanged, also after a remount
	// (see fs/readcache). Needs CacheDir. cmd/blobfs turns it on unless
	// --read-cache=false.
	ReadCache   bool
	BlockSize   int64 // upload/download block size
	Concurrency int   // parallel block transfers per file

	// DirectIO opens every file with FOPEN_DIRECT_IO: reads and writes go
	// to the daemon as the program makes them and the kernel keeps no
	// page cache of file data. See mount.cacheFlags for the trade.
	DirectIO bool

	// NoPutMD5 commits blobs without the whole blob's MD5 (--put-md5=false);
	// see stage.Options.NoMD5.
	NoPutMD5 bool

	FSName string // shown by mount(8) and df, e.g. "blobfs:account/container"
	Debug  bool   // log every FUSE operation
	Log    logrus.FieldLogger

	// Clock decides when what the mount was told goes stale (the TTLs
	// above) and stamps times it keeps; nil is the real clock. Tests give
	// a clock.Fake and move it instead of sleeping. The kernel's own
	// caches run on real time whatever it is.
	Clock clock.Clock
}

// Default cache lifetimes: a change made by another client shows within
// these, and `ls -l; stat` within them costs no calls.
const (
	DefaultAttrTTL     = 30 * time.Second
	DefaultEntryTTL    = 30 * time.Second
	DefaultNegativeTTL = 5 * time.Second
)

func ttl(v, def time.Duration) time.Duration {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

// mount is the state every node shares.
type mount struct {
	store    Store
	log      logrus.FieldLogger
	stage    *stage.Manager
	rcache   *readcache.Cache // nil: no read cache
	ra       readahead.Options
	readOnly bool
	directIO bool

	uid, gid          uint32
	fileMode, dirMode uint32
	started           time.Time
	// strict: a broken invariant panics instead of being logged (tests
	// set BLOBFS_CHECK_INVARIANTS).
	strict bool

	attrTTL, entryTTL, negTTL time.Duration
	clock                     clock.Clock // for the TTLs and the times kept in memory

	stats counters

	// Shutdown (SIGTERM, unmount): once stopping is set no commit starts,
	// and commits tracks those that started before.
	shutMu   sync.Mutex
	stopping bool
	commits  sync.WaitGroup

	shadowOnce sync.Map // blob names hidden by a same-named directory, logged once
}

// shadowed reports a blob hidden by a directory of the same name.
func (m *mount) shadowed(name string) {
	if _, dup := m.shadowOnce.LoadOrStore(name, true); !dup {
		m.log.WithField("blob", name).Warn("a directory of the same name hides this blob; rename it with another tool to reach it")
	}
}

// Mounted is a live mount.
type Mounted struct {
	m      *mount
	root   *dirNode
	server *fuse.Server
	dir    string
	served chan struct{} // closed when the kernel has let go of the mount

	unmountOnce sync.Once
	unmountErr  error
}

// Mount mounts the container at mountpoint and returns once the kernel
// serves it.
func Mount(ctx context.Context, mountpoint string, ct *blob.Container, opts Options) (*Mounted, error) {
	return MountStore(ctx, mountpoint, ct, opts)
}

// MountStore is Mount over any Store; tests use it to count or fail calls
// on their way to a real service.
func MountStore(ctx context.Context, mountpoint string, store Store, opts Options) (*Mounted, error) {
	mountpoint, err := filepath.Abs(mountpoint)
	if err != nil {
		return nil, err
	}
	m, root, fo, err := newFS(ctx, store, opts)
	if err != nil {
		return nil, err
	}
	server, err := gofs.Mount(mountpoint, root, fo)
	if err != nil {
		m.closeStaging()
		return nil, fmt.Errorf("mounting %s: %w (is /dev/fuse there and fusermount3 installed?)", mountpoint, err)
	}
	raiseKernelReadahead(m.log, mountpoint)
	mt := &Mounted{m: m, root: root, server: server, dir: mountpoint, served: make(chan struct{})}
	go func() { server.Wait(); close(mt.served) }()
	return mt, nil
}

// newFS makes the filesystem, ready to serve, and the go-fuse options to
// serve it with: the staging area opened and what a crash left in it
// recovered, the root node made. Mounting it is the caller's business (a
// test may drive it without a kernel).
func newFS(ctx context.Context, store Store, opts Options) (*mount, *dirNode, *gofs.Options, error) {
	log := opts.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	fileMode, dirMode := opts.FileMode&07777, opts.DirMode&07777
	if fileMode == 0 {
		fileMode = 0644
	}
	if dirMode == 0 {
		dirMode = 0755
	}
	m := &mount{
		store:    store,
		log:      log,
		readOnly: opts.ReadOnly,
		directIO: opts.DirectIO,
		uid:      opts.UID,
		gid:      opts.GID,
		fileMode: uint32(fileMode &^ opts.Umask),
		dirMode:  uint32(dirMode &^ opts.Umask),
		started:  time.Now(),
		clock:    clk,
		strict:   os.Getenv("BLOBFS_CHECK_INVARIANTS") != "",
		attrTTL:  ttl(opts.AttrTTL, DefaultAttrTTL),
		entryTTL: ttl(opts.EntryTTL, DefaultEntryTTL),
		negTTL:   ttl(opts.NegativeTTL, DefaultNegativeTTL),
		ra:       readaheadOptions(opts),
	}
	if opts.ReadCache && opts.CacheDir != "" {
		dir := filepath.Join(opts.CacheDir, ReadCacheSubdir)
		rc, err := readcache.Open(readcache.Options{
			Dir: dir, BlockSize: m.ra.Pool.BlockSize(), MaxBytes: opts.CacheSize, Log: log,
		})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("opening the read cache %s (or mount with --read-cache=false): %w", dir, err)
		}
		m.rcache = rc
		m.ra.Cache = rc
	}
	if !opts.ReadOnly {
		cacheDir := opts.CacheDir
		if cacheDir == "" {
			d, err := os.MkdirTemp("", "blobfs-stage-")
			if err != nil {
				return nil, nil, nil, fmt.Errorf("creating a staging directory (set --cache-dir): %w", err)
			}
			cacheDir = d
		}
		so := stage.Options{
			Dir: cacheDir, MaxBytes: opts.CacheSize, BlockSize: opts.BlockSize,
			Concurrency: opts.Concurrency, Log: log, NoMD5: opts.NoPutMD5,
		}
		if m.rcache != nil {
			so.ReadCache = m.rcache
		}
		sm, err := stage.NewManager(store, so)
		if err != nil {
			m.closeReadCache()
			return nil, nil, nil, fmt.Errorf("opening the staging directory %s: %w", cacheDir, err)
		}
		m.stage = sm
		if m.rcache != nil {
			m.rcache.SetStaged(sm)
		}
		// Finish what a crashed daemon left staged before anything new.
		rec, err := sm.Recover(ctx)
		for _, r := range rec {
			l := log.WithFields(logrus.Fields{"blob": r.Name, "size": r.Size, "saved_as": r.SavedAs})
			if r.Err != nil {
				l.Warnf("recovering a staged upload from a previous run: %v", r.Err)
			} else {
				l.Info("recovered a staged upload from a previous run")
			}
		}
		if err != nil {
			sm.Close()
			m.closeReadCache()
			return nil, nil, nil, fmt.Errorf("recovering staged uploads in %s: %w", cacheDir, err)
		}
	}

	name := opts.FSName
	if name == "" {
		name = "blobfs"
	}
	fo := &gofs.Options{
		EntryTimeout:    &m.entryTTL,
		AttrTimeout:     &m.attrTTL,
		NegativeTimeout: &m.negTTL,
		// Every node fills in its own owner and mode, defaults included:
		// go-fuse's own defaults would show a stored mode 0000 as 0644 and
		// a stored uid 0 as --uid.
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName:        name,
			Name:          "blobfs",
			AllowOther:    opts.AllowOther,
			MaxWrite:      1 << 20,
			MaxReadAhead:  kernelReadahead,
			DisableXAttrs: true,
			// Splicing only helps replies read from a file descriptor,
			// which this daemon never gives; for a buffer go-fuse would
			// still fill a pipe before falling back (and log, for a
			// 1 MiB reply that overflows the pipe).
			DisableSplice: true,
			Debug:         opts.Debug,
			// The kernel answers flock and fcntl locks itself: they then
			// work between processes of this machine, which is all a blob
			// container can offer.
			EnableLocks: false,
		},
	}
	if opts.DirectIO {
		// Kernels from 6.6 then still allow shared mappings of the files
		// (sqlite's -shm, some build tools); go-fuse asks only when the
		// kernel offers it, and MAP_PRIVATE works either way.
		fo.MountOptions.ExtraCapabilities |= fuse.CAP_DIRECT_IO_ALLOW_MMAP
	}
	if opts.AllowOther {
		// Other users reach the mount: let the kernel enforce the modes.
		fo.MountOptions.Options = append(fo.MountOptions.Options, "default_permissions")
	}
	if opts.ReadOnly {
		fo.MountOptions.Options = append(fo.MountOptions.Options, "ro")
	}
	root := newDirNode(m, nil)
	root.isRoot = true // the container: it needs no marker and has none
	return m, root, fo, nil
}

// closeStaging closes what newFS opened, for a mount that failed.
func (m *mount) closeStaging() {
	if m.stage != nil {
		m.stage.Close()
	}
	m.closeReadCache()
}

// ReadCacheSubdir is the read cache's directory in the cache directory.
const ReadCacheSubdir = "read-cache"

func (m *mount) closeReadCache() error {
	if m.rcache == nil {
		return nil
	}
	return m.rcache.Close()
}

// readaheadOptions shares one buffer pool among all readers of the mount,
// so readahead memory is bounded however many files are open: one full
// window (Concurrency blocks) plus a few blocks for other readers.
func readaheadOptions(opts Options) readahead.Options {
	bs, conc := opts.BlockSize, opts.Concurrency
	if bs <= 0 {
		bs = readahead.DefaultBlockSize
	}
	if conc <= 0 {
		conc = readahead.DefaultConcurrency
	}
	return readahead.Options{
		BlockSize:   bs,
		Concurrency: conc,
		Pool:        readahead.NewPool(bs, int64(conc+4)*bs),
	}
}

// Unmount stops accepting changes, waits for the commits of files already
// closed (or fsynced), and unmounts. A file still open for writing is not
// committed: the program has not said its content is complete, and a
// SIGTERM in the middle of a copy must not leave a truncated blob. Its
// staged data is fsynced and kept in the cache directory (logged with its
// path); the next mount moves it to lost+found.
func (mt *Mounted) Unmount(ctx context.Context) error {
	mt.unmountOnce.Do(func() {
		var errs []error
		if err := mt.m.stop(ctx, &mt.root.Inode); err != nil {
			errs = append(errs, err)
		}
		gone, err := mt.unmount(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		// After a lazy unmount the server runs until the last open file
		// closes: do not wait for that past ctx. When the mountpoint was
		// unmounted from outside and the server still runs, something
		// else holds the connection (a copy of the mount in another mount
		// namespace, a file open on a lazily detached mount) for as long
		// as it likes: do not wait for it at all. The commits are done;
		// the connection ends when the process exits.
		if !gone {
			select {
			case <-mt.served:
			case <-ctx.Done():
			}
		}
		if mt.m.stage != nil {
			if err := mt.m.stage.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := mt.m.closeReadCache(); err != nil {
			errs = append(errs, err)
		}
		mt.unmountErr = errors.Join(errs...)
	})
	return mt.unmountErr
}

// unmount asks the kernel to let go, retrying while the mount is busy and
// detaching it lazily when ctx runs out, so nothing is left behind. It
// reports gone when the mountpoint had already been unmounted from outside
// (umount, fusermount3 -u, blobfs unmount --lazy) while the server still
// runs: asking again would only fail with EINVAL until ctx runs out.
func (mt *Mounted) unmount(ctx context.Context) (gone bool, err error) {
	for {
		select {
		case <-mt.served:
			// Already unmounted from outside, and the connection is
			// closed: nothing left to ask the kernel.
			return false, nil
		default:
		}
		if !fuseMountedAt(mt.dir) {
			mt.m.log.WithField("mountpoint", mt.dir).Info("the mountpoint was already unmounted from outside; not unmounting it again")
			return true, nil
		}
		err := mt.server.Unmount()
		if err == nil {
			return false, nil
		}
		select {
		case <-mt.served:
			return false, nil
		case <-ctx.Done():
			if lazy := syscall.Unmount(mt.dir, syscall.MNT_DETACH); lazy != nil {
				out, lerr := exec.Command("fusermount3", "-u", "-z", mt.dir).CombinedOutput()
				if lerr != nil {
					return false, fmt.Errorf("unmounting %s: %w (lazy unmount: %v %s)", mt.dir, err, lerr, out)
				}
			}
			return false, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Wait blocks until the filesystem is unmounted.
func (mt *Mounted) Wait() { <-mt.served }

// Dir is the mountpoint.
func (mt *Mounted) Dir() string { return mt.dir }

// errStopping refuses a change once shutdown began.
var errStopping = fmt.Errorf("blobfs is unmounting and accepts no more changes: %w", syscall.EROFS)

// errStoppedClose is a close() or fsync() that came after shutdown began:
// what was written before is not uploaded (the program may have been
// interrupted half-way), but kept in the cache directory.
var errStoppedClose = fmt.Errorf("blobfs was unmounting when the file was closed, so it was not uploaded; its data is kept in the cache directory and the next mount moves it to lost+found: %w", syscall.EIO)

// errStoppedWrite is a write to a file open before shutdown began.
var errStoppedWrite = fmt.Errorf("blobfs is unmounting and accepts no more writes; what was written before is kept in the cache directory: %w", syscall.EIO)

func (m *mount) isStopping() bool {
	m.shutMu.Lock()
	defer m.shutMu.Unlock()
	return m.stopping
}

// beginCommit registers a commit, unless shutdown began; endCommit (a
// commits.Done) must follow a true.
func (m *mount) beginCommit() bool {
	m.shutMu.Lock()
	defer m.shutMu.Unlock()
	if m.stopping {
		return false
	}
	m.commits.Add(1)
	return true
}

// stop is the first half of a shutdown: refuse changes, let the commits
// under way finish, and keep what open files staged for the next mount.
func (m *mount) stop(ctx context.Context, root *gofs.Inode) error {
	m.shutMu.Lock()
	m.stopping = true
	m.shutMu.Unlock()
	m.flushKept(ctx, root) // emptied directories outlive the mount
	if m.stage == nil {
		return nil
	}
	m.stage.Freeze()
	done := make(chan struct{})
	go func() { m.commits.Wait(); close(done) }()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("commits of closed files still under way when the unmount timeout ran out; they stay staged and the next mount finishes them: %w", ctx.Err()))
	}
	for _, f := range fileNodes(root) {
		f.mu.Lock()
		st, unlinked, name := f.staged, f.state == stateRemoved, f.name
		f.mu.Unlock()
		switch {
		case st == nil || unlinked:
			// Unlinked ones are orphans: the stage drops them.
		case st.Dirty():
			if err := st.Sync(); err != nil {
				errs = append(errs, fmt.Errorf("%s: keeping its staged data: %w", name, err))
				continue
			}
			m.log.WithFields(logrus.Fields{"path": name, "cache_file": st.CachePath(), "size": st.Size()}).
				Warn("still open for writing at unmount: not uploaded (it may be incomplete); its data is kept in the cache file and the next mount moves it to lost+found")
		}
	}
	return errors.Join(errs...)
}

// fileNodes lists the files the kernel knows of.
func fileNodes(root *gofs.Inode) []*fileNode {
	var files []*fileNode
	var walk func(n *gofs.Inode)
	walk = func(n *gofs.Inode) {
		for _, ch := range n.Children() {
			switch c := ch.Operations().(type) {
			case *fileNode:
				files = append(files, c)
			case *dirNode:
				walk(ch)
			}
		}
	}
	walk(root)
	return files
}
