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
	"unsafe"

	"golang.org/x/sys/unix"
)

// A piece file is the data, from offset 0, then a header at the next
// multiple of 4 KiB, itself padded to a multiple of 4 KiB:
//
//	0   "BFRC" magic
//	4   format version (3)
//	8   key: SHA-256 of name, ETag and size of the version
//	40  offset of the data in the blob
//	48  length of the data
//	56  chunk size (64 KiB)
//	60  number of chunks
//	64  size of the blob
//	72  length of the name, then of the ETag (16 bits each), 4 bytes zero
//	80  the name, then the ETag
//	…   CRC-32 (IEEE) of each chunk of the data
//	…   CRC-32 of the header up to here
//
// All numbers little-endian. The chunk checksums let a small read of a
// large piece check only the chunks it reads; the name and ETag let Open
// rebuild the index from one header per version. The data comes first so
// that a file already holding a version's bytes from offset 0 (a staged
// file just committed, see Adopt) becomes a piece by appending a header,
// without a copy.
const (
	magic        = "BFRC"
	formatV3     = 3
	chunkSize    = 64 << 10
	fixedHeader  = 80
	headerAlign  = 4096
	headerCRCLen = 4
)

// ChunkSize is the span of data each checksum of a piece covers; Adopt's
// sums are of ChunkSize bytes each (the last may be shorter).
const ChunkSize = chunkSize

// ChunkSums appends to dst the CRC-32 of every ChunkSize bytes of p, as
// Adopt wants them.
func ChunkSums(dst []uint32, p []byte) []uint32 {
	for i := 0; i < len(p); i += chunkSize {
		dst = append(dst, crc32.ChecksumIEEE(p[i:min(len(p), i+chunkSize)]))
	}
	return dst
}

func chunks(n int64) int64 { return (n + chunkSize - 1) / chunkSize }

// headerAt is where the header of a piece of n bytes starts.
func headerAt(n int64) int64 { return (n + headerAlign - 1) &^ (headerAlign - 1) }

// headerSize is the padded header of a piece of n bytes of a version
// whose name and ETag take metaLen bytes.
func headerSize(n int64, metaLen int) int64 {
	return (fixedHeader + int64(metaLen) + 4*chunks(n) + headerCRCLen + headerAlign - 1) &^ (headerAlign - 1)
}

// fileSize is the length of the file of a piece of n bytes.
func fileSize(n int64, metaLen int) int64 { return headerAt(n) + headerSize(n, metaLen) }

// putVersionFields writes the fields a piece file's header and a pack
// record's share, at the same places: magic and format, then the
// version's key, the range [off, off+n) with its chunking, the blob's
// size and the lengths of its name and ETag (bytes 0 to 76).
func putVersionFields(h []byte, magic string, format uint32, e *entry, off, n int64) {
	copy(h, magic)
	binary.LittleEndian.PutUint32(h[4:], format)
	copy(h[8:40], e.key[:])
	binary.LittleEndian.PutUint64(h[40:], uint64(off))
	binary.LittleEndian.PutUint64(h[48:], uint64(n))
	binary.LittleEndian.PutUint32(h[56:], chunkSize)
	binary.LittleEndian.PutUint32(h[60:], uint32(chunks(n)))
	binary.LittleEndian.PutUint64(h[64:], uint64(e.size))
	binary.LittleEndian.PutUint16(h[72:], uint16(len(e.name)))
	binary.LittleEndian.PutUint16(h[74:], uint16(len(e.etag)))
}

// encodeHeader is the header of the piece of e holding n bytes at off,
// whose chunks have the checksums sums.
func encodeHeader(e *entry, off, n int64, sums []uint32) []byte {
	h := make([]byte, headerSize(n, e.metaLen()))
	putVersionFields(h, magic, formatV3, e, off, n)
	at := fixedHeader
	at += copy(h[at:], e.name)
	at += copy(h[at:], e.etag)
	for _, s := range sums {
		binary.LittleEndian.PutUint32(h[at:], s)
		at += 4
	}
	binary.LittleEndian.PutUint32(h[at:], crc32.ChecksumIEEE(h[:at]))
	return h
}

