package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Conditions make a call conditional on the blob's state.
type Conditions struct {
	IfMatch     string // the call applies only to this ETag
	IfNoneMatch string // "*": only when the blob does not exist yet
}

func (c Conditions) apply(h http.Header) {
	if c.IfMatch != "" {
		h.Set("If-Match", c.IfMatch)
	}
	if c.IfNoneMatch != "" {
		h.Set("If-None-Match", c.IfNoneMatch)
	}
}

// PutOptions go with calls that (re)write a blob. Put Blob and Put Block
// List replace all metadata and content headers, so callers pass the full set.
type PutOptions struct {
	Metadata    map[string]string
	ContentType string
	// ContentMD5 is the whole blob's MD5, stored so that other tools
	// (AzCopy --check-md5, rclone check) and our downloads can verify it.
	// Upload computes it when nil; Put Block List without one leaves the
	// blob with none (the service never computes it for a block list).
	ContentMD5 []byte
	// NoMD5 sends no MD5 at all (--put-md5=false): Put Blob then stores
	// the one the service computes, a block list none.
	NoMD5 bool
	// ContentHeaders, AccessTier and Tags are replaced by every Put Blob
	// and Put Block List too: a rewrite passes the blob's own to keep them.
	ContentHeaders
	AccessTier string            // x-ms-access-tier; "": the account's default
	Tags       map[string]string // index tags (x-ms-tags); nil: none
	Conditions
}

func (ct *Container) blobRequest(op, method, name string, q url.Values) (*request, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if q == nil {
		q = url.Values{}
	}
	return &request{
		op: op, name: name, method: method,
		path:   "/" + url.PathEscape(ct.name) + "/" + escapePath(name),
		query:  q,
		header: http.Header{},
	}, nil
}

// checkName is ValidateName for the wire: it also lets through the single
// trailing '/' of a directory marker.
func checkName(name string) error {
	if n := strings.TrimSuffix(name, "/"); n != name && n != "" {
		return ValidateName(n)
	}
	return ValidateName(name)
}

// GetProperties reads a blob's properties and metadata (HEAD).
func (ct *Container) GetProperties(ctx context.Context, name string) (*Properties, error) {
	r, err := ct.blobRequest("GetBlobProperties", http.MethodHead, name, nil)
	if err != nil {
		return nil, err
	}
	r.ok, r.idempotent = []int{http.StatusOK}, true
	resp, err := ct.c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return propertiesFromHeader(name, resp.Header), nil
}

// Download reads count bytes from offset (count < 0: to the end). The
// answer's Properties describe the whole blob (Size is the blob's size).
// Reading past the end is ErrInvalidRange; reading an empty blob must use
// offset 0 and count < 0.
//
// The body survives connection failures: it re-requests what is left,
// pinned to the first answer's ETag (a blob rewritten meanwhile fails the
// Read with ErrPrecondition). When the whole blob is read (offset 0,
// count < 0) and the service holds an MD5 for it, the bytes are checked
// against it and the final Read fails with ErrIntegrity on a mismatch.
// Ranged reads are not checked: the service has no cheap MD5 for a range
// larger than 4 MiB, and Azurite's range MD5 is stale (Azurite #2409).
func (ct *Container) Download(ctx context.Context, name string, offset, count int64, cond Conditions) (io.ReadCloser, *Properties, error) {
	r, err := ct.blobRequest("GetBlob", http.MethodGet, name, nil)
	if err != nil {
		return nil, nil, err
	}
	r.ok, r.idempotent = []int{http.StatusOK, http.StatusPartialContent}, true
	switch {
	case count > 0:
		r.header.Set("x-ms-range", fmt.Sprintf("bytes=%d-%d", offset, offset+count-1))
	case count < 0 && offset > 0:
		r.header.Set("x-ms-range", fmt.Sprintf("bytes=%d-", offset))
	case count == 0:
		return io.NopCloser(strings.NewReader("")), nil, fmt.Errorf("GetBlob %q: empty range", name)
	}
	cond.apply(r.header)
	resp, err := ct.c.do(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	p := propertiesFromHeader(name, resp.Header)
	if offset > 0 && offset >= p.Size {
		// Azure answers 416 here; Azurite an empty 206 ("bytes 11-10/11"
		// for an 11-byte blob). Answer as Azure does.
		resp.Body.Close()
		return nil, nil, &StorageError{Op: "GetBlob", Name: name, Status: http.StatusRequestedRangeNotSatisfiable,
			Code: "InvalidRange", Message: fmt.Sprintf("offset %d is at or past the end of the %d-byte blob", offset, p.Size)}
	}
	if resp.StatusCode == http.StatusOK && offset > 0 {
		// The service ignored the range: skip to it.
		if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
			resp.Body.Close()
			return nil, nil, err
		}
	}
	d := &downloadReader{ct: ct, ctx: ctx, name: name, etag: p.ETag, next: offset, end: p.Size, body: resp.Body}
	if count > 0 && offset+count < d.end {
		d.end = offset + count
	}
	if resp.StatusCode == http.StatusOK && offset == 0 && count < 0 {
		d.md5, d.want = newMD5Verifier(p.ContentMD5)
	}
	return d, p, nil
}

