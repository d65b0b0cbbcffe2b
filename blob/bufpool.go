package blob

import "sync"

// bufPool recycles transfer buffers by size, so that a stream of parallel
// transfers does not make the garbage collector chase megabytes of blocks.
type bufPool struct {
	mu    sync.Mutex
	pools map[int]*sync.Pool
}

func (b *bufPool) pool(n int) *sync.Pool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pools == nil {
		b.pools = map[int]*sync.Pool{}
	}
	p := b.pools[n]
	if p == nil {
		p = &sync.Pool{New: func() any { s := make([]byte, n); return &s }}
		b.pools[n] = p
	}
	return p
}

// get returns a buffer of length n; small ones are not pooled.
func (b *bufPool) get(n int) []byte {
	if n < 64<<10 {
		return make([]byte, n)
	}
	return *b.pool(n).Get().(*[]byte)
}

func (b *bufPool) put(buf []byte) {
	if cap(buf) < 64<<10 {
		return
	}
	buf = buf[:cap(buf)]
	b.pool(len(buf)).Put(&buf)
}
