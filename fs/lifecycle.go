package fs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"syscall"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/stage"
)

// A file's life, as its fileNode owns it.
//
// Where the blob is (fileState), changed only by setStateLocked:
//
//	             commit ok                 unlink ok / replaced by a rename
//	 pending ─────────────────► committed ─────────────────────────────────► removed
//	    │                         ▲    │ rename: same state, new name            ▲
//	    │                         └────┘ setattr, commit: new ETag               │
//	    └────────────────────────────────────────────────────────────────────────┘
//	                     unlink / replaced (nothing to delete)
//
//	pending    created here; no blob exists yet (the first commit makes it,
//	           with If-None-Match: *, or unconditionally after a rename
//	           over an existing file).
//	committed  the blob is f.props: name f.name, ETag f.props.ETag. What
//	           is staged may differ (stage.File.Dirty, f.metaDirty); the
//	           next commit replaces exactly that ETag (If-Match).
//	removed    the name is gone (unlink, or a rename over it). Handles
//	           still open read the local copy; nothing is committed again.
//
// What changes the blob (fileOp) runs one at a time per file: commit,
// metadata write, removal, move. beginLocked waits for the one under way,
// so a removal or a move that comes during an upload happens after it,
// on what it made, and a commit that comes during a removal finds the
// file removed and commits nothing. The blob name and the ETag a step
// sends are read from the node when the step begins and cannot change
// while it runs: only a step holding the turn changes them. Reads,
// writes to the staged file and getattr never wait for the turn; the
// turn is not a mutex (f.mu is never held across a network call).
type fileState uint8

const (
	statePending fileState = iota
	stateCommitted
	stateRemoved
)

func (s fileState) String() string {
	switch s {
	case statePending:
		return "pending"
	case stateCommitted:
		return "committed"
	case stateRemoved:
		return "removed"
	}
	return fmt.Sprintf("fileState(%d)", uint8(s))
}

// fileOp is the blob-changing step under way on a file.
type fileOp uint8

const (
	opNone    fileOp = iota
	opCommit         // close(), fsync(), a truncate by path, the last RELEASE
	opSetMeta        // chmod, chown, utimens of a file nobody writes
	opRemove         // unlink, or a rename over the file
	opMove           // a rename of the file or of a directory above it
)

func (o fileOp) String() string {
	return [...]string{"none", "commit", "setattr", "remove", "move"}[o]
}

// allowed says whether setStateLocked may take a file from one state to
// another: a removed file stays removed, and a committed one never goes
// back to pending.
func allowed(from, to fileState) bool {
	return to == stateRemoved || (from == statePending && to == stateCommitted)
}

// setStateLocked is the one place a file's state changes.
func (f *fileNode) setStateLocked(to fileState) {
	if f.state == to {
		return
	}
	if !allowed(f.state, to) {
		f.broken(fmt.Sprintf("blobfs: file %q: no transition %s -> %s", f.name, f.state, to))
		return
	}
	f.state = to
}

// beginLocked waits until no blob-changing step is under way on f, then
// marks op as under way. Called and returns with f.mu held; it unlocks
// while it waits. endLocked must follow.
func (f *fileNode) beginLocked(op fileOp) {
	for f.op != opNone {
		ch := f.opDone
		f.mu.Unlock()
		<-ch
		f.mu.Lock()
	}
	f.op, f.opDone = op, make(chan struct{})
}

// waitRemovalLocked waits while a removal is under way on f. Called and
// returns with f.mu held.
func (f *fileNode) waitRemovalLocked() { f.waitLocked(func() bool { return f.op == opRemove }) }

// waitStepLocked waits while any step is under way on f.
func (f *fileNode) waitStepLocked() { f.waitLocked(func() bool { return f.op != opNone }) }

func (f *fileNode) waitLocked(busy func() bool) {
	for busy() {
		ch := f.opDone
		f.mu.Unlock()
		<-ch
		f.mu.Lock()
	}
}

// endLocked ends the step begun by beginLocked and wakes whoever waits.
func (f *fileNode) endLocked() {
	close(f.opDone)
	f.op, f.opDone = opNone, nil
	f.checkInvariantsLocked()
}

// checkInvariantsLocked reports fields that contradict each other: a bug,
// caught where it happens instead of as lost data later. It panics under
// tests (BLOBFS_CHECK_INVARIANTS set) and logs otherwise.
func (f *fileNode) checkInvariantsLocked() {
	if msg := f.brokenInvariantLocked(); msg != "" {
		f.broken(msg)
	}
}

