package fs

import (
	"context"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/blobfs/blobfs/blob"
)

// A walk (find, du, rsync, ls -R, rm -r) reads a directory and then looks
// up each of its subdirectories. A listing with a delimiter rolls a
// subdirectory's "dir/" marker up into the prefix "dir/", so its
// attributes are not in the parent's listing; asking for them one HEAD at
// a time cost a call per directory. Instead, the first lookup of a
// subdirectory whose marker is unknown, in a directory that was just read,
// lists the directory's whole subtree without a delimiter: every blob and
// every marker below it, 5,000 a page, from which the listing of each
// directory it covered whole is built. The subdirectories' markers go to
// their entries, and their listings wait in the tree until the walk reads
// them (or the entry TTL runs out), so a walk of a large tree costs about
// as many List calls as a flat listing of it.

// maxTreePages bounds one flat listing: 50,000 blobs. It also stops as
// soon as a page completes no new subdirectory (a subtree with one huge
// directory is listed by that directory's own listing when it is read).
const maxTreePages = 10

// tree is what one flat listing of a directory's subtree found.
type tree struct {
	at time.Time
	// dirs are the listings of the directories the flat listing covered
	// whole, by prefix relative to the listed directory ("a/", "a/b/"; ""
	// for the directory itself). A directory takes its listing out when
	// it first needs one.
	dirs map[string]*listing
	// markers are the marker blobs of every directory the flat listing
	// reached (nil: it has none), covered whole or not: a directory's
	// "dir/" sorts before everything below it.
	markers map[string]*blob.Properties
}

// listTree lists everything below prefix ("" or ending in '/') without a
// delimiter and builds the listings of the directories it covers.
func (m *mount) listTree(ctx context.Context, prefix string) (*tree, error) {
	t := &tree{at: m.clock.Now(), dirs: map[string]*listing{}, markers: map[string]*blob.Properties{}}
	var last string // relative name of the last blob listed
	completed := 0  // direct subdirectories listed whole
	seen := map[string]bool{}
	marker := ""
	for pages := 1; ; pages++ {
		m.stats.listCalls.Add(1)
		page, err := m.store.List(ctx, blob.ListOptions{
			Prefix: prefix, Marker: marker, MaxResults: listPageSize, IncludeMetadata: true,
		})
		if err != nil {
			return nil, err
		}
		for _, p := range page.Blobs {
			rel := strings.TrimPrefix(p.Name, prefix)
			last = rel
			t.addBlob(m, rel, p)
			if i := strings.IndexByte(rel, '/'); i >= 0 {
				seen[rel[:i+1]] = true
			}
		}
		if page.NextMarker == "" {
			t.fillMarkers()
			return t, nil
		}
		before := completed
		completed = len(seen)
		if strings.IndexByte(last, '/') >= 0 {
			completed-- // the one the last blob is in may go on
		}
		if completed == before || pages >= maxTreePages {
			// Names sort, so the directories the last blob is in are
			// the only ones that may have more to come.
			for rel := range t.dirs {
				if strings.HasPrefix(last, rel) {
					delete(t.dirs, rel)
				}
			}
			t.fillMarkers()
			return t, nil
		}
		marker = page.NextMarker
	}
}

// dir is the listing being built for rel, made on first use. A directory
// reached by the flat listing has had its marker listed already, if it
// has one, since "dir/" sorts before every name below it.
func (t *tree) dir(rel string) *listing {
	l := t.dirs[rel]
	if l == nil {
		l = &listing{at: t.at, entries: map[string]*entry{}}
		t.dirs[rel] = l
		if _, ok := t.markers[rel]; !ok {
			t.markers[rel] = nil
		}
	}
	return l
}

