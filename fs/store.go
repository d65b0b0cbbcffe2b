package fs

import (
	"context"
	"io"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/readahead"
	"github.com/blobfs/blobfs/fs/stage"
)

// Store is everything the node tree asks of the Blob service. The mount
// holds a *blob.Container; the interface exists so tests can count or
// fail calls without faking the service itself.
type Store interface {
	List(ctx context.Context, opts blob.ListOptions) (*blob.ListPage, error)
	GetProperties(ctx context.Context, name string) (*blob.Properties, error)
	Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error)
	Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error)
	PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error
	PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error)
	Delete(ctx context.Context, name string, cond blob.Conditions) error
	SetMetadata(ctx context.Context, name string, md map[string]string, cond blob.Conditions) (*blob.Properties, error)
	Copy(ctx context.Context, req blob.CopyRequest) (*blob.Properties, error)
	CopyFrom(ctx context.Context, dst string, src *blob.Properties, md map[string]string, dstCond blob.Conditions) (*blob.Properties, error)
}

var (
	_ Store           = (*blob.Container)(nil)
	_ stage.Store     = (Store)(nil)
	_ readahead.Store = (Store)(nil)
)
