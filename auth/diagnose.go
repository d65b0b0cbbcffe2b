package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/blob"
)

// Hop is one step on the way to a credential, as `blobfs check` shows it.
type Hop struct {
	Name   string // e.g. "IMDS reachable", "ARM listKeys"
	OK     bool
	Detail string // what was found: endpoint, identity, expiry, resource group
	Fix    string // set when !OK: what to change
}

// Diagnose walks the hops to a credential for cfg, calling report (which
// may be nil) after each, and stops at the first failure, whose error is
// also returned. On success it returns the credential, as NewCredential.
func Diagnose(ctx context.Context, cfg Config, report func(Hop)) (blob.Credential, error) {
	if report == nil {
		report = func(Hop) {}
	}
	cfg = cfg.withDefaults()
	d := &diagnosis{cfg: cfg, report: report, log: cfg.log()}
	d.log.WithFields(logrus.Fields{"mode": cfg.Mode, "account": cfg.Account}).Debug("auth: building credential")
	switch cfg.Mode {
	case ModeMSIKey:
		return d.msiKey(ctx)
	case ModeMSI:
		return d.msi(ctx)
	case ModeKey:
		return d.key()
	case ModeSAS:
		return d.sas()
	}
	return nil, d.fail("auth mode", &Error{Step: "auth mode", Kind: ErrConfig,
		Detail: fmt.Sprintf("unknown --auth-mode %q", cfg.Mode), Fix: "use msi-key, msi, key or sas"})
}

type diagnosis struct {
	cfg    Config
	report func(Hop)
	log    logrus.FieldLogger
}

func (d *diagnosis) ok(name, detail string) {
	d.log.WithFields(logrus.Fields{"hop": name, "detail": detail}).Debug("auth: ok")
	d.report(Hop{Name: name, OK: true, Detail: detail})
}

// fail reports err as the failed hop name and returns it.
func (d *diagnosis) fail(name string, err error) error {
	h := Hop{Name: name, Detail: err.Error()}
	var e *Error
	if errors.As(err, &e) {
		h.Detail, h.Fix = e.Detail, e.Fix
	}
	d.log.WithFields(logrus.Fields{"hop": name}).WithError(err).Debug("auth: failed")
	d.report(h)
	return err
}

var accountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

func (d *diagnosis) checkAccount() error {
	if !accountName.MatchString(d.cfg.Account) {
		return d.fail("account name", &Error{Step: "account name", Kind: ErrConfig,
			Detail: fmt.Sprintf("%q is not a storage account name", d.cfg.Account),
			Fix:    "pass --account with the account's name: 3 to 24 lowercase letters and digits"})
	}
	return nil
}

func (d *diagnosis) onRefresh(kind string) func() {
	if d.cfg.OnRefresh == nil {
		return nil
	}
	return func() { d.cfg.OnRefresh(kind) }
}

// identityClient builds the client for the configured token endpoint.
func (d *diagnosis) identityClient() (*identityClient, error) {
	id := identity{clientID: d.cfg.ClientID, objectID: d.cfg.ObjectID, resourceID: d.cfg.IdentityResourceID}
	if err := id.validate(); err != nil {
		return nil, d.fail("identity", err)
	}
	rt := d.cfg.Transport
	if rt == nil {
		rt = imdsTransport()
	}
	c := &caller{client: &http.Client{Transport: rt}, retry: d.cfg.Retry, log: d.log, onWait: d.cfg.OnWait}
	ic := &identityClient{c: c}
	imds, err := url.Parse(strings.TrimSuffix(d.cfg.IMDSEndpoint, "/"))
	if err != nil || imds.Host == "" {
		return nil, d.fail("identity", &Error{Step: "identity", Kind: ErrConfig,
			Detail: fmt.Sprintf("IMDS endpoint %q is not a URL", d.cfg.IMDSEndpoint), Fix: "fix --imds-endpoint"})
	}
	if d.cfg.IdentityEndpoint != "" {
		u, err := url.Parse(d.cfg.IdentityEndpoint)
		if err != nil || u.Host == "" {
			return nil, d.fail("identity", &Error{Step: "identity", Kind: ErrConfig,
				Detail: "IDENTITY_ENDPOINT is not a URL", Fix: "fix or unset IDENTITY_ENDPOINT"})
		}
		if d.cfg.IdentityHeader == "" {
			return nil, d.fail("identity", &Error{Step: "identity", Kind: ErrConfig,
				Detail: "IDENTITY_ENDPOINT is set without IDENTITY_HEADER", Fix: "set both or neither"})
		}
		ic.ep = &appServiceEndpoint{url: u, header: NewSecret(d.cfg.IdentityHeader), id: id}
	} else {
		ic.ep = &imdsEndpoint{base: imds, id: id}
		ic.imds = imds
	}
	return ic, nil
}

