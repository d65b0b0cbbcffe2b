// Package readahead turns FUSE reads into ranged downloads: a sequential
// reader gets parallel ranged GETs ahead of it, a random reader only what it
// asked for, and every range is pinned to the ETag seen at open so a reader
// never mixes two versions of a blob.
//
// Sequential detection: a read that starts where the previous one ended
// (give or take the reordering of the kernel's parallel reads) extends a
// streak; reads at offset 0 start one. While the streak lasts, the reader
// works in aligned blocks of BlockSize, keeping up to Concurrency of them in
// flight ahead of the reader; the window grows by one block per
// sequential read, so a reader that turns out random wastes little. Any other
// read downloads exactly the bytes asked for, straight into the caller's
// buffer. Blocks come from a Pool shared by the mount, which bounds memory.
package readahead

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/blobfs/blobfs/blob"
)

// Store is what the read path needs from the blob layer (*blob.Container).
type Store interface {
	Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error)
}

// Defaults for Options' zero values.
const (
	DefaultBlockSize   = 8 << 20
	DefaultConcurrency = 8
)

// Options tune reads. Zero values take the defaults.
type Options struct {
	BlockSize   int64 // size of one ranged GET; ignored when Pool is set (its block size wins)
	Concurrency int   // ranged GETs in flight per reader at most
	// Pool lends the readahead buffers; share one per mount so that memory
	// stays bounded whatever the number of open files. nil gives the reader
	// a pool of its own of Concurrency+2 blocks.
	Pool *Pool
	// Cache, when set, is asked for every block and every direct read
	// before the service, and keeps what the service sent.
	Cache Cache
}

// Cache keeps bytes of blob versions on local disk (*readcache.Cache).
// Both calls name the version the reader was opened at: a cache must
// serve only bytes it got for that very version.
type Cache interface {
	// ReadAt fills p with the bytes at off and reports true when it
	// holds them all.
	ReadAt(name, etag string, size int64, p []byte, off int64) bool
	// Store keeps p, the bytes at off, as read from the service.
	Store(name, etag string, size int64, p []byte, off int64)
}

// nearReads is how many read sizes away from the previous read's end a
// read may start and still count as sequential: the kernel issues
// readahead in parallel, so sequential reads arrive slightly out of order.
// Scaling with the read size keeps small random reads from looking
// sequential by chance.
const nearReads = 4

// Reader reads one version of one blob.
type Reader struct {
	store Store
	name  string
	size  int64
	etag  string
	bs    int64
	conc  int
	pool  *Pool
	cache Cache

	ctx    context.Context // fetches; cancelled by Close
	cancel context.CancelFunc

	mu       sync.Mutex
	chunks   map[int64]*chunk
	lastEnd  int64
	streak   int // sequential reads in a row
	inflight int
	reads    int
	closed   bool
}

// chunk is one aligned block, fetched or being fetched.
type chunk struct {
	idx  int64
	buf  []byte // nil once returned to the pool
	n    int
	done chan struct{}
	err  error
	gone bool // dropped from the window; the fetcher or the last Release returns buf
	// refs counts Results pointing into buf: a reply still being written
	// from it must not see it reused for another block.
	refs int
}

