package auth

import (
	"context"
	"net/http"

	"github.com/blobfs/blobfs/blob"
)

// staticKey is a key given directly. It wraps the key in a Secret, unlike
// blob.StaticKey, so that printing the credential cannot show it.
type staticKey struct{ key Secret }

var _ blob.KeySource = staticKey{}

func (k staticKey) AccountKey(context.Context) ([]byte, error) { return []byte(k.key.Reveal()), nil }

// sasCredential is blob.SAS behind a Secret, for the same reason.
type sasCredential struct{ token Secret }

var _ blob.Credential = sasCredential{}

func (s sasCredential) Authorize(ctx context.Context, req *http.Request) error {
	return blob.NewSAS(s.token.Reveal()).Authorize(ctx, req)
}
