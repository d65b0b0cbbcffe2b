package stage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/blobfs/blobfs/blob"
)

// TagGetter is implemented by Stores that can read a blob's index tags
// (*blob.Container does). Without it, tags are kept only when the base's
// properties already hold them.
type TagGetter interface {
	GetTags(ctx context.Context, name string) (map[string]string, error)
}

// keepBaseLocked fills in what opts leaves empty from the blob the commit
// replaces: Put Blob and Put Block List clear every content header, the
// index tags and an explicitly set access tier that they are not sent, and
// other tools depend on them (a CDN serving Cache-Control and
// Content-Encoding, lifecycle rules matching tags, a Cool blob staying
// Cool). Tags cost a Get Blob Tags, made only when the base's properties
// say it has some. An Archive tier is not kept: the new content would be
// unreadable until rehydrated. Called with f.mu held; it is released
// while the tags are read.
func (f *File) keepBaseLocked(ctx context.Context, opts *blob.PutOptions) error {
	b := f.baseProps
	if b == nil {
		return nil
	}
	if opts.ContentHeaders == (blob.ContentHeaders{}) {
		opts.ContentHeaders = b.ContentHeaders
	}
	if t := b.ExplicitTier(); opts.AccessTier == "" && !strings.EqualFold(t, "Archive") {
		opts.AccessTier = t
	}
	if b.MetaNamesLowered && len(opts.Metadata) > 0 {
		f.restoreMetaNamesLocked(ctx, opts)
	}
	if opts.Tags != nil {
		return nil
	}
	if b.Tags != nil || b.TagCount == 0 {
		opts.Tags = b.Tags
		return nil
	}
	tg, ok := f.m.store.(TagGetter)
	if !ok {
		return nil
	}
	name := b.Name
	if name == "" {
		name = f.baseName
	}
	f.mu.Unlock()
	tags, err := tg.GetTags(ctx, name)
	f.mu.Lock()
	if errors.Is(err, blob.ErrAuthorization) {
		// A SAS without the tag permission ('t') could not set them
		// either: the rewrite goes ahead without them, and says so.
		f.m.log.WithError(err).WithField("blob", name).Warn("cannot read the blob's index tags to keep them (no tag permission); rewriting it without them")
		return nil
	}
	if err != nil {
		return fmt.Errorf("stage: reading the index tags of %q to keep them: %w", name, err)
	}
	if f.baseProps == b {
		// Read once: the next commit finds them here.
		nb := *b
		nb.Tags = tags
		f.baseProps = &nb
	}
	opts.Tags = tags
	return nil
}

// Lister is implemented by Stores that list blobs (*blob.Container does).
type Lister interface {
	List(ctx context.Context, opts blob.ListOptions) (*blob.ListPage, error)
}

// restoreMetaNamesLocked gives opts.Metadata's names the case the base
// blob stores them in, when the base's properties came from a HEAD (Go's
// HTTP client loses the case there; a listing keeps it): other tools'
// names must go out as they wrote them, "ProjectOwner" and not
// "projectowner". Our own names stay lower-case. It costs one listing of
// one blob, only for rewrites of blobs known through a HEAD. Called with
// f.mu held; it is released while listing. On any failure the names go
// out as they are.
func (f *File) restoreMetaNamesLocked(ctx context.Context, opts *blob.PutOptions) {
	l, ok := f.m.store.(Lister)
	if !ok {
		return
	}
	b := f.baseProps
	name := b.Name
	if name == "" {
		name = f.baseName
	}
	f.mu.Unlock()
	page, err := l.List(ctx, blob.ListOptions{Prefix: name, MaxResults: 1, IncludeMetadata: true})
	f.mu.Lock()
	if err != nil || len(page.Blobs) == 0 || page.Blobs[0].Name != name {
		return
	}
	opts.Metadata = blob.MetaNamesAs(opts.Metadata, page.Blobs[0].Metadata, ownMetaName)
	if f.baseProps == b {
		nb := *b
		nb.MetaNamesLowered = false
		nb.Metadata = page.Blobs[0].Metadata
		f.baseProps = &nb
	}
}

// ownMetaName tells the names blobfs writes itself, always lower-case
// (fs/meta.go's keys), whatever case a blob has them in.
func ownMetaName(k string) bool {
	switch k {
	case "mode", "uid", "gid", "mtime", "atime", "filetype", "rdev", "hdi_isfolder", "is_symlink":
		return true
	}
	return false
}

// keptProps records in p, the answer to a commit made with opts, what the
// commit sent, so that the next commit keeps it too.
func keptProps(p *blob.Properties, opts blob.PutOptions) {
	p.ContentHeaders = opts.ContentHeaders
	p.AccessTier, p.AccessTierInferred = opts.AccessTier, opts.AccessTier == ""
	p.Tags, p.TagCount = opts.Tags, len(opts.Tags)
	p.BlobType = "BlockBlob"
}
