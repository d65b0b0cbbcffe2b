// Package auth gets the credential the blob layer signs with: an account key
// fetched through the VM's managed identity (IMDS token → ARM listKeys), a
// managed-identity bearer token for storage, or a key or SAS given directly.
package auth

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

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

// Public Azure's endpoints and token audiences.
const (
	DefaultIMDSEndpoint    = "http://169.254.169.254"
	DefaultARMEndpoint     = "https://management.azure.com"
	DefaultARMResource     = "https://management.azure.com/"
	DefaultStorageResource = "https://storage.azure.com/"
)

// Refresh kinds reported to Config.OnRefresh.
const (
	RefreshToken = "token"
	RefreshKey   = "key"
)

// Config says how to get at the account. cmd fills it from flags,
// environment (see WithEnv) and config file.
type Config struct {
	Mode    string // default ModeMSIKey
	Account string

	Subscription  string // default: IMDS instance metadata
	ResourceGroup string // default: IMDS instance metadata, then a search of the subscription

	IMDSEndpoint string // default http://169.254.169.254
	ARMEndpoint  string // default https://management.azure.com

	// IdentityEndpoint and IdentityHeader, when both set, replace IMDS for
	// tokens (App Service / Container Apps style hosts). Such hosts have no
	// instance metadata: Subscription and ResourceGroup must then be given.
	IdentityEndpoint string
	IdentityHeader   string

	// Token audiences; defaults are public Azure's.
	ARMResource     string // default https://management.azure.com/
	StorageResource string // default https://storage.azure.com/

	// User-assigned identity: at most one of these.
	ClientID, ObjectID, IdentityResourceID string

	AccountKey     string // ModeKey
	AccountKeyFile string // ModeKey, read when AccountKey is empty
	SASToken       string // ModeSAS
	SASFile        string // ModeSAS, read when SASToken is empty

	// Retry is the backoff for IMDS and ARM; zero fields take the
	// defaults documented on Retry (about 100 s for IMDS).
	Retry Retry
	// KeyRefreshInterval is the least time between two key listings after
	// storage refused a key; default 30 s.
	KeyRefreshInterval time.Duration

	// OnRefresh, when set, is called once per token fetch (RefreshToken)
	// and per key listing (RefreshKey), for metrics.
	OnRefresh func(kind string)

	// OnWait, when set, is called before each pause between two attempts
	// at IMDS or ARM, so that a person watching hears what is awaited and
	// until when instead of silence.
	OnWait func(Wait)

	Transport http.RoundTripper // nil: default transports; IMDS's ignores proxies
	Log       logrus.FieldLogger
}

// Wait describes a pause before retrying IMDS or ARM.
type Wait struct {
	Step     string        // what is being asked, e.g. "IMDS token for https://management.azure.com/"
	Endpoint string        // scheme://host of the endpoint asked
	Attempt  int           // attempts made so far
	Elapsed  time.Duration // since the first attempt
	Pause    time.Duration // before the next attempt
	Until    time.Time     // when retrying stops (the budget's end)
	Err      error         // why: no answer (refused, timeout), or nil for a transient status
	Status   int           // the transient status answered, when Err is nil
}

// WithEnv fills what the flags left empty from the environment, the way
// Azure's SDKs read it: AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY,
// AZURE_STORAGE_SAS_TOKEN, AZURE_CLIENT_ID, IDENTITY_ENDPOINT with
// IDENTITY_HEADER, and AZURE_POD_IDENTITY_AUTHORITY_HOST (a replacement
// IMDS host). getenv is os.Getenv outside tests.
func (c Config) WithEnv(getenv func(string) string) Config {
	fill := func(dst *string, name string) {
		if *dst == "" {
			*dst = strings.TrimSpace(getenv(name))
		}
	}
	fill(&c.Account, "AZURE_STORAGE_ACCOUNT")
	if c.AccountKeyFile == "" {
		fill(&c.AccountKey, "AZURE_STORAGE_KEY")
	}
	if c.SASFile == "" {
		fill(&c.SASToken, "AZURE_STORAGE_SAS_TOKEN")
	}
	if c.ClientID == "" && c.ObjectID == "" && c.IdentityResourceID == "" {
		fill(&c.ClientID, "AZURE_CLIENT_ID")
	}
	if c.IdentityEndpoint == "" && c.IdentityHeader == "" && getenv("IDENTITY_ENDPOINT") != "" && getenv("IDENTITY_HEADER") != "" {
		c.IdentityEndpoint = getenv("IDENTITY_ENDPOINT")
		c.IdentityHeader = getenv("IDENTITY_HEADER")
	}
	fill(&c.IMDSEndpoint, "AZURE_POD_IDENTITY_AUTHORITY_HOST")
	return c
}

// NewCredential builds the credential for cfg.Mode and proves it can be had
// (a token fetched, the keys listed), so that a mount fails before it
// appears, with an error that says what to fix. Whether storage accepts
// the credential is for the caller to check with the blob client; Explain
// turns its refusal into advice.
func NewCredential(ctx context.Context, cfg Config) (blob.Credential, error) {
	return Diagnose(ctx, cfg, nil)
}

func (c Config) log() logrus.FieldLogger {
	if c.Log != nil {
		return c.Log
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeMSIKey
	}
	if c.IMDSEndpoint == "" {
		c.IMDSEndpoint = DefaultIMDSEndpoint
	}
	if c.ARMEndpoint == "" {
		c.ARMEndpoint = DefaultARMEndpoint
	}
	if c.ARMResource == "" {
		c.ARMResource = DefaultARMResource
	}
	if c.StorageResource == "" {
		c.StorageResource = DefaultStorageResource
	}
	if c.KeyRefreshInterval <= 0 {
		c.KeyRefreshInterval = 30 * time.Second
	}
	c.Retry = c.Retry.withDefaults()
	return c
}
