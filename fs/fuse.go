package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// The go-fuse adapter: every method go-fuse calls is here, and each one
// only chooses the request's context, calls the core (the lowercase
// method of the same node) and maps its error, once, with mount.errno.
// FUSE methods never call each other, and the core never makes an errno
// of a failure itself.
//
// Contexts: a read-only request is patient (an interrupt ends it only if
// it is still waiting 2 s later, see interrupt.go); a request that changes
// the blob is uninterruptible, since a program cannot retry a close,
// rename or unlink that was abandoned half-way.

var (
	_ gofs.NodeLookuper       = (*dirNode)(nil)
	_ gofs.NodeReaddirer      = (*dirNode)(nil)
	_ gofs.NodeOpendirHandler = (*dirNode)(nil)
	_ gofs.NodeGetattrer      = (*dirNode)(nil)
	_ gofs.NodeSetattrer      = (*dirNode)(nil)
	_ gofs.NodeMkdirer        = (*dirNode)(nil)
	_ gofs.NodeRmdirer        = (*dirNode)(nil)
	_ gofs.NodeUnlinker       = (*dirNode)(nil)
	_ gofs.NodeCreater        = (*dirNode)(nil)
	_ gofs.NodeSymlinker      = (*dirNode)(nil)
	_ gofs.NodeMknoder        = (*dirNode)(nil)
	_ gofs.NodeLinker         = (*dirNode)(nil)
	_ gofs.NodeRenamer        = (*dirNode)(nil)
	_ gofs.NodeStatfser       = (*dirNode)(nil)

	_ gofs.FileReaddirenter = (*dirHandle)(nil)
	_ gofs.FileSeekdirer    = (*dirHandle)(nil)
	_ gofs.FileReleasedirer = (*dirHandle)(nil)
	_ gofs.FileLookuper     = (*dirHandle)(nil)

	_ gofs.NodeGetattrer = (*fileNode)(nil)
	_ gofs.NodeSetattrer = (*fileNode)(nil)
	_ gofs.NodeOpener    = (*fileNode)(nil)
	_ gofs.NodeAllocater = (*fileNode)(nil)

	_ gofs.FileReader   = (*fileHandle)(nil)
	_ gofs.FileWriter   = (*fileHandle)(nil)
	_ gofs.FileFlusher  = (*fileHandle)(nil)
	_ gofs.FileFsyncer  = (*fileHandle)(nil)
	_ gofs.FileReleaser = (*fileHandle)(nil)

	_ gofs.NodeReadlinker = (*symlinkNode)(nil)
	_ gofs.NodeGetattrer  = (*symlinkNode)(nil)
	_ gofs.NodeSetattrer  = (*symlinkNode)(nil)
)

// fail maps a failure of op on path to its errno (see errno.go).
func (m *mount) fail(op, path string, err error) syscall.Errno {
	return m.errno(opErr(op, path, err))
}

// Directories.

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ch, err := d.lookup(ctx, name, &out.Attr)
	return ch, d.m.fail("lookup", d.childPath(name), err)
}

func (d *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ds, _, _, err := d.readdir(ctx)
	return ds, d.m.fail("readdir", d.name(), err)
}

// OpendirHandle gives the directory a handle of its own so that the
// attributes READDIRPLUS sends with each entry come from the listing
// that entry came from, however long the reading takes (a walk's flat
// listing may happen in the middle of it).
func (d *dirNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{d: d}, 0, 0
}

func (d *dirNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ctx, release := patient(ctx)
	defer release()
	return d.m.fail("getattr", d.name(), d.getattr(ctx, &out.Attr))
}

func (d *dirNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return d.m.fail("setattr", d.name(), d.setattr(uninterruptible(ctx), in, &out.Attr))
}

func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ch, err := d.mkdir(uninterruptible(ctx), name, mode, &out.Attr)
	return ch, d.m.fail("mkdir", d.childPath(name), err)
}

func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return d.m.fail("rmdir", d.childPath(name), d.rmdir(uninterruptible(ctx), name))
}

func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	return d.m.fail("unlink", d.childPath(name), d.unlink(uninterruptible(ctx), name))
}

// Create makes a file that exists only here until its first close (see
// create).
func (d *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	ch, h, err := d.create(uninterruptible(ctx), name, flags, mode)
	if err != nil {
		return nil, nil, 0, d.m.fail("create", d.childPath(name), err)
	}
	h.f.fill(&out.Attr)
	return ch, h, d.m.cacheFlags(true), 0
}

