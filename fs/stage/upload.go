package stage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/readcache"
)

// schedule queues block i for Put Block by the file's workers, starting
// one if fewer than Concurrency run. Called with f.mu held.
func (f *File) schedule(i int) {
	b := &f.blocks[i]
	if b.queued || f.inflight[i] || f.appendOnly || (f.hasUnfetched && i == f.unfetched) {
		// An append blob takes no Put Block: its commit appends. A
		// block not whole in the cache file waits for upload() to
		// fill it.
		return
	}
	b.queued = true
	f.sentBlocks = true
	f.queue = append(f.queue, i)
	if f.workers < f.m.opts.Concurrency && !f.closed {
		f.workers++
		f.m.wg.Add(1)
		f.m.addBusy(1)
		go f.worker()
	}
}

func (f *File) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// worker uploads queued blocks until the queue is empty.
func (f *File) worker() {
	defer f.m.wg.Done()
	defer f.m.addBusy(-1)
	ctx := f.m.ctx
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if len(f.queue) == 0 || f.closed || ctx.Err() != nil {
			f.workers--
			f.notifyLocked()
			return
		}
		i := f.queue[0]
		f.queue = f.queue[1:]
		if i >= len(f.blocks) {
			continue
		}
		b := &f.blocks[i]
		b.queued = false
		if f.inflight[i] || f.uploaded(i) {
			continue
		}
		if f.inflight == nil {
			f.inflight = map[int]bool{}
		}
		f.inflight[i] = true
		job := upJob{
			state: b.state, name: f.name, id: blockID(f.id, i),
			start: int64(i) * f.bs, length: blen(i, f.size, f.bs),
			baseName: f.baseName, baseETag: f.baseETag, baseLimit: f.baseLimit,
		}
		ver := b.ver
		f.mu.Unlock()
		sums, err := f.putBlock(ctx, f.data, job)
		f.mu.Lock()
		delete(f.inflight, i)
		if i >= len(f.blocks) {
			f.notifyLocked()
			continue
		}
		b = &f.blocks[i]
		switch {
		case b.ver != ver || job.name != f.name:
			// Changed meanwhile: whatever happened is moot.
			if b.state == blkLocal && i < len(f.blocks)-1 && b.complete(f.bs) {
				f.schedule(i)
			}
		case err != nil:
			f.upErr = err
		default:
			b.upVer, b.reuse = ver, ""
			b.sums, b.sumVer = sums, ver
			if job.state == blkLocal && f.state != stClosing {
				// Streamed while the writer goes on: its pages are
				// better reused for the next blocks (see dropCached).
				// Not at a commit, which would wait for the disk for a
				// file that is about to be deleted.
				f.m.wg.Add(1)
				go f.m.drop(f.data, job.start, job.length)
			}
		}
		f.notifyLocked()
		f.m.notify() // a clean block may be what a writer waits for
	}
}

// upJob is what a Put Block needs, copied out from under the lock.
type upJob struct {
	state              blockState
	name, id           string
	start, length      int64
	baseName, baseETag string
	baseLimit          int64
}

// putBlock uploads one block under name, from the cache file, from zeros,
// or from the base blob through a bounded buffer. For a block from the
// cache file it returns the read cache's checksums of what it sent, taken
// while the block is in memory anyway (about 0.04 CPU s/GiB), so that the
// committed file can be handed to the read cache without reading it again.
func (f *File) putBlock(ctx context.Context, data io.ReaderAt, j upJob) ([]uint32, error) {
	switch j.state {
	case blkLocal:
		// One large read into memory: Put Block reads its body twice
		// (hash, send), and from memory that costs half the CPU of twice
		// from the page cache in small reads.
		buf, err := f.m.getBuf(ctx)
		if err != nil {
			return nil, err
		}
		defer f.m.putBuf(buf)
		p := buf[:j.length]
		if _, err := data.ReadAt(p, j.start); err != nil {
			return nil, fmt.Errorf("stage: reading the cache file of %q: %w", j.name, err)
		}
		var sums []uint32
		if f.adoptable() {
			sums = readcache.ChunkSums(make([]uint32, 0, (j.length+readcache.ChunkSize-1)/readcache.ChunkSize), p)
		}
		return sums, f.sendBlock(ctx, j.name, j.id, bytes.NewReader(p), j.length)
	case blkZero:
		return nil, f.sendBlock(ctx, j.name, j.id, zeros{}, j.length)
	case blkRemote:
		buf, err := f.m.getBuf(ctx)
		if err != nil {
			return nil, err
		}
		defer f.m.putBuf(buf)
		p := buf[:j.length]
		if err := readBase(ctx, f.m.store, p, j.start, j.baseName, j.baseETag, j.baseLimit); err != nil {
			return nil, err
		}
		return nil, f.sendBlock(ctx, j.name, j.id, bytes.NewReader(p), j.length)
	}
	return nil, fmt.Errorf("stage: block of %q at %d was dropped from the cache and cannot be uploaded again: %w", j.name, j.start, ErrEvicted)
}

