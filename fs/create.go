package fs

import (
	"context"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/blobfs/blobfs/blob"
)

// Create makes a file that exists only here until its first close, when
// it is uploaded (a small file in one Put Blob); nothing is sent before.
//
// The kernel has taken the umask off mode already (go-fuse does not ask
// for FUSE_DONT_MASK), so mode is stored as it comes, 0 included. Owner
// and times are the caller's and now, sent with that first upload.
func (d *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	ch, h, errno := d.create(uninterruptible(ctx), name, flags, mode)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	h.f.fill(&out.Attr)
	return ch, h, d.m.cacheFlags(true), 0
}

// create is Create for the core's own callers (mknod of a regular file).
func (d *dirNode) create(ctx context.Context, name string, flags uint32, mode uint32) (*gofs.Inode, *fileHandle, syscall.Errno) {
	if errno := checkNameLen(name); errno != 0 {
		return nil, nil, errno
	}
	if d.m.readOnly || d.m.stage == nil {
		return nil, nil, syscall.EROFS
	}
	full := d.childPath(name)
	if err := blob.ValidateName(full); err != nil {
		return nil, nil, toErrno(d.m.log, "create", full, err)
	}
	st, err := d.m.stage.Open(ctx, full, nil, true)
	if err != nil {
		return nil, nil, toErrno(d.m.log, "create", full, err)
	}
	f := newFileNode(d.m, full, nil)
	f.attrs.newInode(ctx, d, mode, false)
	f.staged, f.written = st, time.Now()
	// Even an O_RDONLY create must produce the blob at close, so the
	// handle commits like a writer; the kernel refuses its write()s.
	h := &fileHandle{f: f, write: true, append: flags&syscall.O_APPEND != 0}
	f.writers = 1
	f.addHandleLocked(h)
	ch := d.NewInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG})
	d.noteChild(name, &entry{typ: syscall.S_IFREG, pending: true})
	d.entriesChanged()
	return ch, h, 0
}
