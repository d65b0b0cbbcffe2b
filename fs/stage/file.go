package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/blobfs/blobfs/blob"
)

// File is one blob being written: its content is the cache file's local
// blocks, the base blob's remote blocks and zero blocks. Methods are safe
// for concurrent use.
type File struct {
	m    *Manager
	id   string
	bs   int64
	data *os.File
	jlog journalLog // guarded by mu

	commitMu sync.Mutex // one Commit at a time

	mu        sync.Mutex
	name      string
	baseProps *blob.Properties // what Open was given, or the last commit
	baseName  string           // where remote blocks are read from
	baseETag  string           // ...pinned to this version
	target    string           // ETag the next commit may replace; "": the name must be free
	baseLimit int64            // remote bytes at or past this were truncated away: zeros
	size      int64
	blocks    []block
	accounted int64 // bytes of local blocks, counted in m.used
	vers      uint64
	seq       uint64 // bumped by every change, to tell whether a commit caught them all

	dirty         bool  // changed since the last commit (or open)
	jDirty        bool  // what the journal says
	state         state // what may be published (see state); set by setState
	jState        state // what the journal says
	jClean        bool  // the journal's last write succeeded and says committed
	reason        string
	incompleteAt  int64 // stIncomplete: offset of the first failed write
	noSpace       bool  // stIncomplete for lack of space
	dropped       bool  // noSpace: the data was dropped (dropDataLocked)
	sentBlocks    bool  // a block of it went to Put Block (see spare)
	unconditional bool
	ctype         string
	meta          map[string]string
	last          *blob.Properties
	lastErr       error
	upName        string // the name evicted blocks were uploaded under
	listed        bool   // the base's committed blocks were looked at
	// appendOnly: the base is an append blob, committed by Append Block
	// (append.go); writes and truncates below sealed are refused.
	appendOnly bool
	sealed     int64
	// unfetched (when hasUnfetched) is the block whose bytes below
	// baseLimit an append did not fetch: it is local from baseLimit on
	// only, and its base part is read from the service (readAtLocked).
	// Appending a line to a large append blob would otherwise download
	// up to a block of it first. fillUnfetchedLocked makes it whole
	// where a whole block is needed.
	unfetched    int
	hasUnfetched bool

	sum contentSum // MD5 of the content as written (md5.go); guarded by mu

	// adopt: the last commit's version, for the read cache to take the
	// cache file over at Close (keepCommitted); guarded by mu.
	adopt *pendingAdoption

	workers int
	// inflight: the blocks with a Put Block under way, by index. Kept
	// apart from blocks, which a truncate cuts while the upload goes on:
	// a block made again at that index must wait for it, or the old
	// content, landing last under the same block ID, would be committed.
	inflight map[int]bool
	queue    []int
	upErr    error
	changed  chan struct{} // closed and replaced when an upload ends
	closed   bool
	orphan   bool // Removed: nothing to keep at Manager.Close
}

func (f *File) setBase(p *blob.Properties) {
	f.baseProps = p
	if p == nil {
		f.baseName, f.baseETag, f.target = "", "", ""
		return
	}
	f.baseName = p.Name
	if f.baseName == "" {
		f.baseName = f.name
	}
	f.baseETag, f.target = p.ETag, p.ETag
	f.ctype, f.meta = p.ContentType, p.Metadata
	f.appendOnly = p.BlobType == "AppendBlob"
	if f.appendOnly {
		f.sealed = p.Size
	}
}

// resetBaseLocked makes p, whose content is the base's, the base:
// unchanged parts are read from p, and the next commit may replace p (and
// nothing else).
func (f *File) resetBaseLocked(p *blob.Properties) {
	f.setBase(p)
	// Committed blocks of the old base are not the new one's.
	f.listed = false
	for i := range f.blocks {
		if b := &f.blocks[i]; b.reuse != "" {
			b.reuse, b.upVer = "", 0
		}
	}
}

// Unconditional makes the following commits replace whatever the blob is
// by then, instead of failing with a *ConflictError when it changed since
// open. For callers that deliberately replace a blob; the fs layer does not
// use it for ordinary writes (a truncating open still keeps the check, so a
// concurrent writer's data is never silently lost).
func (f *File) Unconditional() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unconditional = true
	f.journalLogged()
}

func (f *File) nextVer() uint64 {
	f.vers++
	return f.vers
}

