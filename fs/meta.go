package fs

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/blobfs/blobfs/blob"
)

// Metadata keys. Our own are lowercase alphanumeric because SharedKey
// signing sorts x-ms-meta-* names culture-aware on the service, and '_' or
// '-' would sort differently there than here. The two with '_' are other
// tools' conventions, read and written for compatibility.
const (
	keyMode     = "mode"     // permission bits, octal, e.g. "0644"
	keyUID      = "uid"      // decimal: the creator's, or chown's
	keyGID      = "gid"      // decimal: the creator's (or setgid directory's), or chown's
	keyMtime    = "mtime"    // rclone's format, below
	keyAtime    = "atime"    // same format; written on create and by utimens
	keyFileType = "filetype" // fifo, chr, blk or sock: a special file (zero-length blob)
	keyRdev     = "rdev"     // decimal device number of a chr or blk special file
	keyFolder   = "hdi_isfolder"
	keySymlink  = "is_symlink" // blobfuse2: the blob's content is the target
)

// nameMax is NAME_MAX, the longest name of one directory entry in bytes.
// The service allows 1,024 characters for a whole path; a component is
// held to what POSIX programs expect (and what statfs reports).
const nameMax = 255

// checkNameLen refuses a component longer than NAME_MAX, as local
// filesystems do, before any call to the service.
func checkNameLen(name string) syscall.Errno {
	if len(name) > nameMax {
		return syscall.ENAMETOOLONG
	}
	return 0
}

// specialTypes are the file types kept as zero-length blobs with
// filetype=<name>: the kernel does all a FIFO, device or socket does; the
// blob only keeps the inode.
var specialTypes = [...]struct {
	name string
	typ  uint32
}{
	{"fifo", syscall.S_IFIFO},
	{"chr", syscall.S_IFCHR},
	{"blk", syscall.S_IFBLK},
	{"sock", syscall.S_IFSOCK},
}

// specialType is the S_IF* type a blob's filetype metadata names, or 0.
func specialType(md map[string]string) uint32 {
	v := md[keyFileType]
	if v == "" {
		return 0
	}
	for _, t := range specialTypes {
		if strings.EqualFold(v, t.name) {
			return t.typ
		}
	}
	return 0
}

// specialTypeName is the filetype value for an S_IF* type, "" for others.
func specialTypeName(typ uint32) string {
	for _, t := range specialTypes {
		if t.typ == typ&syscall.S_IFMT {
			return t.name
		}
	}
	return ""
}

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

// isOwnKey tells the metadata names this package writes, always in lower
// case.
func isOwnKey(k string) bool {
	switch k {
	case keyMode, keyUID, keyGID, keyMtime, keyAtime, keyFileType, keyRdev, keyFolder, keySymlink:
		return true
	}
	return false
}

// exactMetaNames gives md's names the case the blob stores them in, for a
// blob whose metadata we know from a HEAD (p.MetaNamesLowered): Set Blob
// Metadata, Put Blob and Put Block List store names as sent, so sending
// them as HEAD gave them would rename another tool's "Project_ID" to
// "project_id" for every case-sensitive reader.
//
// Why a listing: the service answers a HEAD with every name as stored
// ("x-ms-meta-Project_ID"), but Go's HTTP client canonicalises response
// header names ("X-Ms-Meta-Project_id") before anyone sees them, so the
// blob layer can only lower-case them. List Blobs gives the names as XML
// element names, exactly. So the first metadata write after a HEAD costs
// one List of one blob; a blob known from a listing costs nothing more.
// A failed listing fails the write rather than rename the names.
func (m *mount) exactMetaNames(ctx context.Context, name string, p *blob.Properties, md map[string]string) (map[string]string, error) {
	if p == nil || !p.MetaNamesLowered {
		return md, nil
	}
	m.stats.listCalls.Add(1)
	page, err := m.store.List(ctx, blob.ListOptions{Prefix: name, MaxResults: 1, IncludeMetadata: true})
	if err != nil {
		return nil, fmt.Errorf("reading the exact metadata names of %q (a HEAD gives them lower-cased): %w", name, err)
	}
	if len(page.Blobs) == 0 || page.Blobs[0].Name != name {
		return md, nil // gone: the write says so
	}
	return blob.MetaNamesAs(md, page.Blobs[0].Metadata, isOwnKey), nil
}

