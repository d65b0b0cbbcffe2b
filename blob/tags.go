package blob

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// GetTags reads a blob's index tags (Get Blob Tags). Callers ask only for
// blobs whose TagCount is not zero: most blobs have none, and the call
// would be wasted on them.
func (ct *Container) GetTags(ctx context.Context, name string) (map[string]string, error) {
	r, err := ct.blobRequest("GetBlobTags", http.MethodGet, name, url.Values{"comp": {"tags"}})
	if err != nil {
		return nil, err
	}
	r.ok, r.idempotent = []int{http.StatusOK}, true
	resp, err := ct.c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var x struct {
		Tags []struct {
			Key   string `xml:"Key"`
			Value string `xml:"Value"`
		} `xml:"TagSet>Tag"`
	}
	if err := xml.NewDecoder(resp.Body).Decode(&x); err != nil {
		return nil, fmt.Errorf("GetBlobTags %q: reading the answer: %w", name, err)
	}
	tags := make(map[string]string, len(x.Tags))
	for _, t := range x.Tags {
		tags[t.Key] = t.Value
	}
	return tags, nil
}

// encodeTags is the x-ms-tags form of tags: URL-encoded, in name order.
// Spaces are %20, never '+' (Azure reads a '+' literally).
func encodeTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(esc(k) + "=" + esc(tags[k]))
	}
	return b.String()
}