func (d *dirNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ch, err := d.makeMetaNode(uninterruptible(ctx), "symlink", name, syscall.S_IFLNK|0777, 0, target, &out.Attr)
	return ch, d.m.fail("symlink", d.childPath(name), err)
}

func (d *dirNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ch, err := d.mknod(uninterruptible(ctx), name, mode, dev, &out.Attr)
	return ch, d.m.fail("mknod", d.childPath(name), err)
}

// Link is refused: a blob has exactly one name.
func (d *dirNode) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (d *dirNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	nd, ok := newParent.(*dirNode)
	if !ok {
		return syscall.EXDEV
	}
	err := d.rename(uninterruptible(ctx), name, nd, newName, flags)
	return d.m.fail("rename", d.childPath(name)+" -> "+nd.childPath(newName), err)
}

// Statfs reports a large, mostly free filesystem: a container has no size
// limit worth showing, and df and installers only need it to be sane.
func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	const bsize = 4096
	const total = 1 << 50 / bsize // 1 PiB
	out.Bsize = bsize
	out.Frsize = bsize
	out.Blocks = total
	out.Bfree = total
	out.Bavail = total
	out.Files = 1 << 32
	out.Ffree = 1 << 32
	out.NameLen = 255
	return 0
}

// Open directories. go-fuse serializes the calls on one handle.

func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if err := h.open(ctx); err != nil {
		return nil, h.d.m.fail("readdir", h.d.name(), err)
	}
	if !h.ds.HasNext() {
		return nil, 0
	}
	e, errno := h.ds.Next()
	return &e, errno
}

func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if err := h.open(ctx); err != nil {
		return h.d.m.fail("readdir", h.d.name(), err)
	}
	if sd, ok := h.ds.(gofs.FileSeekdirer); ok {
		return sd.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (h *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {
	if h.ds != nil {
		h.ds.Close()
	}
}

// Lookup answers READDIRPLUS for a name the stream just produced.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ch, err := h.lookup(ctx, name, &out.Attr)
	return ch, h.d.m.fail("lookup", h.d.childPath(name), err)
}

// Files.

func (f *fileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ctx, release := patient(ctx)
	defer release()
	return f.m.fail("getattr", f.blobName(), f.getattr(ctx, &out.Attr))
}

func (f *fileNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return f.m.fail("setattr", f.blobName(), f.setattr(uninterruptible(ctx), fh != nil, in, &out.Attr))
}

// Allocate commits, as a truncate does.
func (f *fileNode) Allocate(ctx context.Context, fh gofs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	return f.m.fail("fallocate", f.blobName(), f.allocate(uninterruptible(ctx), off, size, mode))
}

func (f *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ctx, release := patient(ctx)
	defer release()
	h, fuseFlags, err := f.openHandle(ctx, flags)
	if err != nil {
		return nil, 0, f.m.fail("open", f.blobName(), err)
	}
	return h, fuseFlags, 0
}

// Open files.

func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	ctx, release := patient(ctx)
	defer release()
	res, err := h.readAt(ctx, dest, off)
	return res, h.f.m.fail("read", h.f.blobName(), err)
}

func (h *fileHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	ctx, release := patient(ctx)
	defer release()
	n, err := h.writeAt(ctx, data, off)
	return n, h.f.m.fail("write", h.f.blobName(), err)
}

// Flush runs at every close(): the upload happens here, and its error is
// close()'s. It ignores FUSE interrupts: any signal to the closing thread
// sends one (Go's runtime sends SIGURG all the time), a program cannot
// retry a close, and an abandoned upload would wait in the cache until the
// next mount. The client's retry budget still bounds the wait.
func (h *fileHandle) Flush(ctx context.Context) syscall.Errno {
	return h.f.m.fail("close", h.f.blobName(), h.close(uninterruptible(ctx)))
}

// Fsync ignores interrupts for the same reason as Flush.
func (h *fileHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.f.m.fail("fsync", h.f.blobName(), h.fsync(uninterruptible(ctx)))
}

func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	h.release(ctx)
	return 0
}

// Symlinks and special files.

func (s *symlinkNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	s.fill(&out.Attr)
	return 0
}

func (s *symlinkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	ctx, release := patient(ctx)
	defer release()
	b, err := s.readlink(ctx)
	return b, s.m.fail("readlink", s.Path(nil), err)
}

// Setattr keeps times, mode and owner in the blob's metadata (lutimes, as
// rsync -a and tar use on links; chmod and chown of special files).
func (s *symlinkNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return s.m.fail("setattr", s.Path(nil), s.setattr(uninterruptible(ctx), in, &out.Attr))
}
