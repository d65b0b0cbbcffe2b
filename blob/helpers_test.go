package blob_test

import (
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
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

// shared is the one Azurite the package's tests share (each test has its
// own container).
var shared blobtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}

func newEnv(t testing.TB, container string, o envOptions) *testEnv {
	t.Helper()
	e := &testEnv{az: shared.Get(t)}
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

// patternFile is a large io.ReaderAt whose bytes are computed from their
// offset, so tests can move big blobs without holding them.
type patternFile struct{ size int64 }

func patternByte(off int64) byte {
	x := uint64(off>>3) + 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return byte(x >> (8 * (off & 7)))
}

func (f patternFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := f.size - off; int64(n) > rest {
		n = int(rest)
	}
	for i := range n {
		p[i] = patternByte(off + int64(i))
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// patternSink is an io.WriterAt that checks every write against
// patternFile and records which ranges were written.
type patternSink struct {
	size   int64
	mu     sync.Mutex
	ranges [][2]int64
	bad    error
}

func (s *patternSink) WriteAt(p []byte, off int64) (int, error) {
	for i, b := range p {
		if b != patternByte(off+int64(i)) {
			s.mu.Lock()
			if s.bad == nil {
				s.bad = fmt.Errorf("byte at %d differs", off+int64(i))
			}
			s.mu.Unlock()
			break
		}
	}
	s.mu.Lock()
	s.ranges = append(s.ranges, [2]int64{off, off + int64(len(p))})
	s.mu.Unlock()
	return len(p), nil
}

// check says whether every byte was written once, and right.
func (s *patternSink) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bad != nil {
		return s.bad
	}
	sort.Slice(s.ranges, func(i, j int) bool { return s.ranges[i][0] < s.ranges[j][0] })
	var at int64
	for _, r := range s.ranges {
		if r[0] != at {
			return fmt.Errorf("written ranges have a gap or overlap at %d", at)
		}
		at = r[1]
	}
	if at != s.size {
		return fmt.Errorf("written up to %d of %d", at, s.size)
	}
	return nil
}

// watchHeap samples the heap until the test ends and returns a function
// giving the peak seen so far.
func watchHeap(t testing.TB) func() uint64 {
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapAlloc)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(done) })
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
