package authtest

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func armError(w http.ResponseWriter, status int, code, msg string) int {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
	return status
}

func armAPIVersion(v string) bool {
	switch v {
	case "2016-12-01", "2019-06-01", "2021-09-01", "2022-09-01", "2023-01-01",
		"2023-05-01", "2024-01-01", "2025-01-01", "2025-06-01":
		return true
	}
	return false
}

// armRoute is a parsed ARM path; segment names are case-insensitive in ARM.
type armRoute struct {
	kind          string
	sub, rg, name string
}

func parseARMPath(p string) armRoute {
	seg := strings.Split(strings.Trim(p, "/"), "/")
	eq := strings.EqualFold
	switch {
	case len(seg) == 5 && eq(seg[0], "subscriptions") && eq(seg[2], "providers") &&
		eq(seg[3], "Microsoft.Storage") && eq(seg[4], "storageAccounts"):
		return armRoute{kind: "listAccounts", sub: seg[1]}
	case len(seg) >= 8 && eq(seg[0], "subscriptions") && eq(seg[2], "resourceGroups") && eq(seg[4], "providers") &&
		eq(seg[5], "Microsoft.Storage") && eq(seg[6], "storageAccounts"):
		r := armRoute{sub: seg[1], rg: seg[3], name: seg[7]}
		switch {
		case len(seg) == 8:
			r.kind = "getAccount"
		case len(seg) == 9 && eq(seg[8], "listKeys"):
			r.kind = "listKeys"
		default:
			r.kind = "unknown"
		}
		return r
	}
	return armRoute{kind: "unknown"}
}

func (s *Server) serveARM(w http.ResponseWriter, r *http.Request) {
	route := parseARMPath(r.URL.Path)
	i := s.record(Request{Server: "arm", Kind: route.kind, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()})
	if s.scripted(w, i, &s.armFaults, armError, "ScriptedFault",
		map[int]string{429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}) {
		return
	}
	status, who := s.answerARM(w, r, route)
	s.setStatus(i, status, who)
}

func (s *Server) answerARM(w http.ResponseWriter, r *http.Request, route armRoute) (int, string) {
	id, status := s.authenticate(w, r)
	if id == nil {
		return status, ""
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return armError(w, http.StatusBadRequest, "InvalidQueryString", "the query string is malformed"), id.ClientID
	}
	switch v := q["api-version"]; {
	case len(v) == 0:
		return armError(w, http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests."), id.ClientID
	case len(v) > 1 || !armAPIVersion(v[0]):
		return armError(w, http.StatusBadRequest, "InvalidApiVersionParameter",
			fmt.Sprintf("The api-version '%s' is invalid.", strings.Join(v, ","))), id.ClientID
	}
	want := map[string]string{"listKeys": http.MethodPost, "getAccount": http.MethodGet, "listAccounts": http.MethodGet}[route.kind]
	if want == "" {
		return armError(w, http.StatusNotFound, "InvalidResourceType", "The resource type could not be found."), id.ClientID
	}
	if r.Method != want {
		return armError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use "+want), id.ClientID
	}
	if !strings.EqualFold(route.sub, s.opts.Subscription) {
		return armError(w, http.StatusNotFound, "SubscriptionNotFound",
			fmt.Sprintf("The subscription '%s' could not be found.", route.sub)), id.ClientID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if route.kind == "listAccounts" {
		if id.DenyRead {
			return s.denied(w, id, "Microsoft.Storage/storageAccounts/read", "/subscriptions/"+route.sub), id.ClientID
		}
		return s.listAccounts(w, r, q), id.ClientID
	}
	if !s.groupExists(route.rg) {
		return armError(w, http.StatusNotFound, "ResourceGroupNotFound",
			fmt.Sprintf("Resource group '%s' could not be found.", route.rg)), id.ClientID
	}
	scope := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/%s", route.sub, route.rg, route.name)
	a := s.account(route.name)
	if route.kind == "listKeys" && id.DenyListKeys {
		return s.denied(w, id, "Microsoft.Storage/storageAccounts/listKeys/action", scope), id.ClientID
	}
	if route.kind == "getAccount" && id.DenyRead {
		return s.denied(w, id, "Microsoft.Storage/storageAccounts/read", scope), id.ClientID
	}
	if a == nil || !strings.EqualFold(a.ResourceGroup, route.rg) {
		return armError(w, http.StatusNotFound, "ResourceNotFound",
			fmt.Sprintf("The Resource 'Microsoft.Storage/storageAccounts/%s' under resource group '%s' was not found.", route.name, route.rg)), id.ClientID
	}
	if route.kind == "listKeys" {
		if r.ContentLength > 0 {
			return armError(w, http.StatusBadRequest, "InvalidRequestContent", "listKeys takes no body"), id.ClientID
		}
		created := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339Nano)
		writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{
			{"keyName": "key1", "value": a.Key1, "permissions": "FULL", "creationTime": created},
			{"keyName": "key2", "value": a.Key2, "permissions": "FULL", "creationTime": created},
		}})
		return http.StatusOK, id.ClientID
	}
	writeJSON(w, http.StatusOK, s.accountJSON(a))
	return http.StatusOK, id.ClientID
}

