package fs

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/blobfs/blobfs/blob"
)

// dirNode is a directory: a '/'-terminated prefix, with or without a marker
// blob. The root is the container itself.
type dirNode struct {
	gofs.Inode
	m *mount

	mu   sync.Mutex
	list *listing // children as last listed, kept current with our own changes
	// marker is the blob that keeps the directory when it is empty and
	// holds its attributes: "dir/" (ours), or blobfuse2's "dir" with
	// hdi_isfolder=true. nil when there is none.
	marker   *blob.Properties
	markerAt time.Time // when marker was last learnt; zero: not known
	attrs    fileAttrs
	// absent remembers names found missing, or removed here, for the
	// negative TTL, so that lookups of them cost no call.
	absent    map[string]time.Time
	isRoot    bool
	listingOK bool // set on the root, whose existence needs no marker
	// entriesAt is when this mount last added or removed an entry: the
	// directory's mtime (and ctime, in attrs) as seen here. Kept in memory
	// only, so that making a file stays one call.
	entriesAt time.Time

	// tree is the last flat listing of the subtree (walk.go); treeBusy
	// is closed when the one under way ends.
	tree     *tree
	treeBusy chan struct{}
	// readAt is when a program last read the directory: a lookup of a
	// subdirectory soon after is a walk going down (find, du, rm -r).
	readAt time.Time
	// emptiedAt is when this mount last removed an entry here. While
	// removals go on (emptyingGap), lookups answer from the listing the
	// names were found in even past the entry TTL: rm -r removes what it
	// listed, and a List call per name would cost more than the Deletes.
	emptiedAt time.Time
	// kept is a directory emptied here of its last entry and not removed
	// (yet): it exists through the mount whatever the service lists, and
	// keepTimer writes its marker unless rmdir comes first, so that rm -r
	// writes no marker for a directory it is about to remove. keepBusy is
	// closed when a check under way ends.
	kept      bool
	keepPath  string // its prefix when kept, should the kernel forget it
	keepTimer *time.Timer
	keepBusy  chan struct{}
}

// emptyingGap is how long after a removal here a directory still counts
// as being emptied, whatever the entry TTL: the time between two removals
// is the program's pace and the service's, not a freshness bound.
const emptyingGap = 2 * time.Second

// keepDelay is how long an emptied directory waits for its rmdir before
// its keep-alive marker is written. rm -r removes a directory right after
// its last entry; unmount writes the markers still waiting.
const keepDelay = 2 * time.Second

func newDirNode(m *mount, marker *blob.Properties) *dirNode {
	d := &dirNode{m: m, attrs: fileAttrs{md: map[string]string{}}}
	if marker != nil {
		d.setMarker(marker, m.clock.Now())
	}
	return d
}

// setMarker records the directory's marker blob (nil: it has none) as
// learnt at time at; call with d.mu held or before d is shared.
func (d *dirNode) setMarker(p *blob.Properties, at time.Time) {
	d.marker, d.markerAt = p, at
	if p != nil {
		d.attrs.md = cloneMeta(p.Metadata)
	}
}

// name is the directory's blob prefix without the trailing '/'; "" for the root.
func (d *dirNode) name() string { return d.Path(nil) }

// prefix is what the names of the directory's blobs start with.
func (d *dirNode) prefix() string {
	if n := d.name(); n != "" {
		return n + "/"
	}
	return ""
}

func (d *dirNode) childPath(name string) string { return d.prefix() + name }

// entriesChanged moves the directory's mtime and ctime: an entry was
// made, removed or renamed here.
func (d *dirNode) entriesChanged() {
	now := d.m.clock.Now()
	d.mu.Lock()
	d.entriesAt = now
	d.attrs.changed(now)
	d.mu.Unlock()
}

// setgid tells whether new entries take the directory's group, and which.
func (d *dirNode) setgid() (bool, uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.attrs.mode(d.m.dirMode)&syscall.S_ISGID != 0, d.attrs.id(keyGID, d.m.gid)
}

// cachedListing returns the listing when it is still fresh.
func (d *dirNode) cachedListing() *listing {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.list.fresh(d.m.clock.Now(), d.m.entryTTL) {
		return d.list
	}
	return nil
}

