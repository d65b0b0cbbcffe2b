package fs

import (
	"context"
	"path"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/stage"
)

// fileNode is a regular file: one block blob. It owns the file's life
// (lifecycle.go): which blob it is, what is staged for it, and the one
// blob-changing step under way.
//
// Lock order (see doc.go): a step's turn (beginLocked) before f.mu;
// dirNode.mu before f.mu; f.mu before fileHandle.mu and before the locks
// of stage.File. f.mu is never held across a call to the service.
type fileNode struct {
	gofs.Inode

	// Dependencies.
	m *mount

	mu sync.Mutex

	// The lifecycle. GUARDED_BY(mu); name, props and state change only
	// while a step holds the turn (op != opNone), or before the node is
	// shared.
	state  fileState
	name   string // the blob name the next commit, removal or move uses
	op     fileOp
	opDone chan struct{} // closed when op ends
	// props is the blob as last seen in (or committed to) the service;
	// nil while pending.
	props   *blob.Properties
	propsAt time.Time
	// propsOurs: props is a version this mount made (a commit, a
	// metadata write, a move), not one learnt from the service. Readers
	// follow only those (see fileHandle.takeNewVersion).
	propsOurs bool

	// Attributes. GUARDED_BY(mu)
	attrs fileAttrs // the metadata the next write sends
	// metaDirty: attrs changed and the blob does not have them yet; they
	// go with the next commit. metaGen counts such changes, so that a
	// commit that sent an older set leaves metaDirty set.
	metaDirty bool
	metaGen   uint64
	// written is when content last changed locally; it becomes the mtime
	// on commit unless a utimens came after it.
	written time.Time

	// Content and handles. GUARDED_BY(mu)
	// staged holds the content while the file is open for writing, and
	// after an unlink while it is open.
	staged  *stage.File
	writers int // handles sharing staged, and truncates by path under way
	handles int
	open    map[*fileHandle]struct{}
	// keptETag is the version whose pages the kernel may still cache:
	// an open of the same version keeps them, any other drops them.
	keptETag string
	// commitFailed: the last commit failed and the program that asked
	// for it got the error. What is staged then waits for lost+found
	// instead of being tried again at the last release.
	commitFailed bool
}

// newFileNode is the node of the blob name, as p says it is; p nil: a
// file created here, pending until its first commit.
func newFileNode(m *mount, name string, p *blob.Properties) *fileNode {
	f := &fileNode{m: m, name: name, attrs: fileAttrs{md: map[string]string{}}}
	if p != nil {
		f.state = stateCommitted
		f.props, f.propsAt, f.attrs.md = p, m.clock.Now(), cloneMeta(p.Metadata)
	}
	return f
}

// blobName is the file's blob name now.
func (f *fileNode) blobName() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.name
}

// isPending tells a file created here whose blob does not exist yet.
func (f *fileNode) isPending() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state == statePending
}

// refresh takes properties learnt at time at from a listing or probe,
// unless local changes are authoritative or what we know is newer.
func (f *fileNode) refresh(p *blob.Properties, at time.Time) {
	if p == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.staged != nil || f.state != stateCommitted || f.op != opNone || at.Before(f.propsAt) {
		return
	}
	f.adoptLocked(p, at)
}

// adoptLocked makes p, the blob as another client left it, what this
// file is. Local attributes follow a new version.
func (f *fileNode) adoptLocked(p *blob.Properties, at time.Time) {
	if p.ETag != f.props.ETag {
		f.attrs.md = cloneMeta(p.Metadata)
		f.metaDirty = false
	} else if !p.MetaNamesLowered {
		// A listing of the same version: names exactly as stored, which
		// attributes read from a HEAD lack (see exactMetaNames).
		f.attrs.md = blob.MetaNamesAs(f.attrs.md, p.Metadata, isOwnKey)
	} else if !f.props.MetaNamesLowered {
		// A HEAD of the version we know from a listing: our names are
		// the exact ones.
		p2 := *p
		p2.Metadata, p2.MetaNamesLowered = f.props.Metadata, false
		p = &p2
	}
	np := *p
	np.Name = f.name
	f.props, f.propsAt, f.propsOurs = &np, at, false
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
		// Written here and not committed yet: mtime is then, and so is
		// ctime unless something changed later.
		out.SetTimes(nil, &f.written, nil)
		if f.written.After(time.Unix(int64(out.Ctime), int64(out.Ctimensec))) {
			out.SetTimes(nil, nil, &f.written)
		}
	}
	if f.state == stateRemoved {
		out.Nlink = 0
	}
}

func (f *fileNode) getattr(ctx context.Context, out *fuse.Attr) error {
	if err := f.revalidate(ctx); err != nil {
		return err
	}
	f.fill(out)
	return nil
}

// revalidate re-reads the blob's properties (one HEAD) when they are older
// than the attribute TTL and nothing local overrides them.
func (f *fileNode) revalidate(ctx context.Context) error {
	f.mu.Lock()
	name := f.name
	// A file removed while open has no name to ask about: its last
	// properties stand.
	stale := f.staged == nil && f.state == stateCommitted && f.m.clock.Since(f.propsAt) >= f.m.attrTTL
	f.mu.Unlock()
	if !stale {
		return nil
	}
	at := f.m.clock.Now()
	p, err := f.m.head(ctx, name)
	if err != nil {
		return opErr("getattr", name, err)
	}
	f.refresh(p, at)
	return nil
}