// authenticate accepts only a token this emulator minted, for ARM's
// audience, within its lifetime; it answers ARM's 401 otherwise.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*Identity, int) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, armError(w, http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return nil, armError(w, http.StatusUnauthorized, "AuthenticationFailedInvalidHeader",
			"Authentication failed. The 'Authorization' header is provided in an invalid format.")
	}
	s.mu.Lock()
	m, known := s.tokens[tok]
	s.mu.Unlock()
	if _, parsed := parse(tok); !known || !parsed {
		return nil, armError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid.")
	}
	aud := strings.TrimSuffix(m.claims.Aud, "/")
	if aud != "https://management.azure.com" && aud != "https://management.core.windows.net" {
		return nil, armError(w, http.StatusUnauthorized, "InvalidAuthenticationTokenAudience",
			fmt.Sprintf("The access token has been obtained for wrong audience or resource '%s'.", m.claims.Aud))
	}
	now := time.Now()
	if now.After(m.claims.expires()) {
		return nil, armError(w, http.StatusUnauthorized, "ExpiredAuthenticationToken",
			"The access token expiry UTC time is earlier than current UTC time.")
	}
	if now.Before(time.Unix(m.claims.Nbf, 0)) {
		return nil, armError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is not yet valid.")
	}
	return m.identity, 0
}

func (s *Server) denied(w http.ResponseWriter, id *Identity, action, scope string) int {
	return armError(w, http.StatusForbidden, "AuthorizationFailed", fmt.Sprintf(
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
		id.ObjectID, id.ObjectID, action, scope))
}

// groupExists: s.mu is held.
func (s *Server) groupExists(rg string) bool {
	if strings.EqualFold(rg, s.opts.ResourceGroup) {
		return true
	}
	for _, a := range s.accounts {
		if strings.EqualFold(a.ResourceGroup, rg) {
			return true
		}
	}
	return false
}

// accountJSON: s.mu is held.
func (s *Server) accountJSON(a *Account) map[string]any {
	allow := !a.SharedKeyDisabled
	return map[string]any{
		"id": fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/%s",
			s.opts.Subscription, a.ResourceGroup, a.Name),
		"name":     a.Name,
		"type":     "Microsoft.Storage/storageAccounts",
		"location": "westeurope",
		"kind":     "StorageV2",
		"sku":      map[string]string{"name": "Standard_LRS", "tier": "Standard"},
		"properties": map[string]any{
			"allowSharedKeyAccess": allow,
			"isHnsEnabled":         false,
			"primaryEndpoints":     map[string]string{"blob": "https://" + a.Name + ".blob.core.windows.net/"},
			"provisioningState":    "Succeeded",
		},
	}
}

// listAccounts pages with $skipToken when Options.PageSize is set; s.mu is held.
func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, q url.Values) int {
	start, _ := strconv.Atoi(q.Get("$skipToken"))
	end := len(s.accounts)
	if s.opts.PageSize > 0 && start+s.opts.PageSize < end {
		end = start + s.opts.PageSize
	}
	page := []map[string]any{}
	for _, a := range s.accounts[min(start, len(s.accounts)):end] {
		page = append(page, s.accountJSON(a))
	}
	body := map[string]any{"value": page}
	if end < len(s.accounts) {
		next := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path,
			RawQuery: url.Values{"api-version": {q.Get("api-version")}, "$skipToken": {strconv.Itoa(end)}}.Encode()}
		body["nextLink"] = next.String()
	}
	writeJSON(w, http.StatusOK, body)
	return http.StatusOK
}
