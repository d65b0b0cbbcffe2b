package readahead_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/readahead"
)

// benchSize is the blob size of the throughput benchmarks: 1 GiB unless
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

// bigBlob uploads size bytes in 8 MiB blocks, 8 at a time.
func bigBlob(tb testing.TB, ct *blob.Container, name string, size int64) *blob.Properties {
	ctx := context.Background()
	const bs = 8 << 20
	block := pattern(bs, 7)
	n := int((size + bs - 1) / bs)
	ids := make([]string, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		ids[i] = blob.BlockID(i)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			l := min(bs, size-int64(i)*bs)
			if err := ct.PutBlock(ctx, name, ids[i], bytes.NewReader(block[:l]), l); err != nil {
				tb.Error(err)
			}
		}()
	}
	wg.Wait()
	p, err := ct.PutBlockList(ctx, name, ids, blob.PutOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// directDownload is the yardstick: 8 ranged GETs of 8 MiB in flight, into
// reused buffers.
func directDownload(ctx context.Context, ct *blob.Container, name, etag string, n int64) error {
	const bs = 8 << 20
	sem := make(chan []byte, 8)
	for range 8 {
		sem <- make([]byte, bs)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for off := int64(0); off < n; off += bs {
		buf := <-sem
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { sem <- buf }()
			l := min(bs, n-off)
			body, _, err := ct.Download(ctx, name, off, l, blob.Conditions{IfMatch: etag})
			if err == nil {
				_, err = io.ReadFull(body, buf[:l])
				body.Close()
			}
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// BenchmarkSequentialRead reads a cold blob in 128 KiB reads (what FUSE
// asks for) through a Reader with the default options, against the direct
// parallel download in the same run.
func BenchmarkSequentialRead(b *testing.B) {
	ctx := context.Background()
	ct := newContainer(b)
	size := benchSize()
	p := bigBlob(b, ct, "big", size)
	pool := readahead.NewPool(readahead.DefaultBlockSize, 12*readahead.DefaultBlockSize)
	buf := make([]byte, 128<<10)
	var direct, ra, cpuDirect, cpuRA time.Duration
	runDirect := func() {
		c0, t0 := cpuTime(), time.Now()
		if err := directDownload(ctx, ct, "big", p.ETag, size); err != nil {
			b.Fatal(err)
		}
		direct += time.Since(t0)
		cpuDirect += cpuTime() - c0
	}
	runReadahead := func() {
		c0, t0 := cpuTime(), time.Now()
		r := readahead.New(ct, "big", size, p.ETag, readahead.Options{Pool: pool})
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := r.ReadAt(ctx, buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
		r.Close()
		ra += time.Since(t0)
		cpuRA += cpuTime() - c0
	}
	// Alternate which goes first (use -benchtime 2x or more): the service
	// is not equally warm for both.
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			runDirect()
			runReadahead()
		} else {
			runReadahead()
			runDirect()
		}
	}
	gib := float64(size) / (1 << 30) * float64(b.N)
	b.ReportMetric(float64(size)*float64(b.N)/ra.Seconds()/1e6, "readahead-MB/s")
	b.ReportMetric(float64(size)*float64(b.N)/direct.Seconds()/1e6, "direct-MB/s")
	b.ReportMetric(direct.Seconds()/ra.Seconds(), "x-direct")
	b.ReportMetric(cpuRA.Seconds()/gib, "cpu-s/GiB")
	b.ReportMetric(cpuDirect.Seconds()/gib, "direct-cpu-s/GiB")
	b.ReportMetric(peakRSS(), "peak-RSS-MiB")
}

// BenchmarkWindow is the readahead hot path once data is in: 128 KiB
// reads served from a window of fetched blocks (64 MiB blob).
func BenchmarkWindow(b *testing.B) {
	ctx := context.Background()
	ct := newContainer(b)
	const size = 64 << 20
	p := bigBlob(b, ct, "w", size)
	pool := readahead.NewPool(readahead.DefaultBlockSize, 12*readahead.DefaultBlockSize)
	r := readahead.New(ct, "w", size, p.ETag, readahead.Options{Pool: pool})
	defer r.Close()
	buf := make([]byte, 128<<10)
	// Reads go round the first block, which stays in the window.
	r.ReadAt(ctx, buf, 0)
	b.SetBytes(int64(len(buf)))
	off := int64(0)
	for b.Loop() {
		if _, err := r.ReadAt(ctx, buf, off); err != nil {
			b.Fatal(err)
		}
		off = (off + int64(len(buf))) % readahead.DefaultBlockSize
	}
}

// BenchmarkPool lends and returns a block buffer.
func BenchmarkPool(b *testing.B) {
	ctx := context.Background()
	pool := readahead.NewPool(8<<20, 64<<20)
	for b.Loop() {
		buf, err := pool.Get(ctx)
		if err != nil {
			b.Fatal(err)
		}
		pool.Put(buf)
	}
}
