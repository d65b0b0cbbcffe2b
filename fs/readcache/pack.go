package readcache

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Small pieces are records in shared pack files, not a file each: on the
// daemon's ext4 creating a file (inode) for a 4 KiB piece cost more CPU
// than everything else writing a small file through the mount does (59 %
// of the daemon's CPU in blobfs-bench's small-file test), and a record
// costs one pwrite into a file already open.
//
// A pack is packs/<id>.pack, id 16 random bytes in hex. Records are
// appended at 4 KiB boundaries; each is a header and the data right after
// it, in one pwrite:
//
//	0   "BFPR" magic
//	4   format version (1)
//	8   key: SHA-256 of name, ETag and size of the version
//	40  offset of the data in the blob
//	48  length of the data
//	56  chunk size (64 KiB)
//	60  number of chunks
//	64  size of the blob
//	72  length of the name, then of the ETag (16 bits each), 4 bytes zero
//	80  store time, Unix nanoseconds
//	88  the pack's id
//	104 the record's offset in the pack
//	112 the name, then the ETag
//	…   CRC-32 (IEEE) of each chunk of the data
//	…   CRC-32 of the header up to here
//	…   the data
//
// All numbers little-endian. A removed record's blocks are punched out
// (read back as zeros, given back to the file system); a pack without
// records left is removed, unless it is the one appended to.
//
// The pack's id and the record's own offset in the header make a header
// found anywhere else invalid: Open scans a pack 4 KiB at a time where no
// valid header says how long a record is (after a crash), so it looks
// into data, which is any blob's bytes; a blob holding a copy of a record
// must not pass for one. The id is in no blob: the directory is 0700.
const (
	// packMax is the largest piece kept in a pack. Up to it the fixed cost
	// of a file (an inode made and later freed, a directory entry) is most
	// of what storing a piece costs; past it the data is, and a file per
	// piece costs nothing more than a record. It takes in the random
	// reader's ranges (the kernel's READ requests are 4 KiB to 128 KiB
	// unless it reads ahead) and small files; pieces of whole readahead
	// blocks (MiBs) stay files, written with O_DIRECT. It also bounds
	// what one read of a record reads (at most two 64 KiB chunks) and the
	// size of a hole punched.
	packMax = 128 << 10
	// packRoll is where a pack stops being appended to and a new one is
	// made: a pack is removed only when all its records are gone, so a
	// bounded pack lets old ones empty out (holes cost no disk, but a pack
	// keeps a file descriptor open).
	packRoll  = 64 << 20 // Cache.roll, but in tests
	packsDir  = "packs"
	packExt   = ".pack"
	recMagic  = "BFPR"
	recFormat = 1
	recFixed  = 112
	recAlign  = 4096
	// recHeaderMax bounds a record's header, so that Open reads one 4 KiB
	// block per record; a version whose name and ETag do not fit (blob
	// names are at most 1,024 bytes) keeps its small pieces in files.
	recHeaderMax = recAlign
)

// pack is one pack file, open while the cache is.
type pack struct {
	id   [16]byte
	path string
	f    *os.File
	end  int64 // append offset: records are reserved up to it
	// live counts the records indexed, being written or being removed:
	// at zero (and not the current pack) the file is removed.
	live int
	// stuck are bytes of removed records whose blocks could not be
	// punched: still on disk, so counted in Cache.used until the pack is
	// removed.
	stuck int64
}

// recHeaderLen is the header of a record of n bytes of a version whose
// name and ETag take metaLen bytes.
func recHeaderLen(n int64, metaLen int) int64 {
	return recFixed + int64(metaLen) + 4*chunks(n) + headerCRCLen
}

// recordSize is the disk a record takes: whole 4 KiB blocks.
func recordSize(n int64, metaLen int) int64 {
	return (recHeaderLen(n, metaLen) + n + recAlign - 1) &^ (recAlign - 1)
}

// packable says a piece of n bytes of a version whose name and ETag take
// metaLen bytes is kept as a record.
func packable(n int64, metaLen int) bool {
	return n <= packMax && recHeaderLen(n, metaLen) <= recHeaderMax
}