// adoptable says a committed file may be handed to the read cache whole:
// there is one, and its checksum chunks do not cross blocks.
func (f *File) adoptable() bool {
	return f.m.opts.ReadCache != nil && f.bs%readcache.ChunkSize == 0
}

// sendBlock stages a block without a transactional MD5: the commit stores
// the whole blob's MD5, hashed as the writes stream through (see
// contentSum), so hashing every block too would only double the CPU spent
// hashing.
func (f *File) sendBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error {
	return f.m.store.PutBlock(ctx, name, id, blob.Unhashed(data), size)
}

// readBase fills p with the base blob's bytes at off, zeros past limit.
func readBase(ctx context.Context, store Store, p []byte, off int64, name, etag string, limit int64) error {
	n := max(0, min(int64(len(p)), limit-off))
	clear(p[n:])
	if n == 0 {
		return nil
	}
	body, _, err := store.Download(ctx, name, off, n, blob.Conditions{IfMatch: etag})
	if err != nil {
		if errors.Is(err, blob.ErrPrecondition) || errors.Is(err, blob.ErrNotFound) {
			return fmt.Errorf("stage: %q was changed or removed by another writer since it was opened; its unchanged part cannot be read any more: %w", name, err)
		}
		return fmt.Errorf("stage: reading %q from the service: %w", name, err)
	}
	defer body.Close()
	if _, err := io.ReadFull(body, p[:n]); err != nil {
		return fmt.Errorf("stage: reading %q from the service: %w", name, err)
	}
	return nil
}

// Commit uploads what changed and commits it under opts (the full metadata
// set: Put Block List replaces it). Calling it again without changes does
// nothing and returns the last properties (and the last conflict, if the
// last commit was one).
//
// The commit is conditional (opts.Conditions are ignored): on If-Match the
// ETag the file was opened on, or If-None-Match: * for a new blob, unless
// Unconditional was called. When the blob changed meanwhile, the local
// version is saved as "<name>.conflict-<UTC yyyymmddThhmmssZ>" next to it
// and Commit returns a *ConflictError, which matches blob.ErrPrecondition.
//
// A file of at most one block is committed with one Put Blob and nothing
// else; larger ones with Put Block for the blocks not uploaded yet (in
// parallel) and one Put Block List.
//
// A failure is recorded in the journal before Commit returns it: that
// content is then never published by recovery, and goes to lost+found at
// Close, unless a later write or Commit starts over. Only a commit cut
// short by ctx or by the Manager closing is left for recovery to finish.
// A file whose write failed half-way is never committed (ErrIncomplete),
// nor one that was Removed (ErrRemoved).
func (f *File) Commit(ctx context.Context, opts blob.PutOptions) (*blob.Properties, error) {
	return f.commit(ctx, opts, true)
}

