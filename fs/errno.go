package fs

import (
	"context"
	"errors"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/blob"
)

// errnoTable is the one place where failures become errnos; doc.go lists it
// for users. Order matters: the first match wins.
var errnoTable = []struct {
	kind  error
	errno syscall.Errno
}{
	{blob.ErrNotFound, syscall.ENOENT},
	{blob.ErrExists, syscall.EEXIST},
	// Another writer changed the blob between our read and our write: the
	// program's view is out of date, which is what ESTALE says.
	{blob.ErrPrecondition, syscall.ESTALE},
	{blob.ErrAuthentication, syscall.EACCES},
	{blob.ErrAuthorization, syscall.EACCES},
	{blob.ErrTooLarge, syscall.EFBIG},
	{blob.ErrInvalidName, syscall.EINVAL},
	{blob.ErrNameTooLong, syscall.ENAMETOOLONG},
	// A lease, snapshots or a pending copy hold the blob.
	{blob.ErrBusy, syscall.EBUSY},
	// An archived blob's bytes are not available until it is rehydrated;
	// the log line says so.
	{blob.ErrArchived, syscall.ENODATA},
	// The service stayed unreachable, stalled or failing past the client's
	// retry budget; the mount carries on once it answers again.
	{blob.ErrUnavailable, syscall.EIO},
	// Throttling that outlived the client's retries, integrity failures,
	// deadlines and anything unrecognised end as EIO too.
}

// errnoOf maps err to an errno without logging.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	// A transport failure wraps the socket's errno (ECONNRESET,
	// ECONNREFUSED, ETIMEDOUT), which programs do not expect from close or
	// read: past the retry budget it is the service being unavailable, EIO.
	if errors.Is(err, blob.ErrUnavailable) {
		return syscall.EIO
	}
	// The staging area reports a full cache as an error wrapping ENOSPC.
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	for _, m := range errnoTable {
		if m.kind != nil && errors.Is(err, m.kind) {
			return m.errno
		}
	}
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	return syscall.EIO
}

// opError is a failure of the core with the operation and path it
// happened on, for the boundary's log line.
type opError struct {
	op, path string
	err      error
}

func (e *opError) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// opErr names the operation and path of err for the log. nil, a bare
// errno (an answer, not a failure) and an error already named stay as
// they are.
func opErr(op, path string, err error) error {
	var bare syscall.Errno
	var named *opError
	if err == nil || (errors.As(err, &bare) && error(bare) == err) || errors.As(err, &named) {
		return err
	}
	return &opError{op: op, path: path, err: err}
}

// errno is the one place where the core's errors become errnos, called by
// the go-fuse adapter (fuse.go) and nowhere else: it maps err and logs it once, at warn, with the operation and
// path, so that a user who sees only "Input/output error" can find out
// why. A bare errno is an answer, not a failure (ENOTEMPTY, EISDIR,
// EROFS…), and expected outcomes (ENOENT, EEXIST, EINTR) are not logged
// either.
func (m *mount) errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	e := errnoOf(err)
	var bare syscall.Errno
	if errors.As(err, &bare) && error(bare) == err {
		return e
	}
	switch e {
	case 0, syscall.ENOENT, syscall.EEXIST, syscall.ENOTEMPTY, syscall.EINTR:
		return e
	}
	f := logrus.Fields{"errno": e.Error()}
	var oe *opError
	if errors.As(err, &oe) {
		f["op"], f["path"] = oe.op, oe.path
		err = oe.err
	}
	m.log.WithFields(f).Warn(err)
	return e
}
