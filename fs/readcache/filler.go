package readcache

import (
	"bytes"
	"sync"
)

// Small pieces are stored by the cache's own goroutine, the filler, not
// by the caller: Store copies the bytes, queues them and returns. A small
// file written through the mount is stored at its close, and a small file
// read at its first read, both on the path a program waits on; the store
// (a record encoded and written to its pack, through the page cache) was
// about 0.2 ms of daemon CPU per file, a tenth of what a 4 KiB file
// written through the mount costs end to end. Large pieces (readahead
// blocks) are still stored by the caller: copying MiBs to queue them
// would cost about what writing them does.
//
// A read of a blob with a store still queued waits for it (the program
// that wrote a file and reads it back is served from the cache), as do
// Stats and Close: the cache never loses a store it took, it only makes
// it later.
type filler struct {
	// sendMu: Store sends under RLock, Close closes in (and sets it nil)
	// under Lock.
	sendMu sync.RWMutex
	in     chan fill // GUARDED_BY(sendMu)
	done   sync.WaitGroup
	// hold, if set (tests), is called before each queued store is made.
	hold func()
}

// fillQueue bounds the stores queued; past it Store stores itself, so a
// burst of small reads costs memory of at most fillQueue × packMax.
const fillQueue = 64

// fill is one queued store.
type fill struct {
	name, etag string
	size, off  int64
	data       []byte
}

// startFiller starts the goroutine. Called by Open, after rebuild.
func (c *Cache) startFiller() {
	in := make(chan fill, fillQueue)
	c.fill.in = in
	c.queued = map[string]int{}
	c.drained = sync.NewCond(&c.mu)
	c.fill.done.Add(1)
	go func() {
		defer c.fill.done.Done()
		for f := range in {
			if c.fill.hold != nil {
				c.fill.hold()
			}
			c.storeNow(f.name, f.etag, f.size, f.data, f.off)
			c.mu.Lock()
			if c.queued[f.name]--; c.queued[f.name] <= 0 {
				delete(c.queued, f.name)
			}
			c.drained.Broadcast()
			c.mu.Unlock()
		}
	}()
}

// stopFiller stores what is queued and ends the goroutine. Called by
// Close before the cache closes.
func (c *Cache) stopFiller() {
	c.fill.sendMu.Lock()
	if c.fill.in != nil {
		close(c.fill.in)
		c.fill.in = nil
	}
	c.fill.sendMu.Unlock()
	c.fill.done.Wait()
}

// queue hands a small store to the filler, and reports whether it did
// (false: the queue is full or closing, the caller stores it).
func (c *Cache) queue(name, etag string, size int64, p []byte, off int64) bool {
	c.fill.sendMu.RLock()
	defer c.fill.sendMu.RUnlock()
	c.mu.Lock()
	if c.closed || c.fill.in == nil || len(c.fill.in) == cap(c.fill.in) {
		c.mu.Unlock()
		return false
	}
	c.queued[name]++
	c.mu.Unlock()
	// Only queue() sends, under sendMu's read lock, and the check above is
	// racy only towards a queue filled meanwhile: then the send waits for
	// the filler, briefly.
	c.fill.in <- fill{name: name, etag: etag, size: size, off: off, data: bytes.Clone(p)}
	return true
}

// awaitQueuedLocked waits until no store of name is queued (every one of
// any name, for ""). Called with c.mu held; it is let go while waiting.
func (c *Cache) awaitQueuedLocked(name string) {
	for c.drained != nil && ((name == "" && len(c.queued) > 0) || (name != "" && c.queued[name] > 0)) {
		c.drained.Wait()
	}
}

// waitFills waits until every queued store is made (tests, benchmarks).
func (c *Cache) waitFills() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.awaitQueuedLocked("")
}
