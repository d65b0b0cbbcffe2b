package fs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/blobfs/blobfs/blob"
)

// renameParallelism bounds the Copy Blob calls of a directory rename.
const renameParallelism = 8

// Rename moves files by Copy Blob and Delete (verified in between) and
// directories by moving every blob below them. No rename is atomic on blob
// storage; a failed directory rename undoes its copies and reports EIO
// rather than leaving a silent half-move.
func (d *dirNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) (errno syscall.Errno) {
	ctx = uninterruptible(ctx)
	if d.m.readOnly {
		return syscall.EROFS
	}
	if flags&^uint32(1) != 0 { // RENAME_NOREPLACE (1) is checked by the kernel; EXCHANGE and WHITEOUT cannot be done
		return syscall.EINVAL
	}
	nd, ok := newParent.(*dirNode)
	if !ok {
		return syscall.EXDEV
	}
	if errno := checkNameLen(newName); errno != 0 {
		return errno
	}
	src, dst := d.childPath(name), nd.childPath(newName)
	if src == dst {
		return 0
	}
	if err := blob.ValidateName(dst); err != nil {
		return toErrno(d.m.log, "rename", dst, err)
	}
	ch := d.GetChild(name)
	if ch == nil {
		var out fuse.EntryOut
		var errno syscall.Errno
		if ch, errno = d.Lookup(ctx, name, &out); errno != 0 {
			return errno
		}
	}
	target := nd.GetChild(newName)
	if tf, ok := opsOf(target).(*fileNode); ok && target != ch {
		// The overwritten file may still be open: it lives on as
		// unlinked, and a commit of it waits until the rename is done.
		tf.mu.Lock()
		end := tf.removingLocked()
		tf.mu.Unlock()
		defer func() {
			tf.mu.Lock()
			end(errno == 0)
			tf.mu.Unlock()
		}()
	}
	var err error
	var moved *entry
	switch n := ch.Operations().(type) {
	case *dirNode:
		if target != nil {
			td, isDir := target.Operations().(*dirNode)
			if !isDir {
				return syscall.ENOTDIR
			}
			if errno := nd.Rmdir(ctx, newName); errno != 0 {
				return errno
			}
			_ = td
		}
		err = d.m.renameDir(ctx, n, src, dst)
		moved = &entry{typ: syscall.S_IFDIR}
	case *fileNode:
		if target != nil {
			if _, isDir := target.Operations().(*dirNode); isDir {
				return syscall.EISDIR
			}
		}
		moved, err = n.rename(ctx, src, dst, target != nil)
	case *symlinkNode:
		if target != nil {
			if _, isDir := target.Operations().(*dirNode); isDir {
				return syscall.EISDIR
			}
		}
		var p *blob.Properties
		p, err = d.m.moveBlob(ctx, src, dst, n.props)
		if err == nil {
			n.mu.Lock()
			n.props = p
			n.mu.Unlock()
			moved = &entry{typ: n.typ, props: p}
		}
	}
	if err != nil {
		return toErrno(d.m.log, "rename", src+" -> "+dst, err)
	}
	d.noteChild(name, nil)
	nd.noteChild(newName, moved)
	nd.entriesChanged()
	renamed(ch)
	if d != nd {
		d.keepIfEmpty(ctx)
	}
	return 0
}

// moveBlob copies src to dst, checks that the copy is whole, and only then
// deletes src (if it still is the version copied).
func (m *mount) moveBlob(ctx context.Context, src, dst string, want *blob.Properties) (*blob.Properties, error) {
	var srcCond blob.Conditions
	var got *blob.Properties
	var err error
	m.stats.copies.Add(1)
	if want != nil {
		// Pinned to the version we know: a copy the service reports
		// successful is then that content, checked without a HEAD.
		srcCond.IfMatch = want.ETag
		w := *want
		w.Name = src
		got, err = m.store.CopyFrom(ctx, dst, &w, nil, blob.Conditions{})
	} else {
		got, err = m.store.Copy(ctx, dst, src, nil, srcCond, blob.Conditions{})
	}
	if err != nil {
		return nil, err
	}
	// Copy returns once the service reports the copy "success" (polling
	// while it is pending): only then may the source go.
	if got.CopyStatus != "" && got.CopyStatus != "success" {
		return nil, fmt.Errorf("the copy of %q at %q is %s: the source was kept", src, dst, got.CopyStatus)
	}
	got.Name = dst
	err = m.store.Delete(ctx, src, srcCond)
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		return nil, fmt.Errorf("%q was copied to %q but could not be deleted: %w", src, dst, err)
	}
	return got, nil
}

// rename moves a file. A file still open for writing commits first, so
// the move carries what was written, and its later writes go to dst.
func (f *fileNode) rename(ctx context.Context, src, dst string, replacing bool) (*entry, error) {
	f.mu.Lock()
	props, st := f.props, f.staged
	f.mu.Unlock()
	if props == nil {
		if st == nil {
			return nil, syscall.ENOENT
		}
		// Never uploaded: nothing to move yet, the first commit goes to
		// dst, replacing what is there when the rename replaces a file.
		st.Rename(dst)
		if replacing {
			st.Unconditional()
		}
		return &entry{typ: syscall.S_IFREG, pending: true}, nil
	}
	p, err := f.m.moveBlob(ctx, src, dst, props)
	if err != nil {
		return nil, err
	}
	p.Name = dst
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keptETag == props.ETag {
		f.keptETag = p.ETag // same bytes under a new name
	}
	f.props, f.propsAt = p, time.Now()
	for h := range f.open {
		h.repoint(p)
	}
	if f.staged != nil {
		// Later commits go to dst, and unchanged parts come from the copy.
		f.staged.Moved(dst, p)
	}
	return &entry{typ: syscall.S_IFREG, props: p}, nil
}

