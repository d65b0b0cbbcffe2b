package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/sirupsen/logrus"
)

// identityClient gets tokens from the managed identity endpoint and, on a
// VM, instance metadata from IMDS.
type identityClient struct {
	ep   tokenEndpoint
	imds *url.URL // nil when the host has no IMDS (IDENTITY_ENDPOINT hosts)
	c    *caller
}

// imdsRetryable are the answers Microsoft documents as transient for IMDS:
// 404 and 410 while it updates or the identity is being attached, 429
// when throttled, 5xx.
func imdsRetryable(status int) bool {
	switch {
	case status == http.StatusNotFound, status == http.StatusGone,
		status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		return true
	case status >= 500:
		return true
	}
	return false
}

// fetchToken asks for a token for resource, riding out the transient
// failures, and turns the lasting ones into an Error saying what to fix.
func (ic *identityClient) fetchToken(ctx context.Context, resource string) (token, error) {
	step := fmt.Sprintf("%s token for %s", ic.ep.kind(), resource)
	id := ic.ep.who()
	ic.c.log.WithFields(logrus.Fields{"endpoint": ic.ep.name(), "identity": id.String(), "resource": resource}).
		Debug("auth: requesting token")
	a, attempts, err := ic.c.call(ctx, step, ic.c.retry.Budget,
		func(ctx context.Context) (*http.Request, error) { return ic.ep.newTokenRequest(ctx, resource) },
		imdsRetryable)
	if err != nil {
		var na *noAnswerError
		if errors.As(err, &na) {
			return token{}, ic.unreachable(step, na)
		}
		return token{}, err
	}
	if a.status == http.StatusOK {
		t, err := parseToken(a.body, time.Now())
		if err != nil {
			return token{}, &Error{Step: step, Kind: ErrIdentityRefused, Detail: err.Error(),
				Fix: "the identity endpoint answered something that is not a token; is " + ic.ep.name() + " really " + ic.ep.kind() + "?"}
		}
		ic.c.log.WithFields(logrus.Fields{"identity": id.String(), "resource": resource,
			"expires": t.expiresOn.Format(time.RFC3339), "attempts": attempts}).Debug("auth: got token")
		return t, nil
	}
	ie := parseIdentityError(a.body)
	detail := fmt.Sprintf("%s answered %d %s", ic.ep.kind(), a.status, ie)
	switch {
	case imdsRetryable(a.status):
		return token{}, &Error{Step: step, Kind: ErrIdentityUnavailable,
			Detail: fmt.Sprintf("%s (still, after %d attempts)", detail, attempts),
			Fix:    "the VM may still be booting, IMDS may be updating or throttling; try again in a minute"}
	case a.status == http.StatusBadRequest && ie.Error == "invalid_request":
		fix := "enable the VM's system-assigned identity, or, if the VM has several user-assigned identities, pick one with --client-id, --object-id or --identity-resource-id"
		if f := id.flag(); f != "" {
			fix = fmt.Sprintf("attach that identity to this VM (portal: VM → Identity → User assigned), or correct %s", f)
		}
		return token{}, &Error{Step: step, Kind: ErrIdentityNotFound,
			Detail: fmt.Sprintf("%s has no %s (%s)", ic.ep.kind(), id, ie), Fix: fix}
	case a.status == http.StatusBadRequest && ie.Error == "bad_request_102":
		return token{}, &Error{Step: step, Kind: ErrIdentityRefused, Detail: detail,
			Fix: "the Metadata header was dropped on the way: is a proxy or middlebox rewriting requests to IMDS?"}
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		fix := "check IDENTITY_HEADER"
		if ic.ep.kind() == "IMDS" {
			fix = "requests to IMDS must come from the VM itself, not through a proxy (X-Forwarded-For is refused)"
		}
		return token{}, &Error{Step: step, Kind: ErrIdentityRefused, Detail: detail, Fix: fix}
	}
	return token{}, &Error{Step: step, Kind: ErrIdentityRefused, Detail: detail,
		Fix: "check the identity flags (--client-id, --object-id, --identity-resource-id) and the resource"}
}

func (ic *identityClient) unreachable(step string, na *noAnswerError) error {
	fix := "is this an Azure VM with a managed identity? IMDS (169.254.169.254) answers only inside Azure; " +
		"outside it use --auth-mode key or sas"
	if ic.ep.kind() != "IMDS" {
		fix = "IDENTITY_ENDPOINT is set but does not answer: check the host's managed identity, or unset it"
	}
	return &Error{Step: step, Kind: ErrIdentityUnreachable, Detail: na.Error(), Fix: fix}
}

// instance is what we use of IMDS instance metadata.
type instance struct {
	SubscriptionID    string `json:"subscriptionId"`
	ResourceGroupName string `json:"resourceGroupName"`
	Name              string `json:"name"`
	ResourceID        string `json:"resourceId"`
}

const imdsInstanceAPIVersion = "2021-02-01"

// instanceMetadata reads the VM's subscription and resource group.
func (ic *identityClient) instanceMetadata(ctx context.Context) (instance, error) {
	const step = "IMDS instance metadata"
	if ic.imds == nil {
		return instance{}, &Error{Step: step, Kind: ErrConfig,
			Detail: "this host has no IMDS (it uses IDENTITY_ENDPOINT)",
			Fix:    "pass --subscription and --resource-group"}
	}
	u := ic.imds.JoinPath("/metadata/instance")
	u.RawQuery = url.Values{"api-version": {imdsInstanceAPIVersion}}.Encode()
	a, attempts, err := ic.c.call(ctx, step, ic.c.retry.Budget, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err == nil {
			req.Header.Set("Metadata", "true")
		}
		return req, err
	}, imdsRetryable)
	if err != nil {
		var na *noAnswerError
		if errors.As(err, &na) {
			return instance{}, ic.unreachable(step, na)
		}
		return instance{}, err
	}
	if a.status != http.StatusOK {
		return instance{}, &Error{Step: step, Kind: ErrIdentityUnavailable,
			Detail: fmt.Sprintf("IMDS answered %d %s after %d attempts", a.status, parseIdentityError(a.body), attempts),
			Fix:    "pass --subscription and --resource-group"}
	}
	var doc struct {
		Compute instance `json:"compute"`
	}
	if err := json.Unmarshal(a.body, &doc); err != nil || doc.Compute.SubscriptionID == "" {
		return instance{}, &Error{Step: step, Kind: ErrIdentityUnavailable,
			Detail: "the answer has no compute.subscriptionId", Fix: "pass --subscription and --resource-group"}
	}
	ic.c.log.WithFields(logrus.Fields{"subscription": doc.Compute.SubscriptionID,
		"resource_group": doc.Compute.ResourceGroupName, "vm": doc.Compute.Name}).Debug("auth: instance metadata")
	return doc.Compute, nil
}
