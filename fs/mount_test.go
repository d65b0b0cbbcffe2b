package fs_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
	"github.com/blobfs/blobfs/fs"
)

// calls counts the REST calls a mount makes, by operation.
type calls struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *calls) ObserveCall(call blob.Call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[call.Op]++
}

// take returns the counts since the last take.
func (c *calls) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = nil
	if n == nil {
		n = map[string]int{}
	}
	return n
}

// env is one Azurite container, shared by the mounts of a test.
type env struct {
	az    *blobtest.Azurite
	ct    *blob.Container // for checking what the service holds
	name  string
	calls *calls
	mct   *blob.Container // the mount's, counted
}

var containerSeq atomic.Int64

// newEnv starts Azurite (one per test binary would be faster, but a
// test's container must not see another's blobs) and creates a container.
func newEnv(t *testing.T) *env {
	t.Helper()
	az := shared.Get(t)
	name := fmt.Sprintf("c%d-%d", time.Now().UnixNano()%1e9, containerSeq.Add(1))
	cred := &blob.SharedKey{Account: az.Account(), Keys: blob.StaticKey(az.Key())}
	c, err := blob.NewClient(az.Endpoint(), cred, blob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ct := c.Container(name)
	if err := ct.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl := &calls{}
	mc, err := blob.NewClient(az.Endpoint(), cred, blob.Options{Observer: cl})
	if err != nil {
		t.Fatal(err)
	}
	return &env{az: az, ct: ct, name: name, calls: cl, mct: mc.Container(name)}
}

// shared is one Azurite for the whole test binary; each test gets its own
// container in it.
var shared blobtest.Shared

func TestMain(m *testing.M) {
	if path := os.Getenv(mapWriterEnv); path != "" {
		os.Exit(mapWriter(path))
	}
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}

// mount mounts the env's container into a fresh directory and unmounts it
// when the test ends (lazily if it is still busy).
func (e *env) mount(t *testing.T, opts fs.Options) (string, *fs.Mounted) {
	t.Helper()
	return e.mountStore(t, e.mct, opts)
}

// mountStore is mount through store, which wraps the env's container.
func (e *env) mountStore(t *testing.T, store fs.Store, opts fs.Options) (string, *fs.Mounted) {
	t.Helper()
	dir := t.TempDir()
	opts = testOptions(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mt, err := fs.MountStore(ctx, dir, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	unmounted := false
	t.Cleanup(func() {
		if unmounted {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := mt.Unmount(ctx); err != nil {
			t.Errorf("unmount: %v", err)
			exec.Command("fusermount3", "-u", "-z", dir).Run()
		}
	})
	return dir, mt
}

// unmount ends a mount inside a test, checking that it flushes cleanly.
func unmount(t *testing.T, mt *fs.Mounted) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mt.Unmount(ctx); err != nil {
		t.Fatalf("unmount: %v", err)
	}
}

// testOptions fills in what every test mount needs and did not set: a
// cache directory of its own, and warnings logged to the test.
func testOptions(t *testing.T, opts fs.Options) fs.Options {
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	if opts.Log == nil {
		l := logrus.New()
		l.SetOutput(testWriter{t})
		l.SetLevel(logrus.WarnLevel)
		opts.Log = l
	}
	return opts
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// put writes a blob directly, as another tool would.
func (e *env) put(t *testing.T, name, content string, md map[string]string) {
	t.Helper()
	if _, err := e.ct.Upload(context.Background(), name, []byte(content), blob.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
}

// get reads a blob directly; ok is false when it does not exist.
func (e *env) get(t *testing.T, name string) (content string, props *blob.Properties, ok bool) {
	t.Helper()
	p, err := e.ct.GetProperties(context.Background(), name)
	if err != nil {
		return "", nil, false
	}
	if p.Size == 0 {
		return "", p, true
	}
	rc, _, err := e.ct.Download(context.Background(), name, 0, -1, blob.Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), p, true
}

func statT(fi os.FileInfo) *syscall.Stat_t { return fi.Sys().(*syscall.Stat_t) }
