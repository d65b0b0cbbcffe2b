package fs

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/readahead"
)

// fileHandle is one open() of a file. Writers share the node's staged
// file; a reader of a file nobody writes reads one version of the blob
// through readahead.
type fileHandle struct {
	f      *fileNode
	write  bool
	append bool
	// flushed: a close() of this handle committed it and nothing was
	// written through it since; its RELEASE may still be on the way.
	// flushing: a close() or fsync() of it is committing now, and may or
	// may not take in a change made meanwhile by another path. Both
	// guarded by f.mu.
	flushed, flushing bool
	// keep: opened with FOPEN_KEEP_CACHE, so the kernel may serve pages
	// of the version it had. Set before the handle is shared.
	keep bool

	// Lock order: f.mu before mu, never the other way.
	mu      sync.Mutex
	version *blob.Properties // the blob as it was at open, for readers
	rd      *readahead.Reader
	served  bool // a read of version has returned bytes
	closed  bool
}

func (h *fileHandle) readAt(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, error) {
	f := h.f
	for try := 0; ; try++ {
		f.mu.Lock()
		st, name, props := f.staged, f.name, f.props
		f.mu.Unlock()
		if st != nil {
			// Someone writes (or wrote and has not closed): what was
			// written is the content, whether it is uploaded or not.
			n, err := st.ReadAt(ctx, dest, off)
			f.mu.Lock()
			gone := err != nil && f.staged != st
			f.mu.Unlock()
			if !gone {
				if err != nil && !errors.Is(err, io.EOF) {
					return nil, opErr("read", name, err)
				}
				f.m.stats.bytesRead.Add(int64(n))
				return fuse.ReadResultData(dest[:n]), nil
			}
			// The last writer closed meanwhile: the content is committed.
		}
		res, err := h.readBlob(ctx, name, props, dest, off)
		if errors.Is(err, blob.ErrPrecondition) && try < 2 && h.takeNewVersion(ctx, name) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, opErr("read", name, err)
		}
		if res == nil {
			return fuse.ReadResultData(nil), nil
		}
		f.m.stats.bytesRead.Add(int64(res.N))
		return blockReply{res}, nil
	}
}

// blockReply is a read served from readahead blocks: go-fuse writes the
// reply straight from them (Slices, one writev) and calls Done once it is
// written, which is when the blocks may be reused. Copying them into the
// request's buffer instead cost a fifth of the daemon's CPU on a
// sequential read.
type blockReply struct{ res *readahead.Result }

var _ fuse.ReadResult = blockReply{}

func (b blockReply) Size() int { return b.res.N }

func (b blockReply) Done() { b.res.Release() }

// Slices makes go-fuse writev the segments as they are (its withSlice).
func (b blockReply) Slices() ([][]byte, fuse.Status) { return b.res.Segments, fuse.OK }

// Bytes is for go-fuse's paths that want one buffer; a read within one
// block needs no copy.
func (b blockReply) Bytes(buf []byte) ([]byte, fuse.Status) {
	if len(b.res.Segments) == 1 {
		return b.res.Segments[0], fuse.OK
	}
	if len(buf) < b.res.N {
		buf = make([]byte, b.res.N)
	}
	at := 0
	for _, s := range b.res.Segments {
		at += copy(buf[at:], s)
	}
	return buf[:at], fuse.OK
}

// readBlob reads the version opened; the caller releases the Result.
// name and props are the file's, read before h.mu (lock order).
func (h *fileHandle) readBlob(ctx context.Context, name string, props *blob.Properties, dest []byte, off int64) (*readahead.Result, error) {
	h.mu.Lock()
	if h.version == nil {
		// Opened while a writer held the file, which has since committed.
		h.version = props
	}
	v := h.version
	if v == nil || off >= v.Size {
		h.mu.Unlock()
		return nil, io.EOF
	}
	if v.Name != "" {
		// The name of the version opened: after a removal the node's
		// name is no blob's any more.
		name = v.Name
	}
	if h.rd == nil {
		h.rd = readahead.New(h.f.m.store, name, v.Size, v.ETag, h.f.m.ra)
	}
	rd := h.rd
	h.mu.Unlock()
	res, err := rd.ReadRef(ctx, dest, off)
	if errors.Is(err, readahead.ErrClosed) {
		// Another read of this handle moved it to a new version (see
		// takeNewVersion) or a rename repointed it, closing this reader
		// while the read was on its way: read again, from the new one.
		h.mu.Lock()
		again := !h.closed && h.rd != rd
		h.mu.Unlock()
		if again {
			return h.readBlob(ctx, name, props, dest, off)
		}
	}
	if err == nil && res != nil && res.N > 0 {
		h.mu.Lock()
		h.served = true
		h.mu.Unlock()
	}
	return res, err
}

