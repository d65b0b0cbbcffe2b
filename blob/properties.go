package blob

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Properties describe a blob as the service reports it, from a HEAD, a GET
// or a listing.
type Properties struct {
	Name         string
	Size         int64
	ETag         string // quoted, as the service sends it
	LastModified time.Time
	ContentType  string
	ContentMD5   []byte            // MD5 of the whole blob when the service has one
	Metadata     map[string]string // names lower-cased
	CopyStatus   string            // "", "pending", "success", "failed", "aborted"
	CopyID       string            // x-ms-copy-id of the last copy into this blob
	CopySource   string            // x-ms-copy-source of the last copy into this blob
}

const metaPrefix = "X-Ms-Meta-"

func propertiesFromHeader(name string, h http.Header) *Properties {
	p := &Properties{
		Name:        name,
		ETag:        h.Get("ETag"),
		ContentType: h.Get("Content-Type"),
		CopyStatus:  h.Get("x-ms-copy-status"),
		CopyID:      h.Get("x-ms-copy-id"),
		CopySource:  withoutQuery(h.Get("x-ms-copy-source")),
	}
	p.LastModified, _ = http.ParseTime(h.Get("Last-Modified"))
	if cr := h.Get("Content-Range"); cr != "" {
		// bytes s-e/total: the blob's size is the total, not this answer's length.
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			p.Size, _ = strconv.ParseInt(cr[i+1:], 10, 64)
		}
	} else {
		p.Size, _ = strconv.ParseInt(h.Get("Content-Length"), 10, 64)
	}
	md5 := h.Get("x-ms-blob-content-md5")
	if md5 == "" && h.Get("Content-Range") == "" {
		md5 = h.Get("Content-MD5")
	}
	if md5 != "" {
		p.ContentMD5, _ = base64.StdEncoding.DecodeString(md5)
	}
	for k, v := range h {
		if strings.HasPrefix(k, metaPrefix) && len(v) > 0 {
			if p.Metadata == nil {
				p.Metadata = map[string]string{}
			}
			p.Metadata[strings.ToLower(k[len(metaPrefix):])] = v[0]
		}
	}
	return p
}

func setMetadata(h http.Header, md map[string]string) {
	for k, v := range md {
		h.Set("x-ms-meta-"+strings.ToLower(k), v)
	}
}

// withoutQuery drops a URL's query, where a SAS would be, so that
// Properties never carry a secret into a log.
func withoutQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}