// commit is Commit; record says to record a failure as such (Recover
// does not: its failures are retried at the next mount or kept aside).
func (f *File) commit(ctx context.Context, opts blob.PutOptions, record bool) (*blob.Properties, error) {
	f.commitMu.Lock()
	defer f.commitMu.Unlock()
	f.m.addBusy(1)
	defer f.m.addBusy(-1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errClosed
	}
	switch f.state {
	case stRemoved:
		return nil, fmt.Errorf("stage: committing %q: %w", f.name, ErrRemoved)
	case stIncomplete:
		return nil, &IncompleteError{Name: f.name, Offset: f.incompleteAt, Reason: f.reason}
	}
	if !f.dirty {
		if f.last == nil && f.lastErr == nil {
			return f.baseProps, nil
		}
		return f.last, f.lastErr
	}
	// The journal says the program asked for this content before anything
	// is sent: a crash during the commit then finishes it at the next
	// mount, while a file nobody closed is kept aside instead.
	f.setState(stClosing)
	if opts.ContentType != f.ctype || !sameMeta(opts.Metadata, f.meta) || f.jState != stClosing {
		f.ctype, f.meta = opts.ContentType, opts.Metadata
		if err := f.writeJournal(); err != nil {
			if record {
				f.markFailedLocked(err)
			}
			return nil, err
		}
	}
	if f.appendOnly {
		return f.commitAppendLocked(ctx, opts, record)
	}
	if b := f.baseProps; b != nil && b.BlobType != "" && b.BlobType != "BlockBlob" {
		// A copy of a page blob (OpenCopy): a block list would change
		// its type under the program that owns it.
		return nil, &BlobTypeError{Name: f.name, Type: b.BlobType}
	}
	if err := f.keepBaseLocked(ctx, &opts); err != nil {
		return nil, err
	}
	opts.Conditions = f.conditions()
	// The MD5 is taken where the content to commit is fixed (withMD5Locked).
	opts.ContentMD5, opts.NoMD5 = nil, f.m.opts.NoMD5
	seq, name := f.seq, f.name
	props, err := f.upload(ctx, name, opts)
	if err != nil && (errors.Is(err, blob.ErrPrecondition) || errors.Is(err, blob.ErrExists)) && !f.unconditional {
		return nil, f.saveConflict(ctx, name, opts, err)
	}
	if err != nil {
		// Cut short by the caller or by shutdown, the commit is the
		// crash recovery finishes; any other failure was reported.
		if record && f.seq == seq && ctx.Err() == nil && f.m.ctx.Err() == nil && !errors.Is(err, errClosed) {
			f.markFailedLocked(err)
		}
		return nil, err
	}
	if props.Name == "" {
		props.Name = name
	}
	props.Size = f.size
	props.ContentType, props.Metadata = opts.ContentType, opts.Metadata
	keptProps(props, opts)
	f.last, f.lastErr = props, nil
	f.baseProps = props
	f.baseName, f.baseETag, f.target = name, props.ETag, props.ETag
	f.adopt = nil
	if f.seq == seq {
		f.dirty = false
		f.setState(stClean)
		f.keepCommitted(ctx, name, props.ETag)
	}
	f.journalLogged()
	return props, nil
}

// keepCommitted hands the read cache the version just committed, so that
// reading the file back costs no GET. Only when nothing changed during
// the commit (the caller checks seq): the cache file then holds exactly
// what the service has under etag. Called with f.mu held, which keeps the
// blocks as they are.
//
// A file of one block is copied into the cache now. A larger one is
// handed over whole at Close, if nothing changed it by then (see
// adoption): copying it cost 1.35 CPU s/GiB more per sequential write
// (64 MiB files, measured through a mount), half as much again as the
// write itself, where handing it over costs a header and a rename.
func (f *File) keepCommitted(ctx context.Context, name, etag string) {
	rc := f.m.opts.ReadCache
	// An append's first block holds only the new part in the cache file
	// (see unfetched): the file is not the whole version.
	if rc == nil || etag == "" || f.hasUnfetched {
		return
	}
	if f.size > f.bs {
		f.adopt = f.adoptionLocked(name, etag)
		return
	}
	var buf []byte
	for i := range f.blocks {
		if st := f.blocks[i].state; st != blkLocal && st != blkZero {
			continue // in the service only: nothing local to keep
		}
		if buf == nil {
			var err error
			if buf, err = f.m.getBuf(ctx); err != nil {
				return
			}
			defer f.m.putBuf(buf)
		}
		start := int64(i) * f.bs
		p := buf[:blen(i, f.size, f.bs)]
		if _, err := f.data.ReadAt(p, start); err != nil {
			f.m.log.WithError(err).Warn("cannot read a committed block back for the read cache")
			return
		}
		rc.Store(name, etag, f.size, p, start)
	}
}

