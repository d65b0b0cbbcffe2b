package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// round is one repetition: a fresh world, a blobfs mount of it, and the
// workloads measured one after the other.
type round struct {
	cfg    config
	n      int
	bin    string
	w      *world
	d      *daemon
	extra  []string // the current mount's workload flags
	mounts int
	logf   func(format string, args ...any)

	first *side // set by a re-read workload's prepare (timeFirst)

	seq   *pattern        // the sequential file's content
	small *pattern        // the small files' content, file i at i×SmallSize
	have  map[string]bool // fixtures already uploaded this round
}

// newRound sets up round n's content; the harness and its direct workers
// make the same.
func newRound(cfg config, n int) *round {
	return &round{
		cfg: cfg, n: n,
		seq:   newPattern(uint64(n)+1, cfg.Size),
		small: newPattern(uint64(n)+1000, int64(cfg.Small)*cfg.SmallSize),
		have:  map[string]bool{},
		logf:  func(string, ...any) {},
	}
}

func (r *round) mnt(parts ...string) string {
	return filepath.Join(append([]string{r.w.mountpoint()}, parts...)...)
}

// mount starts a blobfs daemon on the round's world.
func (r *round) mount(ctx context.Context) error { return r.mountWith(ctx) }

// mountWith is mount with flags added to the run's.
func (r *round) mountWith(ctx context.Context, extra ...string) error {
	r.mounts++
	flags := append(append(slices.Clone(r.cfg.MountFlags), r.extra...), extra...)
	d, err := mountBlobfs(ctx, r.bin, r.w, r.mounts, flags)
	if err != nil {
		return err
	}
	r.d = d
	return nil
}

// remount restarts the daemon: no memory caches, no page cache left in
// the kernel for the old mount's files; its read cache on disk is kept.
func (r *round) remount(ctx context.Context) error {
	r.stopDaemon()
	if err := r.mount(ctx); err != nil {
		return err
	}
	if r.cfg.DropCaches {
		dropCaches()
	}
	return nil
}

// freshMount gives the next workload a cold start: remount with an empty
// read cache, and the extra flags.
func (r *round) freshMount(ctx context.Context, extra ...string) error {
	r.stopDaemon()
	if err := os.RemoveAll(r.readCacheDir()); err != nil {
		return err
	}
	if err := r.mountWith(ctx, extra...); err != nil {
		return err
	}
	if r.cfg.DropCaches {
		dropCaches()
	}
	return nil
}

// stopDaemon unmounts, logging (not failing on) an unclean exit.
func (r *round) stopDaemon() {
	if r.d != nil {
		if err := r.d.stop(); err != nil {
			r.logf("  unmount: %v", err)
		}
		r.d = nil
	}
}

func (r *round) unmount() error {
	if r.d == nil {
		return nil
	}
	err := r.d.stop()
	r.d = nil
	return err
}

// quiesce waits until the service has seen no request for a moment, so
// that what a workload is charged for is its own (a previous workload's
// background uploads, a kernel forget…).
func (r *round) quiesce(ctx context.Context) {
	const still = 200 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	last := r.w.proxy.Total()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(still)
		n := r.w.proxy.Total()
		if n == last {
			return
		}
		last = n
	}
}

// measure runs one workload: its direct baseline and the same work
// through the mount, each with the proxy's counters zeroed first. The
// order alternates between rounds: Azurite slows down as a container
// fills (1,000 Put Blobs took 1.5 ms each on an empty container, 4.3 ms
// once it held 5,000 blobs), so whichever side went second would pay for
// the first one's blobs.
func (r *round) measure(ctx context.Context, wl *workload) (sample, error) {
	var s sample
	if wl.setup != nil {
		if err := wl.setup(ctx, r); err != nil {
			return s, fmt.Errorf("%s: setup: %w", wl.key, err)
		}
	}
	if r.n%2 == 1 {
		if err := r.measureMount(ctx, wl, &s); err != nil {
			return s, err
		}
		return s, r.measureDirect(ctx, wl, &s)
	}
	if err := r.measureDirect(ctx, wl, &s); err != nil {
		return s, err
	}
	return s, r.measureMount(ctx, wl, &s)
}

// measureDirect runs wl's direct side, if it has one, in a worker process.
func (r *round) measureDirect(ctx context.Context, wl *workload, s *sample) error {
	if wl.direct == nil {
		return nil
	}
	r.quiesce(ctx)
	r.w.proxy.ResetCounts()
	res, err := runDirect(ctx, r, wl)
	if err != nil {
		return fmt.Errorf("%s: %w", wl.key, err)
	}
	side := r.snapshot(time.Duration(res.Seconds * float64(time.Second)))
	s.Direct, s.DirectCPU = &side, res.CPU
	if res.Err != "" {
		s.Errors = append(s.Errors, "direct: "+res.Err)
		return nil
	}
	for _, name := range wl.directMakes {
		r.have[name] = true
	}
	return nil
}

// measureMount runs wl through the mount, with the daemon's CPU and peak
// RSS, and checks the outcome.
func (r *round) measureMount(ctx context.Context, wl *workload, s *sample) error {
	switch {
	case wl.cold:
		// Cold means from the service: the read cache of earlier
		// workloads (or of the files they wrote) is emptied.
		r.extra = wl.mountFlags
		if err := r.freshMount(ctx); err != nil {
			return fmt.Errorf("%s: mount: %w", wl.key, err)
		}
	case r.d == nil || !slices.Equal(r.extra, wl.mountFlags):
		r.extra = wl.mountFlags
		if err := r.remount(ctx); err != nil {
			return fmt.Errorf("%s: mount: %w", wl.key, err)
		}
	}
	if wl.prepare != nil {
		if err := wl.prepare(ctx, r); err != nil {
			return fmt.Errorf("%s: prepare: %w", wl.key, err)
		}
	}
	pid := r.d.pid()
	r.quiesce(ctx)
	if err := resetPeakRSS(pid); err != nil {
		s.Errors = append(s.Errors, "resetting peak RSS: "+err.Error())
	}
	cpu0, err := cpuTime(pid)
	if err != nil {
		return err
	}
	r.w.proxy.ResetCounts()
	t0 := time.Now()
	werr := wl.blobfs(ctx, r)
	s.Blobfs = r.snapshot(time.Since(t0))
	s.First, r.first = r.first, nil
	cpu1, err := cpuTime(pid)
	if err != nil {
		return fmt.Errorf("%s: %w (%v)", wl.key, err, r.d.alive())
	}
	s.CPU = (cpu1 - cpu0).Seconds()
	s.PeakRSS, _ = peakRSS(pid)
	if werr == nil && wl.verify != nil {
		werr = wl.verify(ctx, r)
	}
	if werr != nil {
		s.Errors = append(s.Errors, "blobfs: "+werr.Error())
	}
	return r.d.alive()
}

func (r *round) snapshot(d time.Duration) side {
	in, out := r.w.proxy.Bytes()
	return side{Seconds: d.Seconds(), Calls: r.w.proxy.Counts(), Sent: in, Received: out}
}

// dropCaches empties the kernel's page cache (root only); failures are
// ignored because the remount already made the mount's files cold.
func dropCaches() {
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}
