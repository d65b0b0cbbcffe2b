package readahead

import "context"

// Get and Put lend and take back a buffer the way a reader does, for the
// benchmark, which measures the pool alone. Readers take buffers with
// tryGet (never waiting: readahead is an optimisation), so only tests
// need a Get that waits.

// Get lends a buffer of BlockSize bytes, waiting for one when all are
// lent. Give it back with Put.
func (p *Pool) Get(ctx context.Context) ([]byte, error) {
	select {
	case p.slots <- struct{}{}:
		return p.take(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Put returns a buffer lent by Get.
func (p *Pool) Put(b []byte) { p.put(b) }