// listing returns the directory's children, listing them when the cached
// listing has expired. Local files not uploaded yet are merged in.
func (d *dirNode) listing(ctx context.Context) (*listing, error) {
	if l := d.cachedListing(); l != nil {
		d.m.stats.listHits.Add(1)
		return l, nil
	}
	d.m.stats.listMisses.Add(1)
	// A walk that listed an ancestor's subtree flat has this listing.
	l, _, _, _ := d.fromTree(true)
	if l == nil {
		var err error
		if l, err = d.m.list(ctx, d.prefix()); err != nil {
			return nil, err
		}
		// A tree's older listing of d would not see the changes
		// noted in this one from now on.
		d.dropTree("", false)
	}
	var pending, kept []string
	for name, ch := range d.Children() {
		switch n := ch.Operations().(type) {
		case *fileNode:
			if n.isPending() {
				pending = append(pending, name)
			}
		case *dirNode:
			// Emptied here and not removed: it still exists.
			if n.isKept() {
				kept = append(kept, name)
			}
		}
	}
	d.mu.Lock()
	// Under d.mu: a tree's listing may already be d's.
	for _, name := range pending {
		l.entries[name] = &entry{typ: syscall.S_IFREG, pending: true}
	}
	for _, name := range kept {
		if l.entries[name] == nil {
			l.entries[name] = &entry{typ: syscall.S_IFDIR}
		}
	}
	d.list = l
	if !d.isRoot {
		if l.marker != nil || d.marker == nil || d.marker.Name == d.prefix() {
			d.setMarker(l.marker, l.at)
		}
	}
	d.mu.Unlock()
	return l, nil
}

// noteChild keeps a cached listing current after this mount changed name.
// A nil e is a removal, which also moves the directory's times.
func (d *dirNode) noteChild(name string, e *entry) {
	if e == nil {
		d.entriesChanged()
	}
	d.mu.Lock()
	if e == nil {
		d.noteAbsentLocked(name)
	} else {
		delete(d.absent, name)
	}
	// A walk's tree must not hand out a listing this change is not in:
	// d's own when d has none yet, and everything below a directory
	// that goes or comes (rmdir, rename).
	var old *entry
	noList := d.list == nil
	if !noList {
		old = d.list.entries[name]
		if e == nil {
			delete(d.list.entries, name)
		} else {
			d.list.entries[name] = e
		}
	}
	d.mu.Unlock()
	if noList {
		d.dropTree("", false)
	}
	ch := d.GetChild(name)
	_, childDir := opsOf(ch).(*dirNode)
	if childDir || (e != nil && e.typ == syscall.S_IFDIR) || (old != nil && old.typ == syscall.S_IFDIR) || (ch == nil && old == nil) {
		d.dropTree(name+"/", true)
	}
}

func (d *dirNode) noteAbsentLocked(name string) {
	if d.m.negTTL <= 0 {
		return
	}
	if d.absent == nil {
		d.absent = map[string]time.Time{}
	}
	now := d.m.clock.Now()
	if len(d.absent) > 1000 {
		for n, at := range d.absent {
			if now.Sub(at) >= d.m.negTTL {
				delete(d.absent, n)
			}
		}
	}
	d.absent[name] = now
}

func (d *dirNode) knownAbsent(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.absent[name]
	return ok && d.m.clock.Since(at) < d.m.negTTL
}

// lookup answers from the cached listing when it is fresh (also for absent
// names: no call), or, while this mount is removing entries here, from
// the listing the names were found in; else with one probing List call.
// A subdirectory's attributes come from the listing too: see walk.go.

