// Package auth gets the credential the blob layer signs with: an account key
// fetched through the VM's managed identity (IMDS token → ARM listKeys), a
// managed-identity bearer token for storage, or a key or SAS given directly.
package auth

import (
	"context"
	"errors"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/blob"
)

// Modes of --auth-mode.
const (
	ModeMSIKey = "msi-key" // managed identity → ARM listKeys → SharedKey (default)
	ModeMSI    = "msi"     // managed identity → bearer token for storage
	ModeKey    = "key"     // account key given directly
	ModeSAS    = "sas"     // SAS token given directly
)

// Config says how to get at the account. cmd fills it from flags,
// environment and config file; secrets arrive already read.
type Config struct {
	Mode    string
	Account string

	Subscription  string // default: IMDS instance metadata
	ResourceGroup string // default: IMDS instance metadata, then a search of the subscription

	IMDSEndpoint string // default http://169.254.169.254
	ARMEndpoint  string // default https://management.azure.com

	// User-assigned identity: at most one of these.
	ClientID, ObjectID, IdentityResourceID string

	AccountKey string // ModeKey
	SASToken   string // ModeSAS

	Transport http.RoundTripper // nil: a default transport that ignores proxies for IMDS
	Log       logrus.FieldLogger
}

// NewCredential builds the credential for cfg.Mode and proves it can be had
// (a token fetched, the keys listed), so that a mount fails before it
// appears, with an error that says what to fix.
func NewCredential(ctx context.Context, cfg Config) (blob.Credential, error) {
	return nil, errors.New("auth: not implemented yet")
}
