package readcache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// A piece file is a header, padded to a multiple of 4 KiB so that the
// data stays page-aligned, then the data:
//
//	0   "BFRC" magic
//	4   format version (1)
//	8   key: SHA-256 of name, ETag and size of the version
//	40  offset of the data in the blob
//	48  length of the data
//	56  chunk size (64 KiB)
//	60  number of chunks
//	64  CRC-32 (IEEE) of each chunk of the data
//	…   CRC-32 of the header up to here
//
// All numbers little-endian. The chunk checksums let a small read of a
// large piece check only the chunks it reads.
const (
	magic        = "BFRC"
	formatV1     = 1
	chunkSize    = 64 << 10
	fixedHeader  = 64
	headerAlign  = 4096
	headerCRCLen = 4
)

func chunks(n int64) int64 { return (n + chunkSize - 1) / chunkSize }

// headerSize is the padded header of a piece of n bytes.
func headerSize(n int64) int64 {
	return (fixedHeader + 4*chunks(n) + headerCRCLen + headerAlign - 1) &^ (headerAlign - 1)
}

func encodeHeader(key [32]byte, off int64, p []byte) []byte {
	n := int64(len(p))
	h := make([]byte, headerSize(n))
	copy(h, magic)
	binary.LittleEndian.PutUint32(h[4:], formatV1)
	copy(h[8:40], key[:])
	binary.LittleEndian.PutUint64(h[40:], uint64(off))
	binary.LittleEndian.PutUint64(h[48:], uint64(n))
	binary.LittleEndian.PutUint32(h[56:], chunkSize)
	binary.LittleEndian.PutUint32(h[60:], uint32(chunks(n)))
	at := fixedHeader
	for i := int64(0); i < chunks(n); i++ {
		binary.LittleEndian.PutUint32(h[at:], crc32.ChecksumIEEE(p[i*chunkSize:min(n, (i+1)*chunkSize)]))
		at += 4
	}
	binary.LittleEndian.PutUint32(h[at:], crc32.ChecksumIEEE(h[:at]))
	return h
}

// writePiece writes p, the bytes at off of the version key, to a new
// temporary file in dir and returns its path; the caller renames it into
// place.
func writePiece(dir string, key [32]byte, off int64, p []byte) (string, error) {
	path := filepath.Join(dir, ".tmp-"+randHex())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("readcache: %w", err)
	}
	h := encodeHeader(key, off, p)
	_, err = f.Write(h)
	if err == nil {
		_, err = f.Write(p)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("readcache: writing %s: %w", path, err)
	}
	return path, nil
}

var errCorrupt = errors.New("readcache: piece does not match its header")

// readPiece fills p with the bytes at off of the blob from the piece file
// at path, which should hold [poff, poff+pn) of the version key, checking
// the header and the checksum of every chunk read.
func readPiece(path string, key [32]byte, poff, pn int64, p []byte, off int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	hs := headerSize(pn)
	h := make([]byte, hs)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, hs), h); err != nil {
		return fmt.Errorf("%w: header: %v", errCorrupt, err)
	}
	nc := chunks(pn)
	end := fixedHeader + 4*nc
	switch {
	case string(h[:4]) != magic || binary.LittleEndian.Uint32(h[4:]) != formatV1:
		return fmt.Errorf("%w: not a piece file", errCorrupt)
	case !bytes.Equal(h[8:40], key[:]):
		return fmt.Errorf("%w: another version's", errCorrupt)
	case int64(binary.LittleEndian.Uint64(h[40:])) != poff || int64(binary.LittleEndian.Uint64(h[48:])) != pn ||
		binary.LittleEndian.Uint32(h[56:]) != chunkSize || int64(binary.LittleEndian.Uint32(h[60:])) != nc:
		return fmt.Errorf("%w: another range", errCorrupt)
	case binary.LittleEndian.Uint32(h[end:]) != crc32.ChecksumIEEE(h[:end]):
		return fmt.Errorf("%w: header checksum", errCorrupt)
	}
	rel := off - poff
	first, last := rel/chunkSize, (rel+int64(len(p))-1)/chunkSize
	from, to := first*chunkSize, min(pn, (last+1)*chunkSize)
	buf := p
	if from != rel || to != rel+int64(len(p)) {
		buf = make([]byte, to-from)
	}
	if _, err := f.ReadAt(buf, hs+from); err != nil {
		return fmt.Errorf("%w: data: %v", errCorrupt, err)
	}
	for i := first; i <= last; i++ {
		a := (i - first) * chunkSize
		b := min(int64(len(buf)), a+chunkSize)
		if crc32.ChecksumIEEE(buf[a:b]) != binary.LittleEndian.Uint32(h[fixedHeader+4*i:]) {
			return fmt.Errorf("%w: data checksum of chunk %d", errCorrupt, i)
		}
	}
	if len(buf) != len(p) {
		copy(p, buf[rel-from:])
	}
	return nil
}