// New returns a reader of the blob name of size bytes at etag. It sends
// nothing by itself: size and etag come from the listing or lookup, so a
// small file costs exactly one GET.
func New(store Store, name string, size int64, etag string, opts Options) *Reader {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	pool := opts.Pool
	if pool == nil {
		bs := opts.BlockSize
		if bs <= 0 {
			bs = DefaultBlockSize
		}
		pool = NewPool(bs, int64(opts.Concurrency+2)*bs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Reader{
		store: store, name: name, size: size, etag: etag,
		bs: pool.BlockSize(), conc: opts.Concurrency, pool: pool, cache: opts.Cache,
		ctx: ctx, cancel: cancel,
		chunks: map[int64]*chunk{},
	}
}

// ErrClosed is a read on a Reader closed meanwhile.
var ErrClosed = errors.New("readahead: reader already closed")

// ReadAt reads len(p) bytes at off; at the end of the blob it returns fewer
// and io.EOF. A blob changed since open is blob.ErrPrecondition.
func (r *Reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	res, err := r.ReadRef(ctx, p, off)
	if res == nil {
		return 0, err
	}
	defer res.Release()
	at := 0
	for _, s := range res.Segments {
		at += copy(p[at:], s)
	}
	return res.N, err
}

// Result is the bytes of one read: slices of readahead blocks where the
// read was served from them, slices of the caller's buffer otherwise. The
// blocks stay out of the pool until Release, so a FUSE reply can be written
// straight from them instead of being copied into the request's buffer.
type Result struct {
	Segments [][]byte // in order; N bytes in all
	N        int

	r    *Reader
	held []*chunk
}

// Release gives the blocks back; the Segments must not be used after it.
// It may be called more than once.
func (res *Result) Release() {
	if res == nil || res.held == nil {
		return
	}
	r := res.r
	r.mu.Lock()
	for _, c := range res.held {
		r.unref(c)
	}
	r.mu.Unlock()
	res.held = nil
}

// ReadRef is ReadAt without the copy out of the readahead blocks: p is
// used only for the bytes that do not come from a block. Errors as ReadAt;
// with io.EOF the Result holds the bytes up to the end. The caller must
// Release a non-nil Result.
func (r *Reader) ReadRef(ctx context.Context, p []byte, off int64) (*Result, error) {
	if off < 0 {
		return nil, fmt.Errorf("readahead: negative offset %d", off)
	}
	if off >= r.size {
		return &Result{r: r}, io.EOF
	}
	asked := len(p)
	want := min(int64(asked), r.size-off)
	p = p[:want]
	res := &Result{r: r, N: int(want)}
	if r.plan(off, want) {
		if err := r.readChunks(ctx, res, p, off); err != nil {
			res.Release()
			return nil, r.closedErr(ctx, err)
		}
	} else {
		if err := r.direct(ctx, p, off); err != nil {
			return nil, r.closedErr(ctx, err)
		}
		res.Segments = [][]byte{p}
	}
	if want < int64(asked) {
		return res, io.EOF
	}
	return res, nil
}

// closedErr is err, or ErrClosed when the reader was closed while the
// read waited: the fetches Close cancelled fail with context.Canceled,
// which the caller must not take for its own read being interrupted.
func (r *Reader) closedErr(ctx context.Context, err error) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w (%v)", ErrClosed, err)
	}
	return err
}

// plan updates the sequential streak and says whether to serve the read
// from blocks; if so it starts the fetches the read and the window need.
func (r *Reader) plan(off, want int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	fresh := r.reads == 0 && off == 0
	near := min(nearReads*want, 1<<20)
	switch {
	case fresh:
		r.streak = 1
	case r.reads > 0 && off >= r.lastEnd-near && off <= r.lastEnd+near:
		r.streak++
	default:
		r.streak = 0
	}
	r.reads++
	if r.streak == 0 {
		r.lastEnd = off + want
	} else {
		r.lastEnd = max(r.lastEnd, off+want)
	}
	first, last := off/r.bs, (off+want-1)/r.bs
	covered := true
	for i := first; i <= last; i++ {
		if r.chunks[i] == nil {
			covered = false
		}
	}
	if !covered && !fresh && r.streak < 2 {
		return false
	}
	// Blocks well behind the reader are done with; keep one for reads
	// that arrive late.
	for i, c := range r.chunks {
		if i < first-1 || i > last+int64(r.conc)+1 {
			r.drop(c)
		}
	}
	for i := first; i <= last; i++ {
		if r.chunks[i] == nil && !r.start(i) {
			return false // no memory: read directly
		}
	}
	// Keep Concurrency GETs in flight ahead of the reader, as a direct
	// parallel download would, once the streak has grown that far.
	ahead := int64(min(r.conc, r.streak-1))
	for i := last + 1; i <= last+ahead && i*r.bs < r.size && r.inflight < r.conc; i++ {
		if r.chunks[i] == nil && !r.start(i) {
			break
		}
	}
	return true
}

// start fetches block i in the background, if a buffer is free.
func (r *Reader) start(i int64) bool {
	buf := r.pool.tryGet()
	if buf == nil {
		return false
	}
	c := &chunk{idx: i, buf: buf, done: make(chan struct{})}
	r.chunks[i] = c
	r.inflight++
	go r.fetch(c)
	return true
}