// encodeRecord is the record of the piece of e holding p at off, stored
// at at of pk, at time now.
func encodeRecord(e *entry, pk *pack, at, off int64, p []byte, now time.Time) []byte {
	n := int64(len(p))
	hl := recHeaderLen(n, e.metaLen())
	r := make([]byte, hl+n)
	putVersionFields(r, recMagic, recFormat, e, off, n)
	binary.LittleEndian.PutUint64(r[80:], uint64(now.UnixNano()))
	copy(r[88:104], pk.id[:])
	binary.LittleEndian.PutUint64(r[104:], uint64(at))
	i := recFixed
	i += copy(r[i:], e.name)
	i += copy(r[i:], e.etag)
	for j := int64(0); j < n; j += chunkSize {
		binary.LittleEndian.PutUint32(r[i:], crc32.ChecksumIEEE(p[j:min(n, j+chunkSize)]))
		i += 4
	}
	binary.LittleEndian.PutUint32(r[i:], crc32.ChecksumIEEE(r[:i]))
	copy(r[hl:], p)
	return r
}

// record is a header decoded and checked.
type record struct {
	key        [32]byte
	name, etag string
	size       int64
	off, n     int64
	stored     time.Time
	hdrLen     int64
	crcs       []byte
}

// decodeRecord checks the header at the start of b, read from at of pk.
func decodeRecord(b []byte, pk *pack, at int64) (record, error) {
	var r record
	if len(b) < recFixed || string(b[:4]) != recMagic || binary.LittleEndian.Uint32(b[4:]) != recFormat {
		return r, fmt.Errorf("%w: no record", errCorrupt)
	}
	r.off = int64(binary.LittleEndian.Uint64(b[40:]))
	r.n = int64(binary.LittleEndian.Uint64(b[48:]))
	nl, el := int(binary.LittleEndian.Uint16(b[72:])), int(binary.LittleEndian.Uint16(b[74:]))
	if r.n <= 0 || r.n > packMax || r.off < 0 || binary.LittleEndian.Uint32(b[56:]) != chunkSize ||
		int64(binary.LittleEndian.Uint32(b[60:])) != chunks(r.n) {
		return r, fmt.Errorf("%w: record of no valid range", errCorrupt)
	}
	r.hdrLen = recHeaderLen(r.n, nl+el)
	end := r.hdrLen - headerCRCLen
	if r.hdrLen > int64(len(b)) || binary.LittleEndian.Uint32(b[end:]) != crc32.ChecksumIEEE(b[:end]) {
		return r, fmt.Errorf("%w: record header checksum", errCorrupt)
	}
	if !bytes.Equal(b[88:104], pk.id[:]) || int64(binary.LittleEndian.Uint64(b[104:])) != at {
		return r, fmt.Errorf("%w: record of another place", errCorrupt)
	}
	copy(r.key[:], b[8:40])
	r.size = int64(binary.LittleEndian.Uint64(b[64:]))
	r.name = string(b[recFixed : recFixed+nl])
	r.etag = string(b[recFixed+nl : recFixed+nl+el])
	r.stored = time.Unix(0, int64(binary.LittleEndian.Uint64(b[80:])))
	r.crcs = b[recFixed+nl+el : end]
	return r, nil
}

var errNoPunch = errors.New("readcache: the file system cannot punch holes")

// newPack makes an empty pack in dir. It fails when the file system
// cannot punch holes: removed records would then keep their disk until
// the whole pack goes, and the caller keeps small pieces in files.
func newPack(dir string) (*pack, error) {
	pk := &pack{end: 0}
	if _, err := rand.Read(pk.id[:]); err != nil {
		return nil, err
	}
	pk.path = filepath.Join(dir, hex.EncodeToString(pk.id[:])+packExt)
	f, err := os.OpenFile(pk.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		// The packs directory is made on first use.
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.OpenFile(pk.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("readcache: %w", err)
	}
	pk.f = f
	if err := pk.punch(0, recAlign); err != nil {
		f.Close()
		os.Remove(pk.path)
		return nil, fmt.Errorf("%w: %s: %w", errNoPunch, dir, err)
	}
	return pk, nil
}

// punch gives the n bytes at at back to the file system; they read as
// zeros afterwards.
func (pk *pack) punch(at, n int64) error {
	rc, err := pk.f.SyscallConn()
	if err != nil {
		return err
	}
	// Control holds the file open while it runs: a concurrent Close cannot
	// make the descriptor another file's.
	if cerr := rc.Control(func(fd uintptr) {
		err = unix.Fallocate(int(fd), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, at, n)
	}); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("punching %d bytes at %d of %s: %w", n, at, pk.path, err)
	}
	return nil
}