func (d *dirNode) lookup(ctx context.Context, name string, attr *fuse.Attr) (*gofs.Inode, error) {
	if errno := checkNameLen(name); errno != 0 {
		return nil, errno
	}
	ctx, release := patient(ctx)
	defer release()
	if ch := d.GetChild(name); ch != nil && d.m.fresh(ch) {
		// Made, renamed or looked at here within the entry TTL.
		d.m.stats.lookupHits.Add(1)
		if err := fillNode(ctx, ch, d.childPath(name), attr); err != nil {
			return nil, err
		}
		return ch, nil
	}
	if d.knownAbsent(name) {
		d.m.stats.lookupHits.Add(1)
		return nil, syscall.ENOENT
	}
	var e *entry
	at := d.m.clock.Now()
	d.mu.Lock()
	l := d.list
	fresh := l.fresh(d.m.clock.Now(), d.m.entryTTL)
	if !fresh && l != nil && d.m.clock.Since(d.emptiedAt) < max(d.m.entryTTL, emptyingGap) {
		// Being emptied (rm -r): a name still in the listing it was
		// found in is there unless another client removed it, and then
		// the removal that follows finds nothing to delete, as it would
		// have. A name not in it is asked for.
		if e = l.entries[name]; e != nil {
			fresh = true
		}
	}
	if fresh {
		e, at = l.entries[name], l.at
	}
	d.mu.Unlock()
	if fresh {
		d.m.stats.lookupHits.Add(1)
	} else {
		d.m.stats.lookupMisses.Add(1)
		var err error
		if e, err = d.m.probe(ctx, d.childPath(name)); err != nil {
			return nil, opErr("lookup", d.childPath(name), err)
		}
		if e == nil {
			// Emptied here and not removed: it exists, listed or not.
			if cd, ok := opsOf(d.GetChild(name)).(*dirNode); ok && cd.isKept() {
				e = &entry{typ: syscall.S_IFDIR}
			}
		}
	}
	if e == nil {
		d.mu.Lock()
		d.noteAbsentLocked(name)
		d.mu.Unlock()
		return nil, syscall.ENOENT
	}
	ch := d.child(ctx, name, e, at)
	if cd, ok := ch.Operations().(*dirNode); ok && !cd.markerKnown() {
		d.learnMarker(ctx, name, cd, fresh && d.walking())
	}
	if err := fillNode(ctx, ch, d.childPath(name), attr); err != nil {
		return nil, err
	}
	return ch, nil
}

// learnMarker finds the marker of subdirectory cd (not yet in the tree
// when new) without asking the service for it alone when it can: from a
// flat listing of an ancestor's subtree made by a walk, or by making one
// when a walk goes down from d (a lookup answered by d's listing soon
// after a program read d: walk). Otherwise getattr asks.
func (d *dirNode) learnMarker(ctx context.Context, name string, cd *dirNode, walk bool) {
	full := d.childPath(name) + "/"
	_, mk, ok, at := d.treeLookup(full, false)
	if !ok && walk {
		// One flat listing of d's subtree tells the markers of all
		// its subdirectories at once.
		d.walkTree(ctx)
		_, mk, ok, at = d.treeLookup(full, false)
	}
	if !ok {
		return
	}
	cd.mu.Lock()
	if !at.Before(cd.markerAt) {
		cd.setMarker(mk, at)
	}
	cd.mu.Unlock()
}

// walking tells a directory a program read within the entry TTL.
func (d *dirNode) walking() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m.clock.Since(d.readAt) < d.m.entryTTL
}

// markerKnown tells whether d's marker (or that it has none) is known
// within the attribute TTL.
func (d *dirNode) markerKnown() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.kept || d.m.clock.Since(d.markerAt) < d.m.attrTTL
}

func (d *dirNode) isKept() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.kept
}

// fresh tells a node whose existence this mount learnt within the entry
// TTL, or that exists only here (a file not uploaded yet).
func (m *mount) fresh(ch *gofs.Inode) bool {
	var at time.Time
	switch n := ch.Operations().(type) {
	case *fileNode:
		n.mu.Lock()
		pending, unlinked := n.state == statePending, n.state == stateRemoved
		at = n.propsAt
		n.mu.Unlock()
		if unlinked {
			return false
		}
		if pending {
			return true
		}
	case *symlinkNode:
		n.mu.Lock()
		at = n.at
		n.mu.Unlock()
	case *dirNode:
		n.mu.Lock()
		kept := n.kept
		at = n.markerAt
		n.mu.Unlock()
		if kept {
			return true // exists here whatever the service lists
		}
	}
	return m.clock.Since(at) < m.entryTTL
}

