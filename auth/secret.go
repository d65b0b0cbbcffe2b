package auth

import (
	"fmt"
	"io"
)

// Secret holds a key, token or SAS so that printing it by accident, with
// any verb, in a log field, an error or a struct dump, shows "[redacted]".
// The value sits behind a pointer because fmt prints unexported struct
// fields raw, without calling their methods, but prints nested pointers as
// addresses.
type Secret struct {
	v *string
}

const redacted = "[redacted]"

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: &s} }

// Reveal returns the value, for the one place that must send it.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// Empty reports whether there is no value.
func (s Secret) Empty() bool { return s.v == nil || *s.v == "" }

// Equal compares two secrets without revealing either.
func (s Secret) Equal(o Secret) bool { return s.Reveal() == o.Reveal() }

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) Format(f fmt.State, _ rune)   { io.WriteString(f, redacted) }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