// pendingAdoption is a committed file to hand to the read cache at Close,
// if its content is still what was committed then (seq).
type pendingAdoption struct {
	a   readcache.Adoption
	seq uint64
}

// adoptionLocked gathers what the read cache needs to take the file over
// as the version etag: every block local (or a hole) with the checksums
// of its current content, taken at its upload. A block that was not
// uploaded from the cache file (reused from the base blob, or evicted)
// makes it nil: the cache file does not hold the whole content.
func (f *File) adoptionLocked(name, etag string) *pendingAdoption {
	if !f.adoptable() {
		return nil
	}
	sums := make([]uint32, 0, (f.size+readcache.ChunkSize-1)/readcache.ChunkSize)
	for i := range f.blocks {
		b := &f.blocks[i]
		switch {
		case b.state == blkLocal && b.sums != nil && b.sumVer == b.ver:
			sums = append(sums, b.sums...)
		case b.state == blkZero:
			sums = zeroSums(sums, blen(i, f.size, f.bs))
		default:
			return nil
		}
	}
	return &pendingAdoption{
		a:   readcache.Adoption{Name: name, ETag: etag, Size: f.size, Path: dataPath(f.m.root, f.id), Sums: sums},
		seq: f.seq,
	}
}

// zeroChunk is a chunk of zeros, for the checksums of holes.
var zeroChunk = make([]byte, readcache.ChunkSize)

// zeroSums appends the checksums of n zero bytes.
func zeroSums(dst []uint32, n int64) []uint32 {
	for ; n > 0; n -= readcache.ChunkSize {
		dst = readcache.ChunkSums(dst, zeroChunk[:min(n, readcache.ChunkSize)])
	}
	return dst
}

func (f *File) conditions() blob.Conditions {
	switch {
	case f.unconditional:
		return blob.Conditions{}
	case f.target != "":
		return blob.Conditions{IfMatch: f.target}
	}
	return blob.Conditions{IfNoneMatch: "*"}
}

// upload sends the whole current content to name under opts. Called with
// f.mu held; it is released while waiting for the network.
func (f *File) upload(ctx context.Context, name string, opts blob.PutOptions) (*blob.Properties, error) {
	if err := f.fillUnfetchedLocked(ctx); err != nil {
		return nil, err
	}
	// Not once blocks were sent: the service counts a blob with
	// uncommitted blocks as existing (a new file's If-None-Match: * then
	// fails), Put Blob drops those blocks, and one may still be on its
	// way, to be counted as uploaded after it was dropped.
	for f.size <= f.bs && !f.sentBlocks && (len(f.blocks) == 0 || f.blocks[0].state != blkEvicted) {
		props, again, err := f.putWhole(ctx, name, opts)
		if !again {
			return props, err
		}
		// The file changed while its unchanged content was downloaded:
		// decide again on what it is now.
	}
	if f.upName != "" && f.upName != name {
		for i := range f.blocks {
			if f.blocks[i].state == blkEvicted {
				return nil, fmt.Errorf("stage: %q was renamed to %q after parts of it were uploaded and dropped from the cache; they cannot be moved: %w", f.upName, name, ErrEvicted)
			}
		}
	}
	ids, err := f.uploadBlocks(ctx)
	if err != nil {
		return nil, err
	}
	if err := f.publishable(); err != nil {
		return nil, err
	}
	f.withMD5Locked(&opts)
	f.mu.Unlock()
	props, err := f.m.store.PutBlockList(ctx, name, ids, opts)
	f.mu.Lock()
	return props, err
}

// publishable refuses, right before the call that publishes, content that
// a write failing meanwhile (the lock is let go while blocks upload) made
// incomplete: a cut-off or dropped file is never committed. Called with
// f.mu held.
func (f *File) publishable() error {
	if f.state == stIncomplete {
		return &IncompleteError{Name: f.name, Offset: f.incompleteAt, Reason: f.reason}
	}
	return nil
}

