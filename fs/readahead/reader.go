// Package readahead turns FUSE reads into ranged downloads: a sequential
// reader gets parallel ranged GETs ahead of it, a random reader only what it
// asked for, and every range is pinned to the ETag seen at open so a reader
// never mixes two versions of a blob.
package readahead

import (
	"context"
	"errors"
	"io"

	"github.com/blobfs/blobfs/blob"
)

// Store is what the read path needs from the blob layer (*blob.Container).
type Store interface {
	Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error)
}

// Options tune reads. Zero values take the defaults.
type Options struct {
	BlockSize   int64 // size of one ranged GET
	Concurrency int   // ranged GETs in flight per reader at most
}

// Reader reads one version of one blob.
type Reader struct{}

// New returns a reader of the blob name of size bytes at etag.
func New(store Store, name string, size int64, etag string, opts Options) *Reader {
	return &Reader{}
}

// ReadAt reads len(p) bytes at off; at the end of the blob it returns fewer
// and io.EOF. A blob changed since open is blob.ErrPrecondition.
func (r *Reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return 0, errors.New("readahead: not implemented yet")
}

// Close stops readahead and returns its buffers.
func (r *Reader) Close() {}