// fillNode writes the attributes of any of our nodes.
// A new child is not in the tree yet, so its path is passed in.
func fillNode(ctx context.Context, ch *gofs.Inode, path string, out *fuse.Attr) error {
	switch n := ch.Operations().(type) {
	case *fileNode:
		n.fill(out)
	case *symlinkNode:
		n.fill(out)
	case *dirNode:
		return n.getattrAt(ctx, path, out)
	}
	return nil
}

// child returns the inode for a listed entry, reusing the existing one when
// its type still matches so open files and cached state carry over.
func (d *dirNode) child(ctx context.Context, name string, e *entry, at time.Time) *gofs.Inode {
	if ch := d.GetChild(name); ch != nil {
		switch n := ch.Operations().(type) {
		case *fileNode:
			if e.typ == syscall.S_IFREG {
				n.refresh(e.props, at)
				return ch
			}
		case *symlinkNode:
			if e.typ == n.typ {
				n.refresh(e.props, at)
				return ch
			}
		case *dirNode:
			if e.typ == syscall.S_IFDIR {
				if e.markerKnown {
					n.mu.Lock()
					if !at.Before(n.markerAt) {
						n.setMarker(e.props, at)
					}
					n.mu.Unlock()
				}
				return ch
			}
		}
	}
	var ops gofs.InodeEmbedder
	switch e.typ {
	case syscall.S_IFDIR:
		nd := newDirNode(d.m, nil)
		if e.markerKnown {
			nd.setMarker(e.props, at)
		}
		ops = nd
	case syscall.S_IFLNK, syscall.S_IFIFO, syscall.S_IFCHR, syscall.S_IFBLK, syscall.S_IFSOCK:
		ops = newSymlinkNode(d.m, e.props, "")
	default:
		ops = newFileNode(d.m, d.childPath(name), e.props)
	}
	return d.NewInode(ctx, ops, gofs.StableAttr{Mode: e.typ})
}

// readdir lists the directory (5,000 names per call) and creates the
// children's inodes from the listing, so that READDIRPLUS and a later stat
// need no calls and inode numbers stay the same between two readdirs. It
// also returns the entries as the listing served them and when it was
// made.
func (d *dirNode) readdir(ctx context.Context) (gofs.DirStream, map[string]*entry, time.Time, error) {
	ctx, release := patient(ctx)
	defer release()
	l, err := d.listing(ctx)
	if err != nil {
		return nil, nil, time.Time{}, opErr("readdir", d.name(), err)
	}
	d.mu.Lock()
	d.readAt = d.m.clock.Now()
	names := l.names()
	ents := make(map[string]*entry, len(names))
	for _, n := range names {
		ents[n] = l.entries[n]
	}
	at := l.at
	d.mu.Unlock()
	out := make([]fuse.DirEntry, 0, len(names)+2)
	out = append(out,
		fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.StableAttr().Ino},
		fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: d.parentIno()})
	for _, n := range names {
		e := ents[n]
		var ch *gofs.Inode
		if e.pending {
			ch = d.GetChild(n)
		} else {
			ch = d.child(ctx, n, e, at)
			if d.GetChild(n) != ch {
				d.AddChild(n, ch, true)
			}
		}
		if ch == nil {
			continue
		}
		out = append(out, fuse.DirEntry{Name: n, Mode: e.typ, Ino: ch.StableAttr().Ino})
	}
	return gofs.NewListDirStream(out), ents, at, nil
}

// dirHandle is an open directory: go-fuse's stream of a Readdir, plus
// the listing it was made from.
type dirHandle struct {
	d    *dirNode
	ds   gofs.DirStream
	ents map[string]*entry
	at   time.Time
}

// open reads the directory at the handle's first use.
func (h *dirHandle) open(ctx context.Context) error {
	if h.ds != nil {
		return nil
	}
	ds, ents, at, err := h.d.readdir(ctx)
	if err != nil {
		return err
	}
	h.ds, h.ents, h.at = ds, ents, at
	return nil
}

