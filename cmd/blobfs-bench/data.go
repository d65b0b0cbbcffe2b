package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/transfer"
)

// copyBuf is the size of each write and read through the mount, as cp
// and cat would do with a large buffer.
const copyBuf = 1 << 20

const (
	seqDirect = "seq/direct.bin" // uploaded by the direct client, read through the mount
	seqFS     = "seq/fs.bin"     // written through the mount
)

func seqWrite() *workload {
	return &workload{
		key:   "write",
		title: func(c config) string { return fmt.Sprintf("write %s (until close returns)", formatSize(c.Size)) },
		bytes: func(c config) int64 { return c.Size },
		direct: func(ctx context.Context, r *round) error {
			_, err := transfer.UploadFrom(ctx, r.w.ct, seqDirect, r.seq, r.cfg.Size, transfer.Options{Buffers: &r.w.bufs})
			return err
		},
		directMakes: []string{seqDirect},
		prepare:     func(ctx context.Context, r *round) error { return os.MkdirAll(r.mnt("seq"), 0o755) },
		blobfs: func(ctx context.Context, r *round) error {
			return writeFile(r.mnt(seqFS), r.seq)
		},
		verify: func(ctx context.Context, r *round) error {
			// Committed when close returned: the blob is there, whole.
			if err := verifyBlob(ctx, r.w.ct, seqFS, r.seq); err != nil {
				return fmt.Errorf("after close: %w", err)
			}
			return r.w.ct.Delete(ctx, seqFS, blob.Conditions{})
		},
		targets: func(c config, rw *row) []check {
			return []check{speedCheck(rw, 0.9), cpuPerGiB(rw, c.Size)}
		},
	}
}

func seqRead() *workload {
	return &workload{
		key:   "read",
		title: func(c config) string { return fmt.Sprintf("read %s, cold", formatSize(c.Size)) },
		cold:  true,
		bytes: func(c config) int64 { return c.Size },
		setup: ensureSeq,
		direct: func(ctx context.Context, r *round) error {
			ck := r.seq.checker()
			_, err := transfer.DownloadTo(ctx, r.w.ct, seqDirect, ck, transfer.Options{NoVerify: true, Buffers: &r.w.bufs})
			return err
		},
		prepare: statDir("seq"),
		blobfs: func(ctx context.Context, r *round) error {
			return readFile(r.mnt(seqDirect), r.seq)
		},
		targets: func(c config, rw *row) []check {
			return []check{speedCheck(rw, 0.9), cpuPerGiB(rw, c.Size)}
		},
	}
}

// randomOffsets are the 4 KiB-aligned offsets of the random reads, the
// same for both sides of a round.
func randomOffsets(r *round) []int64 {
	rng := rand.New(rand.NewPCG(uint64(r.n)+1, 0xbe7c4))
	pages := r.cfg.Size / 4096
	offs := make([]int64, r.cfg.Random)
	for i := range offs {
		offs[i] = rng.Int64N(pages) * 4096
	}
	return offs
}

func randomRead() *workload {
	return &workload{
		key: "random",
		title: func(c config) string {
			return fmt.Sprintf("%d random 4 KiB reads of %s, cold", c.Random, formatSize(c.Size))
		},
		cold:  true,
		bytes: func(c config) int64 { return int64(c.Random) * 4096 },
		setup: ensureSeq,
		direct: func(ctx context.Context, r *round) error {
			ck := r.seq.checker()
			buf := make([]byte, 4096)
			for _, off := range randomOffsets(r) {
				rc, _, err := r.w.ct.Download(ctx, seqDirect, off, 4096, blob.Conditions{})
				if err != nil {
					return err
				}
				_, err = io.ReadFull(rc, buf)
				rc.Close()
				if err != nil {
					return err
				}
				if err := ck.check(buf, off); err != nil {
					return err
				}
			}
			return nil
		},
		prepare: statDir("seq"),
		blobfs: func(ctx context.Context, r *round) error {
			f, err := os.Open(r.mnt(seqDirect))
			if err != nil {
				return err
			}
			defer f.Close()
			ck := r.seq.checker()
			buf := make([]byte, 4096)
			for _, off := range randomOffsets(r) {
				if _, err := f.ReadAt(buf, off); err != nil {
					return fmt.Errorf("read at %d: %w", off, err)
				}
				if err := ck.check(buf, off); err != nil {
					return err
				}
			}
			return nil
		},
		targets: func(c config, rw *row) []check {
			read := int64(c.Random) * 4096
			got := rw.Received["GetBlob"]
			return []check{{
				Target:   "downloaded ≤ 2× read",
				Measured: fmt.Sprintf("%.2f× (%s of %s)", float64(got)/float64(read), mib(got), mib(read)),
				Met:      got <= 2*read,
			}}
		},
	}
}

