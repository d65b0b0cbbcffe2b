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
	state    blockState
	ver      uint64 // bumped by every change of content
	upVer    uint64 // the version the service holds under the block's ID; 0: none
	inflight bool   // a Put Block of it is under way
	queued   bool
	jLocal   bool  // the journal lists it as local, not the base's
	lastUse  int64 // LRU clock at the last write, for eviction
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
