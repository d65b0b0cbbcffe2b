package stage

import (
	"crypto/md5"
	"fmt"
	"hash"

	"github.com/blobfs/blobfs/blob"
)

// contentSum is the MD5 of a file's content computed as the writes stream
// through, so that a commit can store the whole blob's MD5 (what AzCopy
// --check-md5 and rclone check compare) without reading anything back.
// Put Block then sends no per-block MD5: hashing each block as well would
// double the CPU the write path spends on hashing.
//
// Bytes [0, at) are hashed and unchanged since. A write at exactly at
// extends it; a write further on leaves a gap that the commit fills by
// reading the cache file; a write or truncate back into [0, at) loses the
// sum (h nil) until a truncate to zero starts it again.
type contentSum struct {
	h   hash.Hash
	at  int64
	off bool // NoMD5: never hash (it cost 1.5-1.7 CPU s/GiB written)
}

func (s *contentSum) start() {
	if s.off {
		s.h, s.at = nil, 0
		return
	}
	s.h, s.at = md5.New(), 0
}

// hashing reports whether writes are being hashed (for tests).
func (s *contentSum) hashing() bool { return s.h != nil }

// wrote notes p written at off. Called with f.mu held.
func (s *contentSum) wrote(p []byte, off int64) {
	switch {
	case s.h == nil || off > s.at:
	case off == s.at:
		s.h.Write(p)
		s.at += int64(len(p))
	default:
		s.h = nil
	}
}

// truncated notes a truncate to size. Called with f.mu held.
func (s *contentSum) truncated(size int64) {
	switch {
	case size == 0:
		s.start()
	case s.h != nil && size < s.at:
		s.h = nil
	}
}

// withMD5Locked puts the whole content's MD5 in opts, unless NoMD5. It is
// called where the content to commit is fixed, under f.mu: for a block
// list once every block is uploaded and the list made, for a Put Blob
// where its body is read; a write after that point is not in this commit
// and not in its MD5.
func (f *File) withMD5Locked(opts *blob.PutOptions) {
	if opts.NoMD5 || opts.ContentMD5 != nil {
		return
	}
	sum, err := f.wholeMD5Locked()
	if err != nil {
		// Committed without an MD5 rather than not at all.
		f.m.log.WithError(err).WithField("blob", f.name).Warn("committing without the whole blob's MD5")
	}
	opts.ContentMD5 = sum
}

// wholeMD5Locked is the MD5 of the whole current content for the commit,
// or nil when it cannot be had without downloading: a block still in the
// service (the unchanged part of a blob edited in place or appended to,
// committed again by reference) or dropped from the cache after its
// upload. The commit then sends none, and the blob is left with no MD5
// rather than a stale one. Bytes written out of order since the hashed
// prefix are read back from the cache file, once.
func (f *File) wholeMD5Locked() ([]byte, error) {
	s := &f.sum
	from := s.at
	if s.h == nil {
		from = 0
	}
	for i := int(from / f.bs); i < len(f.blocks); i++ {
		if st := f.blocks[i].state; st != blkLocal && st != blkZero {
			return nil, nil
		}
	}
	if s.h == nil {
		s.start()
	}
	if s.at < f.size {
		buf := make([]byte, min(f.size-s.at, 1<<20))
		for s.at < f.size {
			p := buf[:min(int64(len(buf)), f.size-s.at)]
			if _, err := f.data.ReadAt(p, s.at); err != nil {
				s.h = nil
				return nil, fmt.Errorf("stage: reading the cache file of %q to hash it: %w", f.name, err)
			}
			s.h.Write(p)
			s.at += int64(len(p))
		}
	}
	return s.h.Sum(nil), nil
}
