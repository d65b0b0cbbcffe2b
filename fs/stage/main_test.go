package stage_test

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
	"github.com/blobfs/blobfs/fs/stage"
)

// shared is one Azurite for the whole package; every test gets its own
// container. The crash helper (TestCrashHelper) is given its parent's.
var shared blobtest.Shared

// crashEnv makes the test binary the crash helper of TestRecover.
const crashEnv = "STAGE_CRASH_HELPER"

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}

var containerSeq atomic.Int64

func client(tb testing.TB, endpoint, account, key string) *blob.Client {
	c, err := blob.NewClient(endpoint, &blob.SharedKey{Account: account, Keys: blob.StaticKey(key)}, blob.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// newContainer makes a fresh container on the package's Azurite.
func newContainer(tb testing.TB) *blob.Container {
	tb.Helper()
	az := shared.Get(tb)
	c := client(tb, az.Endpoint(), az.Account(), az.Key())
	ct := c.Container(fmt.Sprintf("stage%d-%d", os.Getpid(), containerSeq.Add(1)))
	if err := ct.Create(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return ct
}

// counting is the container with every call counted; the service behind it
// is still Azurite.
type counting struct {
	*blob.Container
	mu         sync.Mutex
	calls      map[string]int
	downloaded int64
}

func newCounting(ct *blob.Container) *counting {
	return &counting{Container: ct, calls: map[string]int{}}
}

func (c *counting) count(op string) {
	c.mu.Lock()
	c.calls[op]++
	c.mu.Unlock()
}

func (c *counting) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

func (c *counting) reset() {
	c.mu.Lock()
	c.calls = map[string]int{}
	c.downloaded = 0
	c.mu.Unlock()
}

func (c *counting) Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error) {
	c.count("Download")
	rc, p, err := c.Container.Download(ctx, name, offset, count, cond)
	if err == nil {
		c.mu.Lock()
		c.downloaded += max(count, 0)
		c.mu.Unlock()
	}
	return rc, p, err
}

func (c *counting) Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error) {
	c.count("Upload")
	return c.Container.Upload(ctx, name, data, opts)
}

func (c *counting) PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error {
	c.count("PutBlock")
	return c.Container.PutBlock(ctx, name, id, data, size)
}

func (c *counting) PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error) {
	c.count("PutBlockList")
	return c.Container.PutBlockList(ctx, name, ids, opts)
}

func download(tb testing.TB, ct *blob.Container, name string) ([]byte, *blob.Properties) {
	tb.Helper()
	rc, p, err := ct.Download(context.Background(), name, 0, -1, blob.Conditions{})
	if err != nil {
		tb.Fatalf("download %q: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return b, p
}

func upload(tb testing.TB, ct *blob.Container, name string, data []byte) *blob.Properties {
	tb.Helper()
	p, err := ct.Upload(context.Background(), name, data, blob.PutOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	p.Name, p.Size = name, int64(len(data))
	return p
}

func newManager(tb testing.TB, store stage.Store, opts stage.Options) *stage.Manager {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	m, err := stage.NewManager(store, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// pattern is deterministic test content.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func (c *counting) GetBlockList(ctx context.Context, name string) ([]blob.Block, string, error) {
	c.count("GetBlockList")
	return c.Container.GetBlockList(ctx, name)
}
