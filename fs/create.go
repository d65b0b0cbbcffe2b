package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/blobfs/blobfs/blob"
)

// create makes a file that exists only here until its first close, when
// it is uploaded (a small file in one Put Blob); nothing is sent before.
//
// The kernel has taken the umask off mode already (go-fuse does not ask
// for FUSE_DONT_MASK), so mode is stored as it comes, 0 included. Owner
// and times are the caller's and now, sent with that first upload.

func (d *dirNode) create(ctx context.Context, name string, flags uint32, mode uint32) (*gofs.Inode, *fileHandle, error) {
	if errno := checkNameLen(name); errno != 0 {
		return nil, nil, errno
	}
	if d.m.readOnly || d.m.stage == nil {
		return nil, nil, syscall.EROFS
	}
	full := d.childPath(name)
	if err := blob.ValidateName(full); err != nil {
		return nil, nil, opErr("create", full, err)
	}
	st, err := d.m.stage.Open(ctx, full, nil, true)
	if err != nil {
		return nil, nil, opErr("create", full, err)
	}
	f := newFileNode(d.m, full, nil)
	f.attrs.newInode(ctx, d, mode, false)
	f.staged, f.written = st, d.m.clock.Now()
	// Even an O_RDONLY create must produce the blob at close, so the
	// handle commits like a writer; the kernel refuses its write()s.
	h := &fileHandle{f: f, write: true, append: flags&syscall.O_APPEND != 0}
	f.writers = 1
	f.addHandleLocked(h)
	ch := d.NewInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG})
	d.noteChild(name, &entry{typ: syscall.S_IFREG, pending: true})
	d.entriesChanged()
	return ch, h, nil
}
