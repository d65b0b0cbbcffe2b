// Package transfer moves whole blobs between a container and a local
// file with parallel blocks and ranged reads. The mount does not use it
// (fs/stage and fs/readahead move data their own way); the benchmark and
// blob's tests do, so it lives outside blob, where it would only add to
// what the mount carries.
package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"sync"

	"github.com/blobfs/blobfs/blob"
)

// Transfer defaults. Measured with BenchmarkTransfer (64 MiB, Azurite
// 3.35 in memory, the shared 2-core machine at load ~12): Azurite is one
// Node process, so beyond 2 streams nothing scales there; uploads ran
// 15-24 MB/s and parallel downloads 40-47 MB/s for every shape from
// 4 MiB×8 to 16 MiB×8, with 8 MiB×8 and 8 MiB×16 at the top for downloads
// and within noise for uploads. 8 MiB×8 is kept: no worse on Azurite, the
// project's baseline shape, and the shape that scales on Azure, where
// each connection is limited (~60 MB/s) and parallel streams add up. The
// memory bound it implies is 64 MiB per transfer.
const (
	DefaultBlockSize   = 8 << 20
	DefaultConcurrency = 8
	// MaxBlocks is the most blocks a blob may have committed.
	MaxBlocks = 50000
)

// Store is what a transfer needs of the container: *blob.Container, or a
// fake of it.
type Store interface {
	Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error)
	PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error
	PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error)
	Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error)
}

// Options tune UploadFrom and DownloadTo. Zero values take the
// defaults. A transfer holds at most Concurrency × BlockSize bytes of
// buffers (64 MiB by default), whatever the blob's size.
type Options struct {
	// PutOptions go with the upload's final Put Blob or Put Block List
	// (metadata, content type, conditions). ContentMD5 is ignored: the
	// whole-blob MD5 is computed while reading the source. For a download,
	// Conditions.IfMatch pins the version to read.
	blob.PutOptions
	// BlockSize is the size of one Put Block or ranged GET; default 8 MiB.
	// It is raised when a blob would need more than MaxBlocks blocks.
	BlockSize int64
	// Concurrency is the number of Put Block calls or ranged GETs in flight;
	// default 8.
	Concurrency int
	// SingleShot is the largest upload sent in one Put Blob; default
	// BlockSize.
	SingleShot int64
	// NoVerify skips checking a download against the blob's MD5.
	NoVerify bool
	// Buffers, when set, lends the block buffers; nil allocates them.
	Buffers *Buffers
}

func (o Options) withDefaults(size int64) Options {
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultBlockSize
	}
	if size > 0 && (size+o.BlockSize-1)/o.BlockSize > MaxBlocks {
		// Round the block up to a whole MiB that fits the blob in MaxBlocks.
		o.BlockSize = ((size+MaxBlocks-1)/MaxBlocks + (1<<20 - 1)) &^ (1<<20 - 1)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.SingleShot <= 0 {
		o.SingleShot = o.BlockSize
	}
	return o
}

// UploadFrom writes size bytes of src as the blob name, streaming: one Put
// Blob when size ≤ opts.SingleShot, otherwise Put Block calls in parallel
// and a Put Block List that commits them all at once (readers see the old
// content until then). Each block carries its Content-MD5, which the
// service checks; the whole blob's MD5, computed in the same single pass
// over src, is stored as x-ms-blob-content-md5 so that downloads (ours and
// other tools') can verify it. Memory: Concurrency × BlockSize at most.
func UploadFrom(ctx context.Context, ct Store, name string, src io.ReaderAt, size int64, opts Options) (*blob.Properties, error) {
	if err := blob.ValidateName(name); err != nil {
		return nil, err
	}
	bufs := opts.Buffers
	opts = opts.withDefaults(size)
	if size <= opts.SingleShot {
		buf := bufs.get(int(size))
		defer bufs.put(buf)
		if n, err := src.ReadAt(buf, 0); n < len(buf) {
			return nil, fmt.Errorf("PutBlob %q: reading the source: %w", name, err)
		}
		po := opts.PutOptions
		po.ContentMD5 = nil
		return ct.Upload(ctx, name, buf, po)
	}

	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	free := make(chan []byte, opts.Concurrency)
	for range opts.Concurrency {
		free <- nil // allocated on first use, so small uploads stay small
	}
	whole := md5.New()
	nonce := rand.Uint32() & 0xffffff
	var ids []string
	var wg sync.WaitGroup
	for off, n := int64(0), 0; off < size; off, n = off+opts.BlockSize, n+1 {
		var buf []byte
		select {
		case buf = <-free:
		case <-gctx.Done():
		}
		if gctx.Err() != nil {
			break
		}
		if buf == nil {
			buf = bufs.get(int(opts.BlockSize))
			defer bufs.put(buf)
		}
		block := buf[:min(opts.BlockSize, size-off)]
		if n, err := src.ReadAt(block, off); n < len(block) {
			cancel(fmt.Errorf("PutBlock %q: reading the source at %d: %w", name, off, err))
			break
		}
		whole.Write(block)
		id := uploadBlockID(nonce, n)
		ids = append(ids, id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ct.PutBlock(gctx, name, id, bytes.NewReader(block), int64(len(block))); err != nil {
				cancel(err)
			}
			free <- buf
		}()
	}
	wg.Wait()
	if err := context.Cause(gctx); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("UploadFrom %q: %w", name, ctx.Err())
		}
		return nil, err
	}
	po := opts.PutOptions
	po.ContentMD5 = whole.Sum(nil)
	return ct.PutBlockList(ctx, name, ids, po)
}

