package readahead_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
)

// shared is one Azurite for the whole package; every test gets its own
// container.
var shared blobtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}

var containerSeq atomic.Int64

func newContainer(tb testing.TB) *blob.Container {
	tb.Helper()
	az := shared.Get(tb)
	c, err := blob.NewClient(az.Endpoint(), &blob.SharedKey{Account: az.Account(), Keys: blob.StaticKey(az.Key())}, blob.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	ct := c.Container(fmt.Sprintf("ra%d-%d", os.Getpid(), containerSeq.Add(1)))
	if err := ct.Create(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return ct
}

// counting counts the GETs and the bytes they asked for; the service
// behind it is still Azurite.
type counting struct {
	*blob.Container
	mu    sync.Mutex
	gets  int
	bytes int64
	conds []blob.Conditions
}

func (c *counting) Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error) {
	c.mu.Lock()
	c.gets++
	c.bytes += count
	c.conds = append(c.conds, cond)
	c.mu.Unlock()
	return c.Container.Download(ctx, name, offset, count, cond)
}

func (c *counting) stats() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets, c.bytes
}

func upload(tb testing.TB, ct *blob.Container, name string, data []byte) *blob.Properties {
	tb.Helper()
	p, err := ct.Upload(context.Background(), name, data, blob.PutOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}