func rssCopy() *workload {
	const name = "rss/big.bin"
	return &workload{
		key:     "rss",
		title:   func(c config) string { return fmt.Sprintf("copy %s in, then out", formatSize(c.RSSSize)) },
		cold:    true,
		bytes:   func(c config) int64 { return 2 * c.RSSSize },
		prepare: func(ctx context.Context, r *round) error { return os.MkdirAll(r.mnt("rss"), 0o755) },
		blobfs: func(ctx context.Context, r *round) error {
			p := newPattern(uint64(r.n)+77, r.cfg.RSSSize)
			if err := writeFile(r.mnt(name), p); err != nil {
				return fmt.Errorf("in: %w", err)
			}
			if err := readFile(r.mnt(name), p); err != nil {
				return fmt.Errorf("out: %w", err)
			}
			return nil
		},
		verify: func(ctx context.Context, r *round) error {
			return r.w.ct.Delete(ctx, name, blob.Conditions{})
		},
		targets: func(c config, rw *row) []check {
			return []check{{
				Target:   "peak RSS ≤ 256 MiB",
				Measured: fmt.Sprintf("%.0f MiB", rw.PeakRSSMiB),
				Met:      rw.PeakRSSMiB <= 256,
			}, cpuPerGiB(rw, 2*c.RSSSize)}
		},
	}
}

// ensureSeq uploads the sequential file when the write workload did not.
func ensureSeq(ctx context.Context, r *round) error {
	if r.have[seqDirect] {
		return nil
	}
	if _, err := transfer.UploadFrom(ctx, r.w.ct, seqDirect, r.seq, r.cfg.Size, transfer.Options{Buffers: &r.w.bufs}); err != nil {
		return err
	}
	r.have[seqDirect] = true
	return nil
}

func statDir(dir string) func(context.Context, *round) error {
	return func(ctx context.Context, r *round) error {
		_, err := os.Stat(r.mnt(dir))
		return err
	}
}

// writeFile copies p into a new file at path in copyBuf writes and
// returns once close has: that is when blobfs promises the blob is
// committed. (io.Copy would not do: os.File's ReadFrom falls back to
// 32 KiB writes.)
func writeFile(path string, p *pattern) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, copyBuf)
	for off := int64(0); off < p.size; {
		n, _ := p.ReadAt(buf, off)
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return fmt.Errorf("write at %d: %w", off, err)
		}
		off += int64(n)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// readFile reads path to the end in copyBuf reads, checking every byte.
func readFile(path string, p *pattern) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ck := p.checker()
	buf := make([]byte, copyBuf)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, cerr := ck.Write(buf[:n]); cerr != nil {
				return cerr
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read at %d: %w", ck.off, err)
		}
	}
	return ck.complete()
}

// verifyBlob reads the blob back with the direct client and compares it
// with p.
func verifyBlob(ctx context.Context, ct *blob.Container, name string, p *pattern) error {
	props, err := ct.GetProperties(ctx, name)
	if err != nil {
		return err
	}
	if props.Size != p.size {
		return fmt.Errorf("blob %s has %d bytes, want %d", name, props.Size, p.size)
	}
	_, err = transfer.DownloadTo(ctx, ct, name, p.checker(), transfer.Options{NoVerify: true})
	return err
}

func speedCheck(rw *row, min float64) check {
	c := check{Target: fmt.Sprintf("speed ≥ %.1f× direct", min), Measured: "—"}
	if rw.Ratio > 0 {
		speed := 1 / rw.Ratio
		c.Measured = fmt.Sprintf("%.2f×", speed)
		c.Met = speed >= min
	}
	return c
}

func cpuPerGiB(rw *row, bytes int64) check {
	per := rw.CPU / (float64(bytes) / (1 << 30))
	return check{Target: "CPU ≤ 1.0 s/GiB", Measured: fmt.Sprintf("%.2f s/GiB", per), Met: per <= 1.0}
}

func mib(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
}