// Upload writes a whole blob in one Put Blob call (up to 5,000 MiB). The
// whole-blob MD5 is sent so the service stores it and other tools can check it.
func (ct *Container) Upload(ctx context.Context, name string, data []byte, opts PutOptions) (*Properties, error) {
	r, err := ct.blobRequest("PutBlob", http.MethodPut, name, nil)
	if err != nil {
		return nil, err
	}
	sum := opts.ContentMD5
	if sum == nil && !opts.NoMD5 {
		s := md5.Sum(data)
		sum = s[:]
	}
	r.header.Set("x-ms-blob-type", "BlockBlob")
	if sum != nil {
		// The service checks the body against it, and stores it.
		r.header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum))
	}
	ct.putHeaders(r.header, opts)
	r.body = data
	if data == nil {
		r.body = []byte{}
	}
	r.ok, r.idempotent = []int{http.StatusCreated}, true
	if opts.IfNoneMatch == "" && opts.IfMatch == "" {
		// A repeated Put Blob writes the same bytes again.
		return ct.doWrite(ctx, r)
	}
	size := int64(len(data))
	return ct.writeChecked(ctx, r, opts.Conditions, func(cur *Properties, herr error) bool {
		return herr == nil && cur.Size == size && (sum == nil || bytes.Equal(cur.ContentMD5, sum))
	})
}

func (ct *Container) putHeaders(h http.Header, opts PutOptions) {
	ctype := opts.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("x-ms-blob-content-type", ctype)
	if opts.ContentMD5 != nil {
		h.Set("x-ms-blob-content-md5", base64.StdEncoding.EncodeToString(opts.ContentMD5))
	}
	opts.ContentHeaders.apply(h)
	if opts.AccessTier != "" {
		h.Set("x-ms-access-tier", opts.AccessTier)
	}
	if len(opts.Tags) > 0 {
		h.Set("x-ms-tags", encodeTags(opts.Tags))
	}
	setMetadata(h, opts.Metadata)
	opts.Conditions.apply(h)
}

func (ct *Container) doWrite(ctx context.Context, r *request) (*Properties, error) {
	resp, err := ct.c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return propertiesFromHeader(r.name, resp.Header), nil
}

// BlockID makes the n-th block ID of a blob. All IDs of a blob must have the
// same length, so the number is fixed-width.
func BlockID(n int) string {
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("blk-%010d", n)))
}

// PutBlock stages one block (up to 4,000 MiB) with its MD5, which the
// service checks, unless data is marked Unhashed. data is read twice (to
// hash, then to send), and again on every retry.
func (ct *Container) PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error {
	if u, ok := data.(unhashed); ok {
		return ct.putBlockSum(ctx, name, id, u.ReaderAt, size, nil)
	}
	h := md5.New()
	if br, ok := data.(*bytes.Reader); ok && br.Size() == size {
		// A block in memory is hashed where it lies: io.Copy would copy
		// it through a buffer first, a fifth of the hashing's cost. The
		// copy of the Reader keeps the caller's position; the sends use
		// ReadAt, which ignores it.
		r := *br
		r.Seek(0, io.SeekStart)
		r.WriteTo(h)
	} else if _, err := io.Copy(h, io.NewSectionReader(data, 0, size)); err != nil {
		return fmt.Errorf("PutBlock %q: reading the block: %w", name, err)
	}
	return ct.putBlockSum(ctx, name, id, data, size, h.Sum(nil))
}

