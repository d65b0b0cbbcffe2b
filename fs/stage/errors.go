package stage

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/blobfs/blobfs/blob"
)

// ErrNoSpace means the cache cannot hold the data even after every upload
// has finished and every clean block has been dropped. It wraps
// syscall.ENOSPC, so errors.As finds the errno the fs layer answers.
// Raise --cache-size or write less at once.
var ErrNoSpace error = noSpace{}

type noSpace struct{}

func (noSpace) Error() string {
	return "the staging cache is full of data not yet uploaded (raise --cache-size)"
}
func (noSpace) Unwrap() error { return syscall.ENOSPC }

// ErrEvicted is a read (or partial rewrite) of a block that was uploaded and
// then dropped from the cache to make room while the file was still open.
// The data is safe in the service as an uncommitted block, but it cannot be
// read back before the file is committed.
var ErrEvicted = errors.New("this part of the file was uploaded and dropped from the cache to make room; it is readable again once the file is closed")

// ErrNotClosed is what Recover reports for a staged file whose program
// had not closed (or fsynced) it when the daemon stopped: it may be a
// prefix of what the program meant to write, so it is not made the blob
// but kept in lost+found.
var ErrNotClosed = errors.New("the program writing it had not closed it when blobfs stopped, so it may be incomplete; it was not uploaded")

// ErrIncomplete is a Commit, or a recovered file, whose content is not
// what its program wrote: a write failed after it may have changed the
// cache file (ENOSPC or EIO from the cache disk). It is never published;
// the file goes to lost+found when closed. *IncompleteError matches it
// and wraps syscall.EIO, the errno the fs layer answers at close().
var ErrIncomplete = errors.New("a write to the staging cache failed, so the staged copy is not what the program wrote; it is never uploaded")

// IncompleteError says which write failed.
type IncompleteError struct {
	Name   string
	Offset int64  // where the failed write began
	Reason string // what it failed with
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("not uploading %q: a write at offset %d failed (%s), so the staged copy is not what the program wrote", e.Name, e.Offset, e.Reason)
}

func (e *IncompleteError) Is(target error) bool { return target == ErrIncomplete }

func (e *IncompleteError) Unwrap() error { return syscall.EIO }

// ErrCommitFailed is what Recover reports for a staged file whose commit
// had failed and whose program was told so: it is never published later,
// but kept in lost+found.
var ErrCommitFailed = errors.New("its commit had failed and the program was told so; it was not uploaded")

// ErrAppendUnfinished is what Recover reports for an append to an append
// blob whose commit was under way when blobfs stopped: it is kept in
// lost+found, never sent again, since part of it may be in the blob
// already and a repeat would duplicate it.
var ErrAppendUnfinished = errors.New("an append to an append blob was under way when blobfs stopped; it is not sent again, since part of it may be in the blob already")

// ErrRemoved is a Commit of a file after Removed: its name is gone.
var ErrRemoved = errors.New("the file was removed; its content is not uploaded")

// ErrFrozen is an Open after Manager.Freeze: the mount is shutting down.
// It wraps syscall.EROFS, the errno the fs layer answers.
var ErrFrozen error = frozen{}

type frozen struct{}

func (frozen) Error() string {
	return "blobfs is unmounting and accepts no new files for writing"
}
func (frozen) Unwrap() error { return syscall.EROFS }

// ConflictError is a Commit refused because the blob changed in the service
// since the file was opened. The local version was not lost: it is in the
// blob SavedAs (uploaded next to the original) or, when even that failed,
// in the local directory SavedAs names. It matches blob.ErrPrecondition.
type ConflictError struct {
	Name    string
	SavedAs string // a blob name, or a local path when Local is set
	Local   bool
	Err     error // what the service said
}

func (e *ConflictError) Error() string {
	where := fmt.Sprintf("blob %q", e.SavedAs)
	if e.Local {
		where = fmt.Sprintf("local file %s", e.SavedAs)
	}
	return fmt.Sprintf("%q was changed by another writer since it was opened, so it was not overwritten; this version was saved as %s (%v)", e.Name, where, e.Err)
}

// Is makes every conflict a blob.ErrPrecondition, whether the service said
// 412 (ETag changed) or 409 (a new file's name was taken meanwhile).
func (e *ConflictError) Is(target error) bool { return target == blob.ErrPrecondition }

func (e *ConflictError) Unwrap() error { return e.Err }

// BlobTypeError is a write refused because the blob is a page blob, or an
// append blob and the write is not an append at its end: committing it
// would replace it with a block blob, and the program that owns it would
// fail at its next Append Block or Put Page (409 InvalidBlobType). It
// wraps EPERM, as a write to an immutable file does; reads keep working.
type BlobTypeError struct {
	Name, Type string
	Detail     string // what was refused, when not every write is
}

func (e *BlobTypeError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("stage: %q is an %s: refused %s; rewriting it would change its type under the program that owns it; it stays readable", e.Name, e.Type, e.Detail)
	}
	return fmt.Sprintf("stage: %q is a %s: blobfs does not write page blobs, and rewriting it would change its type under the program that owns it; it stays readable", e.Name, e.Type)
}

func (e *BlobTypeError) Unwrap() error { return syscall.EPERM }
