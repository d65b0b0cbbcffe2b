package blob

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// Limits the service puts on blob names.
const (
	MaxNameLength = 1024
	MaxSegments   = 254
)

// ValidateName refuses, before any request, the names the service would
// refuse or silently change: empty, longer than 1,024 characters, more than
// 254 segments, control characters, empty segments or a trailing '/' (which
// look like directory markers), and trailing '.' segments or names, which
// the service strips ("file." would become "file").
func ValidateName(name string) error {
	switch {
	case name == "":
		return &NameError{name, "empty", ErrInvalidName}
	case !utf8.ValidString(name):
		return &NameError{name, "not valid UTF-8", ErrInvalidName}
	case utf8.RuneCountInString(name) > MaxNameLength:
		return &NameError{name, "longer than 1,024 characters", ErrNameTooLong}
	case strings.Count(name, "/")+1 > MaxSegments:
		return &NameError{name, "more than 254 path segments", ErrNameTooLong}
	case strings.HasSuffix(name, "."):
		return &NameError{name, "ends in '.', which the service strips", ErrInvalidName}
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return &NameError{name, "contains a control character", ErrInvalidName}
		}
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" {
			return &NameError{name, "has an empty path segment (leading, trailing or doubled '/')", ErrInvalidName}
		}
		if seg == "." || seg == ".." {
			return &NameError{name, "has a '.' or '..' segment", ErrInvalidName}
		}
	}
	return nil
}

// escapePath percent-encodes each segment of a blob name and keeps '/'
// literal, so the path on the wire is the one SharedKey signs.
func escapePath(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// encodeQuery encodes query parameters with %20 for spaces: Azure reads '+'
// literally while Azurite reads it as a space, so '+' must never stand for one.
func encodeQuery(q url.Values) string {
	return strings.ReplaceAll(q.Encode(), "+", "%20")
}