// uploaded says the service holds block i's current content under its ID.
func (f *File) uploaded(i int) bool {
	b := &f.blocks[i]
	return b.state == blkEvicted || (b.upVer != 0 && b.upVer == b.ver)
}

// Size is the file's current size.
func (f *File) Size() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

// Name is where the next commit goes.
func (f *File) Name() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.name
}

// Dirty says the file has changes not yet committed.
func (f *File) Dirty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dirty
}

var errClosed = errors.New("stage: file already closed")

// lockWithSpace locks f with room reserved in the cache for the growth
// need computes (under the lock). It waits for room without holding the
// lock: the uploads that free room need it.
func (f *File) lockWithSpace(ctx context.Context, need func() int64) (int64, error) {
	var reserved int64
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			f.m.settle(reserved, 0)
			return 0, errClosed
		}
		n := need()
		if n <= reserved {
			return reserved, nil
		}
		f.mu.Unlock()
		if err := f.m.reserve(ctx, n-reserved); err != nil {
			f.m.settle(reserved, 0)
			return 0, err
		}
		reserved = n
	}
}

// waitBacklog holds a writer back while more of its blocks wait for Put
// Block than the uploads take at once, plus two. A writer faster than the
// service otherwise runs ahead into the cache file, and every block it
// gets ahead by is page cache taken new instead of reused from blocks
// already uploaded and dropped (see dropCached): on the test VM a 1 GiB
// cp ran 1.42-1.46x the direct client's time without the bound and
// 1.06-1.10x with it, at the same daemon CPU. The last block of a file
// is only queued at the commit, so a writer never waits for its own
// unfinished block; a failed upload leaves the queue and lets it go on.
func (f *File) waitBacklog(ctx context.Context) error {
	limit := f.m.opts.Concurrency + 2
	for {
		f.mu.Lock()
		if f.closed || len(f.queue)+f.workers <= limit {
			f.mu.Unlock()
			return nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-f.m.ctx.Done():
			// Shutting down: the workers stopped; the write lands in
			// the cache file and the next mount's Recover has it.
			return nil
		case <-ctx.Done():
			return fmt.Errorf("stage: waiting for uploads of %q: %w", f.Name(), ctx.Err())
		}
	}
}

// growth is how many bytes of local blocks the file gains when it becomes
// newSize and the blocks first..last become local.
func (f *File) growth(newSize int64, first, last int) int64 {
	newSize = max(newSize, f.size)
	var d int64
	for i := first; i <= last; i++ {
		var cur int64
		if i < len(f.blocks) && f.blocks[i].state == blkLocal {
			cur = blen(i, f.size, f.bs)
		}
		d += blen(i, newSize, f.bs) - cur
	}
	if ol := len(f.blocks) - 1; newSize > f.size && ol >= 0 && (ol < first || ol > last) && f.blocks[ol].state == blkLocal {
		d += blen(ol, newSize, f.bs) - blen(ol, f.size, f.bs)
	}
	return d
}

// grow extends the file to newSize with zeros.
func (f *File) grow(newSize int64) {
	if newSize <= f.size {
		return
	}
	if ol := len(f.blocks) - 1; ol >= 0 && blen(ol, newSize, f.bs) != blen(ol, f.size, f.bs) {
		b := &f.blocks[ol]
		if b.state == blkLocal {
			f.accounted += blen(ol, newSize, f.bs) - blen(ol, f.size, f.bs)
		}
		b.ver = f.nextVer()
	}
	for len(f.blocks) < nblocks(newSize, f.bs) {
		f.blocks = append(f.blocks, block{state: blkZero, ver: f.nextVer()})
	}
	f.size = newSize
}

// markDirty records in the journal, before the first change after a
// commit is acknowledged, that the file now differs from the service.
// It also ends closing and failed: content that changes after a close()
// or fsync() asked for a commit is again work in progress.
func (f *File) markDirty() error {
	f.seq++
	f.dirty = true
	f.setState(stWriting)
	if f.jDirty && f.jState == f.state {
		return nil
	}
	return f.writeJournal()
}

// WriteAt writes p at off, growing the file as needed (with zeros between
// its old end and off).
func (f *File) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("stage: write at negative offset %d", off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.waitBacklog(ctx); err != nil {
		return 0, err
	}
	end := off + int64(len(p))
	first, last := int(off/f.bs), int((end-1)/f.bs)
	reserved, err := f.lockWithSpace(ctx, func() int64 { return f.growth(end, first, last) })
	if err != nil {
		return 0, err
	}
	defer f.mu.Unlock()
	before := f.accounted
	n, err := f.writeLocked(ctx, p, off, first, last)
	f.m.settle(reserved, f.accounted-before)
	return n, err
}

