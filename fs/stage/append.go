package stage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/blobfs/blobfs/blob"
)

// Appender is implemented by Stores that can append to an append blob
// (*blob.Container does). Without it an append blob is read-only, as a
// page blob always is: a Put Blob or Put Block List would make it a block
// blob under the program that owns it.
type Appender interface {
	AppendBlock(ctx context.Context, name string, data []byte, opts blob.AppendOptions) (*blob.Properties, error)
	SetMetadata(ctx context.Context, name string, md map[string]string, cond blob.Conditions) (*blob.Properties, error)
}

// An append blob opened without O_TRUNC is staged like any file, but only
// what lies past the blob's end may change: writes and truncates below
// f.sealed (the blob's size, and during a commit the end of what it
// sends) fail with a *BlobTypeError (EPERM). The commit sends the new tail
// as Append Block calls of at most blob.MaxAppendBlock bytes, each pinned
// to its position (x-ms-blob-condition-appendpos) and to the version the
// previous one made (If-Match), so a concurrent appender is never
// interleaved with: the first call that finds the blob moved on fails,
// and what was not sent yet is kept in lost+found at close. Nothing is
// uploaded before the commit (no Put Block: an append blob takes none),
// and Recover never sends a staged append (see recoverOne): it may have
// been partly applied, and a repeat would duplicate it.

// checkAppendLocked refuses a change at off of an append blob's file that
// does not lie past the blob's end.
func (f *File) checkAppendLocked(op string, off int64) error {
	if !f.appendOnly || off >= f.sealed {
		return nil
	}
	return &BlobTypeError{Name: f.name, Type: "AppendBlob",
		Detail: fmt.Sprintf("%s at offset %d, below its end (%d): an append blob takes only appends at its end", op, off, f.sealed)}
}

// appendLocked commits an append blob's file: the bytes past the blob's
// end go out as Append Block calls. Called with f.mu and f.commitMu held;
// f.mu is released during each call.
func (f *File) appendLocked(ctx context.Context, opts blob.PutOptions) (*blob.Properties, error) {
	ap, ok := f.m.store.(Appender)
	if !ok {
		return nil, &BlobTypeError{Name: f.name, Type: "AppendBlob", Detail: "writing: this store cannot append"}
	}
	name := f.name
	base := f.baseProps
	if f.baseName != name || base == nil {
		// Moved while open: the base is the copy, under the new name,
		// and Moved made it the base; anything else cannot be appended.
		return nil, &BlobTypeError{Name: name, Type: "AppendBlob", Detail: "appending: it was renamed while open, and the new part cannot follow it"}
	}
	from, to := base.Size, f.size
	if to < from {
		return nil, f.checkAppendLocked("truncate", to)
	}
	// What is sent is fixed now: later writes land past it.
	f.sealed = to
	var buf []byte
	cur := *base
	for off := from; off < to; {
		if buf == nil {
			buf = make([]byte, min(int64(blob.MaxAppendBlock), to-from))
		}
		p := buf[:min(int64(len(buf)), to-off)]
		if err := f.readLocalLocked(p, off); err != nil {
			return nil, err
		}
		if err := f.publishable(); err != nil {
			return nil, err
		}
		cond := blob.Conditions{IfMatch: cur.ETag}
		if f.unconditional {
			cond = blob.Conditions{}
		}
		f.mu.Unlock()
		got, err := ap.AppendBlock(ctx, name, p, blob.AppendOptions{Position: off, Conditions: cond})
		f.mu.Lock()
		if err != nil {
			if errors.Is(err, blob.ErrPrecondition) {
				err = fmt.Errorf("stage: appending to %q at %d: another client changed the blob (appended to or rewrote it) since it was opened, so nothing more was appended: %w", name, off, err)
			} else {
				err = fmt.Errorf("stage: appending to %q at %d: %w", name, off, err)
			}
			if off > from {
				f.m.log.WithFields(map[string]any{"blob": name, "appended": off - from, "not_appended": to - off}).
					Warn("an append to an append blob failed half-way: the blob holds the first part, the rest is not in it")
			}
			return nil, err
		}
		off += int64(len(p))
		cur.ETag, cur.LastModified, cur.Size = got.ETag, got.LastModified, off
		// The blob holds this much now: a later commit (a new close()
		// after a failure) goes on from here, never appends it again.
		np := cur
		f.baseProps, f.baseETag, f.target = &np, cur.ETag, cur.ETag
		f.journalLogged()
	}
	if md, change := f.appendMetaLocked(ctx, opts); change {
		f.mu.Unlock()
		got, err := ap.SetMetadata(ctx, name, md, blob.Conditions{IfMatch: cur.ETag})
		f.mu.Lock()
		if err != nil {
			return nil, fmt.Errorf("stage: %q: the data was appended, but setting its metadata failed: %w", name, err)
		}
		cur.ETag, cur.LastModified, cur.Metadata, cur.MetaNamesLowered = got.ETag, got.LastModified, md, false
	}
	return &cur, nil
}

// commitAppendLocked is commit for an append blob's file (see
// appendLocked). A failure is recorded as commit records one: the file
// then goes to lost+found at close, and what the blob holds of it stays.
func (f *File) commitAppendLocked(ctx context.Context, opts blob.PutOptions, record bool) (*blob.Properties, error) {
	seq, name := f.seq, f.name
	props, err := f.appendLocked(ctx, opts)
	if err != nil {
		if record && f.seq == seq && ctx.Err() == nil && f.m.ctx.Err() == nil && !errors.Is(err, errClosed) {
			f.markFailedLocked(err)
		}
		return nil, err
	}
	f.last, f.lastErr = props, nil
	f.setBase(props)
	if f.seq == seq {
		f.dirty = false
		f.setState(stClean)
		f.keepCommitted(ctx, name, props.ETag)
	}
	f.journalLogged()
	return props, nil
}

// appendMetaLocked says whether an append's commit must also set the
// metadata, and to what. Append Block leaves metadata alone, which is
// what the program owning the blob expects; it is set only when it would
// otherwise be wrong: an attribute changed through this mount (chmod
// while writing), or an mtime of ours that the append makes stale. A
// blob without our mtime shows Last-Modified, which the append moves.
func (f *File) appendMetaLocked(ctx context.Context, opts blob.PutOptions) (map[string]string, bool) {
	base := f.baseProps.Metadata
	want := make(map[string]string, len(opts.Metadata))
	for k, v := range opts.Metadata {
		if _, had := blob.MetaValue(base, "mtime"); strings.EqualFold(k, "mtime") && !had {
			continue
		}
		want[k] = v
	}
	same := len(want) == len(base)
	for k, v := range want {
		if w, ok := blob.MetaValue(base, k); !ok || w != v || strings.EqualFold(k, "mtime") {
			same = false
		}
	}
	if same || len(opts.Metadata) == 0 {
		return nil, false
	}
	o := blob.PutOptions{Metadata: want}
	if f.baseProps.MetaNamesLowered {
		f.restoreMetaNamesLocked(ctx, &o)
	}
	return o.Metadata, true
}
