package fs

import (
	"context"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// NewKernelFree makes the filesystem as MountStore does and serves it
// straight through go-fuse's raw interface instead of a kernel: a test
// calls Lookup, Create, Write, Rename… as the kernel would, with no
// /dev/fuse and no mountpoint. Unmount stops it as it stops a mount
// (commits finished, staging closed).
func NewKernelFree(ctx context.Context, store Store, opts Options) (*Mounted, fuse.RawFileSystem, error) {
	m, root, fo, err := newFS(ctx, store, opts)
	if err != nil {
		return nil, nil, err
	}
	raw := gofs.NewNodeFS(root, fo)
	mt := &Mounted{m: m, root: root, served: make(chan struct{})}
	close(mt.served) // no server: nothing to wait for
	return mt, raw, nil
}