// lookup answers READDIRPLUS for a name the stream just produced, with
// the entry as that stream's listing had it.
func (h *dirHandle) lookup(ctx context.Context, name string, attr *fuse.Attr) (*gofs.Inode, error) {
	d := h.d
	e := h.ents[name]
	ch := d.GetChild(name)
	if e == nil || (e.pending && ch == nil) {
		return d.lookup(ctx, name, attr)
	}
	ctx, release := patient(ctx)
	defer release()
	d.m.stats.lookupHits.Add(1)
	if !e.pending {
		ch = d.child(ctx, name, e, h.at)
	}
	if cd, ok := ch.Operations().(*dirNode); ok && !cd.markerKnown() {
		d.learnMarker(ctx, name, cd, true) // a program is reading d
	}
	if err := fillNode(ctx, ch, d.childPath(name), attr); err != nil {
		return nil, err
	}
	return ch, nil
}

func (d *dirNode) parentIno() uint64 {
	if _, p := d.Parent(); p != nil {
		return p.StableAttr().Ino
	}
	return d.StableAttr().Ino
}

// getattr answers from the marker as a listing saw it: the parent's
// (blobfuse2's "dir" marker), a flat listing of an ancestor's subtree, or
// the directory's own (where "dir/" is the first entry). When none is
// known within the attribute TTL, a one-result listing of the prefix
// tells it: no HEAD, and no 404 for a directory that has no marker.
func (d *dirNode) getattr(ctx context.Context, out *fuse.Attr) error {
	return d.getattrAt(ctx, d.name(), out)
}

func (d *dirNode) getattrAt(ctx context.Context, name string, out *fuse.Attr) error {
	prefix := name + "/"
	d.mu.Lock()
	// A directory removed while a program still holds it has no name any
	// more (Path gives ""): there is nothing left to ask the service.
	known := d.isRoot || name == "" || d.kept || d.m.clock.Since(d.markerAt) < d.m.attrTTL
	d.mu.Unlock()
	if !known && d.name() == name {
		if _, mk, ok, at := d.fromTree(false); ok {
			d.mu.Lock()
			if !at.Before(d.markerAt) {
				d.setMarker(mk, at)
			}
			known = d.m.clock.Since(d.markerAt) < d.m.attrTTL
			d.mu.Unlock()
		}
	}
	if !known {
		at := d.m.clock.Now()
		p, err := d.m.markerOnly(ctx, prefix)
		if err != nil {
			return opErr("getattr", name, err)
		}
		d.mu.Lock()
		if p != nil || d.marker == nil || d.marker.Name == prefix {
			d.setMarker(p, at)
		} else {
			d.markerAt = at
		}
		d.mu.Unlock()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var lastMod time.Time
	if d.marker != nil {
		lastMod = d.marker.LastModified
	}
	d.attrs.fill(d.m, out, syscall.S_IFDIR, 0, lastMod)
	if mt := time.Unix(int64(out.Mtime), int64(out.Mtimensec)); d.entriesAt.After(mt) {
		out.SetTimes(nil, &d.entriesAt, nil)
	}
	out.Nlink = d.nlinkLocked()
	return nil
}

// nlinkLocked is 2 + the subdirectories when a fresh listing knows them,
// else 1, which find and fts read as "unknown" (as on btrfs): a guess
// of 2 would tell them there are no subdirectories.
func (d *dirNode) nlinkLocked() uint32 {
	if !d.list.fresh(d.m.clock.Now(), d.m.entryTTL) {
		return 1
	}
	n := uint32(2)
	for _, e := range d.list.entries {
		if e.typ == syscall.S_IFDIR {
			n++
		}
	}
	return n
}

// setattr stores mode, owner and times in the marker, writing one when the
// directory has none yet (the root has nowhere to keep them: they last
// until unmount).
func (d *dirNode) setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.Attr) error {
	if d.m.readOnly {
		return syscall.EROFS
	}
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	if err := d.getattr(ctx, out); err != nil {
		return err
	}
	d.mu.Lock()
	md := cloneMeta(d.attrs.md)
	marker := d.marker
	d.mu.Unlock()
	a := fileAttrs{md: md}
	if !applySetattr(&a, in, d.m, out) {
		return nil
	}
	_, mtimeSet := in.GetMTime()
	mtimeSet = mtimeSet || in.Valid&fuse.FATTR_MTIME_NOW != 0
	if d.isRoot {
		d.mu.Lock()
		d.attrs = a
		if mtimeSet {
			d.entriesAt = time.Time{}
		}
		d.mu.Unlock()
		return d.getattr(ctx, out)
	}
	var p *blob.Properties
	var err error
	if marker != nil {
		p, err = d.m.store.SetMetadata(ctx, marker.Name, md, blob.Conditions{})
		if err == nil {
			p.Name, p.Metadata, p.Size = marker.Name, md, 0
		}
	} else {
		p, err = d.m.writeMarker(ctx, d.prefix(), md)
	}
	if err != nil {
		return opErr("setattr", d.name(), err)
	}
	d.mu.Lock()
	d.setMarker(p, d.m.clock.Now())
	d.attrs.changed(a.ctime)
	if mtimeSet {
		d.entriesAt = time.Time{}
	}
	d.mu.Unlock()
	return d.getattr(ctx, out)
}