// contentType keeps the blob's Content-Type across rewrites (Put Block List
// replaces it) and guesses one from the extension for new blobs.
func (f *fileNode) contentTypeLocked() string {
	if f.props != nil && f.props.ContentType != "" {
		return f.props.ContentType
	}
	return blob.ContentTypeFor(f.name)
}

// commitMetaLocked is the full metadata set for the next write.
func (f *fileNode) commitMetaLocked() map[string]string {
	md := cloneMeta(f.attrs.md)
	if !f.written.IsZero() {
		(&fileAttrs{md: md}).setMtime(f.written)
	}
	return md
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
			f.written = f.m.clock.Now()
			return f.staged.Truncate(ctx, 0)
		}
		return nil
	}
	if f.m.stage == nil {
		return syscall.EROFS
	}
	st, err := f.m.stage.Open(ctx, f.name, f.props, truncate)
	if err != nil {
		return err
	}
	f.staged = st
	if truncate {
		f.written = f.m.clock.Now()
	}
	return nil
}

// releaseStagedLocked lets go of the staged file once no handle writes.
func (f *fileNode) releaseStagedLocked() {
	removed := f.state == stateRemoved
	if f.staged != nil && removed {
		// Unreachable content: a shutdown before the last close must not
		// keep it for recovery.
		f.staged.Orphan()
	}
	if f.staged == nil || f.writers > 0 || (removed && f.handles > 0) {
		return
	}
	if removed {
		f.staged.Discard()
	} else if err := f.staged.Close(); err != nil {
		f.m.log.WithField("path", f.name).Warnf("closing the staged file: %v", err)
	}
	f.staged = nil
}

func (f *fileNode) setattr(ctx context.Context, byHandle bool, in *fuse.SetAttrIn, out *fuse.Attr) error {
	if f.m.readOnly {
		return syscall.EROFS
	}
	if size, ok := in.GetSize(); ok {
		if err := f.truncate(ctx, int64(size), byHandle); err != nil {
			return err
		}
	}
	f.mu.Lock()
	a := fileAttrs{md: cloneMeta(f.attrs.md)}
	var cur fuse.Attr
	f.fillLocked(&cur)
	if applySetattr(&a, in, f.m, &cur) {
		_, mtimeSet := in.GetMTime()
		if mtimeSet || in.Valid&fuse.FATTR_MTIME_NOW != 0 {
			f.written = time.Time{}
		}
		prev, prevDirty := f.attrs, f.metaDirty
		f.attrs, f.metaDirty = a, true
		f.metaGen++
		gen := f.metaGen
		var err error
		if err = f.sendMetaLocked(ctx); err != nil {
			if gen == f.metaGen {
				// Not sent, and nothing changed them since: the program
				// is told, so nothing is sent later behind its back.
				f.attrs, f.metaDirty = prev, prevDirty
			}
			name := f.name
			f.mu.Unlock()
			return opErr("setattr", name, err)
		}
	}
	f.fillLocked(out)
	f.mu.Unlock()
	return nil
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
func (f *fileNode) truncate(ctx context.Context, size int64, byHandle bool) error {
	f.mu.Lock()
	name := f.name
	if f.m.isStopping() {
		f.mu.Unlock()
		return opErr("truncate", name, errStopping)
	}
	var err error
	if st := f.staged; st != nil {
		f.written = f.m.clock.Now()
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
		f.written = f.m.clock.Now()
		if err == nil {
			err = f.holdStagedLocked(func() error { return f.commit(ctx) })
		}
	}
	f.releaseStagedLocked()
	f.mu.Unlock()
	if err != nil {
		return opErr("truncate", name, err)
	}
	return nil
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

// allocate with mode 0 extends the file to off+size (holes read as
// zeros); the other modes (keep size, punch hole) mean nothing to a blob.
func (f *fileNode) allocate(ctx context.Context, off, size uint64, mode uint32) error {
	const keepSize = 1 // FALLOC_FL_KEEP_SIZE: reserving space means nothing to a blob
	if mode == keepSize {
		return nil
	}
	if mode != 0 {
		return syscall.EOPNOTSUPP
	}
	if f.m.readOnly {
		return syscall.EROFS
	}
	var cur fuse.Attr
	f.fill(&cur)
	if off+size <= cur.Size {
		return nil
	}
	return f.truncate(ctx, int64(off+size), true)
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

func (f *fileNode) openHandle(ctx context.Context, flags uint32) (*fileHandle, uint32, error) {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	trunc := flags&syscall.O_TRUNC != 0
	if (write || trunc) && f.m.readOnly {
		return nil, 0, syscall.EROFS
	}
	if !write {
		if err := f.revalidate(ctx); err != nil {
			return nil, 0, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// An open during a removal waits for it: opened before the Delete,
	// the handle would read a blob about to vanish, with no local copy.
	f.waitRemovalLocked()
	if f.state == stateRemoved {
		return nil, 0, syscall.ENOENT
	}
	if write || trunc {
		if err := f.openStagedLocked(ctx, trunc); err != nil {
			return nil, 0, opErr("open", f.name, err)
		}
	}
	h := &fileHandle{f: f, write: write, append: flags&syscall.O_APPEND != 0}
	f.addHandleLocked(h)
	if write {
		f.writers++
	}
	keep := (f.props != nil && f.props.ETag == f.keptETag) || (f.staged != nil && f.props == nil)
	h.keep = keep && !f.m.directIO
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
	return h, fuseFlags, nil
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
