package blob

import (
	"encoding/base64"
	"net/http"
	"sort"
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
	ContentMD5   []byte // MD5 of the whole blob when the service has one
	// Metadata holds the blob's user metadata. Names are exactly as the
	// service stored them when the answer shows them (listings); a HEAD or
	// GET answer goes through Go's HTTP client, which canonicalises header
	// names ("X-Ms-Meta-Project_id"), so names from those are lower-cased,
	// the case the Azure SDKs, AzCopy and blobfuse2 write. The service
	// matches names case-insensitively: look them up with MetaValue.
	Metadata map[string]string
	// MetaNamesLowered says Metadata's names came lower-cased from a HEAD
	// or GET, not as stored: a rewrite that must send them as stored
	// reads them from a listing first (stage does).
	MetaNamesLowered bool
	// The content headers a Put Blob or Put Block List replaces: kept
	// across rewrites and renames so that a CDN keeps serving them.
	ContentHeaders
	BlobType           string // "BlockBlob", "AppendBlob" or "PageBlob"; "" when not reported
	AccessTier         string // "Hot", "Cool", "Cold", "Archive"...; "" when not reported
	AccessTierInferred bool   // the tier is the account's default, not set on the blob
	ArchiveStatus      string // e.g. "rehydrate-pending-to-hot"
	TagCount           int    // index tags the blob has (x-ms-tag-count)
	// Tags are the blob's index tags when they were read (GetTags) or
	// written; nil otherwise, even when TagCount says it has some.
	Tags map[string]string
	// Snapshot is the snapshot's time stamp when this is a snapshot
	// (listed with IncludeSnapshots); "" for the blob itself.
	Snapshot string

	CopyStatus string // "", "pending", "success", "failed", "aborted"
	CopyID     string // x-ms-copy-id of the last copy into this blob
	CopySource string // x-ms-copy-source of the last copy into this blob
}

// ContentHeaders are a blob's standard content properties besides
// Content-Type and Content-MD5.
type ContentHeaders struct {
	CacheControl       string
	ContentEncoding    string
	ContentLanguage    string
	ContentDisposition string
}

func (c ContentHeaders) apply(h http.Header) {
	for _, kv := range [...][2]string{
		{"x-ms-blob-cache-control", c.CacheControl},
		{"x-ms-blob-content-encoding", c.ContentEncoding},
		{"x-ms-blob-content-language", c.ContentLanguage},
		{"x-ms-blob-content-disposition", c.ContentDisposition},
	} {
		if kv[1] != "" {
			h.Set(kv[0], kv[1])
		}
	}
}

// ExplicitTier is the access tier set on the blob itself, "" when it has
// the account's default: the one a rewrite or a copy must carry over.
func (p *Properties) ExplicitTier() string {
	if p.AccessTierInferred {
		return ""
	}
	return p.AccessTier
}

const metaPrefix = "x-ms-meta-"

func propertiesFromHeader(name string, h http.Header) *Properties {
	p := &Properties{
		Name:        name,
		ETag:        h.Get("ETag"),
		ContentType: h.Get("Content-Type"),
		CopyStatus:  h.Get("x-ms-copy-status"),
		CopyID:      h.Get("x-ms-copy-id"),
		CopySource:  withoutQuery(h.Get("x-ms-copy-source")),
	}
	p.ContentHeaders = ContentHeaders{
		CacheControl:       h.Get("Cache-Control"),
		ContentEncoding:    h.Get("Content-Encoding"),
		ContentLanguage:    h.Get("Content-Language"),
		ContentDisposition: h.Get("Content-Disposition"),
	}
	p.BlobType = h.Get("x-ms-blob-type")
	p.AccessTier = h.Get("x-ms-access-tier")
	p.AccessTierInferred = strings.EqualFold(h.Get("x-ms-access-tier-inferred"), "true")
	p.ArchiveStatus = h.Get("x-ms-archive-status")
	p.TagCount, _ = strconv.Atoi(h.Get("x-ms-tag-count"))
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
		if len(k) > len(metaPrefix) && strings.EqualFold(k[:len(metaPrefix)], metaPrefix) && len(v) > 0 {
			if p.Metadata == nil {
				p.Metadata = map[string]string{}
			}
			p.Metadata[strings.ToLower(k[len(metaPrefix):])] = v[0]
			p.MetaNamesLowered = true
		}
	}
	return p
}

// setMetadata puts md on a request with every name exactly as given: the
// service stores a name in the case it is sent, and case-sensitive readers
// (an SDK's metadata["hdi_isfolder"]) depend on it. http.Header.Set would
// canonicalise "x-ms-meta-hdi_isfolder" to "X-Ms-Meta-Hdi_isfolder", so
// the map key is set directly; SharedKey signing lower-cases it anyway.
// Of names that differ only in case (the service would refuse them as
// duplicates) one is sent: the lower-case one, else the first in order.
func setMetadata(h http.Header, md map[string]string) {
	for _, k := range metaNames(md) {
		h[metaPrefix+k] = []string{md[k]}
	}
}

// metaNames lists md's names in order, one per case-insensitive name.
func metaNames(md map[string]string) []string {
	names := make([]string, 0, len(md))
	for k := range md {
		names = append(names, k)
	}
	sort.Strings(names)
	out := names[:0]
	seen := make(map[string]int, len(names))
	for _, k := range names {
		l := strings.ToLower(k)
		if i, dup := seen[l]; dup {
			if k == l {
				out[i] = k
			}
			continue
		}
		seen[l] = len(out)
		out = append(out, k)
	}
	return out
}

// MetaNamesAs gives md's names the case they have in stored, the
// metadata of a listing (names exactly as the service keeps them): for a
// name md has in lower case only, as a HEAD or GET gives it, and for
// which keep is false (the caller's own names, which it writes lower-case
// whatever case a blob has them in). md is not changed; the result is a
// new map.
func MetaNamesAs(md, stored map[string]string, keep func(name string) bool) map[string]string {
	exact := make(map[string]string, len(stored))
	for k := range stored {
		exact[strings.ToLower(k)] = k
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		if e, ok := exact[k]; ok && k == strings.ToLower(k) && (keep == nil || !keep(k)) {
			k = e
		}
		out[k] = v
	}
	return out
}

// MetaValue looks name up in md as the service does, ignoring case.
func MetaValue(md map[string]string, name string) (string, bool) {
	if v, ok := md[name]; ok {
		return v, true
	}
	for k, v := range md {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// SetMeta sets name in md, replacing any name that differs from it only
// in case, so that the name goes out exactly as given.
func SetMeta(md map[string]string, name, value string) {
	for k := range md {
		if k != name && strings.EqualFold(k, name) {
			delete(md, k)
		}
	}
	md[name] = value
}

// withoutQuery drops a URL's query, where a SAS would be, so that
// Properties never carry a secret into a log.
func withoutQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}
