package auth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/auth/authtest"
)

// Each failure a user can cause must come back as its kind of error, with
// words that tell the user what to change, and without a retry storm.
func TestMountTimeFailuresSayWhatToFix(t *testing.T) {
	tests := []struct {
		name  string
		opts  authtest.Options
		setup func(h *harness, cfg *auth.Config)
		kind  error
		words []string // all must appear in the error
		// requests of this kind, if set, must have been made exactly once:
		// a lasting refusal is not retried blindly.
		once string
	}{
		{
			name:  "IMDS not reachable",
			setup: func(h *harness, cfg *auth.Config) { h.srv.StopIMDS(); cfg.Retry.Budget = 300 * time.Millisecond },
			kind:  auth.ErrIdentityUnreachable,
			words: []string{"is this an Azure VM with a managed identity"},
		},
		{
			name:  "no system identity",
			opts:  authtest.Options{NoSystemIdentity: true},
			kind:  auth.ErrIdentityNotFound,
			words: []string{"system-assigned identity", "enable"},
			once:  "token",
		},
		{
			name: "several user-assigned identities and none chosen",
			opts: authtest.Options{NoSystemIdentity: true, UserAssigned: []authtest.Identity{
				{ClientID: "aaaaaaaa-0000-0000-0000-000000000001"}, {ClientID: "aaaaaaaa-0000-0000-0000-000000000002"}}},
			kind:  auth.ErrIdentityNotFound,
			words: []string{"--client-id", "Multiple user assigned identities"},
			once:  "token",
		},
		{
			name:  "unknown client id",
			setup: func(h *harness, cfg *auth.Config) { cfg.ClientID = "deadbeef-0000-0000-0000-000000000000" },
			kind:  auth.ErrIdentityNotFound,
			words: []string{"deadbeef-0000-0000-0000-000000000000", "attach that identity", "--client-id"},
			once:  "token",
		},
		{
			name: "two identity selectors",
			setup: func(h *harness, cfg *auth.Config) {
				cfg.ClientID, cfg.ObjectID = "a", "b"
			},
			kind:  auth.ErrConfig,
			words: []string{"only one"},
		},
		{
			name: "identity resource id of a storage account",
			setup: func(h *harness, cfg *auth.Config) {
				cfg.IdentityResourceID = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/x"
			},
			kind:  auth.ErrConfig,
			words: []string{"userAssignedIdentities"},
		},
		{
			name: "IMDS keeps failing",
			setup: func(h *harness, cfg *auth.Config) {
				h.srv.FailIMDS(repeat(authtest.Fault{Status: 503}, 1000)...)
				cfg.Retry.Budget = 300 * time.Millisecond
			},
			kind:  auth.ErrIdentityUnavailable,
			words: []string{"503", "try again"},
		},
		{
			name:  "listKeys denied",
			opts:  authtest.Options{System: authtest.Identity{DenyListKeys: true}},
			kind:  auth.ErrRoleMissing,
			words: []string{"Storage Account Key Operator Service Role", "system-assigned identity", "/resourceGroups/" + authtest.DefaultResourceGroup + "/providers/Microsoft.Storage/storageAccounts/" + testAccount},
			once:  "listKeys",
		},
		{
			name: "listKeys denied to a user-assigned identity",
			opts: authtest.Options{UserAssigned: []authtest.Identity{{ClientID: "bbbbbbbb-0000-0000-0000-000000000001", DenyListKeys: true}}},
			setup: func(h *harness, cfg *auth.Config) {
				cfg.ClientID = "bbbbbbbb-0000-0000-0000-000000000001"
			},
			kind:  auth.ErrRoleMissing,
			words: []string{"client id bbbbbbbb-0000-0000-0000-000000000001", "Storage Account Key Operator Service Role"},
		},
		{
			name:  "account does not exist",
			setup: func(h *harness, cfg *auth.Config) { cfg.Account = "nosuchaccount" },
			kind:  auth.ErrAccountNotFound,
			words: []string{"nosuchaccount", "--account"},
		},
		{
			name: "account elsewhere and subscription not readable",
			opts: authtest.Options{
				System:   authtest.Identity{DenyRead: true},
				Accounts: []authtest.Account{{Name: testAccount, ResourceGroup: "data-rg", Key1: testKey1, Key2: testKey2}},
			},
			kind:  auth.ErrRoleMissing,
			words: []string{"--resource-group", "Reader", "/subscriptions/" + authtest.DefaultSubscription},
		},
		{
			name: "resource group does not exist",
			setup: func(h *harness, cfg *auth.Config) {
				cfg.Subscription, cfg.ResourceGroup = h.srv.Subscription(), "no-such-rg"
			},
			kind:  auth.ErrResourceGroupMissing,
			words: []string{"no-such-rg", "--resource-group"},
		},
		{
			name: "subscription does not exist",
			setup: func(h *harness, cfg *auth.Config) {
				cfg.Subscription, cfg.ResourceGroup = "99999999-9999-9999-9999-999999999999", h.srv.ResourceGroup()
			},
			kind:  auth.ErrSubscriptionMissing,
			words: []string{"99999999-9999-9999-9999-999999999999", "--subscription"},
		},
		{
			name:  "shared keys disabled",
			opts:  authtest.Options{Accounts: []authtest.Account{{Name: testAccount, Key1: testKey1, Key2: testKey2, SharedKeyDisabled: true}}},
			kind:  auth.ErrSharedKeyDisabled,
			words: []string{"--auth-mode msi", "Storage Blob Data Contributor"},
		},
		{
			name: "ARM keeps failing",
			setup: func(h *harness, cfg *auth.Config) {
				h.srv.FailARM(repeat(authtest.Fault{Status: 500}, 1000)...)
				cfg.Retry.Budget = 300 * time.Millisecond
			},
			kind:  auth.ErrARMUnavailable,
			words: []string{"500"},
		},
		{
			name:  "bad account name",
			setup: func(h *harness, cfg *auth.Config) { cfg.Account = "Bad_Name" },
			kind:  auth.ErrConfig,
			words: []string{"--account", "lowercase"},
		},
		{
			name:  "unknown mode",
			setup: func(h *harness, cfg *auth.Config) { cfg.Mode = "magic" },
			kind:  auth.ErrConfig,
			words: []string{"msi-key, msi, key or sas"},
		},
		{
			name:  "key mode without a key",
			setup: func(h *harness, cfg *auth.Config) { cfg.Mode = auth.ModeKey },
			kind:  auth.ErrConfig,
			words: []string{"--account-key-file", "AZURE_STORAGE_KEY"},
		},
		{
			name: "key mode with a key that is not base64",
			setup: func(h *harness, cfg *auth.Config) {
				cfg.Mode, cfg.AccountKey = auth.ModeKey, "not-base64-secret!!"
				h.secrets = append(h.secrets, cfg.AccountKey)
			},
			kind:  auth.ErrConfig,
			words: []string{"not base64"},
		},
		{
			name: "key file missing",
			setup: func(h *harness, cfg *auth.Config) {
				cfg.Mode, cfg.AccountKeyFile = auth.ModeKey, filepath.Join(h.t.TempDir(), "nope")
			},
			kind:  auth.ErrConfig,
			words: []string{"cannot read", "--account-key-file"},
		},
		{
			name:  "sas mode without a token",
			setup: func(h *harness, cfg *auth.Config) { cfg.Mode = auth.ModeSAS },
			kind:  auth.ErrConfig,
			words: []string{"--sas-file", "AZURE_STORAGE_SAS_TOKEN"},
		},
		{
			name: "expired SAS",
			setup: func(h *harness, cfg *auth.Config) {
				cfg.Mode, cfg.SASToken = auth.ModeSAS, "sv=2025-01-05&se=2020-01-01T00:00:00Z&sp=rl&sig=c2VjcmV0c2lnbmF0dXJl"
				h.secrets = append(h.secrets, "c2VjcmV0c2lnbmF0dXJl")
			},
			kind:  auth.ErrConfig,
			words: []string{"expired", "new SAS"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts)
			cfg := h.config()
			if tt.setup != nil {
				tt.setup(h, &cfg)
			}
			var failed *auth.Hop
			cred, err := auth.Diagnose(context.Background(), cfg, func(hop auth.Hop) {
				if !hop.OK {
					failed = &hop
				}
			})
			if err == nil {
				t.Fatalf("got a %T, want an error", cred)
			}
			t.Log(err)
			h.assertNoSecrets(err.Error())
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %q is not %v", err, tt.kind)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if failed == nil || failed.Fix == "" && failed.Detail == "" {
				t.Errorf("no failed hop with a fix was reported: %+v", failed)
			}
			if tt.once != "" {
				if n := h.srv.Count(tt.once); n != 1 {
					t.Errorf("%d %s requests, want 1 (a lasting refusal is not retried)", n, tt.once)
				}
			}
		})
	}
}

func repeat(f authtest.Fault, n int) []authtest.Fault {
	out := make([]authtest.Fault, n)
	for i := range out {
		out[i] = f
	}
	return out
}

func TestKeyModeReadsKeyFile(t *testing.T) {
	h := newHarness(t, authtest.Options{})
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(testKey1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := auth.Config{Mode: auth.ModeKey, Account: testAccount, AccountKeyFile: file, Log: h.log}
	cred, err := auth.NewCredential(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.srv.Requests()) != 0 {
		t.Error("key mode talked to IMDS or ARM")
	}
	_ = cred
}
