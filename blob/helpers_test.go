package blob_test

import (
	"context"
	"crypto/md5"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
)

// testEnv is a container on a fresh Azurite, reached directly or through a
// fault-injecting proxy.
type testEnv struct {
	az    *blobtest.Azurite
	proxy *blobtest.Proxy // nil when direct
	ct    *blob.Container
}

type envOptions struct {
	proxy bool
	retry blob.RetryPolicy
}

func newEnv(t testing.TB, container string, o envOptions) *testEnv {
	t.Helper()
	e := &testEnv{az: blobtest.StartT(t, blobtest.Options{})}
	endpoint := e.az.Endpoint()
	if o.proxy {
		e.proxy = blobtest.StartProxyT(t, endpoint)
		endpoint = e.proxy.Endpoint()
	}
	c, err := blob.NewClient(endpoint, &blob.SharedKey{Account: e.az.Account(), Keys: blob.StaticKey(e.az.Key())}, blob.Options{Retry: o.retry})
	if err != nil {
		t.Fatal(err)
	}
	e.ct = c.Container(container)
	if err := e.ct.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// memFile is an io.WriterAt (and ReaderAt) in memory, safe for the
// parallel writes of DownloadTo.
type memFile struct {
	mu sync.Mutex
	b  []byte
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	copy(m.b[off:], p)
	return len(p), nil
}

func (m *memFile) bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.b
}

func md5sum(b []byte) []byte {
	s := md5.Sum(b)
	return s[:]
}
