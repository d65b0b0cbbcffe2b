package blockbuf_test

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/blobfs/blobfs/fs/blockbuf"
)

func TestNew(t *testing.T) {
	for _, n := range []int{0, 1, 4096, blockbuf.HugePage - 1, blockbuf.HugePage, 3*blockbuf.HugePage + 5, 8 << 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b := blockbuf.New(n)
			if len(b) != n || cap(b) != n {
				t.Fatalf("len %d cap %d, want %d", len(b), cap(b), n)
			}
			for i, c := range b {
				if c != 0 {
					t.Fatalf("byte %d is %d, want 0", i, c)
				}
			}
			if n < blockbuf.HugePage {
				return
			}
			addr := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
			if addr%blockbuf.HugePage != 0 {
				t.Fatalf("buffer at %#x is not on a huge-page boundary", addr)
			}
			// Writing the last byte must stay inside the allocation.
			b[n-1] = 1
			if !thpAvailable() {
				t.Skip("transparent huge pages are off on this kernel: nothing to advise")
			}
			flags, err := vmFlags(addr)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(" "+flags+" ", " hg ") {
				t.Fatalf("mapping of the buffer has VmFlags %q: no hg (MADV_HUGEPAGE)", flags)
			}
		})
	}
}

// thpAvailable says whether the kernel has transparent huge pages at all
// ("always" or "madvise").
func thpAvailable() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && !strings.Contains(string(b), "[never]")
}

// vmFlags returns the VmFlags line of the mapping holding addr.
func vmFlags(addr uintptr) (string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 && strings.Contains(line, "-") && !strings.HasSuffix(strings.Fields(line)[0], ":") {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:")), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no mapping holds %#x", addr)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFirstTouch is what filling a new 8 MiB block buffer costs the
// first time (every page faulted in), with a plain make and with New. The
// buffers stay allocated until the end, so that each one is memory the
// process has not touched before, as in a new mount; run it with a fixed
// -benchtime (e.g. 32x) to bound that memory. The cpu-s/GiB metric counts
// the kernel's share of the faults, which is most of the cost.
func BenchmarkFirstTouch(b *testing.B) {
	const n = 8 << 20
	for _, c := range []struct {
		name  string
		alloc func(int) []byte
	}{
		{"make", func(n int) []byte { return make([]byte, n) }},
		{"blockbuf", blockbuf.New},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(n)
			// What the other case touched goes back to the kernel, so
			// that neither reuses the other's pages.
			debug.FreeOSMemory()
			var kept [][]byte
			var cpu time.Duration
			for b.Loop() {
				c0 := cpuTime()
				buf := c.alloc(n)
				for i := 0; i < len(buf); i += 4096 {
					buf[i] = 1
				}
				cpu += cpuTime() - c0
				kept = append(kept, buf)
			}
			b.ReportMetric(cpu.Seconds()/(float64(n)*float64(b.N)/(1<<30)), "cpu-s/GiB")
			runtime.KeepAlive(kept)
		})
	}
}
