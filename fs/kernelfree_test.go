package fs_test

import (
	"context"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/blobfs/blobfs/fs"
)

// fsys is what the core tests do to a filesystem, by path relative to its
// root: through a kernel mount (osFS) or straight through go-fuse's raw
// interface with no kernel (rawFS), so the same test runs both ways.
type fsys interface {
	Mkdir(name string, perm os.FileMode) error
	WriteFile(name string, data []byte, perm os.FileMode) error
	OpenAppend(name string, perm os.FileMode) (appender, error)
	Remove(name string) error
	Rename(from, to string) error
	Chmod(name string, mode os.FileMode) error
	Truncate(name string, size int64) error
	ReadFile(name string) ([]byte, error)
}

// appender is a file open with O_WRONLY|O_CREATE|O_APPEND.
type appender interface {
	WriteString(s string) (int, error)
	Sync() error
	Close() error
}

// osFS is a kernel mount at dir.
type osFS struct{ dir string }

func (o osFS) p(name string) string                              { return path.Join(o.dir, name) }
func (o osFS) Mkdir(name string, perm os.FileMode) error         { return os.Mkdir(o.p(name), perm) }
func (o osFS) Remove(name string) error                          { return os.Remove(o.p(name)) }
func (o osFS) Rename(from, to string) error                      { return os.Rename(o.p(from), o.p(to)) }
func (o osFS) Chmod(name string, mode os.FileMode) error         { return os.Chmod(o.p(name), mode) }
func (o osFS) Truncate(name string, size int64) error            { return os.Truncate(o.p(name), size) }
func (o osFS) ReadFile(name string) ([]byte, error)              { return os.ReadFile(o.p(name)) }
func (o osFS) WriteFile(n string, b []byte, m os.FileMode) error { return os.WriteFile(o.p(n), b, m) }
func (o osFS) OpenAppend(name string, perm os.FileMode) (appender, error) {
	return os.OpenFile(o.p(name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, perm)
}

// rawFS drives the filesystem as the kernel would — a LOOKUP of each
// component, then CREATE or OPEN, WRITE, FLUSH and RELEASE at close,
// SETATTR for chmod and truncate — through go-fuse's RawFileSystem, with
// no kernel: the core's tests run without /dev/fuse. It never sends
// FORGET, as a kernel with enough memory would not.
//
// It takes the locks the VFS takes, so that it sends only the
// interleavings a kernel can: a directory's lock, shared for a lookup in
// it, exclusive across a lookup and the create, unlink, mkdir or rename
// that follows it (so two creates of one name never race, and no lookup
// answer lands in the middle of a rename), the rename lock for renames,
// and a file's lock around setattr, write and fsync.
type rawFS struct {
	raw    fuse.RawFileSystem
	caller fuse.Caller

	rename sync.Mutex // the VFS's s_vfs_rename_mutex
	mu     sync.Mutex
	locks  map[uint64]*sync.RWMutex // GUARDED_BY(mu); i_rwsem by node ID
}

func (r *rawFS) rw(node uint64) *sync.RWMutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.locks == nil {
		r.locks = map[uint64]*sync.RWMutex{}
	}
	l := r.locks[node]
	if l == nil {
		l = new(sync.RWMutex)
		r.locks[node] = l
	}
	return l
}

// lock takes node's i_rwsem exclusively and returns its unlock.
func (r *rawFS) lock(node uint64) func() {
	l := r.rw(node)
	l.Lock()
	return l.Unlock
}

// lookupShared is a LOOKUP as the VFS makes it on its own: under the
// directory's lock, shared.
func (r *rawFS) lookupShared(parent uint64, name string) (uint64, error) {
	l := r.rw(parent)
	l.RLock()
	defer l.RUnlock()
	return r.lookup(parent, name)
}

// lookup is one LOOKUP; node is 0 when name does not exist. The caller
// holds the directory's lock.
func (r *rawFS) lookup(parent uint64, name string) (node uint64, err error) {
	var out fuse.EntryOut
	h := r.hdr(parent)
	st := r.raw.Lookup(nil, &h, name, &out)
	if st == fuse.ENOENT {
		return 0, nil
	}
	return out.NodeId, errOf(st)
}

func errOf(st fuse.Status) error {
	if st == fuse.OK {
		return nil
	}
	return syscall.Errno(st)
}

func (r *rawFS) hdr(node uint64) fuse.InHeader {
	return fuse.InHeader{NodeId: node, Caller: r.caller}
}

// parentOf looks up every directory on the way to name and returns the
// node of its parent directory and its last component.
func (r *rawFS) parentOf(name string) (parent uint64, base string, err error) {
	parts := strings.Split(strings.Trim(name, "/"), "/")
	parent = fuse.FUSE_ROOT_ID
	for _, p := range parts[:len(parts)-1] {
		n, err := r.lookupShared(parent, p)
		if err == nil && n == 0 {
			err = syscall.ENOENT
		}
		if err != nil {
			return 0, "", err
		}
		parent = n
	}
	return parent, parts[len(parts)-1], nil
}

