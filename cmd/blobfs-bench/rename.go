package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/transfer"
)

const (
	renDirect = "ren/direct.bin"
	renFS     = "ren/fs.bin"
)

func rename() *workload {
	moved := func(name string) string { return name[:len(name)-len(".bin")] + "-moved.bin" }
	return &workload{
		key:   "rename",
		title: func(c config) string { return fmt.Sprintf("rename a %s file", formatSize(c.RenameSize)) },
		setup: func(ctx context.Context, r *round) error {
			p := newPattern(uint64(r.n)+99, r.cfg.RenameSize)
			for _, name := range []string{renDirect, renFS} {
				if _, err := transfer.UploadFrom(ctx, r.w.ct, name, p, p.size, transfer.Options{Buffers: &r.w.bufs}); err != nil {
					return err
				}
			}
			return nil
		},
		direct: func(ctx context.Context, r *round) error {
			if _, err := r.w.ct.Copy(ctx, blob.CopyRequest{Dst: moved(renDirect), Src: renDirect}); err != nil {
				return err
			}
			return r.w.ct.Delete(ctx, renDirect, blob.Conditions{})
		},
		prepare: statDir("ren"),
		blobfs: func(ctx context.Context, r *round) error {
			return os.Rename(r.mnt(renFS), r.mnt(moved(renFS)))
		},
		verify: func(ctx context.Context, r *round) error {
			p, err := r.w.ct.GetProperties(ctx, moved(renFS))
			if err != nil {
				return fmt.Errorf("renamed blob: %w", err)
			}
			if p.Size != r.cfg.RenameSize {
				return fmt.Errorf("renamed blob has %d bytes, want %d", p.Size, r.cfg.RenameSize)
			}
			if _, err := r.w.ct.GetProperties(ctx, renFS); !errors.Is(err, blob.ErrNotFound) {
				return fmt.Errorf("the old name is still there after rename (%v)", err)
			}
			return nil
		},
		targets: func(c config, rw *row) []check {
			copies, dels := rw.Calls["CopyBlob"], rw.Calls["DeleteBlob"]
			data := rw.Received["GetBlob"] + rw.Sent["PutBlob"] + rw.Sent["PutBlock"]
			return []check{{
				Target:   "1 Copy Blob + 1 Delete, no data through the client",
				Measured: fmt.Sprintf("%d Copy, %d Delete, %s of data, %d calls in all", copies, dels, mib(data), total(rw.Calls)),
				Met:      copies == 1 && dels == 1 && data == 0,
			}}
		},
	}
}
