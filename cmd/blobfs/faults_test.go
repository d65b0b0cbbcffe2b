package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
)

// Issue 8 through the real binary: a fault-injecting proxy sits between
// blobfs and Azurite, and programs (cp, cat, plain writes) must see either
// their data intact or EIO, never garbage, a hang or a half-written blob.

// faultWorld is a world whose mount talks to Azurite through a proxy.
type faultWorld struct {
	*world
	proxy *blobtest.Proxy
	mp    string
}

func newFaultWorld(t *testing.T, extra ...string) *faultWorld {
	t.Helper()
	needFUSE(t)
	w := newWorld(t, worldOptions{})
	f := &faultWorld{world: w, proxy: blobtest.StartProxyT(t, w.az.Endpoint()), mp: filepath.Join(w.dir, "mnt")}
	f.mountNow(extra...)
	return f
}

// mountNow mounts through the proxy. A short attempt timeout makes the
// proxy's stalls cost seconds rather than the default 30 s each.
func (f *faultWorld) mountNow(extra ...string) {
	f.t.Helper()
	args := append([]string{"--blob-endpoint", f.proxy.Endpoint(), "--retry-attempt-timeout", "5s", "--unmount-timeout", "2m"}, extra...)
	f.mount(f.mp, args...)
}

// remount unmounts and mounts again, so that reads come from the service
// and not from the kernel's page cache or the staging cache.
func (f *faultWorld) remount(extra ...string) {
	f.t.Helper()
	if out, stderr, code := f.blobfs(f.env(), "unmount", f.mp); code != 0 {
		f.t.Fatalf("blobfs unmount: exit %d\n%s%s\nlog:\n%s", code, out, stderr, tail(f.log(), 4000))
	}
	f.mountNow(extra...)
}

// writeRandomFile writes size pseudo-random bytes to path and returns
// their SHA-256.
func writeRandomFile(t *testing.T, path string, size int64, seed uint64) [32]byte {
	t.Helper()
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	h := sha256.New()
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 42})
	if _, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(r, size)); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// catSum runs cat on path and hashes what it printed.
func catSum(t *testing.T, path string) ([32]byte, int64) {
	t.Helper()
	h := sha256.New()
	cw := &countWriter{w: h}
	cmd := exec.Command("cat", path)
	cmd.Stdout = cw
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cat %s: %v: %s", path, err, stderr.String())
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, cw.n
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// 1 GiB in with cp and out with cat while 5 % of all requests, of every
// operation, meet one of every kind of fault: the bytes are identical.
func TestFaultsGiBCopyAtFivePercent(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB through FUSE and Azurite")
	}
	f := newFaultWorld(t)
	const size = 1 << 30
	src := filepath.Join(f.dir, "gib.bin")
	want := writeRandomFile(t, src, size, 1)

	f.proxy.SetFaults(blobtest.Faults{Rate: 0.05, Stall: 8 * time.Second, Seed: 8})
	start := time.Now()
	if out, err := exec.Command("cp", src, filepath.Join(f.mp, "gib.bin")).CombinedOutput(); err != nil {
		t.Fatalf("cp in at 5%% faults: %v: %s\nlog:\n%s", err, out, tail(f.log(), 4000))
	}
	in := time.Since(start)
	injectedIn := f.proxy.Injected()

	f.proxy.SetFaults(blobtest.Faults{})
	f.remount()
	f.proxy.ResetCounts()
	f.proxy.SetFaults(blobtest.Faults{Rate: 0.05, Stall: 8 * time.Second, Seed: 9})
	start = time.Now()
	got, n := catSum(t, filepath.Join(f.mp, "gib.bin"))
	out := time.Since(start)
	injectedOut := f.proxy.Injected()
	f.proxy.SetFaults(blobtest.Faults{})

	if n != size || got != want {
		t.Fatalf("cat of the 1 GiB copy: %d bytes, SHA-256 %x, want %d bytes, %x", n, got, size, want)
	}
	t.Logf("cp in %v (faults %v), cat out %v (faults %v)", in.Round(time.Millisecond), injectedIn, out.Round(time.Millisecond), injectedOut)
	for _, inj := range []map[blobtest.Fault]int{injectedIn, injectedOut} {
		total := 0
		for _, v := range inj {
			total += v
		}
		if total == 0 {
			t.Errorf("the proxy injected no fault: the copy proved nothing")
		}
	}
	// The blob itself, read past the proxy, is the same bytes.
	rc, _, err := f.ct.Download(context.Background(), "gib.bin", 0, -1, blob.Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if m, err := io.Copy(h, rc); err != nil || m != size || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("the blob behind the proxy: %d bytes, err %v, equal %v", m, err, bytes.Equal(h.Sum(nil), want[:]))
	}
}