func (f *File) writeLocked(ctx context.Context, p []byte, off int64, first, last int) (int, error) {
	end := off + int64(len(p))
	var newSize int64
checks:
	if f.dropped {
		return 0, f.droppedErr()
	}
	if err := f.checkAppendLocked("write", off); err != nil {
		return 0, err
	}
	newSize = max(f.size, end)
	// Refuse before changing anything: a partial rewrite of a block whose
	// only copy is in the service as an uncommitted block.
	for i := first; i <= last && i < len(f.blocks); i++ {
		start := int64(i) * f.bs
		if f.blocks[i].state == blkEvicted && (off > start || end < start+blen(i, newSize, f.bs)) {
			return 0, fmt.Errorf("stage: writing %q at %d: %w", f.name, off, ErrEvicted)
		}
	}
	// Blocks written only in part need their old content first; not
	// the block an append to an append blob begins in, whose base part
	// is only ever read (see unfetched). fetch releases f.mu for the
	// download: if the file changed meanwhile, every check above is made
	// again.
	for i := first; i <= last && i < len(f.blocks); i++ {
		start := int64(i) * f.bs
		if f.blocks[i].state == blkRemote && f.appendOnly && off >= f.baseLimit && (!f.hasUnfetched || f.unfetched == i) {
			f.unfetched, f.hasUnfetched = i, true
			continue
		}
		if f.hasUnfetched && i == f.unfetched && off < f.baseLimit {
			if err := f.fillUnfetchedLocked(ctx); err != nil {
				return 0, err
			}
		}
		if f.blocks[i].state == blkRemote && (off > start || end < start+blen(i, newSize, f.bs)) {
			again, err := f.fetch(ctx, i)
			if err != nil {
				return 0, err
			}
			if again {
				goto checks
			}
		}
	}
	if err := f.markDirty(); err != nil {
		return 0, err
	}
	f.grow(newSize)
	f.m.mu.Lock()
	f.m.clock++
	now := f.m.clock
	f.m.mu.Unlock()
	journal := false
	for i := first; i <= last; i++ {
		b := &f.blocks[i]
		if b.state != blkLocal {
			b.state = blkLocal
			b.spans, b.frag = nil, false
			f.accounted += blen(i, f.size, f.bs)
		}
		start := int64(i) * f.bs
		b.cover(max(off, start)-start, min(end, start+f.bs)-start)
		if start < f.baseLimit && !b.jLocal {
			b.jLocal = true
			journal = true
		}
		b.ver = f.nextVer()
		b.lastUse = now
	}
	// From here on a failure leaves the file other than the program
	// believes (the state says written, the cache file may not hold it):
	// it is marked incomplete, never to be published.
	n, err := f.data.WriteAt(p, off)
	if err != nil {
		f.sum.h = nil
		err = fmt.Errorf("stage: writing the cache file of %q: %w", f.name, err)
		f.markIncompleteLocked(off, err)
		return n, err
	}
	f.sum.wrote(p, off)
	// Data first, journal second: a crash in between loses only this
	// write, which was never acknowledged.
	if journal {
		if err := f.writeJournal(); err != nil {
			f.markIncompleteLocked(off, err)
			return 0, err
		}
	}
	f.streamFull(first-1, last)
	return n, nil
}

// streamFull starts uploading the full blocks from..to that the writer has
// moved past and that have no gaps left: the sequential writer's blocks go
// out while it writes on.
func (f *File) streamFull(from, to int) {
	for i := max(from, 0); i <= to && i < len(f.blocks)-1; i++ {
		b := &f.blocks[i]
		if b.state == blkLocal && !f.inflight[i] && !b.queued && !f.uploaded(i) && b.complete(f.bs) {
			f.schedule(i)
		}
	}
}