// Unhashed marks a block's data for PutBlock to send without a
// transactional MD5: for callers that hash the whole blob as it streams
// (its MD5 goes with Put Block List), where a second hash of every block
// would double the CPU spent hashing. The connection's own checks (TCP,
// and TLS's MAC on Azure) still guard the transfer. A mark rather than
// another method, so that wrappers of PutBlock see every block.
func Unhashed(data io.ReaderAt) io.ReaderAt { return unhashed{data} }

type unhashed struct{ io.ReaderAt }

func (ct *Container) putBlock(ctx context.Context, name, id string, data []byte) error {
	sum := md5.Sum(data)
	return ct.putBlockSum(ctx, name, id, bytes.NewReader(data), int64(len(data)), sum[:])
}

func (ct *Container) putBlockSum(ctx context.Context, name, id string, data io.ReaderAt, size int64, sum []byte) error {
	r, err := ct.blobRequest("PutBlock", http.MethodPut, name, url.Values{"comp": {"block"}, "blockid": {id}})
	if err != nil {
		return err
	}
	if sum != nil {
		r.header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum))
	}
	r.bodyFrom, r.bodyLen = data, size
	// Staging the same bytes under the same ID again changes nothing.
	r.ok, r.idempotent = []int{http.StatusCreated}, true
	_, err = ct.doWrite(ctx, r)
	return err
}