// uploadBlockID names the n-th block of one UploadFrom. The random nonce
// keeps two uploads of the same blob at once from committing each other's
// blocks; the ID has the length of BlockID's, so both kinds can meet in one
// blob's uncommitted list (all IDs of a blob must have one length).
func uploadBlockID(nonce uint32, n int) string {
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%06x-%07d", nonce, n)))
}

// DownloadTo writes the blob name into dst with parallel ranged GETs, each
// pinned with If-Match to the ETag of the first answer, so that the result
// is one version of the blob or ErrPrecondition. When the blob has an MD5
// (x-ms-blob-content-md5) the bytes are hashed in order as they arrive and
// a mismatch fails with ErrIntegrity. Memory: Concurrency × BlockSize at
// most. It returns the blob's properties.
func DownloadTo(ctx context.Context, ct Store, name string, dst io.WriterAt, opts Options) (*blob.Properties, error) {
	bufs := opts.Buffers
	opts = opts.withDefaults(0)
	bs := opts.BlockSize
	first, p, err := ct.Download(ctx, name, 0, bs, opts.Conditions)
	if errors.Is(err, blob.ErrInvalidRange) {
		// An empty blob has no range to ask for: read it whole.
		rc, p, err := ct.Download(ctx, name, 0, -1, opts.Conditions)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		_, err = io.Copy(io.NewOffsetWriter(dst, 0), rc)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	defer first.Close()
	opts = opts.withDefaults(p.Size) // a huge blob may need larger blocks
	if opts.BlockSize != bs {
		first.Close()
		first = nil
		bs = opts.BlockSize
	}
	pinned := blob.Conditions{IfMatch: p.ETag}
	chunks := int((p.Size + bs - 1) / bs)
	verify := !opts.NoVerify && len(p.ContentMD5) == md5.Size

	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	free := make(chan []byte, opts.Concurrency)
	for range opts.Concurrency {
		free <- nil
	}
	h := newOrderedHash(verify, free)
	var wg sync.WaitGroup
	for i := 0; i < chunks; i++ {
		var buf []byte
		select {
		case buf = <-free:
		case <-gctx.Done():
		}
		if gctx.Err() != nil {
			break
		}
		if buf == nil {
			buf = bufs.get(int(bs))
			defer bufs.put(buf)
		}
		off := int64(i) * bs
		chunk := buf[:min(bs, p.Size-off)]
		body := first
		first = nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fetchRange(gctx, ct, name, body, chunk, off, pinned); err != nil {
				cancel(err)
				free <- buf
				return
			}
			if _, err := dst.WriteAt(chunk, off); err != nil {
				cancel(fmt.Errorf("GetBlob %q: writing at %d: %w", name, off, err))
				free <- buf
				return
			}
			h.done(i, chunk, buf)
		}()
	}
	wg.Wait()
	if err := context.Cause(gctx); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("DownloadTo %q: %w", name, ctx.Err())
		}
		return nil, err
	}
	if verify {
		if got := h.sum(); !bytes.Equal(got, p.ContentMD5) {
			return nil, &blob.IntegrityError{Op: "GetBlob", Name: name, Want: p.ContentMD5, Got: got}
		}
	}
	return p, nil
}

// fetchRange fills chunk with the blob's bytes at off, from body when the
// first answer already holds them, else with a ranged GET.
func fetchRange(ctx context.Context, ct Store, name string, body io.ReadCloser, chunk []byte, off int64, pinned blob.Conditions) error {
	if body == nil {
		var err error
		body, _, err = ct.Download(ctx, name, off, int64(len(chunk)), pinned)
		if err != nil {
			return err
		}
	}
	defer body.Close()
	if _, err := io.ReadFull(body, chunk); err != nil {
		return fmt.Errorf("GetBlob %q at %d: %w", name, off, err)
	}
	return nil
}

// orderedHash hashes chunks that complete in any order in their order in
// the blob, handing each buffer back once hashed. Because buffers are taken
// in chunk order, the lowest unhashed chunk always holds one and will
// complete: waiting for it cannot deadlock.
type orderedHash struct {
	mu      sync.Mutex
	h       hash.Hash // nil: no hashing, buffers go back at once
	next    int
	pending map[int][2][]byte // chunk, its buffer
	free    chan<- []byte
}

func newOrderedHash(on bool, free chan<- []byte) *orderedHash {
	o := &orderedHash{pending: map[int][2][]byte{}, free: free}
	if on {
		o.h = md5.New()
	}
	return o
}

func (o *orderedHash) done(i int, chunk, buf []byte) {
	if o.h == nil {
		o.free <- buf
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending[i] = [2][]byte{chunk, buf}
	for {
		c, ok := o.pending[o.next]
		if !ok {
			return
		}
		delete(o.pending, o.next)
		o.h.Write(c[0])
		o.free <- c[1]
		o.next++
	}
}

func (o *orderedHash) sum() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.h.Sum(nil)
}
