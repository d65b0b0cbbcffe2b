package fs

import (
	"context"
	"errors"
	"io"
	"path"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/stage"
)

// fileNode is a regular file: one block blob.
type fileNode struct {
	gofs.Inode
	m *mount

	mu sync.Mutex
	// props is the blob as last seen in (or committed to) the service;
	// nil while a file created here has not been uploaded.
	props   *blob.Properties
	propsAt time.Time
	attrs   fileAttrs // the metadata the next write sends
	// staged holds the content while the file is open for writing, and
	// after an unlink while it is open.
	staged  *stage.File
	writers int // handles sharing staged, and truncates by path under way
	handles int
	open    map[*fileHandle]struct{}
	// written is when content last changed locally; it becomes the mtime
	// on commit unless a utimens came after it.
	written   time.Time
	metaDirty bool // attrs changed while staged: they go with the commit
	unlinked  bool
	// removing is closed when a removal under way (an unlink, or a
	// rename over the file) ends; nil if none. See removingLocked.
	removing chan struct{}
	// committing counts the commits under way, which a removal lets
	// land before its Delete or Copy.
	committing sync.WaitGroup
	// keptETag is the version whose pages the kernel may still cache:
	// an open of the same version keeps them, any other drops them.
	keptETag string
	// commitFailed: the last commit failed and the program that asked
	// for it got the error. What is staged then waits for lost+found
	// instead of being tried again at the last release.
	commitFailed bool
}

var (
	_ gofs.NodeGetattrer = (*fileNode)(nil)
	_ gofs.NodeSetattrer = (*fileNode)(nil)
	_ gofs.NodeOpener    = (*fileNode)(nil)
	_ gofs.NodeAllocater = (*fileNode)(nil)
)

func newFileNode(m *mount, p *blob.Properties) *fileNode {
	f := &fileNode{m: m, attrs: fileAttrs{md: map[string]string{}}}
	if p != nil {
		f.props, f.propsAt, f.attrs.md = p, time.Now(), cloneMeta(p.Metadata)
	}
	return f
}

// isPending tells a file created here whose blob does not exist yet.
func (f *fileNode) isPending() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.props == nil && !f.unlinked
}

// refresh takes properties learnt at time at from a listing or probe,
// unless local changes are authoritative or what we know is newer.
func (f *fileNode) refresh(p *blob.Properties, at time.Time) {
	if p == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.staged != nil || f.props == nil || at.Before(f.propsAt) {
		return
	}
	if p.ETag != f.props.ETag {
		f.attrs.md = cloneMeta(p.Metadata)
	}
	f.props, f.propsAt = p, at
}

// fill writes the attributes; call without f.mu.
func (f *fileNode) fill(out *fuse.Attr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fillLocked(out)
}

func (f *fileNode) fillLocked(out *fuse.Attr) {
	var size int64
	var lastMod time.Time
	if f.props != nil {
		size, lastMod = f.props.Size, f.props.LastModified
	}
	if f.staged != nil {
		size = f.staged.Size()
	}
	if lastMod.IsZero() {
		lastMod = f.written
	}
	f.attrs.fill(f.m, out, syscall.S_IFREG, size, lastMod)
	if !f.written.IsZero() {
		out.SetTimes(&f.written, &f.written, nil)
	}
	if f.unlinked {
		out.Nlink = 0
	}
}

func (f *fileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ctx, release := patient(ctx)
	defer release()
	if errno := f.revalidate(ctx); errno != 0 {
		return errno
	}
	f.fill(&out.Attr)
	return 0
}

// revalidate re-reads the blob's properties (one HEAD) when they are older
// than the attribute TTL and nothing local overrides them.
func (f *fileNode) revalidate(ctx context.Context) syscall.Errno {
	f.mu.Lock()
	name := f.Path(nil)
	// A file removed while open has no name to ask about: its last
	// properties stand.
	stale := f.staged == nil && f.props != nil && name != "" && time.Since(f.propsAt) >= f.m.attrTTL
	f.mu.Unlock()
	if !stale {
		return 0
	}
	at := time.Now()
	p, err := f.m.head(ctx, name)
	if err != nil {
		return toErrno(f.m.log, "getattr", name, err)
	}
	f.refresh(p, at)
	return 0
}

// contentType keeps the blob's Content-Type across rewrites (Put Block List
// replaces it) and guesses one from the extension for new blobs.
func (f *fileNode) contentType(name string) string {
	if f.props != nil && f.props.ContentType != "" {
		return f.props.ContentType
	}
	return blob.ContentTypeFor(name)
}