// token fetches the first token for resource through a cache, reporting
// the "reachable" and "token" hops.
func (d *diagnosis) token(ctx context.Context, ic *identityClient, resource, hop string) (*TokenCache, error) {
	cache := newTokenCache(resource, func(ctx context.Context) (token, error) { return ic.fetchToken(ctx, resource) },
		d.log, d.onRefresh(RefreshToken))
	t, err := cache.get(ctx)
	reach := ic.ep.kind() + " reachable"
	if errors.Is(err, ErrIdentityUnreachable) {
		return nil, d.fail(reach, err)
	}
	if err != nil && !errors.Is(err, ErrIdentityNotFound) && !errors.Is(err, ErrIdentityRefused) && !errors.Is(err, ErrIdentityUnavailable) {
		return nil, d.fail(hop, err) // cancelled
	}
	d.ok(reach, ic.ep.name())
	if err != nil {
		return nil, d.fail(hop, err)
	}
	d.ok(hop, fmt.Sprintf("%s, expires %s", ic.ep.who(), t.expiresOn.Format(time.RFC3339)))
	return cache, nil
}

func (d *diagnosis) msi(ctx context.Context) (blob.Credential, error) {
	ic, err := d.identityClient()
	if err != nil {
		return nil, err
	}
	cache, err := d.token(ctx, ic, d.cfg.StorageResource, "token for storage")
	if err != nil {
		return nil, err
	}
	return &blob.Bearer{Tokens: cache}, nil
}

func (d *diagnosis) msiKey(ctx context.Context) (blob.Credential, error) {
	if err := d.checkAccount(); err != nil {
		return nil, err
	}
	ic, err := d.identityClient()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(strings.TrimSuffix(d.cfg.ARMEndpoint, "/"))
	if err == nil {
		err = blob.CheckScheme(u)
	}
	if err != nil || u.Host == "" {
		return nil, d.fail("ARM endpoint", &Error{Step: "ARM endpoint", Kind: ErrConfig,
			Detail: fmt.Sprintf("%q is not an https URL", d.cfg.ARMEndpoint), Fix: "fix --arm-endpoint"})
	}
	tokens, err := d.token(ctx, ic, d.cfg.ARMResource, "token for ARM")
	if err != nil {
		return nil, err
	}
	rt := d.cfg.Transport
	if rt == nil {
		rt = armTransport()
	}
	arm := &armClient{base: u, tokens: tokens, who: ic.ep.who(),
		c: &caller{client: &http.Client{Transport: rt}, retry: d.cfg.Retry, log: d.log, onWait: d.cfg.OnWait}}

	ref, guessed, err := d.locate(ctx, ic)
	if err != nil {
		return nil, err
	}
	ref, err = d.checkAccountResource(ctx, arm, ref, guessed)
	if err != nil {
		return nil, err
	}
	if f := d.onRefresh(RefreshKey); f != nil {
		f()
	}
	keys, err := arm.listKeys(ctx, ref)
	if err != nil && guessed && errors.Is(err, ErrAccountNotFound) {
		// The account is not in the VM's group and we could not read it
		// to find out: search the subscription, then list again.
		if ref, err = d.search(ctx, arm, ref); err != nil {
			return nil, err
		}
		keys, err = arm.listKeys(ctx, ref)
	}
	if err != nil {
		return nil, d.fail("ARM listKeys", err)
	}
	d.ok("ARM listKeys", fmt.Sprintf("%d keys for %s", len(keys), ref.scope()))
	k := &ARMKeys{arm: arm, ref: ref, interval: d.cfg.KeyRefreshInterval, log: d.log,
		onFetch: d.onRefresh(RefreshKey), keys: keys, refused: map[int]bool{}}
	return &blob.SharedKey{Account: d.cfg.Account, Keys: k}, nil
}