func (r *Reader) fetch(c *chunk) {
	start := c.idx * r.bs
	n := min(r.bs, r.size-start)
	cached := r.cache != nil && r.cache.ReadAt(r.name, r.etag, r.size, c.buf[:n], start)
	var err error
	if !cached {
		err = r.download(r.ctx, c.buf[:n], start)
	}
	keep := err == nil && !cached && r.cache != nil
	r.mu.Lock()
	c.n, c.err = int(n), err
	if keep {
		c.refs++ // the buffer stays ours until it is stored
	}
	close(c.done)
	r.inflight--
	if err != nil && r.chunks[c.idx] == c {
		delete(r.chunks, c.idx) // a later read tries again
		c.gone = true
	}
	if c.gone && c.refs == 0 {
		r.pool.put(c.buf)
		c.buf = nil
	}
	r.mu.Unlock()
	if keep {
		// After done: the reader waiting for this block does not wait
		// for the disk too.
		r.cache.Store(r.name, r.etag, r.size, c.buf[:n], start)
		r.mu.Lock()
		r.unref(c)
		r.mu.Unlock()
	}
}

// drop removes c from the window. Called with r.mu held.
func (r *Reader) drop(c *chunk) {
	delete(r.chunks, c.idx)
	c.gone = true
	select {
	case <-c.done:
		if c.buf != nil && c.refs == 0 {
			r.pool.put(c.buf)
			c.buf = nil
		}
	default: // the fetcher returns it
	}
	// With references left, the last Release returns it.
}

// readChunks gathers the read from its blocks, waiting for them, and holds
// a reference on each block it points into.
func (r *Reader) readChunks(ctx context.Context, res *Result, p []byte, off int64) error {
	for done := int64(0); done < int64(len(p)); {
		pos := off + done
		i := pos / r.bs
		seg := p[done:min(int64(len(p)), (i+1)*r.bs-off)]
		r.mu.Lock()
		c := r.chunks[i]
		r.mu.Unlock()
		if c != nil {
			select {
			case <-c.done:
			default:
				// Asked only now: a ctx may make its Done channel on
				// demand, at a cost a ready block should not pay.
				select {
				case <-c.done:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			r.mu.Lock()
			if c.err != nil {
				r.mu.Unlock()
				return c.err
			}
			if c.buf != nil {
				c.refs++
				res.held = append(res.held, c)
				from := pos - i*r.bs
				res.Segments = append(res.Segments, c.buf[from:from+int64(len(seg))])
				r.mu.Unlock()
				done += int64(len(seg))
				continue
			}
			// Dropped by a concurrent read that moved the window on.
			r.mu.Unlock()
		}
		if err := r.direct(ctx, seg, pos); err != nil {
			return err
		}
		res.Segments = append(res.Segments, seg)
		done += int64(len(seg))
	}
	return nil
}

// unref drops a Result's reference on c; the last one returns the buffer
// of a block that has left the window. Called with r.mu held.
func (r *Reader) unref(c *chunk) {
	c.refs--
	if c.refs == 0 && c.gone && c.buf != nil {
		r.pool.put(c.buf)
		c.buf = nil
	}
}

// direct downloads exactly p's range, into p.
func (r *Reader) direct(ctx context.Context, p []byte, off int64) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if r.cache != nil && r.cache.ReadAt(r.name, r.etag, r.size, p, off) {
		return nil
	}
	if err := r.download(ctx, p, off); err != nil {
		return err
	}
	if r.cache != nil {
		// Exactly what was read: a random reader fills the cache with
		// nothing it did not ask for.
		r.cache.Store(r.name, r.etag, r.size, p, off)
	}
	return nil
}

// download fills p from off, If-Match the pinned ETag. A body cut short
// is tried again: the retries of the blob client end with the headers.
func (r *Reader) download(ctx context.Context, p []byte, off int64) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var body io.ReadCloser
		body, _, err = r.store.Download(ctx, r.name, off, int64(len(p)), blob.Conditions{IfMatch: r.etag})
		if err != nil {
			if errors.Is(err, blob.ErrPrecondition) || errors.Is(err, blob.ErrNotFound) {
				return fmt.Errorf("readahead: %q was replaced or removed since it was opened; reopen it to read the new version: %w", r.name, err)
			}
			return fmt.Errorf("readahead: reading %q: %w", r.name, err)
		}
		_, err = io.ReadFull(body, p)
		body.Close()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("readahead: reading %q at %d: %w", r.name, off, err)
	}
	return nil
}

// Close stops readahead and returns its buffers.
func (r *Reader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	r.cancel()
	for _, c := range r.chunks {
		r.drop(c)
	}
}