// writePiece writes p, the bytes at off of e, to a new temporary file
// next to e's pieces and returns its path; the caller renames it into
// place.
func (c *Cache) writePiece(e *entry, off int64, p []byte) (string, error) {
	if len(e.name) > 0xffff || len(e.etag) > 0xffff {
		return "", errors.New("readcache: name or ETag too long")
	}
	dir := filepath.Dir(e.base)
	path := filepath.Join(dir, ".tmp-"+randHex())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		// The version's subdirectory is made on first use.
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		}
	}
	if err != nil {
		return "", fmt.Errorf("readcache: %w", err)
	}
	n := int64(len(p))
	if !writeDirect(path, p) {
		_, err = f.Write(p)
	}
	if err == nil {
		_, err = f.WriteAt(encodeHeader(e, off, n, ChunkSums(make([]uint32, 0, chunks(n)), p)), headerAt(n))
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

// directMin is the smallest piece whose data is written with O_DIRECT.
const directMin = 1 << 20

// writeDirect writes p at the start of the file path with O_DIRECT, and
// says whether it did. Written through the page cache, a cold read of
// 1 GiB cost the daemon 1.7 CPU s more (new page-cache pages are what a
// VM's kernel spends most on; dd here: 3.1 s and 2.9 s of system time
// buffered, 1.3 s and 0.12 s direct), on the path every read of a new
// file takes. Only whole 4 KiB pages from an aligned buffer (the
// readahead's blocks are); anything else, or a filesystem without
// O_DIRECT (tmpfs), goes through the page cache as before.
func writeDirect(path string, p []byte) bool {
	if !directAligned(p, 0) {
		return false
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	for done := 0; done < len(p); {
		n, err := unix.Pwrite(fd, p[done:], int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return false // the caller writes it all again, buffered
		}
		done += n
	}
	return true
}

// directAligned says p at off may go through O_DIRECT: at least directMin
// bytes, whole 4 KiB pages, at an aligned offset, from an aligned buffer.
func directAligned(p []byte, off int64) bool {
	return len(p) >= directMin && len(p)%4096 == 0 && off%4096 == 0 && uintptr(unsafe.Pointer(&p[0]))%4096 == 0
}

// readDirect fills p from off of the file path with O_DIRECT, and says
// whether it did; the caller then reads it through the page cache. A
// large piece is mostly a file written through the mount, whose pages
// staging wrote back and dropped while uploading (stage's dropCached), or
// one filled with O_DIRECT: read through the page cache, every block
// would take fresh pages again, the cost writeDirect avoids: a 4 GiB
// file copied in and then out of the cache (blobfs-bench's rss workload)
// cost the daemon 25.2 CPU s read buffered, 14.7 s read this way. Only
// whole 4 KiB pages at an aligned offset into an aligned buffer (the
// readahead's blocks are).
func readDirect(path string, p []byte, off int64) bool {
	if !directAligned(p, off) {
		return false
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	for done := 0; done < len(p); {
		n, err := unix.Pread(fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return false // the caller reads it all again, buffered
		}
		done += n
	}
	return true
}

// appendHeader writes the header of a whole-version piece after the data
// of the file a.Path.
func appendHeader(e *entry, a Adoption) error {
	f, err := os.OpenFile(a.Path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("readcache: %w", err)
	}
	_, err = f.WriteAt(encodeHeader(e, 0, a.Size, a.Sums), headerAt(a.Size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("readcache: writing the header of %s: %w", a.Path, err)
	}
	return nil
}

var errCorrupt = errors.New("readcache: piece does not match its header")

// readHeader reads and checks the header of the piece file f, said by its
// name to hold [poff, poff+pn) of some version.
func readHeader(f *os.File, poff, pn int64) ([]byte, error) {
	at := headerAt(pn)
	h := make([]byte, headerAlign)
	if _, err := io.ReadFull(io.NewSectionReader(f, at, headerAlign), h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", errCorrupt, err)
	}
	if string(h[:4]) != magic || binary.LittleEndian.Uint32(h[4:]) != formatV3 {
		return nil, fmt.Errorf("%w: not a piece file", errCorrupt)
	}
	ml := int(binary.LittleEndian.Uint16(h[72:])) + int(binary.LittleEndian.Uint16(h[74:]))
	hs := headerSize(pn, ml)
	if hs > headerAlign {
		h = append(h, make([]byte, hs-headerAlign)...)
		if _, err := io.ReadFull(io.NewSectionReader(f, at+headerAlign, hs-headerAlign), h[headerAlign:]); err != nil {
			return nil, fmt.Errorf("%w: header: %v", errCorrupt, err)
		}
	}
	nc := chunks(pn)
	end := fixedHeader + int64(ml) + 4*nc
	switch {
	case int64(binary.LittleEndian.Uint64(h[40:])) != poff || int64(binary.LittleEndian.Uint64(h[48:])) != pn ||
		binary.LittleEndian.Uint32(h[56:]) != chunkSize || int64(binary.LittleEndian.Uint32(h[60:])) != nc:
		return nil, fmt.Errorf("%w: another range", errCorrupt)
	case binary.LittleEndian.Uint32(h[end:]) != crc32.ChecksumIEEE(h[:end]):
		return nil, fmt.Errorf("%w: header checksum", errCorrupt)
	}
	return h[:end], nil
}

// readVersion reads which version a piece file belongs to.
func readVersion(path string, poff, pn int64) (name, etag string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", 0, err
	}
	defer f.Close()
	h, err := readHeader(f, poff, pn)
	if err != nil {
		return "", "", 0, err
	}
	nl, el := int(binary.LittleEndian.Uint16(h[72:])), int(binary.LittleEndian.Uint16(h[74:]))
	return string(h[fixedHeader : fixedHeader+nl]), string(h[fixedHeader+nl : fixedHeader+nl+el]),
		int64(binary.LittleEndian.Uint64(h[64:])), nil
}

// readPiece fills p with the bytes at off of the blob from the piece file
// at path, which should hold [poff, poff+pn) of the version key (whose
// name and ETag take metaLen bytes), checking the header and the checksum
// of every chunk read.
func readPiece(path string, key [32]byte, metaLen int, poff, pn int64, p []byte, off int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := readHeader(f, poff, pn)
	if err != nil {
		return err
	}
	if !bytes.Equal(h[8:40], key[:]) || len(h) != fixedHeader+metaLen+4*int(chunks(pn)) {
		return fmt.Errorf("%w: another version's", errCorrupt)
	}
	crcs := h[fixedHeader+metaLen:]
	rel := off - poff
	first, last := rel/chunkSize, (rel+int64(len(p))-1)/chunkSize
	from, to := first*chunkSize, min(pn, (last+1)*chunkSize)
	buf := p
	if from != rel || to != rel+int64(len(p)) {
		buf = make([]byte, to-from)
	}
	if !readDirect(path, buf, from) {
		if _, err := f.ReadAt(buf, from); err != nil {
			return fmt.Errorf("%w: data: %v", errCorrupt, err)
		}
	}
	for i := first; i <= last; i++ {
		a := (i - first) * chunkSize
		b := min(int64(len(buf)), a+chunkSize)
		if crc32.ChecksumIEEE(buf[a:b]) != binary.LittleEndian.Uint32(crcs[4*i:]) {
			return fmt.Errorf("%w: data checksum of chunk %d", errCorrupt, i)
		}
	}
	if len(buf) != len(p) {
		copy(p, buf[rel-from:])
	}
	return nil
}