// fileAttrs are the POSIX attributes kept in a blob's metadata.
type fileAttrs struct {
	md map[string]string // the blob's whole metadata, ours and other tools'
	// ctime is when this mount last changed the inode (chmod, chown,
	// utimens, rename, write, truncate); kept in memory only. The
	// reported ctime is the later of it and Last-Modified, which the
	// service moves on every such change, so a remount still shows the
	// last change, to the second.
	ctime time.Time
}

// changed records a change of the inode at t (its ctime).
func (a *fileAttrs) changed(t time.Time) {
	if t.After(a.ctime) {
		a.ctime = t
	}
}

// setOwner records the creator of a new inode. The caller's fsuid and
// fsgid come with every FUSE request; in a setgid directory the group is
// the directory's, and a new directory inherits the setgid bit. Returns
// the mode to store. Without a caller (never, from the kernel) the mount's
// defaults stand.
func (a *fileAttrs) setOwner(ctx context.Context, parent *dirNode, mode uint32, isDir bool) uint32 {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return mode
	}
	a.setUID(c.Uid)
	gid := c.Gid
	if sgid, pgid := parent.setgid(); sgid {
		gid = pgid
		if isDir {
			mode |= syscall.S_ISGID
		}
	}
	a.setGID(gid)
	return mode
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
func (a *fileAttrs) setAtime(t time.Time) {
	blob.SetMeta(a.md, keyAtime, t.UTC().Format(mtimeFormat))
}

// newInode fills the attributes of an inode made now by the request in
// ctx: owner, mode, and all three times. Everything goes with the
// inode's first write, so it costs no call of its own.
func (a *fileAttrs) newInode(ctx context.Context, parent *dirNode, mode uint32, isDir bool) {
	now := parent.m.clock.Now()
	a.setMode(a.setOwner(ctx, parent, mode, isDir))
	a.setMtime(now)
	a.setAtime(now)
	a.changed(now)
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

func (a *fileAttrs) mtime(def time.Time) time.Time { return a.time(keyMtime, def) }
func (a *fileAttrs) atime(def time.Time) time.Time { return a.time(keyAtime, def) }

func (a *fileAttrs) time(key string, def time.Time) time.Time {
	if s := metaGet(a.md, key); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
	}
	return def
}

// ctimeAt is the inode's ctime given the blob's Last-Modified.
func (a *fileAttrs) ctimeAt(lastMod time.Time) time.Time {
	if a.ctime.After(lastMod) {
		return a.ctime
	}
	return lastMod
}

// fill writes the attributes of a node of type typ (S_IFREG...) into out.
// lastMod is the blob's Last-Modified, the mtime of blobs without ours.
func (a *fileAttrs) fill(m *mount, out *fuse.Attr, typ uint32, size int64, lastMod time.Time) {
	if lastMod.IsZero() {
		lastMod = m.started
	}
	var def uint32
	out.Nlink = 1 // a directory's is set by its node, which knows its subdirectories
	switch typ {
	case syscall.S_IFDIR:
		def = m.dirMode
	case syscall.S_IFLNK:
		def = 0777
	default:
		def = m.fileMode
	}
	out.Mode = typ | a.mode(def)
	out.Size = uint64(size)
	out.Blocks = (uint64(size) + 511) / 512
	out.Blksize = blockSizeHint
	out.Owner = fuse.Owner{Uid: a.id(keyUID, m.uid), Gid: a.id(keyGID, m.gid)}
	if typ == syscall.S_IFCHR || typ == syscall.S_IFBLK {
		out.Rdev = a.id(keyRdev, 0)
	}
	// noatime: reads never move atime (the kernel does not ask to, and a
	// blob cannot be rewritten for it); touch -a and utimens store it.
	mt := a.mtime(lastMod)
	at := a.atime(mt)
	ct := a.ctimeAt(lastMod)
	out.SetTimes(&at, &mt, &ct)
}

// blockSizeHint is st_blksize: big enough that stdio and cp write in
// chunks the upload path handles well.
const blockSizeHint = 1 << 20

// renamed moves the ctime of a node that a rename moved, as POSIX asks.
// (The copy's Last-Modified moves it too, but to the second only.)
func renamed(n *gofs.Inode, now time.Time) {
	switch c := n.Operations().(type) {
	case *fileNode:
		c.mu.Lock()
		c.attrs.changed(now)
		c.mu.Unlock()
	case *symlinkNode:
		c.mu.Lock()
		c.attrs.changed(now)
		c.mu.Unlock()
	case *dirNode:
		c.mu.Lock()
		c.attrs.changed(now)
		c.mu.Unlock()
	}
}
