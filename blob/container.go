package blob

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Container is a handle on one container. It is cheap; make as many as needed.
type Container struct {
	c    *Client
	name string
	// deleteSnapshots: Delete removes a blob's snapshots with it
	// (DeletingSnapshots); otherwise such a Delete fails.
	deleteSnapshots bool
}

// Client is the client the container was made from.
func (ct *Container) Client() *Client { return ct.c }

// Name is the container's name.
func (ct *Container) Name() string { return ct.name }

func (ct *Container) containerRequest(op, method string, q url.Values) *request {
	if q == nil {
		q = url.Values{}
	}
	q.Set("restype", "container")
	return &request{op: op, name: ct.name, method: method, path: "/" + url.PathEscape(ct.name), query: q, header: http.Header{}}
}

// Create makes the container. It fails with ErrExists when it is there already.
func (ct *Container) Create(ctx context.Context) error {
	r := ct.containerRequest("CreateContainer", http.MethodPut, nil)
	r.ok = []int{http.StatusCreated}
	resp, err := ct.c.do(ctx, r)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Check makes sure the container exists and the credential may read it.
// It is a GET, not a HEAD: only a GET's refusal carries the error body
// whose message tells a wrong key from a missing permission (Azurite says
// AuthorizationFailure for both and puts the difference in the message).
func (ct *Container) Check(ctx context.Context) error {
	r := ct.containerRequest("GetContainerProperties", http.MethodGet, nil)
	r.ok, r.idempotent = []int{http.StatusOK}, true
	resp, err := ct.c.do(ctx, r)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// ListOptions select a page of a listing.
type ListOptions struct {
	Prefix          string
	Delimiter       string // "/" lists one directory level
	Marker          string // NextMarker of the previous page
	MaxResults      int    // 0 means the service's default, 5,000
	IncludeMetadata bool
	// IncludeSnapshots lists snapshots too, each with its Snapshot time.
	IncludeSnapshots bool
}

// ListPage is one page of a listing. A page may be short, even empty, and
// still have a NextMarker: keep going until it is empty.
type ListPage struct {
	Blobs      []*Properties
	Prefixes   []string // "directories", each ending in the delimiter
	NextMarker string
}

// List returns one page of the blobs under opts.Prefix.
func (ct *Container) List(ctx context.Context, opts ListOptions) (*ListPage, error) {
	q := url.Values{"comp": {"list"}}
	if opts.Prefix != "" {
		q.Set("prefix", opts.Prefix)
	}
	if opts.Delimiter != "" {
		q.Set("delimiter", opts.Delimiter)
	}
	if opts.Marker != "" {
		q.Set("marker", opts.Marker)
	}
	if opts.MaxResults > 0 {
		q.Set("maxresults", strconv.Itoa(opts.MaxResults))
	}
	var include []string
	if opts.IncludeMetadata {
		include = append(include, "metadata")
	}
	if opts.IncludeSnapshots {
		include = append(include, "snapshots")
	}
	if len(include) > 0 {
		q.Set("include", strings.Join(include, ","))
	}
	r := ct.containerRequest("ListBlobs", http.MethodGet, q)
	r.ok, r.idempotent = []int{http.StatusOK}, true
	resp, err := ct.c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var x listXML
	if err := xml.NewDecoder(resp.Body).Decode(&x); err != nil {
		return nil, fmt.Errorf("ListBlobs %q: reading the answer: %w", ct.name, err)
	}
	page := &ListPage{NextMarker: x.NextMarker}
	for _, b := range x.Blobs.Blob {
		p := &Properties{
			Name:        b.Name.decode(),
			Size:        b.Properties.ContentLength,
			ETag:        quoteETag(b.Properties.Etag),
			ContentType: b.Properties.ContentType,
			Metadata:    b.Metadata.m,
			ContentHeaders: ContentHeaders{
				CacheControl:       b.Properties.CacheControl,
				ContentEncoding:    b.Properties.ContentEncoding,
				ContentLanguage:    b.Properties.ContentLanguage,
				ContentDisposition: b.Properties.ContentDisposition,
			},
			BlobType:           b.Properties.BlobType,
			AccessTier:         b.Properties.AccessTier,
			AccessTierInferred: b.Properties.AccessTierInferred,
			ArchiveStatus:      b.Properties.ArchiveStatus,
			TagCount:           b.Properties.TagCount,
			Snapshot:           b.Snapshot,
		}
		p.LastModified, _ = time.Parse(time.RFC1123, b.Properties.LastModified)
		if b.Properties.ContentMD5 != "" {
			p.ContentMD5 = decodeB64(b.Properties.ContentMD5)
		}
		page.Blobs = append(page.Blobs, p)
	}
	for _, p := range x.Blobs.BlobPrefix {
		page.Prefixes = append(page.Prefixes, p.Name.decode())
	}
	return page, nil
}

type listXML struct {
	NextMarker string `xml:"NextMarker"`
	Blobs      struct {
		Blob []struct {
			Name       xmlName `xml:"Name"`
			Snapshot   string  `xml:"Snapshot"`
			Properties struct {
				LastModified  string `xml:"Last-Modified"`
				Etag          string `xml:"Etag"`
				ContentLength int64  `xml:"Content-Length"`
				ContentType   string `xml:"Content-Type"`
				ContentMD5    string `xml:"Content-MD5"`
				// Kept across rewrites and renames (see ContentHeaders).
				CacheControl       string `xml:"Cache-Control"`
				ContentEncoding    string `xml:"Content-Encoding"`
				ContentLanguage    string `xml:"Content-Language"`
				ContentDisposition string `xml:"Content-Disposition"`
				BlobType           string `xml:"BlobType"`
				AccessTier         string `xml:"AccessTier"`
				AccessTierInferred bool   `xml:"AccessTierInferred"`
				ArchiveStatus      string `xml:"ArchiveStatus"`
				TagCount           int    `xml:"TagCount"`
			} `xml:"Properties"`
			Metadata xmlMetadata `xml:"Metadata"`
		} `xml:"Blob"`
		BlobPrefix []struct {
			Name xmlName `xml:"Name"`
		} `xml:"BlobPrefix"`
	} `xml:"Blobs"`
}

// xmlName is a listed name, which the service may percent-encode
// (<Name Encoded="true">) when it holds characters XML cannot carry.
type xmlName struct {
	Encoded bool   `xml:"Encoded,attr"`
	Value   string `xml:",chardata"`
}

func (n xmlName) decode() string {
	if n.Encoded {
		if s, err := url.QueryUnescape(n.Value); err == nil {
			return s
		}
	}
	return n.Value
}

type xmlMetadata struct{ m map[string]string }

func (md *xmlMetadata) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var v string
			if err := d.DecodeElement(&v, &t); err != nil {
				return err
			}
			if md.m == nil {
				md.m = map[string]string{}
			}
			// The listing shows names as stored: keep their case.
			md.m[t.Name.Local] = v
		case xml.EndElement:
			return nil
		}
	}
}

func quoteETag(e string) string {
	if e == "" || strings.HasPrefix(e, `"`) {
		return e
	}
	return `"` + e + `"`
}
