package readahead

import (
	"sync"

	"github.com/blobfs/blobfs/fs/blockbuf"
)

// Pool lends fixed-size block buffers to the readers of one mount, at most
// Max of them at once: it is the bound on readahead memory, however many
// files are open (Max × BlockSize bytes). Buffers are allocated on first
// use (on huge pages: see blockbuf) and then reused, so steady reading
// allocates nothing.
type Pool struct {
	blockSize int64
	slots     chan struct{} // one token per buffer that may exist

	mu   sync.Mutex
	free [][]byte
}

// NewPool makes a pool of up to maxBytes in blocks of blockSize bytes
// (at least one block).
func NewPool(blockSize, maxBytes int64) *Pool {
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	n := max(1, maxBytes/blockSize)
	return &Pool{blockSize: blockSize, slots: make(chan struct{}, n)}
}

// BlockSize is the size of every buffer.
func (p *Pool) BlockSize() int64 { return p.blockSize }

// Max is how many buffers may be lent at once.
func (p *Pool) Max() int { return cap(p.slots) }

// InUse is how many buffers are lent now.
func (p *Pool) InUse() int { return len(p.slots) }

// tryGet lends a buffer if the bound allows, without waiting: readahead is
// an optimisation and never waits for memory.
func (p *Pool) tryGet() []byte {
	select {
	case p.slots <- struct{}{}:
		return p.take()
	default:
		return nil
	}
}

func (p *Pool) take() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b
	}
	return blockbuf.New(int(p.blockSize))
}

func (p *Pool) put(b []byte) {
	p.mu.Lock()
	p.free = append(p.free, b[:cap(b)])
	p.mu.Unlock()
	<-p.slots
}