// readRecord fills p with the bytes at off of the blob from the record at
// at of pk, which should hold [poff, poff+pn) of the version key (whose
// name and ETag take metaLen bytes), checking the header and the checksum
// of every chunk read. One pread takes the header and the data up to the
// end of the last chunk read.
func readRecord(pk *pack, at int64, key [32]byte, metaLen int, poff, pn int64, p []byte, off int64) error {
	hl := recHeaderLen(pn, metaLen)
	rel := off - poff
	first, last := rel/chunkSize, (rel+int64(len(p))-1)/chunkSize
	to := min(pn, (last+1)*chunkSize)
	b := make([]byte, hl+to)
	if _, err := pk.f.ReadAt(b, at); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return err // the pack was removed meanwhile
		}
		return fmt.Errorf("%w: record: %v", errCorrupt, err)
	}
	r, err := decodeRecord(b, pk, at)
	if err != nil {
		return err
	}
	if r.key != key || r.off != poff || r.n != pn || r.hdrLen != hl {
		return fmt.Errorf("%w: another version's", errCorrupt)
	}
	data := b[hl:]
	for i := first; i <= last; i++ {
		a, z := i*chunkSize, min(to, (i+1)*chunkSize)
		if crc32.ChecksumIEEE(data[a:z]) != binary.LittleEndian.Uint32(r.crcs[4*i:]) {
			return fmt.Errorf("%w: data checksum of chunk %d", errCorrupt, i)
		}
	}
	copy(p, data[rel:])
	return nil
}

// scanned is a record found by scanPack.
type scanned struct {
	at int64
	record
}

// scanPack finds the records of the pack at path, whose name gives its
// id. A 4 KiB block that starts no valid record is skipped (holes with
// SEEK_DATA, at once); garbage are the ranges of such blocks holding
// data, for the caller to punch. A record longer than the file (cut short
// by a crash) ends the scan: what follows is its data, not to be trusted.
func scanPack(path string) (pk *pack, recs []scanned, garbage [][2]int64, err error) {
	id, err := hex.DecodeString(strings.TrimSuffix(filepath.Base(path), packExt))
	if err != nil || len(id) != 16 || !strings.HasSuffix(path, packExt) {
		return nil, nil, nil, fmt.Errorf("readcache: %s is not a pack", path)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("readcache: %w", err)
	}
	pk = &pack{path: path, f: f}
	copy(pk.id[:], id)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("readcache: %w", err)
	}
	size := fi.Size()
	pk.end = (size + recAlign - 1) &^ (recAlign - 1)
	junk := func(a, z int64) {
		if k := len(garbage); k > 0 && garbage[k-1][1] == a {
			garbage[k-1][1] = z
		} else {
			garbage = append(garbage, [2]int64{a, z})
		}
	}
	buf := make([]byte, recHeaderMax)
	for at := int64(0); at < size; {
		if d, err := unix.Seek(int(f.Fd()), at, unix.SEEK_DATA); err == nil && d&^(recAlign-1) > at {
			at = d &^ (recAlign - 1)
			continue
		} else if errors.Is(err, unix.ENXIO) {
			break // only a hole left
		}
		k, err := f.ReadAt(buf, at)
		if err != nil && err != io.EOF {
			f.Close()
			return nil, nil, nil, fmt.Errorf("readcache: reading %s: %w", path, err)
		}
		r, err := decodeRecord(buf[:k], pk, at)
		if err != nil {
			junk(at, min(at+recAlign, pk.end))
			at += recAlign
			continue
		}
		end := at + r.hdrLen + r.n
		if end > size {
			junk(at, pk.end)
			break
		}
		recs = append(recs, scanned{at, r})
		at = (end + recAlign - 1) &^ (recAlign - 1)
	}
	return pk, recs, garbage, nil
}