// renameDir moves every blob below src/ to dst/: copies first, with
// bounded parallelism, each verified; if any copy fails the copies are
// removed and nothing changed. Then the sources are deleted.
func (m *mount) renameDir(ctx context.Context, dn *dirNode, src, dst string) error {
	var open []*fileNode
	walkFiles(&dn.Inode, func(f *fileNode) {
		f.mu.Lock()
		if f.staged != nil || len(f.open) > 0 {
			open = append(open, f)
		}
		f.mu.Unlock()
	})
	var blobs []*blob.Properties
	marker := ""
	for {
		m.stats.listCalls.Add(1)
		page, err := m.store.List(ctx, blob.ListOptions{Prefix: src + "/", Marker: marker, MaxResults: listPageSize})
		if err != nil {
			return err
		}
		blobs = append(blobs, page.Blobs...)
		if page.NextMarker == "" {
			break
		}
		marker = page.NextMarker
	}
	dn.mu.Lock()
	oldMarker := dn.marker
	md := cloneMeta(dn.attrs.md)
	dn.mu.Unlock()

	var (
		mu     sync.Mutex
		copied []string
		errs   []error
		wg     sync.WaitGroup
		sem    = make(chan struct{}, renameParallelism)
	)
	for _, b := range blobs {
		to := dst + "/" + strings.TrimPrefix(b.Name, src+"/")
		wg.Add(1)
		sem <- struct{}{}
		go func(b *blob.Properties, to string) {
			defer wg.Done()
			defer func() { <-sem }()
			m.stats.copies.Add(1)
			got, err := m.store.CopyFrom(ctx, to, b, nil, blob.Conditions{})
			if err == nil && got.CopyStatus != "" && got.CopyStatus != "success" {
				err = fmt.Errorf("the copy of %q at %q is %s", b.Name, to, got.CopyStatus)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("copying %q: %w", b.Name, err))
				return
			}
			copied = append(copied, to)
		}(b, to)
	}
	wg.Wait()
	if len(errs) > 0 {
		for _, c := range copied {
			if err := m.store.Delete(ctx, c, blob.Conditions{}); err != nil && !errors.Is(err, blob.ErrNotFound) {
				errs = append(errs, fmt.Errorf("undoing the copy %q: %w", c, err))
			}
		}
		return fmt.Errorf("renaming directory %q to %q failed, nothing was moved: %w", src, dst, errors.Join(errs...))
	}
	// A directory with no marker and nothing in it (kept alive only for a
	// user inside it) gets one, so it survives under its new name.
	if len(blobs) == 0 || (oldMarker != nil && oldMarker.Name == src) {
		if _, err := m.writeMarker(ctx, dst+"/", md); err != nil {
			return err
		}
	}
	for _, b := range blobs {
		wg.Add(1)
		sem <- struct{}{}
		go func(b *blob.Properties) {
			defer wg.Done()
			defer func() { <-sem }()
			err := m.store.Delete(ctx, b.Name, blob.Conditions{IfMatch: b.ETag})
			if err != nil && !errors.Is(err, blob.ErrNotFound) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("deleting %q: %w", b.Name, err))
				mu.Unlock()
			}
		}(b)
	}
	wg.Wait()
	if oldMarker != nil && oldMarker.Name == src {
		if err := m.store.Delete(ctx, src, blob.Conditions{}); err != nil && !errors.Is(err, blob.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("directory %q was copied to %q but some sources remain: %w", src, dst, errors.Join(errs...))
	}
	// Everything below now has new names and ETags: forget what we knew.
	invalidateTree(&dn.Inode)
	// Open files follow: later commits and reads use the new names.
	for _, f := range open {
		f.mu.Lock()
		if f.props == nil {
			if f.staged != nil {
				f.staged.Rename(strings.Replace(f.staged.Name(), src+"/", dst+"/", 1))
			}
			f.mu.Unlock()
			continue
		}
		name := dst + "/" + strings.TrimPrefix(f.props.Name, src+"/")
		f.mu.Unlock()
		p, err := m.head(ctx, name)
		if err != nil {
			m.log.WithField("path", name).Warnf("following an open file to its new name: %v", err)
			continue
		}
		f.mu.Lock()
		f.props, f.propsAt = p, time.Now()
		for h := range f.open {
			h.repoint(p)
		}
		if f.staged != nil {
			f.staged.Moved(name, p)
		}
		f.mu.Unlock()
	}
	return nil
}

// opsOf is n's node, or nil for no inode.
func opsOf(n *gofs.Inode) gofs.InodeEmbedder {
	if n == nil {
		return nil
	}
	return n.Operations()
}

func walkFiles(n *gofs.Inode, fn func(*fileNode)) {
	for _, ch := range n.Children() {
		switch c := ch.Operations().(type) {
		case *fileNode:
			fn(c)
		case *dirNode:
			walkFiles(ch, fn)
		}
	}
}

// invalidateTree drops cached listings, markers and properties below n.
func invalidateTree(n *gofs.Inode) {
	if d, ok := n.Operations().(*dirNode); ok {
		d.mu.Lock()
		d.list, d.marker, d.markerAt = nil, nil, time.Time{}
		d.mu.Unlock()
	}
	for _, ch := range n.Children() {
		switch c := ch.Operations().(type) {
		case *fileNode:
			c.mu.Lock()
			c.propsAt = time.Time{}
			c.mu.Unlock()
		case *symlinkNode:
		case *dirNode:
			invalidateTree(ch)
		}
	}
}