// putWhole commits a small file with one Put Blob. Content still in the
// service (a file whose metadata alone changed, or one only extended) is
// downloaded without f.mu; again reports that the file changed meanwhile,
// and nothing was sent.
func (f *File) putWhole(ctx context.Context, name string, opts blob.PutOptions) (_ *blob.Properties, again bool, _ error) {
	buf, err := f.m.getBuf(ctx)
	if err != nil {
		return nil, false, err
	}
	defer f.m.putBuf(buf)
	f.withMD5Locked(&opts)
	p := buf[:f.size]
	if len(f.blocks) > 0 {
		switch f.blocks[0].state {
		case blkLocal, blkZero:
			if _, err := f.data.ReadAt(p, 0); err != nil {
				return nil, false, fmt.Errorf("stage: reading the cache file of %q: %w", name, err)
			}
		case blkRemote:
			size, bname, etag, limit, ver := f.size, f.baseName, f.baseETag, f.baseLimit, f.blocks[0].ver
			f.mu.Unlock()
			err := readBase(ctx, f.m.store, p, 0, bname, etag, limit)
			f.mu.Lock()
			if f.size != size || len(f.blocks) == 0 || f.blocks[0].state != blkRemote || f.blocks[0].ver != ver ||
				f.baseName != bname || f.baseETag != etag || f.baseLimit != limit {
				return nil, true, nil
			}
			if err != nil {
				return nil, false, err
			}
		}
	}
	if err := f.publishable(); err != nil {
		return nil, false, err
	}
	f.mu.Unlock()
	props, err := f.m.store.Upload(ctx, name, p, opts)
	f.mu.Lock()
	if err == nil {
		// Put Blob dropped every uncommitted block of the blob, and its
		// committed ones.
		for i := range f.blocks {
			f.blocks[i].upVer, f.blocks[i].reuse = 0, ""
		}
	}
	return props, false, err
}

// uploadBlocks gets every block into the service under the file's name
// and returns the block list. Called with f.mu held.
func (f *File) uploadBlocks(ctx context.Context) ([]string, error) {
	f.upErr = nil
	if !f.listed && f.baseETag != "" && f.baseName == f.name {
		f.listed = true
		f.reuseCommitted(ctx)
	}
	for {
		if f.closed {
			return nil, errClosed
		}
		if err := f.m.ctx.Err(); err != nil {
			return nil, fmt.Errorf("stage: uploading %q: the staging area is closed: %w", f.name, err)
		}
		if f.upErr != nil {
			err := f.upErr
			f.upErr = nil
			return nil, fmt.Errorf("stage: uploading %q: %w", f.name, err)
		}
		done := true
		for i := range f.blocks {
			if !f.uploaded(i) {
				done = false
				f.schedule(i)
			}
		}
		if done {
			break
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
			f.mu.Lock()
		case <-ctx.Done():
			f.mu.Lock()
			return nil, ctx.Err()
		}
	}
	ids := make([]string, len(f.blocks))
	for i := range ids {
		if b := &f.blocks[i]; b.state == blkRemote && b.reuse != "" && b.upVer == b.ver {
			ids[i] = b.reuse
		} else {
			ids[i] = blockID(f.id, i)
		}
	}
	return ids, nil
}

// reuseCommitted marks the remote blocks that are, unchanged, committed
// blocks of the base blob as uploaded under those blocks' IDs. Called with
// f.mu held; it is released while asking the service.
func (f *File) reuseCommitted(ctx context.Context) {
	lister, ok := f.m.store.(BlockLister)
	if !ok {
		return
	}
	remote := false
	for i := range f.blocks {
		remote = remote || f.blocks[i].state == blkRemote
	}
	if !remote {
		return
	}
	name, etag := f.baseName, f.baseETag
	f.mu.Unlock()
	blocks, got, err := lister.GetBlockList(ctx, name)
	f.mu.Lock()
	if err != nil || got != etag || f.baseETag != etag || f.baseName != name {
		return // changed meanwhile, or no list: upload as usual
	}
	idLen := len(blockID(f.id, 0))
	for k, b := range blocks {
		if len(b.ID) != idLen || b.Size > f.bs || (k < len(blocks)-1 && b.Size != f.bs) {
			return // laid out otherwise than our blocks
		}
	}
	for i := 0; i < len(blocks) && i < len(f.blocks); i++ {
		b := &f.blocks[i]
		start := int64(i) * f.bs
		if b.state == blkRemote && !f.inflight[i] && blen(i, f.size, f.bs) == blocks[i].Size && start+blocks[i].Size <= f.baseLimit {
			b.reuse, b.upVer = blocks[i].ID, b.ver
		}
	}
}

