package transfer

import "sync"

// Buffers recycle transfer buffers by size, so that a stream of transfers
// does not make the garbage collector chase megabytes of blocks: give the
// same Buffers to every transfer (Options.Buffers). Safe for concurrent use.
type Buffers struct {
	mu    sync.Mutex
	pools map[int]*sync.Pool
}

func (b *Buffers) pool(n int) *sync.Pool {
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

// get returns a buffer of length n; small ones are not pooled, nor any
// when b is nil.
func (b *Buffers) get(n int) []byte {
	if n < 64<<10 || b == nil {
		return make([]byte, n)
	}
	return *b.pool(n).Get().(*[]byte)
}

func (b *Buffers) put(buf []byte) {
	if cap(buf) < 64<<10 || b == nil {
		return
	}
	buf = buf[:cap(buf)]
	b.pool(len(buf)).Put(&buf)
}