func (f *fileNode) broken(msg string) {
	if f.m.strict {
		panic(msg)
	}
	f.m.log.WithField("path", f.name).Error(msg)
}

func (f *fileNode) brokenInvariantLocked() string {
	switch {
	case f.state == statePending && f.props != nil:
		return fmt.Sprintf("blobfs: file %q is pending but has a blob (ETag %s)", f.name, f.props.ETag)
	case f.state == stateCommitted && f.props == nil:
		return fmt.Sprintf("blobfs: file %q is committed without a blob", f.name)
	case (f.op == opNone) != (f.opDone == nil):
		return fmt.Sprintf("blobfs: file %q: step %s with done channel %v", f.name, f.op, f.opDone != nil)
	case f.handles != len(f.open):
		return fmt.Sprintf("blobfs: file %q counts %d handles but holds %d", f.name, f.handles, len(f.open))
	case f.writers < 0 || f.handles < 0:
		return fmt.Sprintf("blobfs: file %q: %d writers, %d handles", f.name, f.writers, f.handles)
	}
	return ""
}

// commit uploads what is staged, content and attributes, to the file's
// blob; its error is the program's at close() or fsync(). It runs after
// any step under way: after a removal it finds nothing to commit, after a
// move it commits under the new name.
func (f *fileNode) commit(ctx context.Context) error {
	f.mu.Lock()
	f.beginLocked(opCommit)
	st := f.staged
	dirty := st != nil && st.Dirty()
	if st == nil || f.state == stateRemoved || (!dirty && (!f.metaDirty || f.state == statePending)) {
		f.endLocked()
		f.mu.Unlock()
		return nil
	}
	name, gen, old := f.name, f.metaGen, f.props
	md := f.commitMetaLocked()
	opts := blob.PutOptions{Metadata: md, ContentType: f.contentTypeLocked()}
	f.mu.Unlock()

	p, err := f.send(ctx, st, dirty, name, old, opts)

	f.mu.Lock()
	np, err := f.committedLocked(st, dirty, name, gen, md, p, err)
	if err == nil {
		// Still holding the turn, so that no move or removal comes in
		// between: noted after it, the old name would be listed again
		// and a lookup would make a node for a blob that is gone.
		f.mu.Unlock()
		f.noteInParent(name, np)
		f.mu.Lock()
	}
	f.endLocked()
	f.mu.Unlock()
	return err
}

// committedLocked takes in the outcome of a commit.
func (f *fileNode) committedLocked(st *stage.File, dirty bool, name string, gen uint64, md map[string]string, p *blob.Properties, err error) (*blob.Properties, error) {
	f.commitFailed = err != nil
	if err != nil {
		if errors.Is(err, blob.ErrPrecondition) || errors.Is(err, blob.ErrExists) {
			// Another writer's version is the blob now: the next open or
			// stat looks at it instead of trusting what we knew.
			f.propsAt = time.Time{}
		}
		return nil, err
	}
	switch {
	case dirty && p.BlobType == "AppendBlob":
		// Appends set the metadata only when they must (an attribute
		// changed, or our mtime went stale): the blob's is what stage
		// says, and Last-Modified is its mtime.
		md = maps.Clone(p.Metadata)
	case p.Metadata != nil:
		// What was sent: md with other tools' names in the case the
		// blob stores them (stage and send restore it after a HEAD).
		md = maps.Clone(p.Metadata)
	}
	np := *p // ours: stage hands the same properties to repeated commits
	np.Name, np.Metadata = name, md
	if np.Size == 0 && dirty {
		np.Size = st.Size()
	}
	f.props, f.propsAt, f.keptETag, f.propsOurs = &np, f.m.clock.Now(), np.ETag, true
	f.setStateLocked(stateCommitted)
	if gen == f.metaGen {
		f.attrs.md, f.metaDirty = cloneMeta(md), false
	}
	if !st.Dirty() {
		f.attrs.changed(f.written) // Last-Modified has only seconds
		f.written = time.Time{}
	}
	if !dirty && f.staged == st {
		// Only the metadata changed: the staged content is the new
		// version's, and its next commit replaces that one.
		st.Moved(name, &np)
	}
	return &np, nil
}

