package fs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bfs "github.com/blobfs/blobfs/fs"
)

// The stress test's model: every byte a worker publishes at a shared path
// is a "version" that describes itself (a header with its number and
// length, then bytes derived from the number), written in full to a private
// temporary name and closed before a rename publishes it. So whatever the
// interleaving of creates, renames, unlinks and reads on the shared names,
// a read must find either nothing, an empty file (from an exclusive
// create), or exactly one complete version: never a mix of two, a torn one,
// or garbage. A version is published once and only moved afterwards, so
// after the run no version may appear at two names either.

const stressHeader = "blobfs-stress v=%d len=%d\n"

// stressVersion is version v's content, n bytes long (at least the header).
func stressVersion(v uint64, n int) []byte {
	h := fmt.Sprintf(stressHeader, v, n)
	if n < len(h) {
		n = len(h)
	}
	b := make([]byte, n)
	copy(b, h)
	r := rand.NewChaCha8([32]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24), 's'})
	r.Read(b[len(h):])
	return b
}

// checkVersion says whether b is empty or a complete version, and which.
func checkVersion(b []byte) (v uint64, ok bool) {
	if len(b) == 0 {
		return 0, true
	}
	line, _, found := bytes.Cut(b, []byte("\n"))
	if !found {
		return 0, false
	}
	var n int
	if _, err := fmt.Sscanf(string(line)+"\n", stressHeader, &v, &n); err != nil || n != len(b) {
		return 0, false
	}
	return v, bytes.Equal(b, stressVersion(v, n))
}

// stressNames are the shared paths: 8 names in each of 2 directories.
func stressNames() []string {
	var names []string
	for _, d := range []string{"d0", "d1"} {
		for i := 0; i < 8; i++ {
			names = append(names, d+"/f"+strconv.Itoa(i))
		}
	}
	return names
}