// PutBlockList commits the blocks, in order, as the blob's new content.
// Readers see the old content until this call succeeds.
func (ct *Container) PutBlockList(ctx context.Context, name string, ids []string, opts PutOptions) (*Properties, error) {
	r, err := ct.blobRequest("PutBlockList", http.MethodPut, name, url.Values{"comp": {"blocklist"}})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><BlockList>`)
	for _, id := range ids {
		b.WriteString("<Latest>")
		xml.EscapeText(&b, []byte(id))
		b.WriteString("</Latest>")
	}
	b.WriteString("</BlockList>")
	r.body = b.Bytes()
	r.header.Set("Content-Type", "application/xml")
	ct.putHeaders(r.header, opts)
	r.ok, r.idempotent = []int{http.StatusCreated}, true
	var p *Properties
	if opts.IfNoneMatch == "" && opts.IfMatch == "" {
		// Committing the same list again gives the same blob: <Latest>
		// finds the blocks among the committed ones.
		p, err = ct.doWrite(ctx, r)
	} else {
		var applied func(*Properties, error) bool
		if opts.ContentMD5 != nil {
			applied = func(cur *Properties, herr error) bool {
				return herr == nil && bytes.Equal(cur.ContentMD5, opts.ContentMD5)
			}
		}
		p, err = ct.writeChecked(ctx, r, opts.Conditions, applied)
	}
	if err != nil {
		return nil, err
	}
	// The answer's Content-MD5, if any, is of the request body: the blob's
	// MD5 is what was sent, or none.
	p.ContentMD5 = opts.ContentMD5
	return p, nil
}

// Delete removes a blob. A blob with snapshots is not removed unless the
// container handle came from DeletingSnapshots: version history is not
// destroyed silently. The error then is a *SnapshotsError naming them,
// which matches ErrBusy. A Delete whose answer was lost is not reported as
// ErrNotFound when repeated: the blob is checked first.
func (ct *Container) Delete(ctx context.Context, name string, cond Conditions) error {
	r, err := ct.blobRequest("DeleteBlob", http.MethodDelete, name, nil)
	if err != nil {
		return err
	}
	if ct.deleteSnapshots {
		r.header.Set("x-ms-delete-snapshots", "include")
	}
	cond.apply(r.header)
	r.ok = []int{http.StatusAccepted}
	_, err = ct.writeChecked(ctx, r, cond, func(_ *Properties, herr error) bool {
		return errors.Is(herr, ErrNotFound)
	})
	var se *StorageError
	if errors.As(err, &se) && se.Code == "SnapshotsPresent" {
		return ct.snapshotsError(ctx, name, se)
	}
	return err
}

// SetMetadata replaces all of a blob's metadata.
func (ct *Container) SetMetadata(ctx context.Context, name string, md map[string]string, cond Conditions) (*Properties, error) {
	r, err := ct.blobRequest("SetBlobMetadata", http.MethodPut, name, url.Values{"comp": {"metadata"}})
	if err != nil {
		return nil, err
	}
	setMetadata(r.header, md)
	cond.apply(r.header)
	r.ok, r.idempotent = []int{http.StatusOK}, true
	if cond == (Conditions{}) {
		return ct.doWrite(ctx, r)
	}
	return ct.writeChecked(ctx, r, cond, func(cur *Properties, herr error) bool {
		return herr == nil && sameMetadata(cur.Metadata, md)
	})
}

func sameMetadata(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if w, ok := MetaValue(a, k); !ok || w != v {
			return false
		}
	}
	return true
}

// SetContentType sets a blob's Content-Type (Set Blob Properties). The
// service clears the other content headers it is not given, so the MD5 is
// passed along.
func (ct *Container) SetContentType(ctx context.Context, name, contentType string, md5 []byte, cond Conditions) (*Properties, error) {
	r, err := ct.blobRequest("SetBlobProperties", http.MethodPut, name, url.Values{"comp": {"properties"}})
	if err != nil {
		return nil, err
	}
	r.header.Set("x-ms-blob-content-type", contentType)
	if md5 != nil {
		r.header.Set("x-ms-blob-content-md5", base64.StdEncoding.EncodeToString(md5))
	}
	cond.apply(r.header)
	r.ok, r.idempotent = []int{http.StatusOK}, true
	if cond == (Conditions{}) {
		return ct.doWrite(ctx, r)
	}
	return ct.writeChecked(ctx, r, cond, func(cur *Properties, herr error) bool {
		return herr == nil && cur.ContentType == contentType && (md5 == nil || bytes.Equal(cur.ContentMD5, md5))
	})
}

// MaxCopySourceLength is the longest x-ms-copy-source URL the service takes.
const MaxCopySourceLength = 2048

// CopyRequest is what Copy copies where; named fields, since two names
// and two sets of conditions side by side are easy to swap.
type CopyRequest struct {
	Dst, Src string
	// Metadata nil keeps the source's metadata; otherwise the copy gets
	// exactly it.
	Metadata map[string]string
	// SrcCond.IfMatch pins the source's version; DstCond makes the copy
	// conditional on the destination.
	SrcCond, DstCond Conditions
}

// Copy copies req.Src to req.Dst inside this container on the service side
// and waits until the copy has finished. The returned Properties are the
// destination's after the copy.
//
// An unconditional copy is repeated freely after an ambiguous failure (a
// second copy of the same source gives the same blob). A copy with
// dstCond is repeated only after a HEAD of dst shows it was not applied,
// and is taken as done when dst shows this source as its copy source.
func (ct *Container) Copy(ctx context.Context, req CopyRequest) (*Properties, error) {
	p, err := ct.copy(ctx, req.Dst, req.Src, req.Metadata, req.SrcCond, req.DstCond, nil)
	if err != nil {
		return nil, err
	}
	if p.Size == 0 && p.ContentType == "" {
		// The Copy answer carries no size or content headers: read them.
		return ct.GetProperties(ctx, req.Dst)
	}
	return p, nil
}

// CopyFrom copies the version of a blob described by src (pinned to its
// ETag) to dst, and returns src's properties under dst's name, ETag and
// Last-Modified, with md as metadata when md is not nil. A copy that the
// service reports as successful of exactly that version has exactly its
// content, so no HEAD is needed: a rename costs one Copy and one Delete.
//
// Copy Blob copies neither index tags nor (on Azure) an explicit access
// tier: the copy is sent with src's, read with Get Blob Tags only when
// src.TagCount says it has some and src.Tags does not hold them already.
func (ct *Container) CopyFrom(ctx context.Context, dst string, src *Properties, md map[string]string, dstCond Conditions) (*Properties, error) {
	keep := *src
	if keep.TagCount > 0 && keep.Tags == nil {
		tags, err := ct.GetTags(ctx, src.Name)
		if err != nil {
			return nil, fmt.Errorf("CopyBlob %q to %q: reading the index tags to keep them: %w", src.Name, dst, err)
		}
		keep.Tags = tags
	}
	got, err := ct.copy(ctx, dst, src.Name, md, Conditions{IfMatch: src.ETag}, dstCond, &keep)
	if err != nil {
		return nil, err
	}
	p := keep
	p.Name, p.ETag, p.LastModified = dst, got.ETag, got.LastModified
	p.CopyStatus, p.CopyID, p.CopySource = got.CopyStatus, got.CopyID, got.CopySource
	if md != nil {
		p.Metadata = md
	}
	return &p, nil
}

// copy starts a copy and waits until the service reports it finished. The
// properties are those of the answer (or of the last poll while pending).
func (ct *Container) copy(ctx context.Context, dst, src string, md map[string]string, srcCond, dstCond Conditions, keep *Properties) (*Properties, error) {
	if err := checkName(src); err != nil {
		return nil, err
	}
	r, err := ct.blobRequest("CopyBlob", http.MethodPut, dst, nil)
	if err != nil {
		return nil, err
	}
	srcURL := *ct.c.endpoint
	srcURL.RawPath = ct.c.endpoint.EscapedPath() + "/" + url.PathEscape(ct.name) + "/" + escapePath(src)
	srcURL.Path, _ = url.PathUnescape(srcURL.RawPath)
	if sas, ok := ct.c.cred.(*SAS); ok {
		// The request's SAS does not authorize the source URL on Azure:
		// the source carries it too. It travels only in this header.
		srcURL.RawQuery = sas.token
	}
	source := srcURL.String()
	if len(source) > MaxCopySourceLength {
		return nil, &NameError{Name: src, Reason: fmt.Sprintf("too long to copy: its URL (with any SAS) is %d bytes, the service takes at most %d", len(source), MaxCopySourceLength), Kind: ErrNameTooLong}
	}
	r.header.Set("x-ms-copy-source", source)
	if srcCond.IfMatch != "" {
		r.header.Set("x-ms-source-if-match", srcCond.IfMatch)
	}
	if keep != nil {
		if len(keep.Tags) > 0 {
			r.header.Set("x-ms-tags", encodeTags(keep.Tags))
		}
		if t := keep.ExplicitTier(); t != "" && !strings.EqualFold(t, "Archive") {
			r.header.Set("x-ms-access-tier", t)
		}
	}
	setMetadata(r.header, md)
	dstCond.apply(r.header)
	r.ok, r.idempotent = []int{http.StatusAccepted, http.StatusCreated}, true
	var p *Properties
	if dstCond == (Conditions{}) {
		p, err = ct.doWrite(ctx, r)
	} else {
		p, err = ct.writeChecked(ctx, r, dstCond, func(cur *Properties, herr error) bool {
			return herr == nil && sameCopySource(cur.CopySource, source) && (cur.CopyStatus == "success" || cur.CopyStatus == "pending")
		})
	}
	if err != nil {
		return nil, err
	}
	for delay := 100 * time.Millisecond; p.CopyStatus == "pending"; delay = min(2*delay, 2*time.Second) {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("CopyBlob %q to %q: waiting for the copy: %w", src, dst, ctx.Err())
		case <-time.After(delay):
		}
		if p, err = ct.GetProperties(ctx, dst); err != nil {
			return nil, err
		}
	}
	if p.CopyStatus != "" && p.CopyStatus != "success" {
		return nil, fmt.Errorf("CopyBlob %q to %q: the service reports the copy %s", src, dst, p.CopyStatus)
	}
	return p, nil
}

// sameCopySource compares copy source URLs as the service may echo them
// with a different escaping.
func sameCopySource(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return ua.Path == ub.Path
}

func decodeB64(s string) []byte {
	b, _ := base64.StdEncoding.DecodeString(s)
	return b
}