// commitMetaLocked is the full metadata set for the next write.
func (f *fileNode) commitMetaLocked() map[string]string {
	md := cloneMeta(f.attrs.md)
	if !f.written.IsZero() {
		(&fileAttrs{md: md}).setMtime(f.written)
	}
	return md
}

// commit uploads what the staged file holds; a failure is the program's
// error at close() or fsync().
func (f *fileNode) commit(ctx context.Context) error {
	f.mu.Lock()
	for f.removing != nil {
		// The blob is being deleted: a commit now would race the Delete,
		// writing the blob back or failing as a conflict. Whether the
		// unlink succeeds decides if there is anything to commit.
		ch := f.removing
		f.mu.Unlock()
		<-ch
		f.mu.Lock()
	}
	st := f.staged
	if st == nil || f.unlinked {
		f.mu.Unlock()
		return nil
	}
	name := f.Path(nil)
	md := f.commitMetaLocked()
	opts := blob.PutOptions{Metadata: md, ContentType: f.contentType(name)}
	metaDirty := f.metaDirty
	dirty := st.Dirty()
	f.committing.Add(1)
	defer f.committing.Done()
	f.mu.Unlock()
	if !dirty && !metaDirty {
		return nil
	}
	// A close after shutdown began may end a program interrupted
	// half-way (the signal went to it too): its data stays staged.
	if !f.m.beginCommit() {
		f.setCommitFailed(true)
		return errStoppedClose
	}
	defer f.m.commits.Done()

	var p *blob.Properties
	var err error
	switch {
	case dirty:
		f.m.stats.commits.Add(1)
		p, err = st.Commit(ctx, opts)
	case metaDirty:
		f.mu.Lock()
		old := f.props
		f.mu.Unlock()
		if old == nil {
			return nil
		}
		p, err = f.m.store.SetMetadata(ctx, name, md, blob.Conditions{})
		if err == nil {
			// Set Blob Metadata changes nothing else: keep what the next
			// rewrite must carry over (stage.keepBaseLocked).
			kept := *old
			kept.ETag, kept.LastModified = p.ETag, p.LastModified
			p = &kept
		}
	default:
		return nil
	}
	f.setCommitFailed(err != nil)
	if err != nil {
		return err
	}
	// Our own copy: stage hands the same properties to repeated commits.
	np := *p
	p = &np
	p.Name, p.Metadata = name, md
	if p.Size == 0 && dirty {
		p.Size = st.Size()
	}
	f.mu.Lock()
	f.props, f.propsAt, f.keptETag = p, time.Now(), p.ETag
	f.attrs.md = cloneMeta(md)
	f.written, f.metaDirty = time.Time{}, false
	f.mu.Unlock()
	f.noteInParent(name, p)
	return nil
}

func (f *fileNode) setCommitFailed(failed bool) {
	f.mu.Lock()
	f.commitFailed = failed
	f.mu.Unlock()
}

// noteInParent keeps the parent's cached listing in step with p.
func (f *fileNode) noteInParent(name string, p *blob.Properties) {
	if _, parent := f.Parent(); parent != nil {
		if d, ok := parent.Operations().(*dirNode); ok {
			d.noteChild(path.Base(name), &entry{typ: syscall.S_IFREG, props: p})
		}
	}
}

// openStaged makes sure the content is staged for writing; call with f.mu.
func (f *fileNode) openStagedLocked(ctx context.Context, truncate bool) error {
	if f.m.isStopping() {
		return errStopping
	}
	if f.staged != nil {
		if truncate {
			f.written = time.Now()
			return f.staged.Truncate(ctx, 0)
		}
		return nil
	}
	if f.m.stage == nil {
		return syscall.EROFS
	}
	st, err := f.m.stage.Open(ctx, f.Path(nil), f.props, truncate)
	if err != nil {
		return err
	}
	f.staged = st
	if truncate {
		f.written = time.Now()
	}
	return nil
}

// releaseStagedLocked lets go of the staged file once no handle writes.
func (f *fileNode) releaseStagedLocked() {
	if f.staged != nil && f.unlinked {
		// Unreachable content: a shutdown before the last close must not
		// keep it for recovery.
		f.staged.Orphan()
	}
	if f.staged == nil || f.writers > 0 || (f.unlinked && f.handles > 0) {
		return
	}
	if f.unlinked {
		f.staged.Discard()
	} else if err := f.staged.Close(); err != nil {
		f.m.log.WithField("path", f.Path(nil)).Warnf("closing the staged file: %v", err)
	}
	f.staged = nil
}

