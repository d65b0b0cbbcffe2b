package fs_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob/blobfake"
	"github.com/blobfs/blobfs/fs"
)

// TestRandomLifecycle runs many goroutines doing create, write, close,
// fsync, rm, mv, rename over, chmod, truncate and read on a handful of
// names of one mount, in random interleavings, and then checks what must
// hold whatever the order was:
//
//   - every operation ends: none waits longer than opBound;
//   - no operation fails with anything but ENOENT (a name another
//     goroutine removed or moved): above all no ESTALE, since this mount
//     is the only writer, and no EIO;
//   - no ".conflict-" blob appears: the mount never conflicts with itself;
//   - after unmount, the service holds exactly the files the mount showed
//     last, with the content it showed (nothing removed comes back,
//     nothing moved stays behind, nothing acknowledged is lost);
//   - a remount changes nothing and leaves lost+found empty.
//
// It runs on the in-memory fake of the service (fast, and the model's
// "service" is exactly what the fake holds), driven with no kernel (no
// /dev/fuse: the core alone) and through a real mount, and on Azurite
// through a real mount.
func TestRandomLifecycle(t *testing.T) {
	var e env // mountStore uses nothing of it
	kernel := func(t *testing.T, st fs.Store, opts fs.Options) (fsys, *fs.Mounted) {
		dir, mt := e.mountStore(t, st, opts)
		return osFS{dir}, mt
	}
	kernelFree := func(t *testing.T, st fs.Store, opts fs.Options) (fsys, *fs.Mounted) {
		return mountKernelFree(t, st, opts)
	}
	fake := func() serviceView {
		st := blobfake.New(blobfake.Options{})
		return serviceView{
			store:    st,
			namesNow: st.Names,
			trace: func(f func(op, name string)) {
				st.SetHook(func(op, name string) error { f(op, name); return nil })
			},
			names: func(t *testing.T) []string { return st.Names() },
			get: func(t *testing.T, name string) string {
				b, _, _ := st.Content(name)
				return string(b)
			},
		}
	}
	t.Run("fake, no kernel", func(t *testing.T) { randomLifecycle(t, fake(), kernelFree) })
	t.Run("fake", func(t *testing.T) { randomLifecycle(t, fake(), kernel) })
	t.Run("azurite", func(t *testing.T) {
		e := newEnv(t)
		randomLifecycle(t, serviceView{
			store: e.mct,
			names: e.names,
			get: func(t *testing.T, name string) string {
				got, _, _ := e.get(t, name)
				return got
			},
		}, kernel)
	})
}

// mounter serves a store through the kernel or without one.
type mounter func(t *testing.T, st fs.Store, opts fs.Options) (fsys, *fs.Mounted)

// serviceView is a service to mount, and how to see what it holds
// without the mount.
type serviceView struct {
	store fs.Store
	trace func(func(op, name string)) // reports the store's calls; may be nil
	// namesNow lists the blobs from any goroutine, where that is free
	// (the fake); nil: only checked at the end.
	namesNow func() []string
	names    func(t *testing.T) []string
	get      func(t *testing.T, name string) string
}

