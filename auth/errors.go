package auth

import (
	"errors"
	"strings"
)

// Kinds of failure a caller may branch on, matched with errors.Is on the
// *Error that carries them.
var (
	ErrConfig               = errors.New("incomplete or invalid configuration")
	ErrIdentityUnreachable  = errors.New("managed identity endpoint not reachable")
	ErrIdentityUnavailable  = errors.New("managed identity endpoint kept failing")
	ErrIdentityNotFound     = errors.New("managed identity not found")
	ErrIdentityRefused      = errors.New("managed identity endpoint refused the request")
	ErrRoleMissing          = errors.New("role assignment missing")
	ErrAccountNotFound      = errors.New("storage account not found")
	ErrResourceGroupMissing = errors.New("resource group not found")
	ErrSubscriptionMissing  = errors.New("subscription not found")
	ErrSharedKeyDisabled    = errors.New("account forbids shared key access")
	ErrSecretRefused        = errors.New("credential refused by storage")
	ErrARMUnavailable       = errors.New("Azure Resource Manager kept failing")
	ErrARM                  = errors.New("Azure Resource Manager refused the request")
)

// Error is an auth failure that says which step failed, what was
// answered, and what the user should change. It never holds a secret.
type Error struct {
	Step   string // e.g. "IMDS token for https://management.azure.com/"
	Kind   error  // one of the Err* values above
	Detail string // what happened: status, error code, who was asked
	Fix    string // what to change, for a human
	Err    error  // the cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Step)
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Fix != "" {
		b.WriteString(": ")
		b.WriteString(e.Fix)
	}
	if e.Err != nil {
		b.WriteString(" (")
		b.WriteString(e.Err.Error())
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