// fetch copies block i's base content into the cache file. It downloads
// with f.mu released (one slow GET must not stall every other operation on
// the file) and writes the bytes in only if neither the block nor the base
// changed meanwhile; again reports that they did, and nothing was written.
// f.mu held on entry and on return.
func (f *File) fetch(ctx context.Context, i int) (again bool, err error) {
	start := int64(i) * f.bs
	n := min(start+f.bs, f.baseLimit, f.size) - start
	if n > 0 {
		buf, err := f.m.getBuf(ctx)
		if err != nil {
			return false, err
		}
		defer f.m.putBuf(buf)
		name, etag, limit, ver := f.baseName, f.baseETag, f.baseLimit, f.blocks[i].ver
		f.mu.Unlock()
		err = readBase(ctx, f.m.store, buf[:n], start, name, etag, limit)
		f.mu.Lock()
		if f.dropped || i >= len(f.blocks) || f.blocks[i].state != blkRemote || f.blocks[i].ver != ver ||
			f.baseName != name || f.baseETag != etag || f.baseLimit != limit || n != min(start+f.bs, f.baseLimit, f.size)-start {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if _, err := f.data.WriteAt(buf[:n], start); err != nil {
			return false, fmt.Errorf("stage: writing the cache file of %q: %w", f.name, err)
		}
	}
	f.blocks[i].state = blkLocal
	f.blocks[i].whole(f.bs)
	f.accounted += blen(i, f.size, f.bs)
	return false, nil
}

// Localize copies every part of the file still read from the service into
// the cache file, so that it stays readable after the blob is removed.
// It changes no content: the file is no dirtier than before. A part
// uploaded and dropped from the cache (ErrEvicted) cannot be had.
func (f *File) Localize(ctx context.Context) error {
	reserved, err := f.lockWithSpace(ctx, func() int64 {
		var n int64
		for i := range f.blocks {
			if f.blocks[i].state == blkRemote {
				n += blen(i, f.size, f.bs)
			}
		}
		return n
	})
	if err != nil {
		return err
	}
	defer f.mu.Unlock()
	before := f.accounted
	err = f.fillUnfetchedLocked(ctx)
	for i := 0; err == nil && i < len(f.blocks); i++ {
		switch f.blocks[i].state {
		case blkRemote:
			var again bool
			if again, err = f.fetch(ctx, i); again {
				i = -1 // the file changed during the download: look again
			}
		case blkEvicted:
			err = fmt.Errorf("stage: keeping a local copy of %q: %w", f.name, ErrEvicted)
		}
	}
	f.m.settle(reserved, f.accounted-before)
	return err
}

// fillUnfetchedLocked fetches the base part of the unfetched block into
// the cache file, for what needs the block whole (a block upload, a
// write below the base's end).
func (f *File) fillUnfetchedLocked(ctx context.Context) error {
	if !f.hasUnfetched {
		return nil
	}
	i := f.unfetched
	start := int64(i) * f.bs
	if n := min(f.baseLimit, f.size) - start; n > 0 && i < len(f.blocks) {
		body, _, err := f.m.store.Download(ctx, f.baseName, start, n, blob.Conditions{IfMatch: f.baseETag})
		if err != nil {
			return f.baseError(err)
		}
		got, err := io.Copy(io.NewOffsetWriter(f.data, start), io.LimitReader(body, n))
		body.Close()
		if err == nil && got != n {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("stage: reading %q from the service: %w", f.baseName, err)
		}
		f.blocks[i].whole(f.bs)
	}
	f.hasUnfetched = false
	return nil
}

func (f *File) baseError(err error) error {
	if errors.Is(err, blob.ErrPrecondition) || errors.Is(err, blob.ErrNotFound) {
		return fmt.Errorf("stage: %q was changed or removed by another writer since it was opened; its unchanged part cannot be read any more: %w", f.baseName, err)
	}
	return fmt.Errorf("stage: reading %q from the service: %w", f.baseName, err)
}

// ReadAt reads what the file holds now, own writes included. At the end
// of the file it returns fewer bytes and io.EOF.
//
// Parts still in the service are read without f.mu held, so a slow GET
// does not stall writes, getattr or a commit of this file: the base and
// the block's version are noted first and checked again after the read;
// if either moved (a write, a truncate, a commit that took in a new
// version), that part is read again from wherever it now is.
func (f *File) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, errClosed
	}
	if f.dropped {
		return 0, f.droppedErr()
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), f.size-off)
	for done := int64(0); done < want; {
		pos := off + done
		i := int(pos / f.bs)
		seg := p[done:min(want, int64(i+1)*f.bs-off)]
		switch f.blocks[i].state {
		case blkLocal, blkZero:
			if f.hasUnfetched && i == f.unfetched && pos < f.baseLimit {
				// The base's part of a block an append began in is read
				// from the service, without f.mu, as a remote block is.
				k := min(int64(len(seg)), f.baseLimit-pos)
				name, etag, limit := f.baseName, f.baseETag, f.baseLimit
				f.mu.Unlock()
				err := readBase(ctx, f.m.store, seg[:k], pos, name, etag, limit)
				f.mu.Lock()
				if f.closed || f.dropped || !f.hasUnfetched || f.unfetched != i || f.baseETag != etag || f.baseLimit != limit {
					if f.closed {
						return int(done), errClosed
					}
					if f.dropped {
						return int(done), f.droppedErr()
					}
					want = max(done, min(want, f.size-off))
					continue // changed meanwhile: read this part again
				}
				if err != nil {
					return int(done), err
				}
				done += k
				continue
			}
			if _, err := f.data.ReadAt(seg, pos); err != nil {
				return int(done), fmt.Errorf("stage: reading the cache file of %q: %w", f.name, err)
			}
		case blkRemote:
			again, err := f.readRemoteUnlocked(ctx, seg, pos, i)
			if err != nil {
				return int(done), err
			}
			if again {
				// The file changed under the read: its size may have too.
				if f.closed {
					return int(done), errClosed
				}
				if f.dropped {
					return int(done), f.droppedErr()
				}
				want = max(done, min(want, f.size-off))
				continue
			}
		case blkEvicted:
			return int(done), fmt.Errorf("stage: reading %q at %d: %w", f.name, pos, ErrEvicted)
		}
		done += int64(len(seg))
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

// readLocalLocked reads what the cache file holds of [off, off+len(p)),
// for a commit that sends only what was written (an append): every part
// of it must be local. f.mu held.
func (f *File) readLocalLocked(p []byte, off int64) error {
	for done := int64(0); done < int64(len(p)); {
		pos := off + done
		i := int(pos / f.bs)
		seg := p[done:min(int64(len(p)), int64(i+1)*f.bs-off)]
		if i >= len(f.blocks) || (f.blocks[i].state != blkLocal && f.blocks[i].state != blkZero) {
			return fmt.Errorf("stage: %q at %d: the part to send is not in the cache file", f.name, pos)
		}
		if _, err := f.data.ReadAt(seg, pos); err != nil {
			return fmt.Errorf("stage: reading the cache file of %q: %w", f.name, err)
		}
		done += int64(len(seg))
	}
	return nil
}

// readRemoteUnlocked reads base content of block i straight into p (a
// file open for writing that is only read does not fill the cache),
// releasing f.mu for the download. again reports that the block or the
// base changed meanwhile, so p holds nothing usable and the caller reads
// that part again. f.mu held on entry and on return.
func (f *File) readRemoteUnlocked(ctx context.Context, p []byte, off int64, i int) (again bool, err error) {
	name, etag, limit, ver := f.baseName, f.baseETag, f.baseLimit, f.blocks[i].ver
	f.mu.Unlock()
	err = readBase(ctx, f.m.store, p, off, name, etag, limit)
	f.mu.Lock()
	if f.closed || f.dropped || i >= len(f.blocks) || f.blocks[i].state != blkRemote || f.blocks[i].ver != ver ||
		f.baseName != name || f.baseETag != etag || f.baseLimit != limit {
		return true, nil
	}
	if err != nil && errors.Is(err, blob.ErrPrecondition) {
		// A commit of this file may be replacing the base in the service
		// between its upload and taking in the new version: wait for it
		// to end (without mu, which the commit takes), and read again if
		// the base moved on.
		f.mu.Unlock()
		f.commitMu.Lock()
		f.commitMu.Unlock()
		f.mu.Lock()
		if f.baseETag != etag {
			return true, nil
		}
	}
	return false, err
}

// Truncate sets the file's size, cutting or extending with zeros.
func (f *File) Truncate(ctx context.Context, size int64) error {
	if size < 0 {
		return fmt.Errorf("stage: truncate to negative size %d", size)
	}
	reserved, err := f.lockWithSpace(ctx, func() int64 { return f.growth(size, 0, -1) })
	if err != nil {
		return err
	}
	defer f.mu.Unlock()
	before := f.accounted
	err = f.truncateLocked(size)
	f.m.settle(reserved, f.accounted-before)
	return err
}

func (f *File) truncateLocked(size int64) error {
	if f.dropped && size != 0 {
		return f.droppedErr()
	}
	if size == f.size {
		return nil
	}
	if err := f.checkAppendLocked("truncate", size); err != nil {
		return err
	}
	nb := nblocks(size, f.bs)
	if size < f.size && nb > 0 {
		b := &f.blocks[nb-1]
		if b.state == blkEvicted && blen(nb-1, size, f.bs) != blen(nb-1, f.size, f.bs) {
			return fmt.Errorf("stage: truncating %q to %d: %w", f.name, size, ErrEvicted)
		}
	}
	if err := f.markDirty(); err != nil {
		return err
	}
	if err := f.data.Truncate(size); err != nil {
		return fmt.Errorf("stage: truncating the cache file of %q: %w", f.name, err)
	}
	f.sum.truncated(size)
	if f.state == stIncomplete && size <= f.incompleteAt {
		f.clearIncomplete(size)
		if err := f.writeJournal(); err != nil {
			return err
		}
	}
	if size > f.size {
		f.grow(size)
		return nil
	}
	for i := nb; i < len(f.blocks); i++ {
		if f.blocks[i].state == blkLocal {
			f.accounted -= blen(i, f.size, f.bs)
		}
	}
	f.blocks = f.blocks[:nb]
	if nb > 0 {
		b := &f.blocks[nb-1]
		if b.state == blkLocal {
			f.accounted -= blen(nb-1, f.size, f.bs) - blen(nb-1, size, f.bs)
		}
		if blen(nb-1, size, f.bs) != blen(nb-1, f.size, f.bs) {
			b.ver = f.nextVer()
		}
	}
	f.size = size
	if size < f.baseLimit {
		f.baseLimit = size
		return f.writeJournal()
	}
	return nil
}

// Sync makes what was written so far survive a power loss too, not only a
// crash of the daemon (which the page cache already survives): fsync(2) of
// the cache file, its journal and the directory. The fs layer calls it for fsync when it does not commit.
func (f *File) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errClosed
	}
	if err := f.data.Sync(); err != nil {
		return fmt.Errorf("stage: syncing the cache file of %q: %w", f.name, err)
	}
	return f.writeJournalSync(true)
}

