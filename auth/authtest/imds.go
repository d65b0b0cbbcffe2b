package authtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Audiences the emulated Entra ID knows. A token for anything else is
// refused, as AADSTS500011 would.
func knownResource(r string) bool {
	r = strings.TrimSuffix(r, "/")
	switch r {
	case "https://management.azure.com", "https://storage.azure.com", "https://management.core.windows.net":
		return true
	}
	return strings.HasPrefix(r, "https://") && strings.HasSuffix(r, ".blob.core.windows.net")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func imdsError(w http.ResponseWriter, status int, code, desc string) int {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	return status
}

// strictQuery parses the query refusing repeated parameters, as IMDS does.
func strictQuery(raw string) (url.Values, string, bool) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, "", false
	}
	for k, v := range q {
		if len(v) > 1 {
			return nil, k, false
		}
	}
	return q, "", true
}

func (s *Server) serveIMDS(w http.ResponseWriter, r *http.Request) {
	kind := "unknown"
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "/metadata/identity/oauth2/token":
		kind = "token"
	case "/metadata/instance":
		kind = "instance"
	case "/msi/token":
		kind = "appservice-token"
	}
	i := s.record(Request{Server: "imds", Kind: kind, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()})
	if s.scripted(w, i, &s.imdsFaults, imdsError, "unknown_error",
		map[int]string{404: "not_found", 410: "gone", 429: "too_many_requests"}) {
		return
	}
	status, who := s.answerIMDS(w, r, kind)
	s.setStatus(i, status, who)
}

func (s *Server) answerIMDS(w http.ResponseWriter, r *http.Request, kind string) (int, string) {
	if kind == "appservice-token" {
		return s.appServiceToken(w, r)
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		return imdsError(w, http.StatusBadRequest, "bad_request", "Requests with an X-Forwarded-For header are refused"), ""
	}
	if r.Header.Get("Metadata") != "true" {
		return imdsError(w, http.StatusBadRequest, "bad_request_102", "Required metadata header not specified"), ""
	}
	if r.Method != http.MethodGet {
		return imdsError(w, http.StatusMethodNotAllowed, "method_not_allowed", "only GET is allowed"), ""
	}
	q, dup, ok := strictQuery(r.URL.RawQuery)
	if !ok {
		return imdsError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("duplicate query parameter %q", dup)), ""
	}
	switch kind {
	case "token":
		return s.imdsToken(w, q)
	case "instance":
		return s.instance(w, q), ""
	}
	return imdsError(w, http.StatusNotFound, "not_found", "no such IMDS path"), ""
}

func tokenAPIVersion(v string) bool {
	switch v {
	case "2018-02-01", "2019-08-01", "2019-11-01":
		return true
	}
	return false
}

func (s *Server) imdsToken(w http.ResponseWriter, q url.Values) (int, string) {
	v := q.Get("api-version")
	if v == "" {
		return imdsError(w, http.StatusBadRequest, "invalid_request", "Required query variable 'api-version' is missing"), ""
	}
	if !tokenAPIVersion(v) {
		return imdsError(w, http.StatusBadRequest, "invalid_request", "Invalid api-version "+v), ""
	}
	resource := q.Get("resource")
	if resource == "" {
		return imdsError(w, http.StatusBadRequest, "invalid_request", "Required query variable 'resource' is missing"), ""
	}
	if !knownResource(resource) {
		return imdsError(w, http.StatusBadRequest, "invalid_resource",
			"AADSTS500011: The resource principal named "+resource+" was not found in the tenant"), ""
	}
	id, status, desc := s.selectIdentity(q.Get("client_id"), q.Get("object_id"), q.Get("msi_res_id"))
	if id == nil {
		return imdsError(w, status, "invalid_request", desc), ""
	}
	tok, exp, ttl := s.mintFor(id, resource)
	secs := fmt.Sprint(int(ttl.Round(time.Second).Seconds()))
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token":   tok,
		"refresh_token":  "",
		"client_id":      id.ClientID,
		"expires_in":     secs,
		"expires_on":     fmt.Sprint(exp.Unix()),
		"ext_expires_in": secs,
		"not_before":     fmt.Sprint(time.Now().Add(-5 * time.Minute).Unix()),
		"resource":       resource,
		"token_type":     "Bearer",
	})
	return http.StatusOK, id.ClientID
}

