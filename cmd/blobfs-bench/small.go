package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/blobfs/blobfs/blob"
)

const (
	smallDirect = "small-direct" // written by the direct client
	smallFS     = "small"        // written through the mount
)

func smallName(dir string, i int) string { return fmt.Sprintf("%s/%05d", dir, i) }

// smallData is file i's content.
func smallData(r *round, i int) []byte {
	b := make([]byte, r.cfg.SmallSize)
	r.small.ReadAt(b, int64(i)*r.cfg.SmallSize)
	return b
}

// writeCalls are the operations that change a blob.
var writeCalls = []string{"PutBlob", "PutBlock", "PutBlockList", "SetBlobMetadata", "SetBlobProperties", "CopyBlob", "DeleteBlob"}

// lookupCalls are the operations that only look.
var lookupCalls = []string{"GetBlobProperties", "ListBlobs", "GetBlob", "GetBlockList", "GetContainerProperties"}

func smallCreate() *workload {
	return &workload{
		key:   "small",
		title: func(c config) string { return fmt.Sprintf("create %d × %s", c.Small, formatSize(c.SmallSize)) },
		bytes: func(c config) int64 { return int64(c.Small) * c.SmallSize },
		direct: func(ctx context.Context, r *round) error {
			// One Put Blob per file, one after the other, as cp -r would.
			for i := 0; i < r.cfg.Small; i++ {
				if _, err := r.w.ct.Upload(ctx, smallName(smallDirect, i), smallData(r, i), blob.PutOptions{}); err != nil {
					return err
				}
			}
			return nil
		},
		prepare: func(ctx context.Context, r *round) error { return os.MkdirAll(r.mnt(smallFS), 0o755) },
		blobfs: func(ctx context.Context, r *round) error {
			for i := 0; i < r.cfg.Small; i++ {
				if err := os.WriteFile(r.mnt(smallName(smallFS, i)), smallData(r, i), 0o644); err != nil {
					return err
				}
			}
			return nil
		},
		verify: func(ctx context.Context, r *round) error {
			if err := checkSmallBlobs(ctx, r); err != nil {
				return err
			}
			r.have[smallFS] = true
			return nil
		},
		targets: func(c config, rw *row) []check {
			n := c.Small
			puts := rw.Calls["PutBlob"]
			other := sumCalls(rw.Calls, writeCalls...) - puts
			looks := sumCalls(rw.Calls, lookupCalls...)
			return []check{
				{Target: "1 Put Blob per file, no other write", Measured: fmt.Sprintf("%.2f Put Blob + %.2f other writes per file", per(puts, n), per(other, n)), Met: puts == n && other == 0},
				{Target: "≤ 1 lookup call per file (the kernel's first lookup)", Measured: fmt.Sprintf("%.2f per file", per(looks, n)), Met: looks <= n},
				timeCheck(rw, 1.3),
			}
		},
	}
}

func smallRead() *workload {
	return &workload{
		key: "small-read",
		title: func(c config) string {
			return fmt.Sprintf("ls -l, then read %d × %s, cold", c.Small, formatSize(c.SmallSize))
		},
		cold:  true,
		bytes: func(c config) int64 { return int64(c.Small) * c.SmallSize },
		setup: func(ctx context.Context, r *round) error {
			if r.have[smallFS] {
				return nil
			}
			err := parallel(ctx, r.cfg.Small, 8, func(i int) error {
				_, err := r.w.ct.Upload(ctx, smallName(smallFS, i), smallData(r, i), blob.PutOptions{})
				return err
			})
			if err == nil {
				r.have[smallFS] = true
			}
			return err
		},
		direct: func(ctx context.Context, r *round) error {
			names, err := listAll(ctx, r.w.ct, smallFS+"/")
			if err != nil {
				return err
			}
			if len(names) != r.cfg.Small {
				return fmt.Errorf("listed %d files, want %d", len(names), r.cfg.Small)
			}
			for i := 0; i < r.cfg.Small; i++ {
				rc, _, err := r.w.ct.Download(ctx, smallName(smallFS, i), 0, -1, blob.Conditions{})
				if err != nil {
					return err
				}
				b, err := readAllClose(rc)
				if err != nil {
					return err
				}
				if string(b) != string(smallData(r, i)) {
					return fmt.Errorf("%s: wrong content", smallName(smallFS, i))
				}
			}
			return nil
		},
		prepare: statDir(smallFS),
		blobfs: func(ctx context.Context, r *round) error {
			ents, err := os.ReadDir(r.mnt(smallFS))
			if err != nil {
				return err
			}
			for _, e := range ents {
				if _, err := e.Info(); err != nil {
					return err
				}
			}
			if len(ents) != r.cfg.Small {
				return fmt.Errorf("ls shows %d files, want %d", len(ents), r.cfg.Small)
			}
			for i := 0; i < r.cfg.Small; i++ {
				b, err := os.ReadFile(r.mnt(smallName(smallFS, i)))
				if err != nil {
					return err
				}
				if string(b) != string(smallData(r, i)) {
					return fmt.Errorf("%s: wrong content", smallName(smallFS, i))
				}
			}
			return nil
		},
		targets: func(c config, rw *row) []check {
			n := c.Small
			gets, heads := rw.Calls["GetBlob"], rw.Calls["GetBlobProperties"]
			return []check{{
				Target:   "1 GET and no HEAD per file",
				Measured: fmt.Sprintf("%.2f GET, %.2f HEAD per file", per(gets, n), per(heads, n)),
				Met:      gets == n && heads == 0,
			}}
		},
	}
}

// checkSmallBlobs makes sure every file written through the mount is a
// blob with the right content.
func checkSmallBlobs(ctx context.Context, r *round) error {
	return parallel(ctx, r.cfg.Small, 8, func(i int) error {
		name := smallName(smallFS, i)
		rc, _, err := r.w.ct.Download(ctx, name, 0, -1, blob.Conditions{})
		if err != nil {
			return fmt.Errorf("%s after close: %w", name, err)
		}
		b, err := readAllClose(rc)
		if err != nil {
			return err
		}
		if string(b) != string(smallData(r, i)) {
			return fmt.Errorf("%s: wrong content", name)
		}
		return nil
	})
}

// parallel runs f(0…n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					cancel(err)
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

func sumCalls(m map[string]int, ops ...string) int {
	n := 0
	for _, op := range ops {
		n += m[op]
	}
	return n
}

func per(calls, n int) float64 { return float64(calls) / float64(n) }

func timeCheck(rw *row, max float64) check {
	c := check{Target: fmt.Sprintf("time ≤ %.1f× direct", max), Measured: "—"}
	if rw.Ratio > 0 {
		c.Measured = fmt.Sprintf("%.2f×", rw.Ratio)
		c.Met = rw.Ratio <= max
	}
	return c
}
