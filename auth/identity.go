package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// identity is the managed identity to ask for: the VM's system-assigned
// one when all fields are empty, else exactly one user-assigned selector.
type identity struct {
	clientID, objectID, resourceID string
}

func (i identity) String() string {
	switch {
	case i.clientID != "":
		return "user-assigned identity with client id " + i.clientID
	case i.objectID != "":
		return "user-assigned identity with object id " + i.objectID
	case i.resourceID != "":
		return "user-assigned identity " + i.resourceID
	}
	return "system-assigned identity"
}

// flag names the command-line option that chose the identity, for fixes.
func (i identity) flag() string {
	switch {
	case i.clientID != "":
		return "--client-id"
	case i.objectID != "":
		return "--object-id"
	case i.resourceID != "":
		return "--identity-resource-id"
	}
	return ""
}

func (i identity) validate() error {
	n := 0
	for _, s := range []string{i.clientID, i.objectID, i.resourceID} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return &Error{Step: "identity", Kind: ErrConfig,
			Detail: "more than one of --client-id, --object-id and --identity-resource-id is set",
			Fix:    "give only one of them"}
	}
	if i.resourceID != "" && !strings.Contains(strings.ToLower(i.resourceID), "/microsoft.managedidentity/userassignedidentities/") {
		return &Error{Step: "identity", Kind: ErrConfig,
			Detail: fmt.Sprintf("%q is not the resource id of a user-assigned identity", i.resourceID),
			Fix:    "pass the identity's id, /subscriptions/…/resourceGroups/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME, not the storage account's"}
	}
	return nil
}

// tokenEndpoint is where tokens come from: IMDS on a VM, or the App
// Service style IDENTITY_ENDPOINT.
type tokenEndpoint interface {
	// newTokenRequest builds one token request for resource.
	newTokenRequest(ctx context.Context, resource string) (*http.Request, error)
	// name is the endpoint for messages and logs, without secrets.
	name() string
	// kind is "IMDS" or "IDENTITY_ENDPOINT".
	kind() string
	who() identity
}

// imdsEndpoint is the Azure Instance Metadata Service.
type imdsEndpoint struct {
	base *url.URL // e.g. http://169.254.169.254
	id   identity
}

const imdsTokenAPIVersion = "2018-02-01"

func (e *imdsEndpoint) newTokenRequest(ctx context.Context, resource string) (*http.Request, error) {
	q := url.Values{"api-version": {imdsTokenAPIVersion}, "resource": {resource}}
	switch {
	case e.id.clientID != "":
		q.Set("client_id", e.id.clientID)
	case e.id.objectID != "":
		q.Set("object_id", e.id.objectID)
	case e.id.resourceID != "":
		q.Set("msi_res_id", e.id.resourceID)
	}
	u := e.base.JoinPath("/metadata/identity/oauth2/token")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Metadata", "true")
	return req, nil
}

func (e *imdsEndpoint) name() string  { return e.base.Redacted() }
func (e *imdsEndpoint) kind() string  { return "IMDS" }
func (e *imdsEndpoint) who() identity { return e.id }

// appServiceEndpoint is the IDENTITY_ENDPOINT + IDENTITY_HEADER protocol of
// App Service, Container Apps and Functions hosts.
type appServiceEndpoint struct {
	url    *url.URL
	header Secret
	id     identity
}

const appServiceAPIVersion = "2019-08-01"

func (e *appServiceEndpoint) newTokenRequest(ctx context.Context, resource string) (*http.Request, error) {
	u := *e.url
	q := u.Query()
	q.Set("api-version", appServiceAPIVersion)
	q.Set("resource", resource)
	switch {
	case e.id.clientID != "":
		q.Set("client_id", e.id.clientID)
	case e.id.objectID != "":
		q.Set("object_id", e.id.objectID)
	case e.id.resourceID != "":
		q.Set("mi_res_id", e.id.resourceID)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-IDENTITY-HEADER", e.header.Reveal())
	return req, nil
}

func (e *appServiceEndpoint) name() string {
	u := *e.url
	u.RawQuery = ""
	return u.Redacted()
}
func (e *appServiceEndpoint) kind() string  { return "IDENTITY_ENDPOINT" }
func (e *appServiceEndpoint) who() identity { return e.id }
