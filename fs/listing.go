package fs

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/blobfs/blobfs/blob"
)

// listPageSize is the service's maximum: `ls` of 10,000 blobs is 2 calls.
const listPageSize = 5000

// entry is what a listing says about one name in a directory.
type entry struct {
	typ uint32 // syscall.S_IFREG, S_IFDIR, S_IFLNK, or a special file's S_IFIFO...
	// props is the file's or symlink's blob, or a directory's marker
	// blob when the listing showed it (blobfuse2's "dir" style); nil for a
	// prefix, whose marker (if any) the listing rolls up.
	props *blob.Properties
	// pending is a file created here and not uploaded yet.
	pending bool
	// markerKnown: for a directory, props is its marker as far as the
	// listing can tell, nil meaning it has none. A delimited listing
	// knows only blobfuse2's "dir" (a "dir/" rolls up into the prefix);
	// a flat listing of the parent's subtree knows both (walk.go).
	markerKnown bool
}

// listing is a directory's children as one listing saw them, kept up to
// date with this mount's own changes until it expires.
type listing struct {
	at      time.Time
	entries map[string]*entry
	marker  *blob.Properties // the directory's own "dir/" marker, if listed
}

func (l *listing) fresh(now time.Time, ttl time.Duration) bool {
	return l != nil && now.Sub(l.at) < ttl
}

func (l *listing) names() []string {
	out := make([]string, 0, len(l.entries))
	for n := range l.entries {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// childName is the directory entry a listed blob or prefix stands for
// below prefix, or "" when it stands for none a POSIX name can express.
func childName(prefix, name string) string {
	rel := strings.TrimSuffix(strings.TrimPrefix(name, prefix), "/")
	if rel == "" || rel == "." || rel == ".." || strings.Contains(rel, "/") {
		return ""
	}
	return rel
}

// add merges one listed item. A directory wins over a blob of the same
// name (blob "a" and prefix "a/"): the blob is then unreachable through
// the mount and is reported once in the log.
func (l *listing) add(m *mount, name string, e *entry) {
	old, ok := l.entries[name]
	switch {
	case !ok:
		l.entries[name] = e
	case old.typ == syscall.S_IFDIR && e.typ == syscall.S_IFDIR:
		if old.props == nil {
			old.props = e.props
			old.markerKnown = old.markerKnown || e.markerKnown
		}
	case old.typ == syscall.S_IFDIR:
		m.shadowed(e.props.Name)
	case e.typ == syscall.S_IFDIR:
		m.shadowed(old.props.Name)
		l.entries[name] = e
	}
}

// list reads the whole directory below prefix ("" for the root, else
// ending in '/'), one page of 5,000 at a time, with metadata so that
// attributes need no further calls.
func (m *mount) list(ctx context.Context, prefix string) (*listing, error) {
	l := &listing{at: m.clock.Now(), entries: map[string]*entry{}}
	marker := ""
	for {
		m.stats.listCalls.Add(1)
		page, err := m.store.List(ctx, blob.ListOptions{
			Prefix: prefix, Delimiter: "/", Marker: marker,
			MaxResults: listPageSize, IncludeMetadata: true,
		})
		if err != nil {
			return nil, err
		}
		for _, p := range page.Blobs {
			if p.Name == prefix {
				l.marker = p
				continue
			}
			n := childName(prefix, p.Name)
			if n == "" {
				continue
			}
			l.add(m, n, entryOf(p))
		}
		for _, p := range page.Prefixes {
			if n := childName(prefix, p); n != "" {
				l.add(m, n, &entry{typ: syscall.S_IFDIR})
			}
		}
		if page.NextMarker == "" {
			return l, nil
		}
		marker = page.NextMarker
	}
}

func entryOf(p *blob.Properties) *entry {
	switch {
	case isFolderBlob(p):
		return &entry{typ: syscall.S_IFDIR, props: p, markerKnown: true}
	case isSymlinkBlob(p):
		return &entry{typ: syscall.S_IFLNK, props: p}
	case specialType(p.Metadata) != 0:
		return &entry{typ: specialType(p.Metadata), props: p}
	}
	return &entry{typ: syscall.S_IFREG, props: p}
}

// probe finds out what one name is, without listing its whole directory:
// a listing with the name as prefix shows the blob "name" and the prefix
// "name/" (and, between them, only siblings that extend the name with a
// character sorting before '/'). It returns nil when nothing is there.
func (m *mount) probe(ctx context.Context, name string) (*entry, error) {
	var found *entry
	marker := ""
	dirPrefix := name + "/"
	for {
		m.stats.listCalls.Add(1)
		page, err := m.store.List(ctx, blob.ListOptions{
			Prefix: name, Delimiter: "/", Marker: marker,
			MaxResults: 100, IncludeMetadata: true,
		})
		if err != nil {
			return nil, err
		}
		past := false
		for _, p := range page.Blobs {
			switch {
			case p.Name == name:
				e := entryOf(p)
				if found == nil || e.typ == syscall.S_IFDIR {
					found = e
				} else {
					m.shadowed(p.Name)
				}
			case p.Name > dirPrefix:
				past = true
			}
		}
		for _, p := range page.Prefixes {
			switch {
			case p == dirPrefix:
				if found != nil && found.typ != syscall.S_IFDIR {
					m.shadowed(found.props.Name)
				}
				if found == nil || found.typ != syscall.S_IFDIR {
					found = &entry{typ: syscall.S_IFDIR}
				}
			case p > dirPrefix:
				past = true
			}
		}
		if past || page.NextMarker == "" {
			return found, nil
		}
		marker = page.NextMarker
	}
}
