package blob

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Kinds of failure callers branch on. Every error this package returns
// matches (errors.Is) exactly one of these kinds, or none; the FUSE layer
// turns each kind into one errno, in one place.
//
//   - *StorageError (an answer from the service): the kind of its
//     x-ms-error-code when the code is known (see kindOf), else of its HTTP
//     status: 404 ErrNotFound, 412 ErrPrecondition, 401 ErrAuthentication,
//     403 ErrAuthorization, 429 ErrThrottled, 413 ErrTooLarge,
//     416 ErrInvalidRange, 500/502/503/504/408 ErrUnavailable; any other
//     (400 InvalidBlobOrBlock, InvalidHeaderValue… which are bugs, or an
//     unknown 409) matches none.
//   - *NameError (a name refused before sending): ErrInvalidName or
//     ErrNameTooLong.
//   - a transport error (no answer: refused, reset, stalled past the
//     attempt timeout, truncated body): ErrUnavailable; a stall also
//     matches ErrStalled, which is a detail of ErrUnavailable, not a kind.
//   - *IntegrityError (downloaded bytes do not match the MD5): ErrIntegrity.
//   - the caller's context ending: none of the kinds, but errors.Is
//     context.Canceled or context.DeadlineExceeded.
var (
	ErrNotFound       = errors.New("not found")
	ErrExists         = errors.New("already exists")
	ErrPrecondition   = errors.New("changed by another writer (precondition failed)")
	ErrAuthentication = errors.New("authentication failed")
	ErrAuthorization  = errors.New("not authorized")
	ErrThrottled      = errors.New("throttled by the service")
	ErrTooLarge       = errors.New("too large")
	ErrInvalidRange   = errors.New("range not satisfiable")
	ErrInvalidName    = errors.New("invalid blob name")
	ErrNameTooLong    = errors.New("blob name too long")
	ErrIntegrity      = errors.New("content does not match its MD5")
	// ErrUnavailable is a service that could not be reached or answered
	// with a server error, even after the retries.
	ErrUnavailable = errors.New("blob service unavailable")
	// ErrBusy is a blob held by a lease, snapshots or a pending copy.
	ErrBusy = errors.New("blob is busy (leased, has snapshots or a pending copy)")
	// ErrArchived is a read of a blob in the Archive tier, which has to be
	// rehydrated (Set Blob Tier, hours) before its bytes can be read.
	ErrArchived = errors.New("archived: rehydrate to Hot or Cool first")
)

// Kinds lists every kind, for tests that check an error matches one only.
func Kinds() []error {
	return []error{ErrNotFound, ErrExists, ErrPrecondition, ErrAuthentication, ErrAuthorization,
		ErrThrottled, ErrTooLarge, ErrInvalidRange, ErrInvalidName, ErrNameTooLong, ErrIntegrity,
		ErrUnavailable, ErrBusy, ErrArchived}
}

// StorageError is an error answer from the Blob service.
type StorageError struct {
	Op        string // the operation, e.g. "GetBlob"
	Name      string // the blob or container it was about
	Status    int
	Code      string // x-ms-error-code, e.g. "BlobNotFound"
	Message   string // the service's message, first line only
	RequestID string // x-ms-request-id, for support tickets
}

func (e *StorageError) Error() string {
	msg := fmt.Sprintf("%s %q: %d %s", e.Op, e.Name, e.Status, e.Code)
	if hint := e.hint(); hint != "" {
		msg += ": " + hint
	} else if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " (request " + e.RequestID + ")"
	}
	return msg
}

// hint names what the user should change for the failures users cause.
func (e *StorageError) hint() string {
	switch e.Code {
	case "ContainerNotFound":
		return "the container does not exist: create it or check --container"
	case "AuthenticationFailed":
		return "the service refused the signature: check the account name and key (or the SAS), and the clock"
	case "KeyBasedAuthenticationNotPermitted":
		return "the account forbids shared keys: use --auth-mode msi and give the identity the Storage Blob Data Contributor role"
	case "AuthorizationPermissionMismatch":
		return "the identity lacks a data role: assign Storage Blob Data Contributor on the account or container"
	case "AuthorizationFailure":
		if e.SignatureRefused() { // Azurite's word for a bad signature
			return "the service refused the signature: check the account name and key (or the SAS), and the clock"
		}
		return "the request is not authorized (check the SAS permissions, the firewall and the identity's role)"
	case "BlobArchived":
		return "archived: rehydrate to Hot or Cool first (Set Blob Tier, e.g. az storage blob set-tier --tier Hot; it takes hours)"
	case "BlobBeingRehydrated":
		return "archived: rehydrate to Hot or Cool first; a rehydration is under way, wait until it finishes"
	}
	return ""
}