// addBlob files one blob, relative name rel, under its directory,
// creating the directories on its path; names POSIX cannot show (empty
// segments, "." and "..") are left out as a delimited listing leaves
// them out.
func (t *tree) addBlob(m *mount, rel string, p *blob.Properties) {
	parent, rest := "", rel
	for {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			break
		}
		seg := rest[:i]
		if seg == "" || seg == "." || seg == ".." {
			return
		}
		t.dir(parent).add(m, seg, &entry{typ: syscall.S_IFDIR})
		parent += seg + "/"
		rest = rest[i+1:]
	}
	l := t.dir(parent)
	switch rest {
	case "":
		// "dir/" itself: the directory's marker.
		l.marker = p
		t.markers[parent] = p
	case ".", "..":
	default:
		l.add(m, rest, entryOf(p))
	}
}

// fillMarkers gives every listed subdirectory entry its marker, as far as
// the flat listing saw it. Called once the listing is done.
func (t *tree) fillMarkers() {
	for rel, l := range t.dirs {
		for name, e := range l.entries {
			if e.typ != syscall.S_IFDIR {
				continue
			}
			mk, ok := t.markers[rel+name+"/"]
			if !ok {
				continue
			}
			if mk != nil {
				e.props = mk
			}
			e.markerKnown = true
		}
	}
}

// fresh tells a tree whose listings may still be served.
func (t *tree) fresh(now time.Time, ttl time.Duration) bool { return t != nil && now.Sub(t.at) < ttl }

// parentDir is d's parent directory, or nil for the root or a directory
// removed meanwhile.
func (d *dirNode) parentDir() *dirNode {
	_, p := d.Parent()
	if p == nil {
		return nil
	}
	pd, _ := p.Operations().(*dirNode)
	return pd
}

// fromTree finds what a flat listing of one of d's ancestors (or of d
// itself) learnt about d: its listing (when withList is set and the tree
// may still serve it) and its marker.
//
// A tree serves listings for the entry TTL, and longer while the
// directory it belongs to is being emptied by this mount (rm -r of it:
// the listings its directories were found in serve their removal; an
// entry another client added meanwhile makes the rmdir fail with
// ENOTEMPTY, as a local disk would), up to maxEmptyingTree.
func (d *dirNode) fromTree(withList bool) (l *listing, mk *blob.Properties, known bool, at time.Time) {
	return d.treeLookup(d.prefix(), withList)
}

// maxEmptyingTree bounds how long a tree serves a removal.
const maxEmptyingTree = 5 * time.Minute

// treeLookup is fromTree for the directory whose prefix is full, looked
// for in the trees of d and its ancestors. A listing served stays in the
// tree, shared with the directory that took it (which keeps it current
// with this mount's changes), so that reading the directory again (rm
// opens each one twice) finds it too.
func (d *dirNode) treeLookup(full string, withList bool) (l *listing, mk *blob.Properties, known bool, at time.Time) {
	if full == "" {
		return nil, nil, false, time.Time{} // the root, or removed
	}
	for a := d; a != nil; a = a.parentDir() {
		rel, ok := strings.CutPrefix(full, a.prefix())
		if !ok {
			return nil, nil, false, time.Time{}
		}
		a.mu.Lock()
		t := a.tree
		now := d.m.clock.Now()
		emptying := t != nil && now.Sub(a.emptiedAt) < max(d.m.entryTTL, emptyingGap) && now.Sub(t.at) < maxEmptyingTree
		if t != nil && !t.fresh(now, d.m.attrTTL) && !t.fresh(now, d.m.entryTTL) && !emptying {
			a.tree, t = nil, nil
		}
		if t != nil {
			if t.fresh(now, d.m.attrTTL) || emptying {
				mk, known = t.markers[rel]
			}
			at = t.at
			if withList && (t.fresh(now, d.m.entryTTL) || emptying) {
				l = t.dirs[rel]
			}
		}
		a.mu.Unlock()
		if known || l != nil {
			return l, mk, known, at
		}
	}
	return nil, nil, false, time.Time{}
}