func (f *fileNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterruptible(ctx)
	if f.m.readOnly {
		return syscall.EROFS
	}
	name := f.Path(nil)
	if size, ok := in.GetSize(); ok {
		if errno := f.truncate(ctx, name, int64(size), fh != nil); errno != 0 {
			return errno
		}
	}
	f.mu.Lock()
	a := fileAttrs{md: cloneMeta(f.attrs.md)}
	var cur fuse.Attr
	f.fillLocked(&cur)
	changed := applySetattr(&a, in, f.m, &cur)
	if changed {
		_, mtimeSet := in.GetMTime()
		if mtimeSet || in.Valid&fuse.FATTR_MTIME_NOW != 0 {
			f.written = time.Time{}
		}
		f.attrs = a
	}
	if !changed || f.props == nil || f.unlinked || (f.staged != nil && f.staged.Dirty()) {
		// Content not uploaded yet: the metadata goes with that commit.
		f.metaDirty = f.metaDirty || changed
		f.fillLocked(&out.Attr)
		f.mu.Unlock()
		return 0
	}
	old := f.props
	md := f.commitMetaLocked()
	f.mu.Unlock()

	p, err := f.m.store.SetMetadata(ctx, name, md, blob.Conditions{})
	if err != nil {
		return toErrno(f.m.log, "setattr", name, err)
	}
	np := *old
	np.ETag, np.LastModified, np.Metadata = p.ETag, p.LastModified, md
	f.mu.Lock()
	if f.keptETag == old.ETag {
		f.keptETag = np.ETag // only the metadata changed: cached pages stay valid
	}
	f.props, f.propsAt = &np, time.Now()
	f.fillLocked(&out.Attr)
	f.mu.Unlock()
	f.noteInParent(name, &np)
	return 0
}

// truncate changes the size. Without an open writer it stages, truncates
// and commits at once (a truncate to 0 is one Put Blob). With one, the
// writer's close() commits it: an ftruncate (byHandle), or the kernel's
// own truncate of an O_TRUNC open, which comes without the handle. But a
// truncate by path may also find every writer closed already, their
// RELEASE still on the way (the kernel sends it after close() returns),
// or closing right now: nobody would commit it then, so it is committed at
// once. Until then it holds the staged file as a writer does, so that a
// RELEASE meanwhile does not close it with the truncate uncommitted.
func (f *fileNode) truncate(ctx context.Context, name string, size int64, byHandle bool) syscall.Errno {
	if f.m.isStopping() {
		return toErrno(f.m.log, "truncate", name, errStopping)
	}
	f.mu.Lock()
	var err error
	if st := f.staged; st != nil {
		f.written = time.Now()
		err = f.holdStagedLocked(func() error {
			if err := st.Truncate(ctx, size); err != nil {
				return err
			}
			f.mu.Lock()
			orphaned := !byHandle && !f.activeWriterLocked()
			f.mu.Unlock()
			if orphaned {
				return f.commit(ctx)
			}
			return nil
		})
	} else {
		err = f.openStagedLocked(ctx, size == 0)
		if err == nil && size != 0 {
			err = f.staged.Truncate(ctx, size)
		}
		f.written = time.Now()
		if err == nil {
			err = f.holdStagedLocked(func() error { return f.commit(ctx) })
		}
	}
	f.releaseStagedLocked()
	f.mu.Unlock()
	if err != nil {
		return toErrno(f.m.log, "truncate", name, err)
	}
	return 0
}

// holdStagedLocked runs fn without f.mu, holding the staged file open
// meanwhile as an open writer does, so that a RELEASE in between does not
// close it with fn's change uncommitted. Called and returns with f.mu
// held; the caller then lets go with releaseStagedLocked.
func (f *fileNode) holdStagedLocked(fn func() error) error {
	f.writers++
	f.mu.Unlock()
	err := fn()
	f.mu.Lock()
	f.writers--
	return err
}

// Allocate with mode 0 extends the file to off+size (holes read as
// zeros); the other modes (keep size, punch hole) mean nothing to a blob.
func (f *fileNode) Allocate(ctx context.Context, fh gofs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	const keepSize = 1 // FALLOC_FL_KEEP_SIZE: reserving space means nothing to a blob
	if mode == keepSize {
		return 0
	}
	if mode != 0 {
		return syscall.EOPNOTSUPP
	}
	ctx = uninterruptible(ctx) // it commits, as a truncate does
	if f.m.readOnly {
		return syscall.EROFS
	}
	var cur fuse.Attr
	f.fill(&cur)
	if off+size <= cur.Size {
		return 0
	}
	return f.truncate(ctx, f.Path(nil), int64(off+size), true)
}