// writeMarker writes our directory marker style: a zero-length "dir/" with
// hdi_isfolder=true, which rclone, gcsfuse and blobfuse2 all read as a
// directory.
func (m *mount) writeMarker(ctx context.Context, prefix string, md map[string]string) (*blob.Properties, error) {
	md = cloneMeta(md)
	md[keyFolder] = "true"
	p, err := m.store.Upload(ctx, prefix, nil, blob.PutOptions{Metadata: md})
	if err != nil {
		return nil, err
	}
	p.Name, p.Size, p.Metadata = prefix, 0, md
	return p, nil
}

func (m *mount) head(ctx context.Context, name string) (*blob.Properties, error) {
	m.stats.headCalls.Add(1)
	return m.store.GetProperties(ctx, name)
}

// applySetattr copies the mode, owner and times of in into a and reports
// whether anything the blob stores changed.
func applySetattr(a *fileAttrs, in *fuse.SetAttrIn, m *mount, cur *fuse.Attr) bool {
	changed := false
	if mode, ok := in.GetMode(); ok {
		a.setMode(mode)
		changed = true
	}
	if uid, ok := in.GetUID(); ok {
		a.setUID(uid)
		changed = true
	}
	if gid, ok := in.GetGID(); ok {
		a.setGID(gid)
		changed = true
	}
	if mt, ok := in.GetMTime(); ok {
		a.setMtime(mt)
		changed = true
	} else if in.Valid&fuse.FATTR_MTIME_NOW != 0 {
		a.setMtime(m.clock.Now())
		changed = true
	}
	if at, ok := in.GetATime(); ok {
		a.setAtime(at)
		changed = true
	} else if in.Valid&fuse.FATTR_ATIME_NOW != 0 {
		a.setAtime(m.clock.Now())
		changed = true
	}
	if changed {
		a.changed(m.clock.Now())
	}
	return changed
}

func (d *dirNode) mkdir(ctx context.Context, name string, mode uint32, out *fuse.Attr) (*gofs.Inode, error) {
	if errno := checkNameLen(name); errno != 0 {
		return nil, errno
	}
	ctx = uninterruptible(ctx)
	if d.m.readOnly {
		return nil, syscall.EROFS
	}
	full := d.childPath(name)
	if err := blob.ValidateName(full); err != nil {
		return nil, opErr("mkdir", full, err)
	}
	a := fileAttrs{md: map[string]string{}}
	a.newInode(ctx, d, mode, true)
	p, err := d.m.writeMarker(ctx, full+"/", a.md)
	if err != nil {
		return nil, opErr("mkdir", full, err)
	}
	nd := newDirNode(d.m, p)
	nd.attrs.ctime = a.ctime
	// A directory we just made is empty: lookups inside it need no calls.
	nd.list = &listing{at: d.m.clock.Now(), entries: map[string]*entry{}, marker: p}
	d.noteChild(name, &entry{typ: syscall.S_IFDIR, props: p, markerKnown: true})
	d.entriesChanged()
	ch := d.NewInode(ctx, nd, gofs.StableAttr{Mode: syscall.S_IFDIR})
	nd.getattr(ctx, out)
	return ch, nil
}

