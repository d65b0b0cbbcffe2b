package stage_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/stage"
)

// benchSize is the file size of the throughput benchmarks: 1 GiB unless
// BLOBFS_BENCH_SIZE (bytes) says otherwise.
func benchSize() int64 {
	if n, err := strconv.ParseInt(os.Getenv("BLOBFS_BENCH_SIZE"), 10, 64); err == nil && n > 0 {
		return n
	}
	return 1 << 30
}

// peakRSS is the process's peak resident set in MiB (both sides of the
// comparison and the test harness included).
func peakRSS() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// directUpload is the yardstick: 8 parallel 8 MiB Put Block from memory,
// then Put Block List.
func directUpload(ctx context.Context, ct *blob.Container, name string, size int64, block []byte) error {
	bs := int64(len(block))
	n := int((size + bs - 1) / bs)
	ids := make([]string, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		ids[i] = blob.BlockID(i)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			l := min(bs, size-int64(i)*bs)
			if err := ct.PutBlock(ctx, name, ids[i], bytes.NewReader(block[:l]), l); err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	_, err := ct.PutBlockList(ctx, name, ids, blob.PutOptions{})
	return err
}

// BenchmarkSequentialWrite writes a file in 128 KiB writes (what FUSE
// sends) and commits it, timed until Commit returns, against the direct
// parallel upload of the same size in the same run.
func BenchmarkSequentialWrite(b *testing.B) {
	ctx := context.Background()
	ct := newContainer(b)
	size := benchSize()
	block := pattern(stage.DefaultBlockSize, 1)
	m := newManager(b, ct, stage.Options{})
	chunk := block[:128<<10]
	var direct, staged, cpuDirect, cpuStaged time.Duration
	runDirect := func() {
		c0, t0 := cpuTime(), time.Now()
		if err := directUpload(ctx, ct, "direct", size, block); err != nil {
			b.Fatal(err)
		}
		direct += time.Since(t0)
		cpuDirect += cpuTime() - c0
	}
	runStaged := func() {
		c0, t0 := cpuTime(), time.Now()
		f, err := m.Open(ctx, "staged", nil, true)
		if err != nil {
			b.Fatal(err)
		}
		f.Unconditional()
		for off := int64(0); off < size; off += int64(len(chunk)) {
			if _, err := f.WriteAt(ctx, chunk[:min(int64(len(chunk)), size-off)], off); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
			b.Fatal(err)
		}
		staged += time.Since(t0)
		cpuStaged += cpuTime() - c0
		f.Close()
	}
	// Alternate which goes first (use -benchtime 2x or more): the service
	// is not equally warm for both.
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			runDirect()
			runStaged()
		} else {
			runStaged()
			runDirect()
		}
	}
	gib := float64(size) / (1 << 30) * float64(b.N)
	b.ReportMetric(float64(size)*float64(b.N)/staged.Seconds()/1e6, "staged-MB/s")
	b.ReportMetric(float64(size)*float64(b.N)/direct.Seconds()/1e6, "direct-MB/s")
	b.ReportMetric(direct.Seconds()/staged.Seconds(), "x-direct")
	b.ReportMetric(cpuStaged.Seconds()/gib, "cpu-s/GiB")
	b.ReportMetric(cpuDirect.Seconds()/gib, "direct-cpu-s/GiB")
	b.ReportMetric(peakRSS(), "peak-RSS-MiB")
}

// BenchmarkSmallFiles creates 4 KiB files: open, write, commit, close.
func BenchmarkSmallFiles(b *testing.B) {
	ctx := context.Background()
	ct := newContainer(b)
	cs := newCounting(ct)
	m := newManager(b, cs, stage.Options{})
	data := pattern(4096, 2)
	for i := 0; b.Loop(); i++ {
		f, err := m.Open(ctx, "small/"+strconv.Itoa(i), nil, false)
		if err != nil {
			b.Fatal(err)
		}
		f.WriteAt(ctx, data, 0)
		if _, err := f.Commit(ctx, blob.PutOptions{}); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	calls := 0
	for _, n := range cs.snapshot() {
		calls += n
	}
	b.ReportMetric(float64(calls)/float64(b.N), "calls/file")
}