// dropTree forgets what the trees of d and its ancestors hold for rel
// (a path relative to d, "" or ending in '/'), and everything below it
// when below is set, after this mount changed it: a listing taken later
// would miss the change.
func (d *dirNode) dropTree(rel string, below bool) {
	full := d.prefix() + rel
	if full == rel && !d.isRoot {
		return // d was removed: nothing of it is in a tree any more
	}
	for a := d; a != nil; a = a.parentDir() {
		r, ok := strings.CutPrefix(full, a.prefix())
		if !ok {
			return
		}
		a.mu.Lock()
		if t := a.tree; t != nil {
			if !below {
				delete(t.dirs, r)
			} else if len(t.dirs)+len(t.markers) > 0 {
				for k := range t.dirs {
					if strings.HasPrefix(k, r) {
						delete(t.dirs, k)
					}
				}
				for k := range t.markers {
					if strings.HasPrefix(k, r) {
						delete(t.markers, k)
					}
				}
			}
		}
		a.mu.Unlock()
	}
}

// walkTree lists d's subtree flat (one at a time per directory) and hands
// the markers it found to d's listing and to the subdirectories already
// known. It is not repeated while a previous tree is fresh.
func (d *dirNode) walkTree(ctx context.Context) {
	d.mu.Lock()
	for d.treeBusy != nil {
		busy := d.treeBusy
		d.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return
		}
		d.mu.Lock()
	}
	if d.tree.fresh(d.m.clock.Now(), d.m.entryTTL) {
		d.mu.Unlock()
		return
	}
	busy := make(chan struct{})
	d.treeBusy = busy
	d.mu.Unlock()
	t, err := d.m.listTree(ctx, d.prefix())
	d.mu.Lock()
	d.treeBusy = nil
	close(busy)
	if err != nil {
		d.mu.Unlock()
		d.m.log.WithField("path", d.name()).Debugf("listing the subtree: %v", err)
		return
	}
	delete(t.dirs, "") // d's own listing is the delimited one it has
	d.tree = t
	if d.list != nil {
		for name, e := range d.list.entries {
			if e.typ != syscall.S_IFDIR || e.markerKnown {
				continue
			}
			if mk, ok := t.markers[name+"/"]; ok {
				// A copy: readdir streams share the old entry unlocked.
				ne := *e
				if mk != nil {
					ne.props = mk
				}
				ne.markerKnown = true
				d.list.entries[name] = &ne
			}
		}
	}
	d.mu.Unlock()
	for name, ch := range d.Children() {
		cd, ok := ch.Operations().(*dirNode)
		if !ok {
			continue
		}
		if mk, ok := t.markers[name+"/"]; ok {
			cd.mu.Lock()
			if mk != nil || cd.marker == nil || cd.marker.Name == cd.prefix() {
				cd.setMarker(mk, t.at)
			}
			cd.mu.Unlock()
		}
	}
}

// markerOnly learns d's "dir/" marker with a one-result listing of its
// prefix, where it sorts first: as cheap as a HEAD, and no 404 when the
// directory has none.
func (m *mount) markerOnly(ctx context.Context, prefix string) (*blob.Properties, error) {
	m.stats.listCalls.Add(1)
	page, err := m.store.List(ctx, blob.ListOptions{Prefix: prefix, Delimiter: "/", MaxResults: 1, IncludeMetadata: true})
	if err != nil {
		return nil, err
	}
	for _, p := range page.Blobs {
		if p.Name == prefix {
			return p, nil
		}
	}
	return nil, nil
}

// keptDirs lists the directories emptied here whose keep-alive check is
// still to be made.
func keptDirs(root *gofs.Inode) []*dirNode {
	var out []*dirNode
	var walk func(n *gofs.Inode)
	walk = func(n *gofs.Inode) {
		for _, ch := range n.Children() {
			if cd, ok := ch.Operations().(*dirNode); ok {
				cd.mu.Lock()
				k := cd.kept || cd.keepTimer != nil
				cd.mu.Unlock()
				if k {
					out = append(out, cd)
				}
				walk(ch)
			}
		}
	}
	walk(root)
	return out
}

// flushKept writes, at unmount, the markers of directories emptied here
// and not removed, so that they are still there at the next mount.
func (m *mount) flushKept(ctx context.Context, root *gofs.Inode) {
	for _, d := range keptDirs(root) {
		d.keepCheck(ctx)
	}
}