// rmdir refuses a directory that still has anything under it, which one
// 2-result listing tells (the marker itself may be the first result, and
// is deleted only when it is there).

func (d *dirNode) rmdir(ctx context.Context, name string) error {
	if d.m.readOnly {
		return syscall.EROFS
	}
	full := d.childPath(name)
	var cd *dirNode
	if ch := d.GetChild(name); ch != nil {
		cd, _ = ch.Operations().(*dirNode)
		if cd == nil {
			return syscall.ENOTDIR
		}
		for _, gc := range ch.Children() {
			if f, ok := gc.Operations().(*fileNode); ok && f.isPending() {
				return syscall.ENOTEMPTY
			}
		}
		// No keep-alive marker for a directory being removed; one being
		// written lands first, so that the listing below sees it.
		cd.stopKeeping()
	}
	d.m.stats.listCalls.Add(1)
	page, err := d.m.store.List(ctx, blob.ListOptions{Prefix: full + "/", Delimiter: "/", MaxResults: 2, IncludeMetadata: true})
	if err != nil {
		return opErr("rmdir", full, err)
	}
	hasMarker := false
	for _, p := range page.Blobs {
		if p.Name != full+"/" {
			return syscall.ENOTEMPTY
		}
		hasMarker = true
	}
	if len(page.Prefixes) > 0 {
		return syscall.ENOTEMPTY
	}
	if err := d.m.deleteMarkers(ctx, full, cd, hasMarker); err != nil {
		return opErr("rmdir", full, err)
	}
	d.mu.Lock()
	d.emptiedAt = d.m.clock.Now()
	d.mu.Unlock()
	d.noteChild(name, nil)
	d.keepIfEmpty(ctx)
	return nil
}

