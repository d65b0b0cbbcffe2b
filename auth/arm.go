package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/sirupsen/logrus"
)

// armAPIVersion is the Microsoft.Storage API version we speak.
const armAPIVersion = "2023-01-01"

// accountRef locates a storage account in ARM.
type accountRef struct {
	sub, rg, name string
}

func (r accountRef) scope() string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/%s", r.sub, r.rg, r.name)
}

func (r accountRef) path() string {
	return "/subscriptions/" + url.PathEscape(r.sub) + "/resourceGroups/" + url.PathEscape(r.rg) +
		"/providers/Microsoft.Storage/storageAccounts/" + url.PathEscape(r.name)
}

// armClient calls Azure Resource Manager with the managed identity's token.
type armClient struct {
	base   *url.URL
	c      *caller
	tokens *TokenCache
	who    identity
}

func armRetryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500
}

// armError is ARM's error body.
type armError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func parseARMError(body []byte) (code, message string) {
	var e armError
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		return "", ""
	}
	return e.Error.Code, e.Error.Message
}

// do sends one ARM call with retries of 429 and 5xx, and one retry with a
// fresh token when ARM says the token is expired or otherwise invalid.
func (a *armClient) do(ctx context.Context, step, method, path string, query url.Values) (answer, error) {
	u := a.base.JoinPath(path)
	if query == nil {
		query = url.Values{}
	}
	if query.Get("api-version") == "" {
		query.Set("api-version", armAPIVersion)
	}
	u.RawQuery = query.Encode()
	return a.doURL(ctx, step, method, u)
}

func (a *armClient) doURL(ctx context.Context, step, method string, u *url.URL) (answer, error) {
	for refreshed := false; ; refreshed = true {
		tok, err := a.tokens.get(ctx)
		if err != nil {
			return answer{}, err
		}
		ans, _, err := a.c.call(ctx, step, a.c.retry.ARMBudget, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok.value.Reveal())
			if method == http.MethodPost {
				req.ContentLength = 0
				req.Header.Set("Content-Length", "0")
			}
			req.Header.Set("Accept", "application/json")
			return req, nil
		}, armRetryable)
		if err != nil {
			var na *noAnswerError
			if errors.As(err, &na) {
				return answer{}, &Error{Step: step, Kind: ErrARMUnavailable, Detail: na.Error(),
					Fix: "check the VM's outbound access to " + a.base.Host + " (firewall, proxy settings)"}
			}
			return answer{}, err
		}
		if ans.status == http.StatusUnauthorized && !refreshed {
			code, _ := parseARMError(ans.body)
			a.c.log.WithFields(logrus.Fields{"step": step, "code": code}).Debug("auth: ARM refused the token; fetching a new one")
			if changed, rerr := a.tokens.refreshFrom(ctx, tok.value); rerr == nil && changed {
				continue
			}
		}
		return ans, nil
	}
}

