package stage

import (
	"encoding/base64"
	"fmt"
)

// blockState says where the current content of one block lives.
type blockState uint8

const (
	// blkZero: past the base's content and never written: all zeros, a
	// hole in the cache file, costing no cache space.
	blkZero blockState = iota
	// blkRemote: still the base blob's bytes (up to baseLimit, zeros
	// after); the cache file has a hole there.
	blkRemote
	// blkLocal: the cache file holds the content.
	blkLocal
	// blkEvicted: uploaded as this file's block (under upName) and punched
	// out of the cache file to make room.
	blkEvicted
)

type block struct {
	state   blockState
	ver     uint64 // bumped by every change of content
	upVer   uint64 // the version the service holds under the block's ID; 0: none
	queued  bool
	jLocal  bool  // the journal lists it as local, not the base's
	lastUse int64 // LRU clock at the last write, for eviction
	// spans are the parts written (or fetched) since it became local, in
	// offsets within the block: a block with gaps may still be filled by
	// writes the kernel sent out of order, so it is neither streamed nor,
	// if anything else will do, evicted. frag: too many gaps to track.
	spans []span
	frag  bool
	// reuse is the base blob's committed block holding exactly this
	// block's content while it is remote: the commit lists it instead of
	// downloading and uploading it again.
	reuse string
	// sums are the read cache's checksums (readcache.ChunkSums) of the
	// content of version sumVer, taken when it was uploaded from memory:
	// with them a committed file is handed to the read cache without
	// being read again (see File.keepCommitted).
	sums   []uint32
	sumVer uint64
}

type span struct{ a, e int64 }

// maxSpans bounds the gaps tracked per block: random tiny writes must not
// make the bookkeeping grow without end.
const maxSpans = 32

// cover records that [a, e) of the block was written.
func (b *block) cover(a, e int64) {
	if b.frag {
		return
	}
	if len(b.spans) == 1 && a <= b.spans[0].e && e >= b.spans[0].a {
		b.spans[0] = span{min(a, b.spans[0].a), max(e, b.spans[0].e)} // the sequential case
		return
	}
	out := make([]span, 0, len(b.spans)+1)
	placed := false
	for _, s := range b.spans {
		switch {
		case s.e < a:
			out = append(out, s)
		case e < s.a:
			if !placed {
				out = append(out, span{a, e})
				placed = true
			}
			out = append(out, s)
		default:
			a, e = min(a, s.a), max(e, s.e)
		}
	}
	if !placed {
		out = append(out, span{a, e})
	}
	if len(out) > maxSpans {
		b.frag, out = true, nil
	}
	b.spans = out
}

// whole marks the block as entirely present.
func (b *block) whole(bs int64) { b.spans, b.frag = []span{{0, bs}}, false }

// complete says every byte of the block's n bytes was written or fetched.
func (b *block) complete(n int64) bool {
	return !b.frag && len(b.spans) == 1 && b.spans[0].a == 0 && b.spans[0].e >= n
}

func nblocks(size, bs int64) int { return int((size + bs - 1) / bs) }

// blen is the length of block i in a file of size bytes.
func blen(i int, size, bs int64) int64 {
	n := size - int64(i)*bs
	return max(0, min(n, bs))
}

// blockID names block n of the staged file id. Every ID of a blob must have
// the same length; the file's random id keeps two writers of one blob
// (which share its uncommitted block list) from replacing each other's blocks.
func blockID(id string, n int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%08d", id, n))
}

// zeros is an io.ReaderAt of nothing but zero bytes, for uploading holes.
type zeros struct{}

func (zeros) ReadAt(p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}