// locate settles the subscription and resource group; guessed says the
// group is the VM's own, a default that may not hold the account.
func (d *diagnosis) locate(ctx context.Context, ic *identityClient) (accountRef, bool, error) {
	ref := accountRef{sub: d.cfg.Subscription, rg: d.cfg.ResourceGroup, name: d.cfg.Account}
	const hop = "subscription and resource group"
	if ref.sub != "" && ref.rg != "" {
		d.ok(hop, fmt.Sprintf("subscription %s, resource group %s (given)", ref.sub, ref.rg))
		return ref, false, nil
	}
	vm, err := ic.instanceMetadata(ctx)
	if err != nil {
		return ref, false, d.fail(hop, err)
	}
	from := "given"
	if ref.sub == "" {
		ref.sub, from = vm.SubscriptionID, "the VM's, from instance metadata"
	}
	guessed := false
	rgFrom := "given"
	if ref.rg == "" {
		ref.rg, guessed, rgFrom = vm.ResourceGroupName, true, "the VM's, from instance metadata"
	}
	d.ok(hop, fmt.Sprintf("subscription %s (%s), resource group %s (%s)", ref.sub, from, ref.rg, rgFrom))
	return ref, guessed, nil
}

// checkAccountResource reads the account from ARM, finds its group when it
// is not the guessed one, and refuses accounts that forbid shared keys.
// An identity with only the Key Operator role may not read the account:
// then the check is skipped and listKeys decides.
func (d *diagnosis) checkAccountResource(ctx context.Context, arm *armClient, ref accountRef, guessed bool) (accountRef, error) {
	const hop = "storage account"
	acct, err := arm.getAccount(ctx, ref)
	switch {
	case err == nil:
	case errors.Is(err, ErrRoleMissing):
		d.ok(hop, "cannot read the account's properties (no Reader role); skipping the shared-key check")
		return ref, nil
	case guessed && (errors.Is(err, ErrAccountNotFound) || errors.Is(err, ErrResourceGroupMissing)):
		if ref, err = d.search(ctx, arm, ref); err != nil {
			return ref, err
		}
		if acct, err = arm.getAccount(ctx, ref); err != nil {
			return ref, d.fail(hop, err)
		}
	default:
		return ref, d.fail(hop, err)
	}
	if !acct.sharedKeyAllowed() {
		return ref, d.fail("shared key access", &Error{Step: "shared key access", Kind: ErrSharedKeyDisabled,
			Detail: fmt.Sprintf("account %s has allowSharedKeyAccess=false, so storage would refuse every listed key (KeyBasedAuthenticationNotPermitted)", ref.name),
			Fix:    fmt.Sprintf("use --auth-mode msi and assign \"Storage Blob Data Contributor\" to the VM's identity on scope %s", ref.scope())})
	}
	d.ok(hop, ref.scope()+", shared key access allowed")
	return ref, nil
}

// search finds the account's resource group by listing the subscription.
func (d *diagnosis) search(ctx context.Context, arm *armClient, ref accountRef) (accountRef, error) {
	const hop = "find the account's resource group"
	acct, seen, err := arm.findAccount(ctx, ref.sub, ref.name)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && errors.Is(err, ErrRoleMissing) {
			e.Fix = fmt.Sprintf("account %s is not in the VM's resource group %s; pass --resource-group, or %s", ref.name, ref.rg, e.Fix)
		}
		return ref, d.fail(hop, err)
	}
	rg := acct.resourceGroup()
	if rg == "" {
		return ref, d.fail(hop, &Error{Step: hop, Kind: ErrARM, Detail: "ARM listed the account without a resource group in its id"})
	}
	d.log.WithFields(logrus.Fields{"account": ref.name, "resource_group": rg}).
		Info("auth: the storage account is not in the VM's resource group; found it by listing the subscription")
	ref.rg = rg
	d.ok(hop, fmt.Sprintf("found %s in resource group %s (searched %d accounts); pass --resource-group %s to skip the search", ref.name, rg, seen, rg))
	return ref, nil
}