// walk looks name up and returns the node of its parent directory, its
// own node (0 when it does not exist) and its last component.
func (r *rawFS) walk(name string) (parent, node uint64, base string, err error) {
	parent, base, err = r.parentOf(name)
	if err != nil {
		return 0, 0, "", err
	}
	node, err = r.lookupShared(parent, base)
	return parent, node, base, err
}

// walkLocked is walk with the parent directory's lock taken (exclusive)
// before the last lookup, for a change of the name that follows; unlock
// lets it go (a no-op after an error).
func (r *rawFS) walkLocked(name string) (parent, node uint64, base string, unlock func(), err error) {
	parent, base, err = r.parentOf(name)
	if err != nil {
		return 0, 0, "", func() {}, err
	}
	unlock = r.lock(parent)
	node, err = r.lookup(parent, base)
	return parent, node, base, unlock, err
}

func (r *rawFS) Mkdir(name string, perm os.FileMode) error {
	parent, node, base, unlock, err := r.walkLocked(name)
	defer unlock()
	if err != nil {
		return err
	}
	if node != 0 {
		return syscall.EEXIST
	}
	var out fuse.EntryOut
	return errOf(r.raw.Mkdir(nil, &fuse.MkdirIn{InHeader: r.hdr(parent), Mode: uint32(perm)}, base, &out))
}

// rawFile is an open file: its node, handle and write offset.
type rawFile struct {
	r      *rawFS
	node   uint64
	fh     uint64
	append bool
	off    uint64
}