// cacheFlags says how the kernel may cache the data of a file opened now;
// keep: the pages it may hold of it are still its content.
//
// With DirectIO it caches nothing: a large copy then passes through
// memory once instead of also filling the page cache (new pages are what
// reading and writing through the cache cost most of on VMs whose memory
// is ballooned), but a file read twice is downloaded twice.
func (m *mount) cacheFlags(keep bool) uint32 {
	switch {
	case m.directIO:
		return fuse.FOPEN_DIRECT_IO
	case keep:
		return fuse.FOPEN_KEEP_CACHE
	}
	return 0
}

func (f *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ctx, release := patient(ctx)
	defer release()
	name := f.Path(nil)
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	trunc := flags&syscall.O_TRUNC != 0
	if (write || trunc) && f.m.readOnly {
		return nil, 0, syscall.EROFS
	}
	if !write {
		if errno := f.revalidate(ctx); errno != 0 {
			return nil, 0, errno
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unlinked {
		return nil, 0, syscall.ENOENT
	}
	if write || trunc {
		if err := f.openStagedLocked(ctx, trunc); err != nil {
			return nil, 0, toErrno(f.m.log, "open", name, err)
		}
	}
	h := &fileHandle{f: f, write: write, append: flags&syscall.O_APPEND != 0}
	f.addHandleLocked(h)
	if write {
		f.writers++
	}
	keep := (f.props != nil && f.props.ETag == f.keptETag) || (f.staged != nil && f.props == nil)
	fuseFlags := f.m.cacheFlags(keep)
	if f.props != nil && f.staged == nil {
		f.keptETag = f.props.ETag
		h.version = f.props
	}
	if !write {
		// Its Flush has nothing to do (locks are the kernel's): spare
		// every close() of a reader a round trip to this daemon.
		fuseFlags |= fuse.FOPEN_NOFLUSH
	}
	return h, fuseFlags, 0
}

// activeWriterLocked says a handle open for writing has a close() still
// to come, which will commit what changes now. One that is closing or
// syncing right now does not count: its commit may have read the file
// before the change.
func (f *fileNode) activeWriterLocked() bool {
	for h := range f.open {
		if h.write && !h.flushed && !h.flushing {
			return true
		}
	}
	return false
}

func (f *fileNode) addHandleLocked(h *fileHandle) {
	if f.open == nil {
		f.open = map[*fileHandle]struct{}{}
	}
	f.open[h] = struct{}{}
	f.handles++
}

// unlink deletes the blob. An open file keeps working on its staged copy
// until the last close, and is never uploaded again.
func (f *fileNode) unlink(ctx context.Context, name string) syscall.Errno {
	f.mu.Lock()
	props, open := f.props, f.handles > 0
	if open && f.staged == nil && props != nil && f.m.stage != nil {
		// Readers keep reading after the blob is gone: take a local copy.
		err := f.openStagedLocked(ctx, false)
		if err == nil {
			err = localize(ctx, f.staged)
			if err != nil {
				f.staged.Discard()
				f.staged = nil
			}
		}
		if err != nil {
			f.mu.Unlock()
			return toErrno(f.m.log, "unlink", name, err)
		}
	}
	del := func() error {
		if props == nil {
			return nil
		}
		err := f.m.store.Delete(ctx, name, blob.Conditions{})
		if errors.Is(err, blob.ErrNotFound) {
			return nil
		}
		return err
	}
	end := f.removingLocked()
	// The staged file is held while the blob is deleted, so that a
	// RELEASE meanwhile does not close it: readers still open read it
	// afterwards, and closed now it would be taken for changes never
	// committed, kept for lost+found. (A commit meanwhile waits.)
	err := f.holdStagedLocked(del)
	end(err == nil)
	f.mu.Unlock()
	if err != nil {
		return toErrno(f.m.log, "unlink", name, err)
	}
	return 0
}

// removingLocked marks f as being removed, by an unlink or by a rename
// over it, until the returned func says whether it was: commits from now
// on wait for the outcome (see commit), and one already under way is
// waited for here, so that it lands before the removal, not after it.
// end then lets go of the staged file as far as nobody uses it. Called,
// and end too, with f.mu held; it unlocks while it waits.
func (f *fileNode) removingLocked() (end func(removed bool)) {
	done := make(chan struct{})
	f.removing = done
	f.mu.Unlock()
	f.committing.Wait()
	f.mu.Lock()
	return func(removed bool) {
		if removed {
			f.unlinked = true
		}
		f.removing = nil
		close(done)
		f.releaseStagedLocked()
	}
}

// localize copies every byte of a staged file that still lives in the
// service into the staging area, by writing it back to itself.
func localize(ctx context.Context, st *stage.File) error {
	buf := make([]byte, 1<<20)
	size := st.Size()
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := st.ReadAt(ctx, buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if _, err := st.WriteAt(ctx, buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}
