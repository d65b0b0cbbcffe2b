package fs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sync/errgroup"

	"github.com/blobfs/blobfs/blob"
)

// renameParallelism bounds the Copy Blob calls of a directory rename.
const renameParallelism = 8

// rename moves files by Copy Blob and Delete (verified in between) and
// directories by moving every blob below them. No rename is atomic on blob
// storage; a failed directory rename undoes its copies and reports EIO
// rather than leaving a silent half-move.
func (d *dirNode) rename(ctx context.Context, name string, nd *dirNode, newName string, flags uint32) (err error) {
	if d.m.readOnly {
		return syscall.EROFS
	}
	if flags&^uint32(1) != 0 { // RENAME_NOREPLACE (1) is checked by the kernel; EXCHANGE and WHITEOUT cannot be done
		return syscall.EINVAL
	}
	if errno := checkNameLen(newName); errno != 0 {
		return errno
	}
	src, dst := d.childPath(name), nd.childPath(newName)
	if src == dst {
		return nil
	}
	if err := blob.ValidateName(dst); err != nil {
		return opErr("rename", dst, err)
	}
	ch := d.GetChild(name)
	if ch == nil {
		var attr fuse.Attr
		if ch, err = d.lookup(ctx, name, &attr); err != nil {
			return err
		}
	}
	target := nd.GetChild(newName)
	if tf, ok := opsOf(target).(*fileNode); ok && target != ch {
		// The overwritten file may still be open: it lives on as
		// unlinked, and a commit of it waits until the rename is done.
		end, rerr := tf.replaced(ctx)
		if rerr != nil {
			err = rerr
			return opErr("rename", src+" -> "+dst, err)
		}
		defer func() { end(err == nil) }()
	}
	var moved *entry
	switch n := ch.Operations().(type) {
	case *dirNode:
		if target != nil {
			td, isDir := target.Operations().(*dirNode)
			if !isDir {
				return syscall.ENOTDIR
			}
			if err := nd.rmdir(ctx, newName); err != nil {
				return err
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
		moved, err = n.move(ctx, dst)
	case *symlinkNode:
		if target != nil {
			if _, isDir := target.Operations().(*dirNode); isDir {
				return syscall.EISDIR
			}
		}
		n.mu.Lock()
		props := n.props
		n.mu.Unlock()
		var p *blob.Properties
		p, err = d.m.moveBlob(ctx, src, dst, props)
		if err == nil {
			n.mu.Lock()
			n.props = p
			n.mu.Unlock()
			moved = &entry{typ: n.typ, props: p}
		}
	}
	if err != nil {
		return opErr("rename", src+" -> "+dst, err)
	}
	d.noteChild(name, nil)
	nd.noteChild(newName, moved)
	nd.entriesChanged()
	renamed(ch, d.m.clock.Now())
	if d != nd {
		d.keepIfEmpty(ctx)
	}
	return nil
}

// moveBlob copies src to dst, checks that the copy is whole, and only then
// deletes src (if it still is the version copied).
func (m *mount) moveBlob(ctx context.Context, src, dst string, want *blob.Properties) (*blob.Properties, error) {
	got, err := m.copyBlob(ctx, src, dst, want)
	if err != nil {
		return nil, err
	}
	if err := m.deleteSource(ctx, src, dst, want); err != nil {
		// src stays (snapshots, a lease): the copy goes, so that a
		// failed rename leaves one name, not two.
		return nil, m.undoCopy(ctx, src, dst, got, err)
	}
	return got, nil
}

// copyBlob is a move's first half: src copied to dst, the copy checked to
// be whole.
func (m *mount) copyBlob(ctx context.Context, src, dst string, want *blob.Properties) (*blob.Properties, error) {
	var got *blob.Properties
	var err error
	m.stats.copies.Add(1)
	if want != nil {
		// Pinned to the version we know: a copy the service reports
		// successful is then that content, checked without a HEAD.
		w := *want
		w.Name = src
		got, err = m.store.CopyFrom(ctx, dst, &w, nil, blob.Conditions{})
	} else {
		got, err = m.store.Copy(ctx, blob.CopyRequest{Dst: dst, Src: src})
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
	return got, nil
}

// undoCopy removes dst, the copy of a move whose source could not be
// deleted (err), so that the failed rename leaves src alone.
func (m *mount) undoCopy(ctx context.Context, src, dst string, copied *blob.Properties, err error) error {
	if derr := m.store.Delete(ctx, dst, blob.Conditions{IfMatch: copied.ETag}); derr != nil && !errors.Is(derr, blob.ErrNotFound) {
		return fmt.Errorf("%w; removing the copy %q failed too, both names exist: %v", err, dst, derr)
	}
	return fmt.Errorf("%w; the rename was undone (the copy %q removed), %q stays", err, dst, src)
}

// deleteSource is a move's second half: src goes, if it still is the
// version copied.
func (m *mount) deleteSource(ctx context.Context, src, dst string, want *blob.Properties) error {
	var cond blob.Conditions
	if want != nil {
		cond.IfMatch = want.ETag
	}
	err := m.store.Delete(ctx, src, cond)
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		return fmt.Errorf("%q was copied to %q but could not be deleted: %w", src, dst, err)
	}
	return nil
}

// renameDir moves every blob below src/ to dst/: copies first, with
// bounded parallelism, each verified; if any copy fails the copies are
// removed and nothing changed. Then the sources are deleted.
func (m *mount) renameDir(ctx context.Context, dn *dirNode, src, dst string) error {
	// Every file below moves: each waits for its commit under way (so
	// the move carries what it made) and commits nothing until its name
	// is the new one.
	var files []*fileNode
	walkFiles(&dn.Inode, func(f *fileNode) {
		f.mu.Lock()
		f.beginLocked(opMove)
		f.mu.Unlock()
		files = append(files, f)
	})
	moved := map[string]*blob.Properties{} // new name -> the copy, once all went well
	defer func() {
		for _, f := range files {
			f.mu.Lock()
			f.dirMovedLocked(src, dst, moved)
			f.endLocked()
			f.mu.Unlock()
		}
	}()
	var blobs []*blob.Properties
	snapped := &dirSnapshotsError{dir: src}
	marker := ""
	for {
		m.stats.listCalls.Add(1)
		// With the snapshots, which cost nothing more: the sources'
		// deletes would fail on them after every copy was made.
		page, err := m.store.List(ctx, blob.ListOptions{Prefix: src + "/", Marker: marker, MaxResults: listPageSize, IncludeSnapshots: true})
		if err != nil {
			return err
		}
		for _, b := range page.Blobs {
			if b.Snapshot != "" {
				snapped.add(b.Name, b.Snapshot)
				continue
			}
			blobs = append(blobs, b)
		}
		if page.NextMarker == "" {
			break
		}
		marker = page.NextMarker
	}
	if len(snapped.names) > 0 && !m.deletesSnapshots() {
		return snapped
	}
	dn.mu.Lock()
	oldMarker := dn.marker
	md := cloneMeta(dn.attrs.md)
	dn.mu.Unlock()

	var (
		mu     sync.Mutex
		copied []string
		copies = map[string]*blob.Properties{}
		errs   []error
	)
	// Every copy is tried, not only up to the first failure, so that the
	// error names all that failed; each failure is collected, not returned.
	var g errgroup.Group
	g.SetLimit(renameParallelism)
	for _, b := range blobs {
		to := dst + "/" + strings.TrimPrefix(b.Name, src+"/")
		g.Go(func() error {
			m.stats.copies.Add(1)
			got, err := m.store.CopyFrom(ctx, to, b, nil, blob.Conditions{})
			if err == nil && got.CopyStatus != "" && got.CopyStatus != "success" {
				err = fmt.Errorf("the copy of %q at %q is %s", b.Name, to, got.CopyStatus)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("copying %q: %w", b.Name, err))
				return nil
			}
			copied = append(copied, to)
			c := *b // same bytes and properties, new name and version
			c.Name, c.ETag, c.LastModified = to, got.ETag, got.LastModified
			copies[to] = &c
			return nil
		})
	}
	g.Wait()
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
		g.Go(func() error {
			err := m.store.Delete(ctx, b.Name, blob.Conditions{IfMatch: b.ETag})
			if err != nil && !errors.Is(err, blob.ErrNotFound) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("deleting %q: %w", b.Name, err))
				mu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
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
	maps.Copy(moved, copies)
	moved[dst] = nil // the move happened, even of an empty directory
	return nil
}

// deletesSnapshots says whether the store's Delete removes a blob's
// snapshots with it (--delete-snapshots).
func (m *mount) deletesSnapshots() bool {
	d, ok := m.store.(interface{ DeletesSnapshots() bool })
	return ok && d.DeletesSnapshots()
}

// dirSnapshotsError is a directory rename refused before anything moved:
// blobs below it have snapshots, and deleting the sources would fail on
// them (or, with --delete-snapshots, remove them).
type dirSnapshotsError struct {
	dir   string
	names []string            // blobs with snapshots, in listing order
	snaps map[string][]string // their snapshots' time stamps
}

func (e *dirSnapshotsError) add(name, snapshot string) {
	if e.snaps == nil {
		e.snaps = map[string][]string{}
	}
	if e.snaps[name] == nil {
		e.names = append(e.names, name)
	}
	e.snaps[name] = append(e.snaps[name], snapshot)
}

func (e *dirSnapshotsError) Error() string {
	var list []string
	for i, n := range e.names {
		if i == 5 {
			list = append(list, fmt.Sprintf("and %d more", len(e.names)-5))
			break
		}
		list = append(list, fmt.Sprintf("%q (snapshots %s)", n, strings.Join(e.snaps[n], ", ")))
	}
	return fmt.Sprintf("renaming directory %q: %d blob(s) below it have snapshots, which would be lost with the sources: %s; nothing was moved: delete them with another tool, or mount with --delete-snapshots to remove them with the sources",
		e.dir, len(e.names), strings.Join(list, ", "))
}

// Is makes it a busy blob (EBUSY), as a Delete refused for snapshots is.
func (e *dirSnapshotsError) Is(target error) bool { return target == blob.ErrBusy }

// dirMovedLocked follows a rename of a directory above f from src to
// dst; copies holds the blobs' new versions by name, and is empty when
// the rename failed. Called with the turn held.
func (f *fileNode) dirMovedLocked(src, dst string, copies map[string]*blob.Properties) {
	if len(copies) == 0 || !strings.HasPrefix(f.name, src+"/") {
		return
	}
	name := dst + "/" + strings.TrimPrefix(f.name, src+"/")
	switch f.state {
	case statePending:
		if f.staged != nil {
			f.staged.Rename(name)
		}
		f.name = name
	case stateCommitted:
		if p := copies[name]; p != nil {
			f.movedLocked(name, p)
			return
		}
		// Not among the blobs listed (another client removed it): what
		// we knew is of no blob now; the next look asks the service.
		f.name, f.propsAt = name, time.Time{}
	case stateRemoved:
		f.name = name
	}
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
