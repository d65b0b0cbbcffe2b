package fs

import (
	"context"
	"io"
	"path"
	"strconv"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/blobfs/blobfs/blob"
)

// symlinkNode is an inode that a blob's metadata holds whole, with no
// data of its own to read or write: a symlink, whose blob's content is
// the target, marked with blobfuse2's is_symlink=true; or a FIFO, device
// or socket, a zero-length blob with filetype=fifo|chr|blk|sock (and rdev
// for devices), whose I/O the kernel does itself.
type symlinkNode struct {
	gofs.Inode
	m   *mount
	typ uint32 // S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK or S_IFSOCK

	mu     sync.Mutex
	props  *blob.Properties
	at     time.Time // when props were learnt
	target string    // "" until read
	attrs  fileAttrs
}

func newSymlinkNode(m *mount, p *blob.Properties, target string) *symlinkNode {
	typ := specialType(p.Metadata)
	if typ == 0 {
		typ = syscall.S_IFLNK
	}
	return &symlinkNode{m: m, typ: typ, props: p, at: m.clock.Now(), target: target, attrs: fileAttrs{md: cloneMeta(p.Metadata)}}
}

// makeMetaNode makes a symlink (typ S_IFLNK, with target) or a special
// file: one Put Blob whose metadata holds the owner, mode, times and, for
// special files, type and device number.
func (d *dirNode) makeMetaNode(ctx context.Context, op, name string, mode, dev uint32, target string, out *fuse.Attr) (*gofs.Inode, error) {
	if errno := checkNameLen(name); errno != 0 {
		return nil, errno
	}
	if d.m.readOnly {
		return nil, syscall.EROFS
	}
	full := d.childPath(name)
	if err := blob.ValidateName(full); err != nil {
		return nil, opErr(op, full, err)
	}
	typ := mode & syscall.S_IFMT
	a := fileAttrs{md: map[string]string{}}
	a.newInode(ctx, d, mode, false)
	if typ == syscall.S_IFLNK {
		a.md[keySymlink] = "true"
		delete(a.md, keyMode) // always 0777, as blobfuse2 and rclone links are
	} else {
		a.md[keyFileType] = specialTypeName(typ)
		if typ == syscall.S_IFCHR || typ == syscall.S_IFBLK {
			a.md[keyRdev] = strconv.FormatUint(uint64(dev), 10)
		}
	}
	p, err := d.m.store.Upload(ctx, full, []byte(target), blob.PutOptions{Metadata: a.md})
	if err != nil {
		return nil, opErr(op, full, err)
	}
	p.Name, p.Size, p.Metadata = full, int64(len(target)), a.md
	sn := newSymlinkNode(d.m, p, target)
	sn.attrs.ctime = a.ctime
	d.noteChild(name, &entry{typ: typ, props: p})
	d.entriesChanged()
	ch := d.NewInode(ctx, sn, gofs.StableAttr{Mode: typ})
	sn.fill(out)
	return ch, nil
}

func (s *symlinkNode) refresh(p *blob.Properties, at time.Time) {
	if p == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if at.Before(s.at) {
		return
	}
	s.at = at
	if p.ETag != s.props.ETag {
		s.target = ""
		s.attrs.md = cloneMeta(p.Metadata)
	}
	s.props = p
}

func (s *symlinkNode) fill(out *fuse.Attr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := s.props.Size
	if s.target != "" {
		size = int64(len(s.target))
	}
	s.attrs.fill(s.m, out, s.typ, size, s.props.LastModified)
}

func (s *symlinkNode) readlink(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	t := s.target
	s.mu.Unlock()
	if t != "" {
		return []byte(t), nil
	}
	name := s.Path(nil)
	rc, _, err := s.m.store.Download(ctx, name, 0, -1, blob.Conditions{})
	if err != nil {
		return nil, opErr("readlink", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return nil, opErr("readlink", name, err)
	}
	s.mu.Lock()
	s.target = string(b)
	s.mu.Unlock()
	return b, nil
}

// setattr keeps times, mode and owner in the blob's metadata (lutimes, as
// rsync -a and tar use on links; chmod and chown of special files).
func (s *symlinkNode) setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.Attr) error {
	if s.m.readOnly {
		return syscall.EROFS
	}
	s.mu.Lock()
	a := fileAttrs{md: cloneMeta(s.attrs.md), ctime: s.attrs.ctime}
	s.mu.Unlock()
	if s.typ == syscall.S_IFLNK {
		a.md[keySymlink] = "true"
	} else {
		a.md[keyFileType] = specialTypeName(s.typ)
	}
	if applySetattr(&a, in, s.m, nil) {
		name := s.Path(nil)
		p, err := s.m.store.SetMetadata(ctx, name, a.md, blob.Conditions{})
		if err != nil {
			return opErr("setattr", name, err)
		}
		s.mu.Lock()
		np := *s.props
		np.ETag, np.LastModified, np.Metadata = p.ETag, p.LastModified, a.md
		s.props, s.attrs, s.at = &np, a, s.m.clock.Now()
		s.mu.Unlock()
		if _, parent := s.Parent(); parent != nil {
			if d, ok := parent.Operations().(*dirNode); ok {
				d.noteChild(path.Base(name), &entry{typ: s.typ, props: &np})
			}
		}
	}
	s.fill(out)
	return nil
}
