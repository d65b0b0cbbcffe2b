package readcache

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"
)

// A small store returns before it is made; until it is, a read of that
// blob waits for it (and is served), Stats counts it, and Close makes it:
// nothing the cache took is lost, only made later.
func TestQueuedStores(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(t *testing.T, c *Cache, dir string, p []byte) // in a goroutine: t.Error only
	}{
		{"read waits and is served", func(t *testing.T, c *Cache, dir string, p []byte) {
			got := make([]byte, len(p))
			if !c.ReadAt("f", "e", int64(len(p)), got, 0) || !bytes.Equal(got, p) {
				t.Error("the queued piece was not served")
			}
		}},
		{"stats count it", func(t *testing.T, c *Cache, dir string, p []byte) {
			if s := c.Stats(); s.Pieces != 1 {
				t.Errorf("%+v, want the queued piece", s)
			}
		}},
		{"close makes it", func(t *testing.T, c *Cache, dir string, p []byte) {
			c.Close()
			c2, err := Open(Options{Dir: dir, BlockSize: testBS})
			if err != nil {
				t.Error(err)
				return
			}
			defer c2.Close()
			got := make([]byte, len(p))
			if !c2.ReadAt("f", "e", int64(len(p)), got, 0) || !bytes.Equal(got, p) {
				t.Error("the queued piece was lost at Close")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := open(t, dir, 0, nil)
			release := make(chan struct{})
			c.fill.hold = func() { <-release }
			var once sync.Once
			unhold := func() { once.Do(func() { close(release) }) }
			defer unhold() // also when the test fails early: Close waits for the filler
			p := content(1, 4096)
			c.Store("f", "e", int64(len(p)), p, 0)
			p2 := append([]byte(nil), p...)
			p[0]++ // the caller's buffer is its own again once Store returns
			done := make(chan struct{})
			go func() {
				defer close(done)
				tc.check(t, c, dir, p2)
			}()
			select {
			case <-done:
				t.Fatal("finished before the queued store was made")
			case <-time.After(50 * time.Millisecond):
			}
			unhold()
			<-done
		})
	}
}

// Past fillQueue queued stores the caller stores itself: none is dropped.
func TestFullQueueStoresInline(t *testing.T) {
	c := open(t, t.TempDir(), 0, nil)
	release := make(chan struct{})
	c.fill.hold = func() { <-release }
	var once sync.Once
	unhold := func() { once.Do(func() { close(release) }) }
	defer unhold()
	p := content(2, 4096)
	n := fillQueue + 10
	for i := range n {
		c.Store(fmt.Sprintf("f%d", i), "e", int64(len(p)), p, 0)
	}
	// The filler holds one and the queue fillQueue: the rest were stored
	// by Store itself, while the filler still waits.
	c.mu.Lock()
	inline := c.lru.Len()
	c.mu.Unlock()
	if want := n - fillQueue - 1; inline < want {
		t.Errorf("%d stored inline, want at least %d", inline, want)
	}
	unhold()
	if s := c.Stats(); s.Pieces != n {
		t.Fatalf("%+v, want %d pieces", s, n)
	}
	for i := range n {
		hit(t, c, fmt.Sprintf("f%d", i), "e", p, 0, int64(len(p)))
	}
}
