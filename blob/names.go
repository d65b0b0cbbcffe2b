package blob

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits the service puts on blob names.
const (
	MaxNameLength = 1024
	MaxSegments   = 254
)

// ValidateName refuses, before any request, the names the service would
// refuse or silently change, with an error matching ErrNameTooLong or
// ErrInvalidName (ENAMETOOLONG and EINVAL for the FUSE layer):
//
//   - too long: more than 1,024 characters, counted as UTF-16 code units as
//     the service counts them (a character outside the BMP counts twice), or
//     more than 254 '/'-separated segments;
//   - invalid: empty; not UTF-8; control characters (C0, DEL, C1), which
//     the service refuses or cannot list; U+FFFE and U+FFFF, which XML
//     listings cannot carry; empty segments (leading, trailing or doubled
//     '/'), which look like directory markers; '.' and '..' segments, which
//     URL normalisation removes; any segment ending in '.', which the
//     service strips ("file." becomes "file", "dir./f" becomes "dir/f");
//     a '\' anywhere, which the service turns into '/' (Azurite too:
//     "a\b" is stored and listed as "a/b").
//
// Azurite keeps names Azure changes (trailing dots, >254 segments), so the
// rules follow Azure, not what Azurite happens to accept.
func ValidateName(name string) error {
	switch {
	case name == "":
		return &NameError{name, "empty", ErrInvalidName}
	case !utf8.ValidString(name):
		return &NameError{name, "not valid UTF-8", ErrInvalidName}
	case utf16Len(name) > MaxNameLength:
		return &NameError{name, "longer than 1,024 characters", ErrNameTooLong}
	case strings.Count(name, "/")+1 > MaxSegments:
		return &NameError{name, "more than 254 path segments", ErrNameTooLong}
	case strings.ContainsRune(name, '\\'):
		return &NameError{name, "contains a backslash, which the service turns into '/'", ErrInvalidName}
	}
	for _, r := range name {
		switch {
		case unicode.IsControl(r):
			return &NameError{name, "contains a control character", ErrInvalidName}
		case r == 0xFFFE || r == 0xFFFF:
			return &NameError{name, "contains U+FFFE or U+FFFF, which cannot be listed", ErrInvalidName}
		}
	}
	for _, seg := range strings.Split(name, "/") {
		switch {
		case seg == "":
			return &NameError{name, "has an empty path segment (leading, trailing or doubled '/')", ErrInvalidName}
		case seg == "." || seg == "..":
			return &NameError{name, "has a '.' or '..' segment", ErrInvalidName}
		case strings.HasSuffix(seg, "."):
			return &NameError{name, "has a name or directory ending in '.', which the service strips", ErrInvalidName}
		}
	}
	return nil
}

// utf16Len is the length of s in UTF-16 code units.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
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
