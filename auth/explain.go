package auth

import (
	"errors"
	"fmt"

	"github.com/blobfs/blobfs/blob"
)

// Explain turns storage's refusal of a credential made from cfg into an
// Error naming what to change for that auth mode; other errors come back
// unchanged. cmd calls it on the first storage request of a mount or a
// check, where a wrong key or a missing role shows up.
func Explain(cfg Config, err error) error {
	var se *blob.StorageError
	if !errors.As(err, &se) {
		return err
	}
	cfg = cfg.withDefaults()
	step := "storage account " + cfg.Account
	scope := "the storage account " + cfg.Account
	if cfg.Subscription != "" && cfg.ResourceGroup != "" {
		scope = accountRef{sub: cfg.Subscription, rg: cfg.ResourceGroup, name: cfg.Account}.scope()
	}
	detail := fmt.Sprintf("storage answered %d %s", se.Status, se.Code)
	mk := func(kind error, fix string) error {
		return &Error{Step: step, Kind: kind, Detail: detail, Fix: fix, Err: err}
	}
	code := se.Code
	if se.SignatureRefused() {
		// Azurite answers a bad signature with AuthorizationFailure.
		code = "AuthenticationFailed"
	}
	switch code {
	case "KeyBasedAuthenticationNotPermitted":
		return mk(ErrSharedKeyDisabled, fmt.Sprintf("the account forbids shared keys (allowSharedKeyAccess=false): use --auth-mode msi and assign \"Storage Blob Data Contributor\" to the identity on %s", scope))
	case "AuthorizationPermissionMismatch", "AuthorizationFailure":
		switch cfg.Mode {
		case ModeMSI:
			return mk(ErrRoleMissing, fmt.Sprintf("the identity has no data role: assign \"Storage Blob Data Contributor\" (\"Storage Blob Data Reader\" for read-only mounts) to it on %s; roles take a few minutes to apply", scope))
		case ModeSAS:
			return mk(ErrSecretRefused, "the SAS lacks a permission this operation needs (mounts need at least sp=rl, writes racwdl), or the account's firewall refuses this address")
		}
		return mk(ErrRoleMissing, "the account's firewall or network rules refuse this VM: allow its subnet or address")
	case "AuthenticationFailed", "InvalidAuthenticationInfo", "NoAuthenticationInformation":
		switch cfg.Mode {
		case ModeKey:
			return mk(ErrSecretRefused, "the account key is wrong for account "+cfg.Account+": copy key1 or key2 again (--account-key-file or AZURE_STORAGE_KEY), and check --account and the clock")
		case ModeSAS:
			return mk(ErrSecretRefused, "the SAS was refused: it may be expired, revoked, or made for another account; generate a new one")
		case ModeMSI:
			return mk(ErrSecretRefused, "storage refused the identity's token: check that --storage-resource (audience) is https://storage.azure.com/ and the clock is right")
		}
		return mk(ErrSecretRefused, "storage refused the keys ARM listed: check that --account names the account listKeys was asked for, and the clock")
	}
	return err
}