// CachePath is the cache file holding the staged data, for messages that
// tell the user where uncommitted data is kept.
func (f *File) CachePath() string { return dataPath(f.m.root, f.id) }

// Rename makes later commits go to name (a file renamed while open).
// Unchanged parts are still read from the blob it was opened on, and the
// commit requires name to be free. A file whose blob moved with it wants
// Moved instead.
func (f *File) Rename(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == f.name {
		return
	}
	f.renameLocked(name)
	f.journalLogged()
}

func (f *File) renameLocked(name string) {
	f.name = name
	f.target = ""
	f.dirty = true
	if f.state == stClean {
		f.setState(stWriting)
	}
	f.seq++
	// Uploaded blocks belong to the old name's block list.
	for i := range f.blocks {
		if f.blocks[i].state != blkEvicted {
			f.blocks[i].upVer = 0
		}
	}
}

// Moved says the blob this file was opened on or last committed was
// copied to name as p (the fs layer moved it): later commits go to name
// and may replace p, and unchanged parts are read from p. Unlike Rename it
// adds no change: a file with nothing uncommitted before the move has
// nothing uncommitted after it, as p holds its content.
func (f *File) Moved(name string, p *blob.Properties) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dirty := f.dirty
	if name != f.name {
		f.renameLocked(name)
	}
	f.resetBaseLocked(p)
	if !dirty {
		f.dirty = false
		if f.state == stWriting {
			f.setState(stClean)
		}
	}
	f.journalLogged()
}

