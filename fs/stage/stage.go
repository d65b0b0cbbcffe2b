// Package stage keeps data written through the mount in a private cache
// directory until the blob service has committed it, and uploads it as
// blocks: streaming, in parallel, while a sequential writer is still writing.
package stage

import (
	"context"
	"errors"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/blob"
)

// Store is what the write path needs from the blob layer (*blob.Container).
type Store interface {
	Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error)
	Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error)
	PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error
	PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error)
}

// Options tune the staging area. Zero values take the defaults.
type Options struct {
	Dir         string // created 0700; files inside are 0600
	MaxBytes    int64  // --cache-size
	BlockSize   int64
	Concurrency int // parallel Put Block calls per file
	Log         logrus.FieldLogger
}

// Manager owns the staging directory of one mounted container.
type Manager struct{}

// NewManager opens (and creates) the staging directory.
func NewManager(store Store, opts Options) (*Manager, error) {
	return nil, errors.New("stage: not implemented yet")
}

// Open starts writing blob name. base is the blob as it is now, nil when it
// does not exist; unless truncate is set its content is what the file starts
// with (fetched when first needed).
func (m *Manager) Open(ctx context.Context, name string, base *blob.Properties, truncate bool) (*File, error) {
	return nil, errors.New("stage: not implemented yet")
}

// File is one blob being written.
type File struct{}

func (f *File) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	return 0, errors.New("stage: not implemented yet")
}
func (f *File) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return 0, errors.New("stage: not implemented yet")
}
func (f *File) Truncate(ctx context.Context, size int64) error {
	return errors.New("stage: not implemented yet")
}
func (f *File) Size() int64 { return 0 }

// Commit uploads what changed and commits it under opts (the full metadata
// set: Put Block List replaces it). Calling it again without changes does
// nothing and returns the last properties.
func (f *File) Commit(ctx context.Context, opts blob.PutOptions) (*blob.Properties, error) {
	return nil, errors.New("stage: not implemented yet")
}

// Rename makes later commits go to name (a file renamed while open).
func (f *File) Rename(name string) {}

// Close releases the staged data once committed; uncommitted data stays
// for recovery.
func (f *File) Close() error { return nil }
