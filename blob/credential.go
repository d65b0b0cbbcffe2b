package blob

import (
	"context"
	"net/http"
	"strings"
)

// A Credential authorizes a request just before it is sent, the way an
// http.RoundTripper sends it: SharedKey signs it, Bearer adds a token, SAS
// adds the query. It is called again for every retry attempt, so that a
// refreshed key or token is used and x-ms-date stays fresh.
type Credential interface {
	Authorize(ctx context.Context, req *http.Request) error
}

// A Refresher is a Credential that may recover from an AuthenticationFailed
// answer by fetching its secret again (a rotated account key, an expired
// token). Refresh reports whether anything changed, so that the client
// retries the failed request at most once per refresh.
type Refresher interface {
	Refresh(ctx context.Context) (changed bool, err error)
}

// A KeySource hands out the account key for SharedKey signing. auth.ARMKeys
// fetches it with the VM's managed identity; StaticKey is a key given
// directly.
type KeySource interface {
	AccountKey(ctx context.Context) ([]byte, error)
}

// A TokenSource hands out a current OAuth bearer token for Azure Storage.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticKey is an account key given directly (--auth-mode key).
type StaticKey []byte

// AccountKey returns the key.
func (k StaticKey) AccountKey(context.Context) ([]byte, error) { return k, nil }

// Bearer authorizes requests with an OAuth token (--auth-mode msi).
type Bearer struct {
	Tokens TokenSource
}

var _ Credential = (*Bearer)(nil)

// Authorize sets the Authorization header.
func (b *Bearer) Authorize(ctx context.Context, req *http.Request) error {
	tok, err := b.Tokens.Token(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// Refresh asks the token source for a new token when it can give one.
func (b *Bearer) Refresh(ctx context.Context) (bool, error) {
	if r, ok := b.Tokens.(Refresher); ok {
		return r.Refresh(ctx)
	}
	return false, nil
}

// SAS authorizes requests with a shared access signature query string.
type SAS struct {
	token string
}

// NewSAS takes a SAS token with or without its leading '?'.
func NewSAS(token string) *SAS {
	return &SAS{token: strings.TrimPrefix(strings.TrimSpace(token), "?")}
}

var _ Credential = (*SAS)(nil)

// Authorize appends the SAS parameters to the request's query.
func (s *SAS) Authorize(_ context.Context, req *http.Request) error {
	q := req.URL.RawQuery
	if q != "" {
		q += "&"
	}
	req.URL.RawQuery = q + s.token
	return nil
}
