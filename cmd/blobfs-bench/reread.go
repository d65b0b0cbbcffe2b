package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/blobfs/blobfs/blob/transfer"
)

// smallReread is where the small files re-read from the read cache are
// written through the mount.
const smallReread = "small-reread"

// readCacheDir is blobfs's read cache in the round's cache directory
// (fs.ReadCacheSubdir of --cache-dir).
func (r *round) readCacheDir() string { return filepath.Join(r.w.dir, "cache", "read-cache") }

// timeFirst measures fn as the first read that the workload's re-read is
// compared with: its time and calls go into the sample's First.
func (r *round) timeFirst(ctx context.Context, fn func() error) error {
	r.quiesce(ctx)
	r.w.proxy.ResetCounts()
	t0 := time.Now()
	if err := fn(); err != nil {
		return fmt.Errorf("first read: %w", err)
	}
	s := r.snapshot(time.Since(t0))
	r.first = &s
	return nil
}

func rereadLarge() *workload {
	return &workload{
		key:   "reread",
		title: func(c config) string { return fmt.Sprintf("re-read %s after remount (read cache)", formatSize(c.Size)) },
		cold:  true,
		bytes: func(c config) int64 { return c.Size },
		setup: ensureSeq,
		direct: func(ctx context.Context, r *round) error {
			return seqRead().direct(ctx, r)
		},
		prepare: func(ctx context.Context, r *round) error {
			// The first read (the workload is cold: the read cache starts
			// empty) fills the read cache, as it does for users; then a
			// remount leaves only the cache directory.
			if err := r.timeFirst(ctx, func() error { return readFile(r.mnt(seqDirect), r.seq) }); err != nil {
				return err
			}
			if err := r.remount(ctx); err != nil {
				return err
			}
			return statDir("seq")(ctx, r)
		},
		blobfs: func(ctx context.Context, r *round) error {
			return readFile(r.mnt(seqDirect), r.seq)
		},
		targets: rereadTargets,
	}
}

func rereadSmall() *workload {
	sr := smallRead()
	return &workload{
		key: "small-reread",
		title: func(c config) string {
			return fmt.Sprintf("ls -l, then re-read %d × %s written through the mount, after remount (read cache)", c.Small, formatSize(c.SmallSize))
		},
		cold:   true,
		bytes:  func(c config) int64 { return int64(c.Small) * c.SmallSize },
		setup:  sr.setup, // the direct side reads the same files from "small"
		direct: sr.direct,
		prepare: func(ctx context.Context, r *round) error {
			// Written through the mount (the workload is cold: the read
			// cache starts empty): the commits fill the read cache.
			if err := os.MkdirAll(r.mnt(smallReread), 0o755); err != nil {
				return err
			}
			for i := 0; i < r.cfg.Small; i++ {
				if err := os.WriteFile(r.mnt(smallName(smallReread, i)), smallData(r, i), 0o644); err != nil {
					return err
				}
			}
			// The first read, for comparison: from the service, with the
			// read cache off (and left as the commits made it).
			r.stopDaemon()
			if err := r.mountWith(ctx, "--read-cache=false"); err != nil {
				return err
			}
			if err := statDir(smallReread)(ctx, r); err != nil {
				return err
			}
			if err := r.timeFirst(ctx, func() error { return lsRead(r, smallReread) }); err != nil {
				return err
			}
			if err := r.remount(ctx); err != nil {
				return err
			}
			return statDir(smallReread)(ctx, r)
		},
		blobfs:  func(ctx context.Context, r *round) error { return lsRead(r, smallReread) },
		targets: rereadTargets,
	}
}

// The file written through the mount and read back (an object file and
// the linker, a checkpoint and the next epoch), and the direct side's
// copy of the same content.
const (
	writtenFS     = "seq/written.bin"
	writtenDirect = "seq/written-direct.bin"
)

func writtenContent(r *round) *pattern { return newPattern(uint64(r.n)+55, r.cfg.Written) }

func rereadWritten() *workload {
	return &workload{
		key: "written-reread",
		title: func(c config) string {
			return fmt.Sprintf("re-read %s written through the mount, after remount (read cache)", formatSize(c.Written))
		},
		cold:  true,
		bytes: func(c config) int64 { return c.Written },
		setup: func(ctx context.Context, r *round) error {
			_, err := transfer.UploadFrom(ctx, r.w.ct, writtenDirect, writtenContent(r), r.cfg.Written, transfer.Options{Buffers: &r.w.bufs})
			return err
		},
		direct: func(ctx context.Context, r *round) error {
			_, err := transfer.DownloadTo(ctx, r.w.ct, writtenDirect, writtenContent(r).checker(), transfer.Options{NoVerify: true, Buffers: &r.w.bufs})
			return err
		},
		prepare: func(ctx context.Context, r *round) error {
			// Written through the mount (the workload is cold: the read
			// cache starts empty); its close hands the file to the read
			// cache.
			if err := os.MkdirAll(r.mnt("seq"), 0o755); err != nil {
				return err
			}
			if err := writeFile(r.mnt(writtenFS), writtenContent(r)); err != nil {
				return err
			}
			// The first read, for comparison: from the service, with the
			// read cache off (and left as the close made it).
			r.stopDaemon()
			if err := r.mountWith(ctx, "--read-cache=false"); err != nil {
				return err
			}
			if err := statDir("seq")(ctx, r); err != nil {
				return err
			}
			if err := r.timeFirst(ctx, func() error { return readFile(r.mnt(writtenFS), writtenContent(r)) }); err != nil {
				return err
			}
			if err := r.remount(ctx); err != nil {
				return err
			}
			return statDir("seq")(ctx, r)
		},
		blobfs:  func(ctx context.Context, r *round) error { return readFile(r.mnt(writtenFS), writtenContent(r)) },
		targets: rereadTargets,
	}
}

// lsRead lists dir with ls -l and reads its small files back, checking
// them.
func lsRead(r *round, dir string) error {
	ents, err := os.ReadDir(r.mnt(dir))
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
		b, err := os.ReadFile(r.mnt(smallName(dir, i)))
		if err != nil {
			return err
		}
		if string(b) != string(smallData(r, i)) {
			return fmt.Errorf("%s: wrong content", smallName(dir, i))
		}
	}
	return nil
}

// rereadTargets: while the ETags hold nothing is downloaded again, and
// the re-read takes at most half the first read's time.
func rereadTargets(c config, rw *row) []check {
	gets := rw.Calls["GetBlob"]
	speed := check{Target: "≥ 2× faster than the first read", Measured: "—"}
	if rw.FirstS > 0 && rw.BlobfsS > 0 {
		x := rw.FirstS / rw.BlobfsS
		speed.Measured = fmt.Sprintf("%.1f× (first read %.2f s, %d GET; re-read %.2f s)", x, rw.FirstS, rw.FirstCalls["GetBlob"], rw.BlobfsS)
		speed.Met = x >= 2
	}
	return []check{
		{Target: "0 GET while the ETags hold", Measured: fmt.Sprintf("%d GET", gets), Met: gets == 0},
		speed,
	}
}
