package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
)

// patternPeriod is deliberately not a power of two, so that no two blocks
// of a transfer (8 MiB, 4 MiB, 128 KiB…) hold the same bytes: a block
// written at the wrong offset, or read from the wrong range, shows.
const patternPeriod = 1<<20 + 4099

// pattern is deterministic content of any length, generated on the fly
// instead of staged in a file: the harness stays out of the page cache and
// costs one memory copy per byte, the same for the direct client and the
// mount.
type pattern struct {
	buf  []byte // patternPeriod bytes, then a copy of the start to read across the wrap
	size int64
}

func newPattern(seed uint64, size int64) *pattern {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	buf := make([]byte, 2*patternPeriod)
	for i := 0; i < patternPeriod; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < patternPeriod; j++ {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	copy(buf[patternPeriod:], buf[:patternPeriod])
	return &pattern{buf: buf, size: size}
}

// ReadAt fills p with the content at off.
func (p *pattern) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.size {
		return 0, io.EOF
	}
	n := len(b)
	if rest := p.size - off; int64(n) > rest {
		n = int(rest)
	}
	fill(p.buf, b[:n], off)
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func fill(buf, b []byte, off int64) {
	for len(b) > 0 {
		i := int(off % patternPeriod)
		c := copy(b, buf[i:i+patternPeriod])
		b, off = b[c:], off+int64(c)
	}
}

// reader streams the pattern from the start, as cp would read a file.
func (p *pattern) reader() io.Reader { return io.NewSectionReader(p, 0, p.size) }

// checker compares what is written to it with the pattern. As an
// io.WriterAt it takes the parallel chunks of the direct client's
// download; as an io.Writer, a sequential read through the mount.
type checker struct {
	p    *pattern
	off  int64
	exp  []byte
	pool sync.Pool
}

func (p *pattern) checker() *checker { return &checker{p: p} }

func (c *checker) Write(b []byte) (int, error) {
	if c.off+int64(len(b)) > c.p.size {
		return 0, fmt.Errorf("read %d bytes at %d, past the %d-byte file", len(b), c.off, c.p.size)
	}
	if err := c.check(b, c.off); err != nil {
		return 0, err
	}
	c.off += int64(len(b))
	return len(b), nil
}

func (c *checker) WriteAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > c.p.size {
		return 0, fmt.Errorf("read %d bytes at %d, past the %d-byte file", len(b), off, c.p.size)
	}
	// WriteAt is called from several goroutines at once.
	bp, _ := c.pool.Get().(*[]byte)
	if bp == nil || cap(*bp) < len(b) {
		bp = new([]byte)
		*bp = make([]byte, len(b))
	}
	defer c.pool.Put(bp)
	exp := (*bp)[:len(b)]
	fill(c.p.buf, exp, off)
	if i := firstDiff(b, exp); i >= 0 {
		return 0, fmt.Errorf("wrong content at byte %d", off+int64(i))
	}
	return len(b), nil
}

// check compares b with the pattern at off, reusing one buffer; for one
// goroutine at a time.
func (c *checker) check(b []byte, off int64) error {
	if cap(c.exp) < len(b) {
		c.exp = make([]byte, len(b))
	}
	exp := c.exp[:len(b)]
	fill(c.p.buf, exp, off)
	if i := firstDiff(b, exp); i >= 0 {
		return fmt.Errorf("wrong content at byte %d", off+int64(i))
	}
	return nil
}

// sequential reports whether every byte was seen in order to the end.
func (c *checker) complete() error {
	if c.off != c.p.size {
		return fmt.Errorf("read %d bytes of a %d-byte file", c.off, c.p.size)
	}
	return nil
}

func firstDiff(a, b []byte) int {
	if string(a) == string(b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}