// takeNewVersion is for a reader whose version of the blob is gone. A
// version this mount replaced (a commit, a move) is followed, as on a
// local disk, where an open file shows what was written since. One that
// another client replaced after this mount listed it, or that won a
// conflict against this mount's commit, is taken only if the reader has
// read nothing of the old one, which is as consistent a read: a reader
// that read part of it keeps failing with ESTALE, since mixing versions
// would be worse. It says whether to read again.
func (h *fileHandle) takeNewVersion(ctx context.Context, name string) bool {
	f := h.f
	f.mu.Lock()
	// A step of this mount may have replaced the blob and not yet taken
	// in its new version: let it end first.
	f.waitStepLocked()
	cur, staged, state := f.props, f.staged != nil, f.state
	h.mu.Lock()
	v, served := h.version, h.served
	if staged {
		// A local copy holds the content now (a writer's, or one made
		// for readers by a removal): Read reads it.
		h.mu.Unlock()
		f.mu.Unlock()
		return true
	}
	own := f.propsOurs && cur != nil && v != nil && cur.ETag != v.ETag
	if state == stateRemoved || (!own && served) {
		h.mu.Unlock()
		f.mu.Unlock()
		return false
	}
	if own {
		h.resetLocked(cur)
		h.mu.Unlock()
		f.mu.Unlock()
		f.NotifyContent(-1, 0) // see below
		return true
	}
	h.mu.Unlock()
	// Asked for under the file's name now: a move by this mount since
	// the read began took the file's content to a new name, as a local
	// disk's inode would.
	name = f.name
	f.mu.Unlock()

	p, err := f.m.head(ctx, name)
	if err != nil {
		return false
	}
	f.mu.Lock()
	if f.state != stateCommitted || f.staged != nil || f.op != opNone || f.name != name {
		f.mu.Unlock()
		return false
	}
	f.adoptLocked(p, f.m.clock.Now())
	f.keptETag = f.props.ETag
	h.mu.Lock()
	h.resetLocked(f.props)
	h.mu.Unlock()
	f.mu.Unlock()
	// The kernel's attributes are the old version's: its size bounds
	// what this read() returns. Invalidated (a negative offset touches
	// no page), the next read() asks for the new ones.
	f.NotifyContent(-1, 0)
	if h.keep {
		// It may also hold pages of the old version from an earlier
		// open; drop them. Not from this request's goroutine: the kernel
		// waits for the page this read fills.
		go f.NotifyContent(0, 0)
	}
	return true
}

// resetLocked makes the handle read version v from now on.
func (h *fileHandle) resetLocked(v *blob.Properties) {
	if h.rd != nil {
		h.rd.Close()
		h.rd = nil
	}
	h.version = v
}

func (h *fileHandle) writeAt(ctx context.Context, data []byte, off int64) (uint32, error) {
	f := h.f
	f.mu.Lock()
	st, name := f.staged, f.name
	f.written = f.m.clock.Now()
	h.flushed = false
	f.mu.Unlock()
	if !h.write || st == nil {
		return 0, syscall.EBADF
	}
	if f.m.isStopping() {
		// Shutting down: the file will not be committed, so accepting
		// more would only pretend.
		return 0, opErr("write", name, errStoppedWrite)
	}
	if h.append {
		// The kernel's idea of the end may be stale when another handle
		// grew the file; O_APPEND means our end.
		off = st.Size()
	}
	n, err := st.WriteAt(ctx, data, off)
	if err != nil {
		return uint32(n), opErr("write", name, err)
	}
	f.m.stats.bytesWritten.Add(int64(n))
	return uint32(n), nil
}

// close is what close(2) asks of a handle: a writer's commit.
func (h *fileHandle) close(ctx context.Context) error {
	if !h.write {
		return nil
	}
	if err := h.commit(ctx); err != nil {
		return err
	}
	h.f.mu.Lock()
	h.flushed = true
	h.f.mu.Unlock()
	return nil
}

// fsync commits what is staged, as close does, for fsync(2).
func (h *fileHandle) fsync(ctx context.Context) error {
	if !h.write {
		return nil
	}
	if err := h.commit(ctx); err != nil {
		return opErr("fsync", h.f.blobName(), err)
	}
	return nil
}

// commit commits the file for this handle's close() or fsync(), marked
// as under way so that a truncate by path meanwhile commits its own change
// (see fileNode.truncate).
func (h *fileHandle) commit(ctx context.Context) error {
	h.f.mu.Lock()
	h.flushing = true
	h.f.mu.Unlock()
	defer func() {
		h.f.mu.Lock()
		h.flushing = false
		h.f.mu.Unlock()
	}()
	return h.f.commit(ctx)
}

// release ends the handle: the last one of a file changed since its last
// commit commits it (see below).
func (h *fileHandle) release(ctx context.Context) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	if h.rd != nil {
		h.rd.Close()
		h.rd = nil
	}
	h.mu.Unlock()
	f := h.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handles--
	delete(f.open, h)
	if h.write {
		f.writers--
	}
	if f.writers == 0 && f.staged != nil && f.state != stateRemoved && !f.commitFailed && (f.staged.Dirty() || f.metaDirty) {
		// Changed after the last close() committed, with no handle left
		// to commit it: pages of a shared mapping that the kernel wrote
		// back after close() (it does so before this RELEASE), or a
		// truncate by path that raced it. The program was told nothing
		// failed, so the change is committed now, holding the staged
		// file as a writer would meanwhile.
		err := f.holdStagedLocked(func() error { return f.commit(uninterruptible(ctx)) })
		if err != nil {
			f.m.log.WithField("path", f.name).WithError(err).Error("uploading what changed after the last close() failed")
		}
	}
	f.releaseStagedLocked()
}

// repoint makes a reader follow its file to a new name: the copy has the
// same bytes under a new ETag.
func (h *fileHandle) repoint(p *blob.Properties) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rd != nil {
		h.rd.Close()
		h.rd = nil
	}
	if h.version != nil {
		h.version = p
	}
}