func (r *rawFS) open(name string, flags uint32, perm os.FileMode) (*rawFile, error) {
	parent, base, err := r.parentOf(name)
	if err != nil {
		return nil, err
	}
	var unlock func()
	if flags&syscall.O_CREAT != 0 {
		// The lookup and the create are one step under the directory's
		// lock; the open of an existing file comes after it.
		unlock = r.lock(parent)
		defer func() {
			if unlock != nil {
				unlock()
			}
		}()
	}
	var node uint64
	if unlock != nil {
		node, err = r.lookup(parent, base)
	} else {
		node, err = r.lookupShared(parent, base)
	}
	if err != nil {
		return nil, err
	}
	if node == 0 {
		if flags&syscall.O_CREAT == 0 {
			return nil, syscall.ENOENT
		}
		var out fuse.CreateOut
		in := fuse.CreateIn{InHeader: r.hdr(parent), Flags: flags, Mode: syscall.S_IFREG | uint32(perm)}
		if err := errOf(r.raw.Create(nil, &in, base, &out)); err != nil {
			return nil, err
		}
		return &rawFile{r: r, node: out.NodeId, fh: out.Fh, append: flags&syscall.O_APPEND != 0}, nil
	}
	if flags&syscall.O_CREAT != 0 {
		unlock()
		unlock = nil
	}
	var out fuse.OpenOut
	// go-fuse does not take FUSE_ATOMIC_O_TRUNC, so the kernel sends
	// OPEN without O_TRUNC and then truncates with SETATTR on the new
	// handle, under the file's lock.
	in := fuse.OpenIn{InHeader: r.hdr(node), Flags: flags &^ (syscall.O_CREAT | syscall.O_EXCL | syscall.O_TRUNC)}
	if err := errOf(r.raw.Open(nil, &in, &out)); err != nil {
		return nil, err
	}
	f := &rawFile{r: r, node: node, fh: out.Fh, append: flags&syscall.O_APPEND != 0}
	if flags&syscall.O_TRUNC != 0 {
		unlock := r.lock(node)
		var sa fuse.SetAttrIn
		sa.InHeader = r.hdr(node)
		sa.Valid, sa.Size, sa.Fh = fuse.FATTR_SIZE|fuse.FATTR_FH, 0, out.Fh
		var ao fuse.AttrOut
		err := errOf(r.raw.SetAttr(nil, &sa, &ao))
		unlock()
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

func (f *rawFile) Write(p []byte) (int, error) {
	defer f.r.lock(f.node)()
	if f.append {
		// The kernel appends at the size it knows.
		var a fuse.AttrOut
		if err := errOf(f.r.raw.GetAttr(nil, &fuse.GetAttrIn{InHeader: f.r.hdr(f.node)}, &a)); err != nil {
			return 0, err
		}
		f.off = a.Size
	}
	n, st := f.r.raw.Write(nil, &fuse.WriteIn{InHeader: f.r.hdr(f.node), Fh: f.fh, Offset: f.off, Size: uint32(len(p))}, p)
	f.off += uint64(n)
	return int(n), errOf(st)
}

func (f *rawFile) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

func (f *rawFile) Sync() error {
	defer f.r.lock(f.node)()
	return errOf(f.r.raw.Fsync(nil, &fuse.FsyncIn{InHeader: f.r.hdr(f.node), Fh: f.fh}))
}

// Close is close(2): FLUSH, whose error close returns, then RELEASE.
func (f *rawFile) Close() error {
	err := errOf(f.r.raw.Flush(nil, &fuse.FlushIn{InHeader: f.r.hdr(f.node), Fh: f.fh}))
	f.r.raw.Release(nil, &fuse.ReleaseIn{InHeader: f.r.hdr(f.node), Fh: f.fh})
	return err
}

func (r *rawFS) WriteFile(name string, data []byte, perm os.FileMode) error {
	f, err := r.open(name, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// OpenFile is open(2) with flags.
func (r *rawFS) OpenFile(name string, flags uint32, perm os.FileMode) (*rawFile, error) {
	return r.open(name, flags, perm)
}

func (r *rawFS) OpenAppend(name string, perm os.FileMode) (appender, error) {
	return r.open(name, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_APPEND, perm)
}

func (r *rawFS) ReadFile(name string) ([]byte, error) {
	f, err := r.open(name, syscall.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	var all []byte
	buf := make([]byte, 128<<10)
	for {
		res, st := r.raw.Read(nil, &fuse.ReadIn{InHeader: r.hdr(f.node), Fh: f.fh, Offset: uint64(len(all)), Size: uint32(len(buf))}, buf)
		if st != fuse.OK {
			f.Close()
			return nil, errOf(st)
		}
		// b may be the reply's own buffers, valid until Done.
		b, st := res.Bytes(buf)
		all = append(all, b...)
		res.Done()
		if st != fuse.OK {
			f.Close()
			return nil, errOf(st)
		}
		if len(b) == 0 {
			break
		}
	}
	return all, f.Close()
}

func (r *rawFS) Remove(name string) error {
	parent, node, base, unlock, err := r.walkLocked(name)
	defer unlock()
	if err != nil {
		return err
	}
	if node == 0 {
		return syscall.ENOENT
	}
	defer r.lock(node)()
	h := r.hdr(parent)
	return errOf(r.raw.Unlink(nil, &h, base))
}

func (r *rawFS) Rename(from, to string) error {
	fp, fbase, err := r.parentOf(from)
	if err != nil {
		return err
	}
	tp, tbase, err := r.parentOf(to)
	if err != nil {
		return err
	}
	r.rename.Lock()
	defer r.rename.Unlock()
	defer r.lock(fp)()
	if tp != fp {
		defer r.lock(tp)()
	}
	fnode, err := r.lookup(fp, fbase)
	if err != nil {
		return err
	}
	if fnode == 0 {
		return syscall.ENOENT
	}
	tnode, err := r.lookup(tp, tbase) // the kernel looks the target up too
	if err != nil {
		return err
	}
	if tnode == fnode {
		return nil
	}
	defer r.lock(fnode)()
	if tnode != 0 {
		defer r.lock(tnode)()
	}
	return errOf(r.raw.Rename(nil, &fuse.RenameIn{InHeader: r.hdr(fp), Newdir: tp}, fbase, tbase))
}

// Stat is stat(2): a LOOKUP, then GETATTR (the kernel's attribute cache
// is not there to answer it).
func (r *rawFS) Stat(name string) (fuse.Attr, error) {
	_, node, _, err := r.walk(name)
	if err == nil && node == 0 {
		err = syscall.ENOENT
	}
	if err != nil {
		return fuse.Attr{}, err
	}
	var out fuse.AttrOut
	err = errOf(r.raw.GetAttr(nil, &fuse.GetAttrIn{InHeader: r.hdr(node)}, &out))
	return out.Attr, err
}

func (r *rawFS) setattr(name string, in fuse.SetAttrIn) error {
	_, node, _, err := r.walk(name)
	if err != nil {
		return err
	}
	if node == 0 {
		return syscall.ENOENT
	}
	defer r.lock(node)()
	in.InHeader = r.hdr(node)
	var out fuse.AttrOut
	return errOf(r.raw.SetAttr(nil, &in, &out))
}

func (r *rawFS) Chmod(name string, mode os.FileMode) error {
	var in fuse.SetAttrIn
	in.Valid, in.Mode = fuse.FATTR_MODE, uint32(mode.Perm())
	return r.setattr(name, in)
}

func (r *rawFS) Truncate(name string, size int64) error {
	var in fuse.SetAttrIn
	in.Valid, in.Size = fuse.FATTR_SIZE, uint64(size)
	return r.setattr(name, in)
}

// mountKernelFreeB is mountKernelFree for benchmarks: no log.
func mountKernelFreeB(b *testing.B, store fs.Store, opts fs.Options) (*rawFS, *fs.Mounted) {
	mt, raw, err := fs.NewKernelFree(b.Context(), store, opts)
	if err != nil {
		b.Fatal(err)
	}
	return &rawFS{raw: raw}, mt
}

// mountKernelFree serves store to a rawFS; the unmount is registered as a
// cleanup and returned, for tests that look at the service after it.
func mountKernelFree(t *testing.T, store fs.Store, opts fs.Options) (*rawFS, *fs.Mounted) {
	t.Helper()
	opts = testOptions(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mt, raw, err := fs.NewKernelFree(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		mt.Unmount(ctx) // a second Unmount returns the first's result
	})
	return &rawFS{raw: raw}, mt
}