// A 20 s outage in the middle of a 256 MiB cp, with a 60 s retry budget,
// is invisible to cp.
func TestFaultsOutageShorterThanBudgetIsInvisible(t *testing.T) {
	f := newFaultWorld(t, "--retry-budget", "60s")
	const size = 256 << 20
	src := filepath.Join(f.dir, "src.bin")
	want := writeRandomFile(t, src, size, 2)

	cp := exec.Command("cp", src, filepath.Join(f.mp, "copy.bin"))
	var cpOut bytes.Buffer
	cp.Stdout, cp.Stderr = &cpOut, &cpOut
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cp.Wait() }()
	waitFor(t, "64 MiB of blocks through the proxy", 2*time.Minute, func() bool {
		in, _ := f.proxy.Bytes()
		return in["PutBlock"] >= 64<<20
	})
	f.proxy.Outage(true)
	outageStart := time.Now()
	select {
	case err := <-done:
		f.proxy.Outage(false)
		t.Fatalf("cp ended during the outage (%v after it began): %v: %s", time.Since(outageStart), err, cpOut.String())
	case <-time.After(20 * time.Second):
	}
	f.proxy.Outage(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("cp across a 20 s outage: %v: %s\nlog:\n%s", err, cpOut.String(), tail(f.log(), 4000))
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("cp still running 3 minutes after the outage ended")
	}
	t.Logf("cp finished %v after the outage began; requests refused: %d", time.Since(outageStart).Round(time.Millisecond), f.proxy.Injected()[blobtest.Fault("outage")])
	if f.proxy.Injected()[blobtest.Fault("outage")] == 0 {
		t.Fatalf("no request met the outage: the test proved nothing")
	}
	b, err := f.restGet("copy.bin")
	if err != nil || int64(len(b)) != size || sha256.Sum256(b) != want {
		t.Fatalf("the blob after the outage: %d bytes, err %v, identical %v", len(b), err, err == nil && sha256.Sum256(b) == want)
	}
}

// An outage longer than the retry budget fails the copy with EIO soon after
// the budget, not later and not never; it leaves no blob under the name, and
// the mount works again once the service is back. Both ways a service goes
// away are covered: refused connections, and connections that hang.
func TestFaultsOutageLongerThanBudgetFailsWithEIO(t *testing.T) {
	cases := []struct {
		name   string
		budget time.Duration
		set    func(p *blobtest.Proxy, on bool)
		kind   blobtest.Fault
	}{
		{"refused", 60 * time.Second, (*blobtest.Proxy).Outage, blobtest.Fault("outage")},
		// Each held attempt costs the 5 s attempt timeout; a shorter
		// budget keeps the test's time down and shows the same.
		{"hung", 20 * time.Second, (*blobtest.Proxy).Hang, blobtest.Fault("outage-hang")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaultWorld(t, "--retry-budget", tc.budget.String())
			data := make([]byte, 24<<20)
			for i := range data {
				data[i] = byte(i*7 + i>>13)
			}
			path := filepath.Join(f.mp, "doomed.bin")
			out, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := out.Write(data[:16<<20]); err != nil {
				t.Fatal(err)
			}
			tc.set(f.proxy, true)
			outageStart := time.Now()
			result := make(chan error, 1)
			go func() {
				_, err := out.Write(data[16<<20:])
				if cerr := out.Close(); err == nil {
					err = cerr
				}
				result <- err
			}()
			var copyErr error
			limit := tc.budget + 90*time.Second
			select {
			case copyErr = <-result:
			case <-time.After(limit):
				tc.set(f.proxy, false)
				t.Fatalf("write+close still blocked %v into an outage with a %v budget: a hang, not EIO", limit, tc.budget)
			}
			elapsed := time.Since(outageStart)
			// The outage would go on (the issue says 120 s), but what
			// it had to show has been shown: end it now to save time.
			tc.set(f.proxy, false)
			t.Logf("write+close failed %v into the outage (budget %v): %v", elapsed.Round(time.Millisecond), tc.budget, copyErr)
			if !errors.Is(copyErr, syscall.EIO) {
				t.Fatalf("write+close during a %v outage: %v, want EIO\nlog:\n%s", tc.name, copyErr, tail(f.log(), 4000))
			}
			if elapsed < tc.budget/2 {
				t.Errorf("EIO after %v: the %v retry budget was not used", elapsed, tc.budget)
			}
			if f.proxy.Injected()[tc.kind] == 0 {
				t.Fatalf("no request met the outage")
			}

			// Past the proxy: no blob, not even a partial one.
			if p, err := f.ct.GetProperties(context.Background(), "doomed.bin"); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("after the failed copy, doomed.bin: %+v, %v; want no blob", p, err)
			}

			// The service is back: the same mount works.
			if err := roundTripFile(filepath.Join(f.mp, "after.txt"), []byte("the service is back\n")); err != nil {
				t.Fatalf("after the outage: %v\nlog:\n%s", err, tail(f.log(), 4000))
			}
			ents, err := os.ReadDir(f.mp)
			if err != nil {
				t.Fatalf("ls after the outage: %v", err)
			}
			names := fmt.Sprint(ents)
			if !bytes.Contains([]byte(names), []byte("after.txt")) {
				t.Errorf("ls after the outage: %s", names)
			}
			if b, err := f.restGet("after.txt"); err != nil || string(b) != "the service is back\n" {
				t.Errorf("blob after.txt: %q, %v", b, err)
			}
			// Whatever became of the staged data later, a blob under the
			// failed name is never a partial one.
			if b, err := f.restGet("doomed.bin"); err == nil && !bytes.Equal(b, data) {
				t.Fatalf("doomed.bin reappeared with %d bytes that are not the file's %d", len(b), len(data))
			}
		})
	}
}