func TestStressConcurrentOpsOnOverlappingPaths(t *testing.T) {
	const workers = 8
	duration := 12 * time.Second
	if testing.Short() {
		duration = 3 * time.Second
	}
	e := newEnv(t)
	opts := bfs.Options{
		// No kernel or listing caches: every operation reaches the mount's
		// own logic and the service.
		AttrTTL: -1, EntryTTL: -1, NegativeTTL: -1,
		BlockSize: 64 << 10, Concurrency: 4,
	}
	mp, mt := e.mount(t, opts)
	for _, d := range []string{"d0", "d1"} {
		if err := os.Mkdir(filepath.Join(mp, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	names := stressNames()
	shared := map[string]bool{}
	for _, n := range names {
		shared[n] = true
	}

	var (
		nextVersion atomic.Uint64
		opCounts    [6]atomic.Int64
		stop        = make(chan struct{})
		wg          sync.WaitGroup
		errMu       sync.Mutex
		failures    []string
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	// allowed says whether err is one of the outcomes a race can
	// legitimately give, e.g. ENOENT for a name another worker removed.
	allowed := func(err error, errnos ...syscall.Errno) bool {
		if err == nil {
			return true
		}
		for _, en := range errnos {
			if errors.Is(err, en) {
				return true
			}
		}
		return false
	}

	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			pick := func() string { return filepath.Join(mp, names[rng.IntN(len(names))]) }
			for tmpSeq := 0; ; tmpSeq++ {
				select {
				case <-stop:
					return
				default:
				}
				switch p := rng.IntN(100); {
				case p < 35: // publish a new version at a shared name
					opCounts[0].Add(1)
					v := nextVersion.Add(1)
					size := 100 + rng.IntN(48<<10)
					if rng.IntN(8) == 0 {
						size = 200<<10 + rng.IntN(200<<10) // several blocks
					}
					dir := filepath.Join(mp, "d"+strconv.Itoa(rng.IntN(2)))
					tmp := filepath.Join(dir, fmt.Sprintf("tmp-%d-%d", w, tmpSeq))
					if err := os.WriteFile(tmp, stressVersion(v, size), 0o644); err != nil {
						fail("write %s: %v", tmp, err)
						continue
					}
					if err := os.Rename(tmp, pick()); err != nil {
						fail("publish rename of %s: %v", tmp, err)
					}
				case p < 50: // move a shared name onto another
					opCounts[1].Add(1)
					src, dst := pick(), pick()
					if err := os.Rename(src, dst); !allowed(err, syscall.ENOENT) {
						fail("rename %s -> %s: %v", src, dst, err)
					}
				case p < 60: // unlink
					opCounts[2].Add(1)
					path := pick()
					if err := os.Remove(path); !allowed(err, syscall.ENOENT) {
						fail("unlink %s: %v", path, err)
					}
				case p < 85: // read and validate
					opCounts[3].Add(1)
					path := pick()
					b, err := os.ReadFile(path)
					// ESTALE: a rename replaced the file while it was
					// read, and the mount refuses to mix versions.
					if !allowed(err, syscall.ENOENT, syscall.ESTALE) {
						fail("read %s: %v", path, err)
					} else if _, ok := checkVersion(b); err == nil && !ok {
						fail("read %s: %d bytes that are no complete version (starting %.40q)", path, len(b), b)
					}
				case p < 95: // list
					opCounts[4].Add(1)
					d := "d" + strconv.Itoa(rng.IntN(2))
					ents, err := os.ReadDir(filepath.Join(mp, d))
					if err != nil {
						fail("readdir %s: %v", d, err)
						continue
					}
					for _, ent := range ents {
						if n := d + "/" + ent.Name(); !shared[n] && !strings.HasPrefix(ent.Name(), "tmp-") {
							fail("readdir %s: unexpected entry %q", d, ent.Name())
						}
					}
				default: // exclusive create of an empty file
					opCounts[5].Add(1)
					path := pick()
					f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
					if !allowed(err, syscall.EEXIST) {
						fail("create %s: %v", path, err)
					}
					if err == nil {
						if err := f.Close(); err != nil {
							fail("close new %s: %v", path, err)
						}
					}
				}
			}
		}(w)
	}
	time.Sleep(duration)
	close(stop)
	wg.Wait()
	t.Logf("%d workers for %v: publish %d, rename %d, unlink %d, read %d, readdir %d, create %d; %d versions",
		workers, duration, opCounts[0].Load(), opCounts[1].Load(), opCounts[2].Load(), opCounts[3].Load(),
		opCounts[4].Load(), opCounts[5].Load(), nextVersion.Load())
	for _, f := range failures {
		t.Error(f)
	}

	// What the mount shows once everything has settled...
	before := stressState(t, mp)
	unmount(t, mt)
	// ...is what a fresh mount shows, and what the service holds.
	mp2, _ := e.mount(t, opts)
	after := stressState(t, mp2)
	if !equalState(before, after) {
		t.Errorf("after remount the files differ:\nbefore %v\nafter  %v", before, after)
	}
	seen := map[uint64]string{}
	for name, v := range after {
		if !shared[name] {
			t.Errorf("%s exists after the run: only the shared names may (every temporary name was renamed)", name)
		}
		content, _, ok := e.get(t, name)
		if !ok {
			t.Errorf("%s is listed by the mount but is no blob", name)
			continue
		}
		if bv, ok := checkVersion([]byte(content)); !ok || bv != v {
			t.Errorf("blob %s holds %d bytes, version %d (valid %v); the mount read version %d", name, len(content), bv, ok, v)
		}
		if v == 0 {
			continue
		}
		if other, dup := seen[v]; dup {
			t.Errorf("version %d is at both %s and %s: a rename left its source behind", v, other, name)
		}
		seen[v] = name
	}
	if len(after) == 0 && nextVersion.Load() > 0 {
		t.Logf("every shared name ended unlinked")
	}
}

// stressState reads every file in d0 and d1 through the mount and returns
// the version each holds (0: empty), failing on anything else.
func stressState(t *testing.T, mp string) map[string]uint64 {
	t.Helper()
	state := map[string]uint64{}
	for _, d := range []string{"d0", "d1"} {
		ents, err := os.ReadDir(filepath.Join(mp, d))
		if err != nil {
			t.Fatalf("readdir %s: %v", d, err)
		}
		for _, ent := range ents {
			name := d + "/" + ent.Name()
			if ent.Type()&fs.ModeType != 0 {
				t.Errorf("%s is not a regular file (%v)", name, ent.Type())
				continue
			}
			b, err := os.ReadFile(filepath.Join(mp, name))
			if err != nil {
				t.Errorf("read %s: %v", name, err)
				continue
			}
			v, ok := checkVersion(b)
			if !ok {
				t.Errorf("%s: %d bytes that are no complete version (starting %.40q)", name, len(b), b)
				continue
			}
			state[name] = v
		}
	}
	return state
}

func equalState(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if bv, ok := b[k]; !ok || bv != a[k] {
			return false
		}
	}
	return true
}
