package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// kindsOf lists the kinds err matches.
func kindsOf(err error) []error {
	var ks []error
	for _, k := range Kinds() {
		if errors.Is(err, k) {
			ks = append(ks, k)
		}
	}
	return ks
}

func TestErrorKinds(t *testing.T) {
	se := func(status int, code string) error {
		return &StorageError{Op: "GetBlob", Name: "b", Status: status, Code: code}
	}
	for _, tc := range []struct {
		name string
		err  error
		want error // nil: no kind
	}{
		{"blob not found", se(404, "BlobNotFound"), ErrNotFound},
		{"container not found", se(404, "ContainerNotFound"), ErrNotFound},
		{"HEAD 404 without code", se(404, "Not Found"), ErrNotFound},
		{"blob exists", se(409, "BlobAlreadyExists"), ErrExists},
		{"container exists", se(409, "ContainerAlreadyExists"), ErrExists},
		{"unknown 409 is not exists", se(409, "SomethingElse"), nil},
		{"lease", se(412, "LeaseIdMissing"), ErrBusy},
		{"snapshots", se(409, "SnapshotsPresent"), ErrBusy},
		{"condition", se(412, "ConditionNotMet"), ErrPrecondition},
		{"412 without code", se(412, "Precondition Failed"), ErrPrecondition},
		{"bad signature", se(403, "AuthenticationFailed"), ErrAuthentication},
		{"missing role", se(403, "AuthorizationPermissionMismatch"), ErrAuthorization},
		{"no shared key", se(403, "KeyBasedAuthenticationNotPermitted"), ErrAuthorization},
		{"403 without code", se(403, "Forbidden"), ErrAuthorization},
		{"server busy", se(503, "ServerBusy"), ErrThrottled},
		{"429", se(429, "TooManyRequests"), ErrThrottled},
		{"body too large", se(413, "RequestBodyTooLarge"), ErrTooLarge},
		{"too many blocks", se(409, "BlockCountExceedsLimit"), ErrTooLarge},
		{"range", se(416, "InvalidRange"), ErrInvalidRange},
		{"bad name", se(400, "InvalidResourceName"), ErrInvalidName},
		{"md5", se(400, "Md5Mismatch"), ErrIntegrity},
		{"internal", se(500, "InternalError"), ErrUnavailable},
		{"timed out", se(500, "OperationTimedOut"), ErrUnavailable},
		{"bad gateway", se(502, "Bad Gateway"), ErrUnavailable},
		{"unavailable", se(503, "Service Unavailable"), ErrUnavailable},
		{"bug: bad block", se(400, "InvalidBlobOrBlock"), nil},
		{"bug: bad header", se(400, "InvalidHeaderValue"), nil},
		{"retry-after wrapper", &retryAfterError{StorageError: se(503, "ServerBusy").(*StorageError), after: time.Second}, ErrThrottled},
		{"name too long", ValidateName(strings.Repeat("x", 1025)), ErrNameTooLong},
		{"name invalid", ValidateName("a."), ErrInvalidName},
		{"transport", &transportError{op: "GetBlob", name: "b", err: io.ErrUnexpectedEOF}, ErrUnavailable},
		{"stall", &transportError{op: "GetBlob", name: "b", err: fmt.Errorf("%w: x", ErrStalled)}, ErrUnavailable},
		{"integrity", &IntegrityError{Op: "GetBlob", Name: "b"}, ErrIntegrity},
		{"wrapped", fmt.Errorf("open: %w", se(404, "BlobNotFound")), ErrNotFound},
		{"caller cancelled", fmt.Errorf("GetBlob: %w", context.Canceled), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := kindsOf(tc.err)
			switch {
			case tc.want == nil && len(got) != 0:
				t.Errorf("%v matches %v, want no kind", tc.err, got)
			case tc.want != nil && (len(got) != 1 || got[0] != tc.want):
				t.Errorf("%v matches %v, want exactly %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	resp := &http.Response{StatusCode: 403, Header: http.Header{"X-Ms-Error-Code": {"AuthorizationPermissionMismatch"}, "X-Ms-Request-Id": {"rid"}},
		Body: io.NopCloser(strings.NewReader(`<?xml version="1.0"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized.
RequestId:rid</Message></Error>`))}
	err := newStorageError("GetBlob", "f", resp)
	for _, want := range []string{"GetBlob", `"f"`, "403", "Storage Blob Data Contributor", "rid"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err.Error(), want)
		}
	}
	head := &http.Response{StatusCode: 404, Header: http.Header{"X-Ms-Error-Code": {"BlobNotFound"}}, Body: http.NoBody}
	if err := newStorageError("GetBlobProperties", "f", head); err.Code != "BlobNotFound" || !errors.Is(err, ErrNotFound) {
		t.Errorf("HEAD error: %+v", err)
	}
}

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want error
	}{
		{"a", nil},
		{"dir/file.txt", nil},
		{".hidden/..x/a..b", nil},
		{strings.Repeat("x", 1024), nil},
		{strings.Repeat("é", 1024), nil},
		{strings.Repeat("😀", 512), nil},
		{strings.Repeat("a/", 253) + "a", nil},
		{"", ErrInvalidName},
		{"\xff", ErrInvalidName},
		{strings.Repeat("x", 1025), ErrNameTooLong},
		{strings.Repeat("😀", 512) + "x", ErrNameTooLong},
		{strings.Repeat("a/", 254) + "a", ErrNameTooLong},
		{"a/", ErrInvalidName},
		{"/a", ErrInvalidName},
		{"a//b", ErrInvalidName},
		{"a.", ErrInvalidName},
		{"dir./f", ErrInvalidName},
		{"a/./b", ErrInvalidName},
		{"..", ErrInvalidName},
		{"a\\b", ErrInvalidName},
		{"a\tb", ErrInvalidName},
		{"a\x7fb", ErrInvalidName},
		{"a\u0085b", ErrInvalidName},
		{"a\uffffb", ErrInvalidName},
	} {
		t.Run(fmt.Sprintf("%.40q", tc.name), func(t *testing.T) {
			err := ValidateName(tc.name)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ne *NameError
			if !errors.As(err, &ne) || len(kindsOf(err)) != 1 || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := checkName("dir/"); err != nil {
		t.Errorf("a directory marker name is refused on the wire: %v", err)
	}
}
