package blob

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
)

// Block is one committed block of a block blob.
type Block struct {
	ID   string // base64, as given to PutBlock
	Size int64
}

// GetBlockList returns the committed blocks of a block blob, in order, and
// the ETag of the blob they make up. A blob written by one Put Blob has
// none. Writers use it to keep unchanged blocks of a large blob in a new
// Put Block List instead of uploading them again (check the ETag first).
func (ct *Container) GetBlockList(ctx context.Context, name string) ([]Block, string, error) {
	r, err := ct.blobRequest("GetBlockList", http.MethodGet, name, url.Values{"comp": {"blocklist"}, "blocklisttype": {"committed"}})
	if err != nil {
		return nil, "", err
	}
	r.ok, r.idempotent = []int{http.StatusOK}, true
	resp, err := ct.c.do(ctx, r)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	var x struct {
		Committed []struct {
			Name string `xml:"Name"`
			Size int64  `xml:"Size"`
		} `xml:"CommittedBlocks>Block"`
	}
	if err := xml.NewDecoder(resp.Body).Decode(&x); err != nil {
		return nil, "", fmt.Errorf("GetBlockList %q: reading the answer: %w", name, err)
	}
	blocks := make([]Block, len(x.Committed))
	for i, b := range x.Committed {
		blocks[i] = Block{ID: b.Name, Size: b.Size}
	}
	return blocks, resp.Header.Get("ETag"), nil
}
