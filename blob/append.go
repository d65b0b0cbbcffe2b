package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// MaxAppendBlock is the most one Append Block call takes: 4 MiB, which
// every API version and Azurite accept (Azure takes 100 MiB from
// 2022-11-02 on, Azurite does not).
const MaxAppendBlock = 4 << 20

// AppendOptions go with an Append Block.
type AppendOptions struct {
	// Position is where the data must land: the blob's size as the caller
	// knows it. Sent as x-ms-blob-condition-appendpos, so that the call
	// fails (412 AppendPositionConditionNotMet, ErrPrecondition) instead
	// of interleaving with another appender's blocks.
	Position int64
	// Conditions, e.g. If-Match on the version the caller appends to.
	Conditions
}

// CreateAppendBlob makes an empty append blob (Put Blob with
// x-ms-blob-type: AppendBlob), replacing whatever name was, with opts'
// metadata, content headers and tags.
func (ct *Container) CreateAppendBlob(ctx context.Context, name string, opts PutOptions) (*Properties, error) {
	r, err := ct.blobRequest("PutBlob", http.MethodPut, name, nil)
	if err != nil {
		return nil, err
	}
	r.header.Set("x-ms-blob-type", "AppendBlob")
	opts.ContentMD5 = nil // a whole-blob MD5 of an append blob would go stale at its first append
	ct.putHeaders(r.header, opts)
	r.body = []byte{}
	r.ok, r.idempotent = []int{http.StatusCreated}, opts.Conditions == (Conditions{})
	if r.idempotent {
		return ct.doWrite(ctx, r)
	}
	return ct.writeChecked(ctx, r, opts.Conditions, func(cur *Properties, herr error) bool {
		return herr == nil && cur.Size == 0 && cur.BlobType == "AppendBlob"
	})
}

// AppendBlock appends data (at most MaxAppendBlock bytes) to an append
// blob, at opts.Position exactly. The service checks the data against its
// MD5 (Content-MD5). The answer's Properties carry the new ETag and
// Last-Modified, and Size: the blob's size after this block.
//
// An Append Block is not repeated blindly after an ambiguous failure (a
// repeat of one that was applied would append the data twice, or fail its
// conditions): the blob is looked at first, and the call counts as done
// when the blob has these very bytes at Position.
func (ct *Container) AppendBlock(ctx context.Context, name string, data []byte, opts AppendOptions) (*Properties, error) {
	if len(data) == 0 || len(data) > MaxAppendBlock {
		return nil, fmt.Errorf("AppendBlock %q: %d bytes; one call takes 1 to %d", name, len(data), MaxAppendBlock)
	}
	r, err := ct.blobRequest("AppendBlock", http.MethodPut, name, url.Values{"comp": {"appendblock"}})
	if err != nil {
		return nil, err
	}
	sum := md5.Sum(data)
	r.header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
	r.header.Set("x-ms-blob-condition-appendpos", strconv.FormatInt(opts.Position, 10))
	opts.Conditions.apply(r.header)
	r.body = data
	r.ok = []int{http.StatusCreated}
	end := opts.Position + int64(len(data))
	p, err := ct.writeChecked(ctx, r, opts.Conditions, func(cur *Properties, herr error) bool {
		return herr == nil && cur.Size >= end && ct.holds(ctx, name, cur.ETag, opts.Position, sum[:], int64(len(data)))
	})
	if err != nil {
		return nil, err
	}
	if p.Size < end {
		// The answer has no size: x-ms-blob-append-offset says where
		// the block went.
		p.Size = end
	}
	// The answer's Content-MD5 is the block's, not the blob's.
	p.ContentMD5 = nil
	p.BlobType = "AppendBlob"
	return p, nil
}

// holds says whether version etag of the blob has bytes with MD5 sum at
// off..off+n: an ambiguous Append Block that the blob shows was applied.
func (ct *Container) holds(ctx context.Context, name, etag string, off int64, sum []byte, n int64) bool {
	body, _, err := ct.Download(ctx, name, off, n, Conditions{IfMatch: etag})
	if err != nil {
		return false
	}
	defer body.Close()
	h := md5.New()
	if got, err := io.Copy(h, body); err != nil || got != n {
		return false
	}
	return bytes.Equal(h.Sum(nil), sum)
}