// Orphan is Removed, for callers that cannot act on its error (logged).
func (f *File) Orphan() {
	if err := f.Removed(); err != nil {
		f.m.log.WithError(err).Error("cannot record a removal in the staging journal")
	}
}

// Close releases the staged data once committed. What must not be
// published (a failed commit, a failed write) goes to lost+found now;
// what a commit was asked for but did not finish (the staging area was
// closing) stays in the cache directory for the next mount's Recover, as
// does content never asked to be committed (which Recover keeps in
// lost+found); a removed file is dropped. Its space is released from the
// cache's accounting in every case.
func (f *File) Close() error { return f.close(false) }

// Discard is Removed then Close: it drops the staged data without
// committing it, for a file removed while open whose content nobody can
// reach any more.
func (f *File) Discard() error {
	if err := f.Removed(); err != nil {
		f.m.log.WithError(err).Error("cannot record a removal in the staging journal")
	}
	return f.close(true)
}

func (f *File) close(discard bool) error {
	f.commitMu.Lock()
	defer f.commitMu.Unlock()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.queue = nil
	for f.workers > 0 {
		ch := f.changed
		f.mu.Unlock()
		<-ch
		f.mu.Lock()
	}
	dirty, st, name := f.dirty, f.state, f.name
	discard = discard || st == stRemoved
	var adopt *pendingAdoption
	if f.adopt != nil && f.adopt.seq == f.seq && !dirty && st == stClean && !discard {
		adopt = f.adopt
	}
	f.m.settle(0, -f.accounted)
	f.accounted = 0
	f.mu.Unlock()

	f.m.mu.Lock()
	delete(f.m.files, f)
	f.m.mu.Unlock()
	keep := dirty && !discard
	if !keep && !discard && st == stClean {
		f.mu.Lock()
		kept := f.m.recycle(f)
		f.mu.Unlock()
		if kept {
			return nil
		}
	}
	err := f.data.Close()
	f.mu.Lock()
	f.jlog.close()
	if keep && (st == stFailed || st == stIncomplete) {
		f.keepAside()
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	if keep {
		l := f.m.log.WithFields(map[string]any{"blob": name, "cache_file": dataPath(f.m.root, f.id)})
		if st == stClosing {
			l.Warn("closed while its commit was cut short (the staging area is closing); kept in the cache directory, the next mount commits it")
		} else {
			l.Warn("closed with changes never asked to be committed; kept in the cache directory, the next mount moves it to lost+found")
		}
		return err
	}
	if adopt != nil && err == nil && f.m.opts.ReadCache.Adopt(adopt.a) {
		// The cache file is the read cache's now; the journal goes.
		os.Remove(journalPath(f.m.root, f.id))
		return nil
	}
	f.remove()
	return err
}

// discard drops a file that never got going.
func (f *File) discard() {
	f.data.Close()
	f.jlog.close()
	f.remove()
}

func (f *File) remove() { f.m.removeStaged(f.id) }

func (f *File) journal() *journal {
	j := &journal{
		ID: f.id, Name: f.name, UploadName: f.upName,
		BaseName: f.baseName, BaseETag: f.baseETag, BaseLimit: f.baseLimit,
		BlockSize: f.bs, Dirty: f.dirty, Closing: f.state == stClosing && f.dirty, Unconditional: f.unconditional,
		ContentType: f.ctype, Metadata: f.meta, Target: f.target, AppendOnly: f.appendOnly,
		State: f.state.String(), Reason: f.reason, NoSpace: f.noSpace,
	}
	if f.state == stIncomplete {
		j.IncompleteAt = f.incompleteAt
	}
	if b := f.baseProps; b != nil {
		j.BaseSize = b.Size
		if b.ContentHeaders != (blob.ContentHeaders{}) {
			h := b.ContentHeaders
			j.BaseHeaders = &h
		}
		j.BaseTier, j.BaseTags, j.BaseTagCount = b.ExplicitTier(), b.Tags, b.TagCount
		j.BaseMetaLowered = b.MetaNamesLowered
	}
	var local, evicted []int
	for i := range f.blocks {
		switch {
		case f.blocks[i].state == blkEvicted:
			evicted = append(evicted, i)
		case f.blocks[i].jLocal && int64(i)*f.bs < f.baseLimit:
			local = append(local, i)
		}
	}
	j.Local, j.Evicted = runs(local), runs(evicted)
	return j
}

func (f *File) writeJournal() error { return f.writeJournalSync(false) }

func (f *File) writeJournalSync(sync bool) error {
	j := f.journal()
	if err := f.jlog.append(j, sync); err != nil {
		f.jClean = false
		return err
	}
	f.jDirty, f.jState, f.jClean = j.Dirty, f.state, !j.Dirty && f.state == stClean
	return nil
}

// journalLogged writes the journal for changes that cannot report an
// error to their caller: a failure is logged, and the next write retries.
func (f *File) journalLogged() {
	if err := f.writeJournal(); err != nil {
		f.jDirty = false
		f.m.log.WithError(err).WithField("blob", f.name).Error("cannot update the staging journal")
	}
}