// deleteMarkers removes both marker styles of directory full: "dir/" when
// the listing showed it, and blobfuse2's "dir" when it is known to be one.
func (m *mount) deleteMarkers(ctx context.Context, full string, cd *dirNode, slash bool) error {
	if slash {
		if err := m.store.Delete(ctx, full+"/", blob.Conditions{}); err != nil && !errors.Is(err, blob.ErrNotFound) {
			return err
		}
	}
	// blobfuse2's "dir" marker, only when we know it is one: a plain blob
	// of that name is data, not ours to delete.
	if cd != nil {
		cd.mu.Lock()
		mk := cd.marker
		cd.mu.Unlock()
		if mk != nil && mk.Name == full {
			if err := m.store.Delete(ctx, full, blob.Conditions{}); err != nil && !errors.Is(err, blob.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// keepIfEmpty keeps a marker-less directory that may just have lost its
// last entry, so that it does not vanish from under a user inside it
// (POSIX: it exists until rmdir). The marker is not written at once: the
// directory is kept here, and keepCheck writes it keepDelay later if the
// directory is still there and still empty, so that rm -r, which removes
// the directory next, writes none.
func (d *dirNode) keepIfEmpty(ctx context.Context) {
	if d.isRoot || d.m.readOnly {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	hasMarker := !d.markerAt.IsZero() && d.marker != nil
	// Our own listing, even past the TTL, as lookups use it while
	// removals go on: what this mount has not removed from it is still
	// there unless another client removed it, and a check per removal
	// would cost a List each (rm -r of a directory's subdirectories).
	nonEmpty := d.list != nil && len(d.list.entries) > 0
	if hasMarker || nonEmpty {
		return
	}
	// Kept even when its listing is not known: it exists here until
	// keepCheck has seen what the service holds.
	d.kept = true
	d.keepPath = d.prefix()
	if d.keepTimer != nil {
		d.keepTimer.Reset(keepDelay)
		return
	}
	d.keepTimer = time.AfterFunc(keepDelay, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d.keepCheck(ctx)
	})
}

// stopKeeping cancels the keep-alive of a directory about to be removed,
// waiting for a check under way.
func (d *dirNode) stopKeeping() {
	d.mu.Lock()
	if d.keepTimer != nil {
		d.keepTimer.Stop()
		d.keepTimer = nil
	}
	d.kept = false
	busy := d.keepBusy
	d.mu.Unlock()
	if busy != nil {
		<-busy
	}
}

// keepCheck writes the marker of a directory emptied here if it is still
// there (not removed, not renamed away) and the service has nothing
// below it.
func (d *dirNode) keepCheck(ctx context.Context) {
	d.mu.Lock()
	for d.keepBusy != nil {
		// Unmount while the timer's check is under way: wait for it.
		busy := d.keepBusy
		d.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return
		}
		d.mu.Lock()
	}
	if d.keepTimer == nil && !d.kept {
		d.mu.Unlock()
		return
	}
	if d.keepTimer != nil {
		d.keepTimer.Stop()
		d.keepTimer = nil
	}
	busy := make(chan struct{})
	d.keepBusy = busy
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		// An entry removed meanwhile armed another check: kept till then.
		if d.keepTimer == nil {
			d.kept = false
		}
		d.keepBusy = nil
		close(busy)
		d.mu.Unlock()
	}()
	prefix := d.prefix()
	if prefix == "" {
		// Forgotten by the kernel meanwhile (rmdir stops the keeping).
		d.mu.Lock()
		prefix = d.keepPath
		d.mu.Unlock()
	}
	if prefix == "" {
		return
	}
	d.m.stats.listCalls.Add(1)
	page, err := d.m.store.List(ctx, blob.ListOptions{Prefix: prefix, Delimiter: "/", MaxResults: 1})
	if err != nil {
		d.m.log.WithField("path", d.name()).Warnf("keeping the emptied directory: %v", err)
		return
	}
	if len(page.Blobs)+len(page.Prefixes) > 0 {
		return
	}
	d.mu.Lock()
	md := cloneMeta(d.attrs.md)
	d.mu.Unlock()
	p, err := d.m.writeMarker(ctx, prefix, md)
	if err != nil {
		d.m.log.WithField("path", d.name()).Warnf("keeping the emptied directory: %v", err)
		return
	}
	d.mu.Lock()
	d.setMarker(p, d.m.clock.Now())
	d.mu.Unlock()
}

func (d *dirNode) unlink(ctx context.Context, name string) error {
	if d.m.readOnly {
		return syscall.EROFS
	}
	full := d.childPath(name)
	ch := d.GetChild(name)
	if ch != nil {
		if _, ok := ch.Operations().(*dirNode); ok {
			return syscall.EISDIR
		}
		if f, ok := ch.Operations().(*fileNode); ok {
			if err := f.unlink(ctx); err != nil {
				return err
			}
			d.removed(ctx, name)
			return nil
		}
	}
	if err := d.m.store.Delete(ctx, full, blob.Conditions{}); err != nil {
		return opErr("unlink", full, err)
	}
	d.removed(ctx, name)
	return nil
}

// removed notes that this mount removed name: the listing keeps serving
// the removals that follow (see Lookup), and the directory is kept if
// that was its last entry.
func (d *dirNode) removed(ctx context.Context, name string) {
	d.mu.Lock()
	d.emptiedAt = d.m.clock.Now()
	d.mu.Unlock()
	d.noteChild(name, nil)
	d.keepIfEmpty(ctx)
}

// mknod makes regular files, and FIFOs, devices and sockets as
// zero-length blobs whose metadata says what they are (see makeMetaNode).
func (d *dirNode) mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.Attr) (*gofs.Inode, error) {
	if errno := checkNameLen(name); errno != 0 {
		return nil, errno
	}
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
	case syscall.S_IFIFO, syscall.S_IFCHR, syscall.S_IFBLK, syscall.S_IFSOCK:
		return d.makeMetaNode(ctx, "mknod", name, mode, dev, "", out)
	default:
		return nil, syscall.EINVAL
	}
	// A regular file: created, committed and released at once, as
	// open(O_CREAT) and close() would.
	ch, h, err := d.create(ctx, name, syscall.O_WRONLY, mode)
	if err != nil {
		return nil, err
	}
	err = h.close(ctx)
	h.release(ctx)
	if err != nil {
		return nil, opErr("mknod", d.childPath(name), err)
	}
	h.f.fill(out)
	return ch, nil
}