// Is matches the error kinds above.
func (e *StorageError) Is(target error) bool {
	return kindOf(e.Status, e.Code) == target
}

// SignatureRefused reports whether the service refused the credential
// itself (a rotated key, an expired token) rather than what it allows:
// only then can fetching the credential again help. Azure says
// AuthenticationFailed (401 InvalidAuthenticationInfo for an expired
// token); Azurite says AuthorizationFailure with Azure's authentication
// message, so the message decides there.
func (e *StorageError) SignatureRefused() bool {
	switch e.Code {
	case "AuthenticationFailed", "InvalidAuthenticationInfo":
		return true
	case "AuthorizationFailure":
		return strings.HasPrefix(e.Message, "Server failed to authenticate the request")
	}
	return false
}

// Temporary reports whether retrying the same request may succeed.
func (e *StorageError) Temporary() bool { return retryableStatus(e.Status) }

func kindOf(status int, code string) error {
	switch code {
	case "BlobNotFound", "ContainerNotFound", "ResourceNotFound":
		return ErrNotFound
	case "BlobAlreadyExists", "ContainerAlreadyExists":
		return ErrExists
	case "ConditionNotMet", "TargetConditionNotMet", "SourceConditionNotMet", "AppendPositionConditionNotMet":
		return ErrPrecondition
	case "AuthenticationFailed", "InvalidAuthenticationInfo", "NoAuthenticationInformation":
		return ErrAuthentication
	case "AuthorizationFailure", "AuthorizationPermissionMismatch", "KeyBasedAuthenticationNotPermitted",
		"AuthorizationSourceIPMismatch", "AuthorizationProtocolMismatch", "InsufficientAccountPermissions":
		return ErrAuthorization
	case "ServerBusy":
		return ErrThrottled
	case "RequestBodyTooLarge", "BlockCountExceedsLimit", "BlobTooLarge", "MaxBlobSizeConditionNotMet":
		return ErrTooLarge
	case "InvalidRange":
		return ErrInvalidRange
	case "InvalidResourceName", "OutOfRangeInput":
		return ErrInvalidName
	case "Md5Mismatch", "InvalidMd5":
		return ErrIntegrity
	case "InternalError", "OperationTimedOut":
		return ErrUnavailable
	case "LeaseIdMissing", "LeaseIdMismatchWithBlobOperation", "LeaseAlreadyPresent", "LeaseLost",
		"SnapshotsPresent", "PendingCopyOperation":
		return ErrBusy
	case "BlobArchived", "BlobBeingRehydrated":
		return ErrArchived
	}
	switch status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusPreconditionFailed:
		return ErrPrecondition
	case http.StatusUnauthorized:
		return ErrAuthentication
	case http.StatusForbidden:
		return ErrAuthorization
	case http.StatusTooManyRequests:
		return ErrThrottled
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusRequestedRangeNotSatisfiable:
		return ErrInvalidRange
	case http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return ErrUnavailable
	}
	// An unknown 409 is not taken for ErrExists: EEXIST for, say, a lease
	// conflict would send the caller down the wrong path.
	return nil
}

// newStorageError reads the error answer. HEAD answers have no body, so the
// code comes from x-ms-error-code when present.
func newStorageError(op, name string, resp *http.Response) *StorageError {
	e := &StorageError{
		Op:        op,
		Name:      name,
		Status:    resp.StatusCode,
		Code:      resp.Header.Get("x-ms-error-code"),
		RequestID: resp.Header.Get("x-ms-request-id"),
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var x struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(body, &x) == nil {
		if e.Code == "" {
			e.Code = x.Code
		}
		e.Message = firstLine(x.Message)
	}
	if e.Code == "" {
		e.Code = http.StatusText(resp.StatusCode)
	}
	return e
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' || r == '\r' {
			return s[:i]
		}
	}
	return s
}

// NameError is a blob name refused before any request was sent.
type NameError struct {
	Name   string
	Reason string
	Kind   error // ErrInvalidName or ErrNameTooLong
}

func (e *NameError) Error() string   { return fmt.Sprintf("blob name %q: %s", e.Name, e.Reason) }
func (e *NameError) Is(t error) bool { return t == e.Kind }
func (e *NameError) Unwrap() error   { return e.Kind }

// IntegrityError is downloaded content whose MD5 differs from the one the
// service holds for the blob: the bytes were damaged in flight or at rest.
type IntegrityError struct {
	Op, Name  string
	Want, Got []byte
}

func (e *IntegrityError) Error() string {
	return fmt.Sprintf("%s %q: downloaded content has MD5 %x but the service records %x: the data was damaged; retry, and check the blob with another tool",
		e.Op, e.Name, e.Got, e.Want)
}
func (e *IntegrityError) Is(t error) bool { return t == ErrIntegrity }
