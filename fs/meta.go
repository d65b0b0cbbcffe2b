package fs

import (
	"maps"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/blobfs/blobfs/blob"
)

// Metadata keys. Our own are lowercase alphanumeric because SharedKey
// signing sorts x-ms-meta-* names culture-aware on the service, and '_' or
// '-' would sort differently there than here. The two with '_' are other
// tools' conventions, read and written for compatibility.
const (
	keyMode    = "mode"  // permission bits, octal, e.g. "0644"
	keyUID     = "uid"   // decimal, written only after chown
	keyGID     = "gid"   // decimal, written only after chown
	keyMtime   = "mtime" // rclone's format, below
	keyFolder  = "hdi_isfolder"
	keySymlink = "is_symlink" // blobfuse2: the blob's content is the target
)

// mtimeFormat is rclone's, so both tools read each other's times.
const mtimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// ownKeys are the names this package writes. They go out lower-case, as
// blobfuse2 and the Azure SDKs write them; a blob read with another case
// of one (an older blobfs wrote "Hdi_isfolder") gets the lower-case name
// back at its next write. Other tools' names are kept exactly.
var ownKeys = [...]string{keyMode, keyUID, keyGID, keyMtime, keyFolder, keySymlink}

// metaGet reads key as the service matches names: ignoring case.
func metaGet(md map[string]string, key string) string {
	v, _ := blob.MetaValue(md, key)
	return v
}

func isTrue(md map[string]string, key string) bool {
	return strings.EqualFold(metaGet(md, key), "true")
}

// isFolderBlob tells a directory marker: a zero-length "dir/" (gcsfuse,
// rclone, ours) or any blob carrying hdi_isfolder=true (blobfuse2's "dir").
func isFolderBlob(p *blob.Properties) bool {
	return isTrue(p.Metadata, keyFolder) || (strings.HasSuffix(p.Name, "/") && p.Size == 0)
}

func isSymlinkBlob(p *blob.Properties) bool { return isTrue(p.Metadata, keySymlink) }

// cloneMeta copies a blob's metadata so our edits never alias the
// listing's, with our own names in lower case (see ownKeys).
func cloneMeta(md map[string]string) map[string]string {
	out := make(map[string]string, len(md)+4)
	maps.Copy(out, md)
	for _, k := range ownKeys {
		if _, exact := out[k]; !exact {
			if v, ok := blob.MetaValue(out, k); ok {
				blob.SetMeta(out, k, v)
			}
		}
	}
	return out
}

// fileAttrs are the POSIX attributes kept in a blob's metadata.
type fileAttrs struct {
	md map[string]string // the blob's whole metadata, ours and other tools'
}

func (a *fileAttrs) setMode(mode uint32) {
	blob.SetMeta(a.md, keyMode, "0"+strconv.FormatUint(uint64(mode&07777), 8))
}
func (a *fileAttrs) setUID(uid uint32) {
	blob.SetMeta(a.md, keyUID, strconv.FormatUint(uint64(uid), 10))
}
func (a *fileAttrs) setGID(gid uint32) {
	blob.SetMeta(a.md, keyGID, strconv.FormatUint(uint64(gid), 10))
}
func (a *fileAttrs) setMtime(t time.Time) {
	blob.SetMeta(a.md, keyMtime, t.UTC().Format(mtimeFormat))
}

func (a *fileAttrs) mode(def uint32) uint32 {
	if v, err := strconv.ParseUint(metaGet(a.md, keyMode), 8, 32); err == nil {
		return uint32(v) & 07777
	}
	return def
}

func (a *fileAttrs) id(key string, def uint32) uint32 {
	if v, err := strconv.ParseUint(metaGet(a.md, key), 10, 32); err == nil {
		return uint32(v)
	}
	return def
}

func (a *fileAttrs) mtime(def time.Time) time.Time {
	if s := metaGet(a.md, keyMtime); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
	}
	return def
}

// fill writes the attributes of a node of type typ (S_IFREG...) into out.
// lastMod is the blob's Last-Modified, the mtime of blobs without ours.
func (a *fileAttrs) fill(m *mount, out *fuse.Attr, typ uint32, size int64, lastMod time.Time) {
	if lastMod.IsZero() {
		lastMod = m.started
	}
	var def uint32
	switch typ {
	case syscall.S_IFDIR:
		def = m.dirMode
		out.Nlink = 2
	case syscall.S_IFLNK:
		def = 0777
		out.Nlink = 1
	default:
		def = m.fileMode
		out.Nlink = 1
	}
	out.Mode = typ | a.mode(def)
	out.Size = uint64(size)
	out.Blocks = (uint64(size) + 511) / 512
	out.Blksize = blockSizeHint
	out.Owner = fuse.Owner{Uid: a.id(keyUID, m.uid), Gid: a.id(keyGID, m.gid)}
	mt := a.mtime(lastMod)
	out.SetTimes(&mt, &mt, &lastMod)
}

// blockSizeHint is st_blksize: big enough that stdio and cp write in
// chunks the upload path handles well.
const blockSizeHint = 1 << 20
