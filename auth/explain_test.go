package auth_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
)

func TestExplainStorageRefusals(t *testing.T) {
	tests := []struct {
		mode, code string
		kind       error
		words      []string
	}{
		{auth.ModeMSIKey, "KeyBasedAuthenticationNotPermitted", auth.ErrSharedKeyDisabled, []string{"--auth-mode msi", "Storage Blob Data Contributor"}},
		{auth.ModeKey, "KeyBasedAuthenticationNotPermitted", auth.ErrSharedKeyDisabled, []string{"--auth-mode msi"}},
		{auth.ModeMSI, "AuthorizationPermissionMismatch", auth.ErrRoleMissing, []string{"Storage Blob Data Contributor", "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"}},
		{auth.ModeKey, "AuthenticationFailed", auth.ErrSecretRefused, []string{"account key is wrong", "AZURE_STORAGE_KEY"}},
		{auth.ModeSAS, "AuthenticationFailed", auth.ErrSecretRefused, []string{"SAS"}},
		{auth.ModeSAS, "AuthorizationPermissionMismatch", auth.ErrSecretRefused, []string{"SAS lacks a permission"}},
		{auth.ModeMSIKey, "AuthenticationFailed", auth.ErrSecretRefused, []string{"keys ARM listed"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.code, func(t *testing.T) {
			cfg := auth.Config{Mode: tt.mode, Account: "acct", Subscription: "sub", ResourceGroup: "rg"}
			err := auth.Explain(cfg, fmt.Errorf("mount: %w", &blob.StorageError{Op: "GetContainerProperties", Status: 403, Code: tt.code}))
			if !errors.Is(err, tt.kind) {
				t.Errorf("%v is not %v", err, tt.kind)
			}
			var se *blob.StorageError
			if !errors.As(err, &se) {
				t.Error("the storage error is no longer reachable with errors.As")
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
	other := errors.New("disk full")
	if auth.Explain(auth.Config{}, other) != other {
		t.Error("an unrelated error was changed")
	}
}

// A wrong key is refused by the real service, and Explain says so.
func TestWrongKeyExplained(t *testing.T) {
	az := blobtest.StartT(t, blobtest.Options{})
	h := newHarness(t, authtest.Options{})
	wrong := authtest.RandomKey()
	h.secrets = append(h.secrets, wrong)
	cfg := auth.Config{Mode: auth.ModeKey, Account: testAccount, AccountKey: wrong, Log: h.log}
	cred, err := auth.NewCredential(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		h.assertNoSecrets(fmt.Sprintf(verb, cred))
	}
	c, err := blob.NewClient(az.Endpoint(), cred, blob.Options{Log: h.log})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Container("wrongkey").Create(context.Background())
	if err == nil {
		t.Fatal("a wrong key was accepted")
	}
	err = auth.Explain(cfg, err)
	t.Log(err)
	h.assertNoSecrets(err.Error())
	if !errors.Is(err, auth.ErrSecretRefused) || !strings.Contains(err.Error(), "account key is wrong") {
		t.Errorf("got %v", err)
	}
}
