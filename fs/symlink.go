package fs

import (
	"context"
	"io"
	"path"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/blobfs/blobfs/blob"
)

// symlinkNode is a blob whose content is the link's target, marked with
// blobfuse2's is_symlink=true.
type symlinkNode struct {
	gofs.Inode
	m *mount

	mu     sync.Mutex
	props  *blob.Properties
	at     time.Time // when props were learnt
	target string    // "" until read
	attrs  fileAttrs
}

var (
	_ gofs.NodeReadlinker = (*symlinkNode)(nil)
	_ gofs.NodeGetattrer  = (*symlinkNode)(nil)
	_ gofs.NodeSetattrer  = (*symlinkNode)(nil)
)

func newSymlinkNode(m *mount, p *blob.Properties, target string) *symlinkNode {
	return &symlinkNode{m: m, props: p, at: time.Now(), target: target, attrs: fileAttrs{md: cloneMeta(p.Metadata)}}
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
	s.attrs.fill(s.m, out, syscall.S_IFLNK, size, s.props.LastModified)
}

func (s *symlinkNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	s.fill(&out.Attr)
	return 0
}

func (s *symlinkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	ctx, release := patient(ctx)
	defer release()
	s.mu.Lock()
	t := s.target
	s.mu.Unlock()
	if t != "" {
		return []byte(t), 0
	}
	name := s.Path(nil)
	rc, _, err := s.m.store.Download(ctx, name, 0, -1, blob.Conditions{})
	if err != nil {
		return nil, toErrno(s.m.log, "readlink", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return nil, toErrno(s.m.log, "readlink", name, err)
	}
	s.mu.Lock()
	s.target = string(b)
	s.mu.Unlock()
	return b, 0
}

// Setattr keeps times and mode in the link blob's metadata (lutimes, as
// rsync -a and tar use on links).
func (s *symlinkNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterruptible(ctx)
	if s.m.readOnly {
		return syscall.EROFS
	}
	s.mu.Lock()
	a := fileAttrs{md: cloneMeta(s.attrs.md)}
	s.mu.Unlock()
	a.md[keySymlink] = "true"
	if applySetattr(&a, in, s.m, nil) {
		name := s.Path(nil)
		p, err := s.m.store.SetMetadata(ctx, name, a.md, blob.Conditions{})
		if err != nil {
			return toErrno(s.m.log, "setattr", name, err)
		}
		s.mu.Lock()
		np := *s.props
		np.ETag, np.LastModified, np.Metadata = p.ETag, p.LastModified, a.md
		s.props, s.attrs, s.at = &np, a, time.Now()
		s.mu.Unlock()
		if _, parent := s.Parent(); parent != nil {
			if d, ok := parent.Operations().(*dirNode); ok {
				d.noteChild(path.Base(name), &entry{typ: syscall.S_IFLNK, props: &np})
			}
		}
	}
	s.fill(&out.Attr)
	return 0
}