// selectIdentity applies IMDS's rules: at most one selector; none means
// the system identity, or the only user-assigned one.
func (s *Server) selectIdentity(clientID, objectID, resID string) (*Identity, int, string) {
	n := 0
	for _, v := range []string{clientID, objectID, resID} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return nil, http.StatusBadRequest, "Only one of client_id, object_id and msi_res_id may be given"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.users
	if s.system != nil {
		all = append([]*Identity{s.system}, s.users...)
	}
	switch {
	case clientID != "":
		for _, id := range all {
			if strings.EqualFold(id.ClientID, clientID) {
				return id, 0, ""
			}
		}
	case objectID != "":
		for _, id := range all {
			if strings.EqualFold(id.ObjectID, objectID) {
				return id, 0, ""
			}
		}
	case resID != "":
		for _, id := range s.users {
			if strings.EqualFold(id.ResourceID, resID) {
				return id, 0, ""
			}
		}
	case s.system != nil:
		return s.system, 0, ""
	case len(s.users) == 1:
		return s.users[0], 0, ""
	case len(s.users) > 1:
		return nil, http.StatusBadRequest, "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"
	}
	return nil, http.StatusBadRequest, "Identity not found"
}

func (s *Server) mintFor(id *Identity, resource string) (string, time.Time, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	exp := now.Add(s.ttl)
	c := claims{
		Aud: resource, Iss: "https://sts.windows.net/" + s.opts.Tenant + "/",
		Iat: now.Unix(), Nbf: now.Add(-5 * time.Minute).Unix(), Exp: exp.Unix(),
		Oid: id.ObjectID, Sub: id.ObjectID, AppID: id.ClientID, Tid: s.opts.Tenant,
		MIRID: id.ResourceID, IdType: "app", Ver: "1.0",
	}
	tok := mint(c)
	s.tokens[tok] = minted{claims: c, identity: id}
	return tok, time.Unix(c.Exp, 0), s.ttl
}

func instanceAPIVersions() []string {
	return []string{"2021-02-01", "2021-03-01", "2021-05-01", "2023-07-01"}
}

func (s *Server) instance(w http.ResponseWriter, q url.Values) int {
	v := q.Get("api-version")
	ok := false
	for _, known := range instanceAPIVersions() {
		ok = ok || v == known
	}
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error":           "Bad request. api-version was not specified in the request, or is not supported.",
			"newest-versions": instanceAPIVersions(),
		})
		return http.StatusBadRequest
	}
	id := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s",
		s.opts.Subscription, s.opts.ResourceGroup, s.opts.VMName)
	writeJSON(w, http.StatusOK, map[string]any{
		"compute": map[string]string{
			"azEnvironment":     "AzurePublicCloud",
			"location":          "westeurope",
			"name":              s.opts.VMName,
			"resourceGroupName": s.opts.ResourceGroup,
			"resourceId":        id,
			"subscriptionId":    s.opts.Subscription,
			"vmId":              "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
		},
		"network": map[string]any{},
	})
	return http.StatusOK
}

// appServiceToken serves the IDENTITY_ENDPOINT protocol (api-version
// 2019-08-01, X-IDENTITY-HEADER, mi_res_id instead of msi_res_id).
func (s *Server) appServiceToken(w http.ResponseWriter, r *http.Request) (int, string) {
	if s.opts.IdentityHeader == "" {
		return imdsError(w, http.StatusNotFound, "not_found", "no IDENTITY_ENDPOINT on this host"), ""
	}
	if r.Header.Get("X-IDENTITY-HEADER") != s.opts.IdentityHeader {
		return imdsError(w, http.StatusUnauthorized, "unauthorized", "X-IDENTITY-HEADER is missing or wrong"), ""
	}
	q, dup, ok := strictQuery(r.URL.RawQuery)
	if !ok {
		return imdsError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("duplicate query parameter %q", dup)), ""
	}
	if q.Get("api-version") != "2019-08-01" {
		return imdsError(w, http.StatusBadRequest, "invalid_request", "api-version must be 2019-08-01"), ""
	}
	resource := q.Get("resource")
	if !knownResource(resource) {
		return imdsError(w, http.StatusBadRequest, "invalid_resource", "unknown resource "+resource), ""
	}
	id, status, desc := s.selectIdentity(q.Get("client_id"), q.Get("object_id"), q.Get("mi_res_id"))
	if id == nil {
		return imdsError(w, status, "invalid_request", desc), ""
	}
	tok, exp, _ := s.mintFor(id, resource)
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": tok,
		"expires_on":   fmt.Sprint(exp.Unix()),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    id.ClientID,
	})
	return http.StatusOK, id.ClientID
}
