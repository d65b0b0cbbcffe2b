package readahead_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
)

// One Azurite serves the whole package; every test gets its own container.
var azurite *blobtest.Azurite

func TestMain(m *testing.M) {
	if _, err := blobtest.Bin(); err != nil {
		if os.Getenv("BLOBFS_REQUIRE_AZURITE") != "" {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "skipping: ", err)
		os.Exit(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	a, err := blobtest.Start(ctx, blobtest.Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	azurite = a
	code := m.Run()
	a.Stop()
	os.Exit(code)
}

var containerSeq atomic.Int64

func newContainer(tb testing.TB) *blob.Container {
	tb.Helper()
	c, err := blob.NewClient(azurite.Endpoint(), &blob.SharedKey{Account: azurite.Account(), Keys: blob.StaticKey(azurite.Key())}, blob.Options{})
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