func (d *diagnosis) key() (blob.Credential, error) {
	const hop = "account key"
	if err := d.checkAccount(); err != nil {
		return nil, err
	}
	key, from, err := d.secret(d.cfg.AccountKey, d.cfg.AccountKeyFile, "--account-key-file", "AZURE_STORAGE_KEY", hop)
	if err != nil {
		return nil, err
	}
	raw, derr := base64.StdEncoding.DecodeString(key.Reveal())
	if derr != nil || len(raw) == 0 {
		return nil, d.fail(hop, &Error{Step: hop, Kind: ErrConfig,
			Detail: "the key from " + from + " is not base64 (its value is not shown)",
			Fix:    "copy key1 or key2 from the portal (Storage account → Access keys) exactly"})
	}
	d.ok(hop, fmt.Sprintf("from %s, %d bytes", from, len(raw)))
	return &blob.SharedKey{Account: d.cfg.Account, Keys: staticKey{key}}, nil
}

func (d *diagnosis) sas() (blob.Credential, error) {
	const hop = "SAS token"
	tok, from, err := d.secret(d.cfg.SASToken, d.cfg.SASFile, "--sas-file", "AZURE_STORAGE_SAS_TOKEN", hop)
	if err != nil {
		return nil, err
	}
	q, perr := url.ParseQuery(strings.TrimPrefix(tok.Reveal(), "?"))
	if perr != nil || q.Get("sig") == "" {
		return nil, d.fail(hop, &Error{Step: hop, Kind: ErrConfig,
			Detail: "the token from " + from + " is not a SAS query string with a sig parameter (its value is not shown)",
			Fix:    "pass the query part of the SAS URL, e.g. sv=…&se=…&sp=…&sig=…"})
	}
	detail := "from " + from
	if se := q.Get("se"); se != "" {
		if exp, err := parseSASTime(se); err == nil {
			if time.Now().After(exp) {
				return nil, d.fail(hop, &Error{Step: hop, Kind: ErrConfig,
					Detail: "the SAS expired at " + exp.Format(time.RFC3339), Fix: "generate a new SAS"})
			}
			detail += ", expires " + exp.Format(time.RFC3339)
		}
	}
	if sp := q.Get("sp"); sp != "" {
		detail += ", permissions " + sp
	}
	d.ok(hop, detail)
	return sasCredential{tok}, nil
}

func parseSASTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unparsable SAS time")
}

// secret takes a secret given directly or read from a file.
func (d *diagnosis) secret(value, file, fileFlag, env, hop string) (Secret, string, error) {
	if value != "" {
		return NewSecret(strings.TrimSpace(value)), "the configuration or " + env, nil
	}
	if file == "" {
		return Secret{}, "", d.fail(hop, &Error{Step: hop, Kind: ErrConfig,
			Detail: "none given", Fix: fmt.Sprintf("pass %s or set %s", fileFlag, env)})
	}
	// As ssh does with private keys: a secret others may read is refused,
	// before it is used, so that the mode gets fixed rather than ignored.
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return Secret{}, "", d.fail(hop, &Error{Step: hop, Kind: ErrConfig,
			Detail: fmt.Sprintf("%s has mode %#o: other users may read it", file, fi.Mode().Perm()),
			Fix:    fmt.Sprintf("chmod 600 %s (and make its owner the user blobfs runs as)", file)})
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return Secret{}, "", d.fail(hop, &Error{Step: hop, Kind: ErrConfig,
			Detail: fmt.Sprintf("cannot read %s", file), Fix: "check " + fileFlag, Err: err})
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return Secret{}, "", d.fail(hop, &Error{Step: hop, Kind: ErrConfig,
			Detail: file + " is empty", Fix: "check " + fileFlag})
	}
	return NewSecret(s), file, nil
}
