// Package fs presents a blob container as a FUSE filesystem: directories
// are '/'-delimited prefixes, reads are ranged downloads and writes are
// block uploads. It speaks to the service only through the blob package.
package fs

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/blob"
)

// Options tune a mount. Zero values take the defaults.
type Options struct {
	UID, GID          uint32      // owner of files without stored ownership
	FileMode, DirMode os.FileMode // permissions of files/dirs without stored mode (0644/0755)
	Umask             os.FileMode
	ReadOnly          bool
	AllowOther        bool

	AttrTTL, EntryTTL, NegativeTTL time.Duration

	CacheDir    string // staging for data not yet uploaded
	CacheSize   int64  // bytes
	BlockSize   int64  // upload/download block size
	Concurrency int    // parallel block transfers per file

	FSName string // shown by mount(8) and df, e.g. "blobfs:account/container"
	Debug  bool   // log every FUSE operation
	Log    logrus.FieldLogger
}

// Mounted is a live mount.
type Mounted struct{}

// Mount mounts the container at mountpoint and returns once the kernel
// serves it.
func Mount(ctx context.Context, mountpoint string, ct *blob.Container, opts Options) (*Mounted, error) {
	return nil, errors.New("fs: not implemented yet")
}

// Unmount flushes pending uploads and unmounts.
func (m *Mounted) Unmount(ctx context.Context) error { return errors.New("fs: not implemented yet") }

// Wait blocks until the filesystem is unmounted.
func (m *Mounted) Wait() {}