// saveConflict uploads the local version next to name, where the other
// writer's version stays, or failing that keeps it in lost+found.
// Called with f.mu held.
func (f *File) saveConflict(ctx context.Context, name string, opts blob.PutOptions, cause error) error {
	saveAs := ConflictName(name, time.Now())
	opts.Conditions = blob.Conditions{IfNoneMatch: "*"}
	err := f.copyTo(ctx, saveAs, opts)
	ce := &ConflictError{Name: name, SavedAs: saveAs, Err: cause}
	if err != nil {
		path, lerr := f.keepLocally(ce.Error())
		if lerr != nil {
			// Still staged, and never to be published under name:
			// failed, so Close moves it to lost+found.
			err = fmt.Errorf("stage: %q changed in the service since it was opened; saving this version as %q failed (%v) and so did keeping it in %s (%v): %w",
				name, saveAs, err, f.m.LostFound(), lerr, cause)
			f.markFailedLocked(err)
			return err
		}
		f.m.log.WithError(err).WithField("blob", name).Warn("cannot upload the conflicting version; kept it locally")
		ce.SavedAs, ce.Local = path, true
	}
	f.m.log.WithFields(map[string]any{"blob": name, "saved_as": ce.SavedAs}).Warn("blob changed by another writer since open; kept this version aside")
	f.last, f.lastErr = nil, ce
	f.dirty = false
	f.setState(stClean)
	f.journalLogged()
	return ce
}

// ConflictName is where Commit saves a version that could not replace
// name because another writer changed it: "<name>.conflict-<UTC
// yyyymmddThhmmssZ>".
func ConflictName(name string, t time.Time) string {
	return name + ".conflict-" + t.UTC().Format("20060102T150405Z")
}

// copyTo uploads the whole content to another blob (a Put Blob, or all
// blocks again: block lists do not move between blobs). Called with f.mu
// held; keeps it for simplicity, conflicts are rare.
func (f *File) copyTo(ctx context.Context, name string, opts blob.PutOptions) error {
	if err := f.fillUnfetchedLocked(ctx); err != nil {
		return err
	}
	for f.size <= f.bs && (len(f.blocks) == 0 || f.blocks[0].state != blkEvicted) {
		if _, again, err := f.putWhole(ctx, name, opts); !again {
			return err
		}
	}
	ids := make([]string, len(f.blocks))
	jobs := make([]upJob, len(f.blocks))
	for i := range f.blocks {
		ids[i] = blockID(f.id, i)
		jobs[i] = upJob{
			state: f.blocks[i].state, name: name, id: ids[i],
			start: int64(i) * f.bs, length: blen(i, f.size, f.bs),
			baseName: f.baseName, baseETag: f.baseETag, baseLimit: f.baseLimit,
		}
	}
	f.withMD5Locked(&opts)
	f.mu.Unlock()
	defer f.mu.Lock()
	if err := parallel(ctx, len(jobs), f.m.opts.Concurrency, func(ctx context.Context, i int) error {
		_, err := f.putBlock(ctx, f.data, jobs[i])
		return err
	}); err != nil {
		return err
	}
	_, err := f.m.store.PutBlockList(ctx, name, ids, opts)
	return err
}

// keepLocally hard-links the cache file into lost+found, next to a
// journal that says why it is there (reason).
func (f *File) keepLocally(reason string) (string, error) {
	lf := f.m.LostFound()
	if err := os.MkdirAll(lf, 0o700); err != nil {
		return "", err
	}
	base := strings.ReplaceAll(f.name, "/", "_") + "." + f.id
	path := filepath.Join(lf, base)
	if err := os.Link(dataPath(f.m.root, f.id), path); err != nil {
		return "", err
	}
	j := f.journal()
	j.State, j.Closing, j.Reason = stFailed.String(), false, reason
	if err := writeJournal(path+".json", j, true); err != nil {
		return "", err
	}
	return path, nil
}

// parallel runs fn(0..n-1) with at most conc at once; the first error
// cancels the rest.
func parallel(ctx context.Context, n, conc int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

func sameMeta(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