// fail turns a non-2xx ARM answer into an Error that says what to fix.
func (a *armClient) fail(step string, ans answer, ref accountRef, action, roles string) error {
	code, msg := parseARMError(ans.body)
	if code == "" {
		code = http.StatusText(ans.status)
	}
	detail := fmt.Sprintf("ARM answered %d %s", ans.status, code)
	switch {
	case ans.status == http.StatusForbidden && (code == "AuthorizationFailed" || code == "LinkedAuthorizationFailed"):
		scope := ref.scope()
		if ref.rg == "" {
			scope = "/subscriptions/" + ref.sub
		}
		return &Error{Step: step, Kind: ErrRoleMissing, Detail: detail + " (" + action + ")",
			Fix: fmt.Sprintf("assign %s to the VM's %s on scope %s (role assignments take a few minutes to apply)", roles, a.who, scope)}
	case ans.status == http.StatusUnauthorized:
		return &Error{Step: step, Kind: ErrARM, Detail: detail,
			Fix: "ARM refused the managed identity's token: check that the identity belongs to the subscription's tenant and that --arm-endpoint matches the cloud"}
	case code == "SubscriptionNotFound" || code == "InvalidSubscriptionId":
		return &Error{Step: step, Kind: ErrSubscriptionMissing, Detail: detail,
			Fix: fmt.Sprintf("subscription %q does not exist or the identity cannot see it: check --subscription", ref.sub)}
	case code == "ResourceGroupNotFound":
		return &Error{Step: step, Kind: ErrResourceGroupMissing, Detail: detail,
			Fix: fmt.Sprintf("resource group %q does not exist in subscription %s: check --resource-group", ref.rg, ref.sub)}
	case ans.status == http.StatusNotFound:
		return &Error{Step: step, Kind: ErrAccountNotFound, Detail: detail,
			Fix: fmt.Sprintf("no storage account %q in resource group %s of subscription %s: check --account and --resource-group", ref.name, ref.rg, ref.sub)}
	case code == "ScopeLocked":
		return &Error{Step: step, Kind: ErrARM, Detail: detail,
			Fix: "a ReadOnly lock on the account or its resource group blocks listKeys: remove the lock or use --auth-mode msi"}
	case armRetryable(ans.status):
		return &Error{Step: step, Kind: ErrARMUnavailable, Detail: detail + " (still, after retrying)",
			Fix: "ARM is throttling or failing; try again in a few minutes"}
	}
	if msg != "" {
		detail += ": " + firstLine(msg)
	}
	return &Error{Step: step, Kind: ErrARM, Detail: detail, Fix: "see the ARM error code above"}
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// listKeys returns the account's keys, full-permission ones first.
func (a *armClient) listKeys(ctx context.Context, ref accountRef) ([]Secret, error) {
	step := "ARM listKeys of storage account " + ref.name
	ans, err := a.do(ctx, step, http.MethodPost, ref.path()+"/listKeys", nil)
	if err != nil {
		return nil, err
	}
	if ans.status != http.StatusOK {
		return nil, a.fail(step, ans, ref, "Microsoft.Storage/storageAccounts/listKeys/action",
			"the \"Storage Account Key Operator Service Role\" (or \"Reader and Data Access\")")
	}
	var doc struct {
		Keys []struct {
			KeyName     string `json:"keyName"`
			Value       string `json:"value"`
			Permissions string `json:"permissions"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(ans.body, &doc); err != nil {
		return nil, &Error{Step: step, Kind: ErrARM, Detail: fmt.Sprintf("answer is not a key list (%d bytes)", len(ans.body))}
	}
	var full, read []Secret
	var names []string
	for _, k := range doc.Keys {
		if k.Value == "" {
			continue
		}
		names = append(names, k.KeyName)
		if strings.EqualFold(k.Permissions, "Read") {
			read = append(read, NewSecret(k.Value))
		} else {
			full = append(full, NewSecret(k.Value))
		}
	}
	keys := append(full, read...)
	if len(keys) == 0 {
		return nil, &Error{Step: step, Kind: ErrARM, Detail: "ARM listed no keys for the account",
			Fix: "the account may forbid keys: use --auth-mode msi"}
	}
	a.c.log.WithFields(logrus.Fields{"account": ref.name, "resource_group": ref.rg, "keys": strings.Join(names, ",")}).
		Debug("auth: listed account keys")
	return keys, nil
}

// storageAccount is what we read of an account's ARM resource.
type storageAccount struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		AllowSharedKeyAccess *bool `json:"allowSharedKeyAccess"`
		PrimaryEndpoints     struct {
			Blob string `json:"blob"`
		} `json:"primaryEndpoints"`
	} `json:"properties"`
}

// sharedKeyAllowed reads allowSharedKeyAccess, absent meaning allowed.
func (s storageAccount) sharedKeyAllowed() bool {
	return s.Properties.AllowSharedKeyAccess == nil || *s.Properties.AllowSharedKeyAccess
}

// resourceGroup parses the group out of the account's id, which ARM may
// spell in any case.
func (s storageAccount) resourceGroup() string {
	parts := strings.Split(s.ID, "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "resourceGroups") {
			return parts[i+1]
		}
	}
	return ""
}

// getAccount reads the account's properties.
func (a *armClient) getAccount(ctx context.Context, ref accountRef) (storageAccount, error) {
	step := "ARM read of storage account " + ref.name
	ans, err := a.do(ctx, step, http.MethodGet, ref.path(), nil)
	if err != nil {
		return storageAccount{}, err
	}
	if ans.status != http.StatusOK {
		return storageAccount{}, a.fail(step, ans, ref, "Microsoft.Storage/storageAccounts/read", "\"Reader\"")
	}
	var acct storageAccount
	if err := json.Unmarshal(ans.body, &acct); err != nil {
		return storageAccount{}, &Error{Step: step, Kind: ErrARM, Detail: "answer is not a storage account"}
	}
	return acct, nil
}

// findAccount searches the subscription for the account, following
// nextLink, and returns it with its resource group.
func (a *armClient) findAccount(ctx context.Context, sub, name string) (storageAccount, int, error) {
	step := "ARM search of subscription " + sub + " for storage account " + name
	ref := accountRef{sub: sub, name: name}
	u := a.base.JoinPath("/subscriptions/" + url.PathEscape(sub) + "/providers/Microsoft.Storage/storageAccounts")
	u.RawQuery = url.Values{"api-version": {armAPIVersion}}.Encode()
	seen := 0
	for page := 0; page < 1000; page++ {
		ans, err := a.doURL(ctx, step, http.MethodGet, u)
		if err != nil {
			return storageAccount{}, seen, err
		}
		if ans.status != http.StatusOK {
			return storageAccount{}, seen, a.fail(step, ans, ref, "Microsoft.Storage/storageAccounts/read at subscription scope", "\"Reader\"")
		}
		var doc struct {
			Value    []storageAccount `json:"value"`
			NextLink string           `json:"nextLink"`
		}
		if err := json.Unmarshal(ans.body, &doc); err != nil {
			return storageAccount{}, seen, &Error{Step: step, Kind: ErrARM, Detail: "answer is not a list of storage accounts"}
		}
		for _, acct := range doc.Value {
			seen++
			if strings.EqualFold(acct.Name, name) {
				return acct, seen, nil
			}
		}
		if doc.NextLink == "" {
			break
		}
		next, err := url.Parse(doc.NextLink)
		if err != nil || next.Scheme != a.base.Scheme || !strings.EqualFold(next.Host, a.base.Host) {
			// The token must only go to ARM itself.
			return storageAccount{}, seen, &Error{Step: step, Kind: ErrARM,
				Detail: "ARM's nextLink does not point back at " + a.base.Host + "; not following it"}
		}
		u = next
	}
	return storageAccount{}, seen, &Error{Step: step, Kind: ErrAccountNotFound,
		Detail: fmt.Sprintf("none of the %d storage accounts the identity can see in subscription %s is named %q", seen, sub, name),
		Fix:    "check --account, or pass --subscription and --resource-group"}
}