// send makes the blob what is staged: the content when it changed, else
// the metadata only.
func (f *fileNode) send(ctx context.Context, st *stage.File, dirty bool, name string, old *blob.Properties, opts blob.PutOptions) (*blob.Properties, error) {
	// A close after shutdown began may end a program interrupted
	// half-way (the signal went to it too): its data stays staged.
	if !f.m.beginCommit() {
		return nil, errStoppedClose
	}
	defer f.m.commits.Done()
	if dirty {
		f.m.stats.commits.Add(1)
		return st.Commit(ctx, opts)
	}
	md, err := f.m.exactMetaNames(ctx, name, old, opts.Metadata)
	if err != nil {
		return nil, err
	}
	p, err := f.m.store.SetMetadata(ctx, name, md, blob.Conditions{})
	if err != nil {
		return nil, err
	}
	// Set Blob Metadata changes nothing else: keep what the next rewrite
	// must carry over (stage.keepBaseLocked).
	kept := *old
	kept.ETag, kept.LastModified = p.ETag, p.LastModified
	kept.Metadata, kept.MetaNamesLowered = md, false
	return &kept, nil
}

// sendMetaLocked writes changed attributes to the blob now, unless a
// commit is to carry them: a file created here and not yet committed, one
// with changes not committed, or one a writer has open and will close.
// (A write's own side effects, such as the kernel clearing the setuid
// bit, then do not change the ETag that the writer's commit replaces, and
// the mount never conflicts with itself.) Called
// and returns with f.mu held; what it sent is noted in the parent's
// listing.
func (f *fileNode) sendMetaLocked(ctx context.Context) error {
	f.beginLocked(opSetMeta)
	defer f.endLocked()
	if !f.metaDirty || f.state != stateCommitted || (f.staged != nil && (f.staged.Dirty() || f.activeWriterLocked())) {
		return nil
	}
	name, gen, old := f.name, f.metaGen, f.props
	md := f.commitMetaLocked()
	f.mu.Unlock()
	md, err := f.m.exactMetaNames(ctx, name, old, md)
	var p *blob.Properties
	if err == nil {
		p, err = f.m.store.SetMetadata(ctx, name, md, blob.Conditions{})
	}
	f.mu.Lock()
	if err != nil {
		return err
	}
	// The names went out as the blob stores them: so do the next ones.
	f.attrs.md = blob.MetaNamesAs(f.attrs.md, md, isOwnKey)
	np := *f.props
	np.ETag, np.LastModified, np.Metadata, np.MetaNamesLowered = p.ETag, p.LastModified, md, false
	if f.keptETag == old.ETag {
		f.keptETag = np.ETag // only the metadata changed: cached pages stay valid
	}
	f.props, f.propsAt, f.propsOurs = &np, f.m.clock.Now(), true
	if gen == f.metaGen {
		f.metaDirty = false
	}
	if f.staged != nil {
		// A writer opened meanwhile, on the version before: same bytes,
		// new ETag, which its commit is to replace.
		f.staged.Moved(name, &np)
	}
	// Under the turn, as a commit does (see commit).
	f.mu.Unlock()
	f.noteInParent(name, &np)
	f.mu.Lock()
	return nil
}

// unlink deletes the blob, after any commit under way: what that commit
// made is what goes. An open file keeps working on a local copy until
// its last close, and is never committed again.
func (f *fileNode) unlink(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beginLocked(opRemove)
	defer f.endLocked()
	return f.removeLocked(ctx)
}

