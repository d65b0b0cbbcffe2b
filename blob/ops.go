package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
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
	ContentMD5  []byte // of the whole blob; computed by Upload when nil
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
	return resp.Body, propertiesFromHeader(name, resp.Header), nil
}

// Upload writes a whole blob in one Put Blob call (up to 5,000 MiB). The
// whole-blob MD5 is sent so the service stores it and other tools can check it.
func (ct *Container) Upload(ctx context.Context, name string, data []byte, opts PutOptions) (*Properties, error) {
	r, err := ct.blobRequest("PutBlob", http.MethodPut, name, nil)
	if err != nil {
		return nil, err
	}
	sum := opts.ContentMD5
	if sum == nil {
		s := md5.Sum(data)
		sum = s[:]
	}
	r.header.Set("x-ms-blob-type", "BlockBlob")
	r.header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum))
	ct.putHeaders(r.header, opts)
	r.body = data
	if data == nil {
		r.body = []byte{}
	}
	// A repeated Put Blob writes the same bytes again: safe, except when it
	// is create-only, where a lost answer would turn into BlobAlreadyExists.
	r.ok, r.idempotent = []int{http.StatusCreated}, opts.IfNoneMatch == ""
	return ct.doWrite(ctx, r)
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
// service checks.
func (ct *Container) PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error {
	r, err := ct.blobRequest("PutBlock", http.MethodPut, name, url.Values{"comp": {"block"}, "blockid": {id}})
	if err != nil {
		return err
	}
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(data, 0, size)); err != nil {
		return fmt.Errorf("PutBlock %q: reading the block: %w", name, err)
	}
	r.header.Set("Content-MD5", base64.StdEncoding.EncodeToString(h.Sum(nil)))
	r.bodyFrom, r.bodyLen = data, size
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
	r.ok, r.idempotent = []int{http.StatusCreated}, opts.IfNoneMatch == "" && opts.IfMatch == ""
	return ct.doWrite(ctx, r)
}

// Delete removes a blob (and its snapshots).
func (ct *Container) Delete(ctx context.Context, name string, cond Conditions) error {
	r, err := ct.blobRequest("DeleteBlob", http.MethodDelete, name, nil)
	if err != nil {
		return err
	}
	r.header.Set("x-ms-delete-snapshots", "include")
	cond.apply(r.header)
	r.ok, r.idempotent = []int{http.StatusAccepted}, true
	_, err = ct.doWrite(ctx, r)
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
	return ct.doWrite(ctx, r)
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
	return ct.doWrite(ctx, r)
}

// Copy copies src to dst inside this container on the service side and
// waits until the copy has finished. With metadata nil the copy keeps the
// source's metadata; otherwise it gets exactly md.
func (ct *Container) Copy(ctx context.Context, dst, src string, md map[string]string, srcCond, dstCond Conditions) (*Properties, error) {
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
	r.header.Set("x-ms-copy-source", srcURL.String())
	if srcCond.IfMatch != "" {
		r.header.Set("x-ms-source-if-match", srcCond.IfMatch)
	}
	setMetadata(r.header, md)
	dstCond.apply(r.header)
	// Repeating a copy of an unchanged source gives the same result.
	r.ok, r.idempotent = []int{http.StatusAccepted, http.StatusCreated}, srcCond.IfMatch != ""
	p, err := ct.doWrite(ctx, r)
	if err != nil {
		return nil, err
	}
	for delay := 100 * time.Millisecond; p.CopyStatus == "pending"; delay = min(2*delay, 2*time.Second) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if p, err = ct.GetProperties(ctx, dst); err != nil {
			return nil, err
		}
	}
	if p.CopyStatus != "" && p.CopyStatus != "success" {
		return nil, fmt.Errorf("CopyBlob %q to %q: copy %s", src, dst, p.CopyStatus)
	}
	return p, nil
}

func decodeB64(s string) []byte {
	b, _ := base64.StdEncoding.DecodeString(s)
	return b
}