func randomLifecycle(t *testing.T, sv serviceView, mount mounter) {
	const (
		workers = 6
		steps   = 40
		opBound = 60 * time.Second
	)
	cache := t.TempDir()
	fsy, mt := mount(t, sv.store, fs.Options{CacheDir: cache})
	if err := fsy.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b", "c", "d/x", "d/y"}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	// With BLOBFS_TRACE_MODEL set, every operation's start, end and
	// outcome (and the fake's calls, when sv.trace is set) are printed
	// in time order when the test fails.
	if sv.namesNow == nil {
		sv.namesNow = func() []string { return nil }
	}
	trace := os.Getenv("BLOBFS_TRACE_MODEL") != ""
	t0 := time.Now()
	var events []string
	note := func(format string, args ...any) {
		if !trace {
			return
		}
		mu.Lock()
		events = append(events, fmt.Sprintf("%9d ", time.Since(t0).Microseconds())+fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	if trace && sv.trace != nil {
		sv.trace(func(op, name string) { note("    store %s %s", op, name) })
	}
	defer func() {
		if t.Failed() && trace {
			slices.Sort(events)
			t.Log("trace:\n" + strings.Join(events, "\n"))
		}
	}()
	ok := func(op string, err error) {
		note("  end %s: %v", op, err)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			fail("%s: %v", op, err)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			pick := func() string { return names[r.IntN(len(names))] }
			for i := range steps {
				p := pick()
				content := fmt.Sprintf("w%d s%d %s\n", w, i, strings.Repeat("x", r.IntN(3000)))
				op := r.IntN(10)
				start := time.Now()
				note("begin w%d s%d op%d %s", w, i, op, p)
				switch op {
				case 0: // create or replace, written, closed
					ok("write "+p, fsy.WriteFile(p, []byte(content), 0o644))
				case 1: // a writer that stays open a while, with an fsync
					f, err := fsy.OpenAppend(p, 0o644)
					if err != nil {
						ok("open "+p, err)
						break
					}
					note("  opened %s", p)
					f.WriteString(content)
					time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
					ok("fsync "+p, f.Sync())
					f.WriteString(content)
					ok("close "+p, f.Close())
				case 2:
					ok("rm "+p, fsy.Remove(p))
				case 3, 4: // mv, over an existing name or not
					to := pick()
					ok("mv "+p+" "+to, fsy.Rename(p, to))
				case 5:
					ok("chmod "+p, fsy.Chmod(p, os.FileMode(0o600+r.IntN(0o100))))
				case 6:
					ok("truncate "+p, fsy.Truncate(p, int64(r.IntN(100))))
				default:
					_, err := fsy.ReadFile(p)
					ok("read "+p, err)
				}
				// After every step: the mount never conflicts with itself
				// (where looking costs no call).
				for _, n := range sv.namesNow() {
					if strings.Contains(n, ".conflict-") {
						fail("after w%d s%d (op %d on %s): conflict copy %q", w, i, op, p, n)
					}
				}
				if d := time.Since(start); d > opBound {
					fail("op %d on %s took %v", op, p, d)
				}
			}
		}()
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}

	// What the mount shows last, once every RELEASE is in.
	time.Sleep(200 * time.Millisecond)
	shown := map[string]string{}
	for _, n := range names {
		b, err := fsy.ReadFile(n)
		switch {
		case err == nil:
			shown[n] = string(b)
		case !errors.Is(err, os.ErrNotExist):
			t.Errorf("final read of %s: %v", n, err)
		}
	}
	unmount(t, mt)
	check := func(when string) {
		for _, n := range sv.names(t) {
			if strings.HasSuffix(n, "/") || n == "d" {
				continue // the directory's marker
			}
			if strings.Contains(n, ".conflict-") {
				t.Errorf("%s: conflict copy %q: the mount conflicted with itself", when, n)
				continue
			}
			want, listed := shown[n]
			got := sv.get(t, n)
			switch {
			case !listed:
				t.Errorf("%s: blob %q exists, but the mount showed no such file", when, n)
			case got != want:
				t.Errorf("%s: blob %q holds %d bytes, the mount showed %d", when, n, len(got), len(want))
			}
		}
		for n := range shown {
			if !slices.Contains(sv.names(t), n) {
				t.Errorf("%s: the mount showed %q but the service has no such blob", when, n)
			}
		}
	}
	check("after unmount")
	_, mt2 := mount(t, sv.store, fs.Options{CacheDir: cache})
	unmount(t, mt2)
	check("after a remount")
	if kept, _ := filepath.Glob(filepath.Join(cache, "*", "*", "lost+found", "*")); len(kept) != 0 {
		t.Errorf("lost+found holds %q, want nothing", kept)
	}
}