// removeLocked deletes the blob (if there is one yet) and marks the file
// removed. The caller holds the turn for opRemove and f.mu.
func (f *fileNode) removeLocked(ctx context.Context) error {
	if f.state == stateRemoved {
		return nil
	}
	if f.state == stateCommitted {
		if err := f.localizeLocked(ctx); err != nil {
			return err
		}
		name := f.name
		// The staged file is held while the blob is deleted, so that a
		// RELEASE meanwhile does not close it: readers still open read it
		// afterwards, and closed now it would be taken for changes never
		// committed, kept for lost+found.
		err := f.holdStagedLocked(func() error {
			err := f.m.store.Delete(ctx, name, blob.Conditions{})
			if errors.Is(err, blob.ErrNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			f.releaseStagedLocked()
			return err
		}
	}
	f.setStateLocked(stateRemoved)
	f.releaseStagedLocked()
	return nil
}

// localizeLocked gives handles still open on a committed file a local
// copy of it, so that they read and write on after its blob is gone: a
// staged file's parts still read from the blob are fetched too. The copy
// is made without f.mu: a slow download stalls nothing but this removal.
func (f *fileNode) localizeLocked(ctx context.Context) error {
	if f.handles == 0 || f.m.stage == nil {
		return nil
	}
	fresh := f.staged == nil
	if fresh {
		if f.m.isStopping() {
			return errStopping
		}
		// Of any blob type: a copy to read, never a write to it.
		st, err := f.m.stage.OpenCopy(ctx, f.name, f.props)
		if err != nil {
			return err
		}
		f.staged = st
	}
	st := f.staged
	err := f.holdStagedLocked(func() error { return st.Localize(ctx) })
	if err != nil && fresh && f.staged == st && f.writers == 0 {
		st.Discard()
		f.staged = nil
	}
	return err
}

// replaced is a rename over f: it waits for any step under way on f and
// gives handles still open a local copy, as unlink does (the rename's copy
// overwrites the blob they read); then it holds the turn until the rename
// calls end, which marks f removed if the rename happened. An open f
// lives on, unlinked.
func (f *fileNode) replaced(ctx context.Context) (end func(ok bool), err error) {
	f.mu.Lock()
	f.beginLocked(opRemove)
	if f.state == stateCommitted {
		err = f.localizeLocked(ctx)
	}
	// The local copy is held as a writer holds it until the rename ends,
	// so that a RELEASE meanwhile does not drop it from under readers.
	held := f.staged != nil
	if held {
		f.writers++
	}
	f.mu.Unlock()
	end = func(ok bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if held {
			f.writers--
		}
		if ok && f.state != stateRemoved {
			f.setStateLocked(stateRemoved)
		}
		f.releaseStagedLocked()
		f.endLocked()
	}
	if err != nil {
		end(false)
		return nil, err
	}
	return end, nil
}

// move renames the file to dst, after any commit under way, so that the
// move carries what that commit made. A committed file moves its blob
// (Copy, then Delete of the version copied); a pending one only changes
// where its first commit goes. Open handles follow.
func (f *fileNode) move(ctx context.Context, dst string) (*entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beginLocked(opMove)
	defer f.endLocked()
	switch f.state {
	case stateRemoved:
		return nil, syscall.ENOENT
	case statePending:
		if f.staged == nil {
			return nil, syscall.ENOENT
		}
		// Never uploaded: nothing to move yet; the first commit goes to
		// dst. What dst was goes now, as rename(2) replaces its target:
		// left until that commit, it would come back if the file moved
		// on or was removed before committing. (The kernel's idea of
		// whether there is a target may be a dentry older than a blob
		// made since, so it is not asked.)
		st := f.staged
		f.mu.Unlock()
		err := f.m.store.Delete(ctx, dst, blob.Conditions{})
		f.mu.Lock()
		if err != nil && !errors.Is(err, blob.ErrNotFound) {
			return nil, err
		}
		st.Rename(dst)
		f.name = dst
		return &entry{typ: syscall.S_IFREG, pending: true}, nil
	}
	src, props := f.name, f.props
	f.mu.Unlock()
	p, err := f.m.copyBlob(ctx, src, dst, props)
	f.mu.Lock()
	if err != nil {
		return nil, err
	}
	// Handles follow to the copy before the source goes, so that no read
	// finds neither.
	f.movedLocked(dst, p)
	f.mu.Unlock()
	err = f.m.deleteSource(ctx, src, dst, props)
	f.mu.Lock()
	if err != nil {
		// The rename fails and the file stays where it was: back to the
		// source, which is still whole, and the copy goes.
		f.movedLocked(src, props)
		f.mu.Unlock()
		err = f.m.undoCopy(ctx, src, dst, p, err)
		f.mu.Lock()
		return nil, err
	}
	return &entry{typ: syscall.S_IFREG, props: p}, nil
}

// movedLocked records that the blob was copied to dst as p: same bytes
// under a new name and ETag. Readers follow; the next commit replaces p.
func (f *fileNode) movedLocked(dst string, p *blob.Properties) {
	np := *p
	np.Name = dst
	if f.keptETag == f.props.ETag {
		f.keptETag = np.ETag // same bytes under a new name
	}
	f.name, f.props, f.propsAt, f.propsOurs = dst, &np, f.m.clock.Now(), true
	for h := range f.open {
		h.repoint(&np)
	}
	if f.staged != nil {
		// Later commits go to dst, and unchanged parts come from the copy.
		f.staged.Moved(dst, &np)
	}
}
