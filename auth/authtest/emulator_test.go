package authtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/blobfs/blobfs/auth/authtest"
)

const tokenPath = "/metadata/identity/oauth2/token"

func get(t *testing.T, method, u string, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("answer is not JSON: %s", b)
	}
	return resp.StatusCode, body
}

func token(t *testing.T, s *authtest.Server, resource string) string {
	t.Helper()
	status, body := get(t, "GET", s.IMDSURL()+tokenPath+"?api-version=2018-02-01&resource="+url.QueryEscape(resource), map[string]string{"Metadata": "true"})
	if status != 200 {
		t.Fatalf("token: %d %v", status, body)
	}
	for _, k := range []string{"access_token", "expires_in", "expires_on", "not_before", "resource", "token_type"} {
		if _, ok := body[k].(string); !ok {
			t.Errorf("token answer's %s is not a string: %v", k, body[k])
		}
	}
	return body["access_token"].(string)
}

func TestIMDSIsStrict(t *testing.T) {
	s := authtest.StartT(t, authtest.Options{})
	arm := "resource=" + url.QueryEscape("https://management.azure.com/")
	tests := []struct {
		name   string
		method string
		query  string
		header map[string]string
		path   string
		status int
		code   string
	}{
		{"no Metadata header", "GET", "api-version=2018-02-01&" + arm, nil, tokenPath, 400, "bad_request_102"},
		{"Metadata not true", "GET", "api-version=2018-02-01&" + arm, map[string]string{"Metadata": "yes"}, tokenPath, 400, "bad_request_102"},
		{"X-Forwarded-For", "GET", "api-version=2018-02-01&" + arm, map[string]string{"Metadata": "true", "X-Forwarded-For": "10.0.0.1"}, tokenPath, 400, "bad_request"},
		{"no api-version", "GET", arm, map[string]string{"Metadata": "true"}, tokenPath, 400, "invalid_request"},
		{"api-version twice", "GET", "api-version=2018-02-01&api-version=2018-02-01&" + arm, map[string]string{"Metadata": "true"}, tokenPath, 400, "invalid_request"},
		{"no resource", "GET", "api-version=2018-02-01", map[string]string{"Metadata": "true"}, tokenPath, 400, "invalid_request"},
		{"unknown resource", "GET", "api-version=2018-02-01&resource=https%3A%2F%2Fexample.com%2F", map[string]string{"Metadata": "true"}, tokenPath, 400, "invalid_resource"},
		{"unknown client id", "GET", "api-version=2018-02-01&client_id=nope&" + arm, map[string]string{"Metadata": "true"}, tokenPath, 400, "invalid_request"},
		{"two selectors", "GET", "api-version=2018-02-01&client_id=a&object_id=b&" + arm, map[string]string{"Metadata": "true"}, tokenPath, 400, "invalid_request"},
		{"POST", "POST", "api-version=2018-02-01&" + arm, map[string]string{"Metadata": "true"}, tokenPath, 405, "method_not_allowed"},
		{"instance without api-version", "GET", "", map[string]string{"Metadata": "true"}, "/metadata/instance", 400, ""},
		{"instance without Metadata", "GET", "api-version=2021-02-01", nil, "/metadata/instance", 400, "bad_request_102"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, tt.method, s.IMDSURL()+tt.path+"?"+tt.query, tt.header)
			if status != tt.status {
				t.Errorf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.code != "" && body["error"] != tt.code {
				t.Errorf("error %v, want %s", body["error"], tt.code)
			}
			if _, ok := body["access_token"]; ok {
				t.Error("a refused request got a token")
			}
		})
	}
	if n := s.Count("token"); n != 10 {
		t.Errorf("%d token requests counted, want 10", n)
	}
}

func TestARMIsStrict(t *testing.T) {
	s := authtest.StartT(t, authtest.Options{Accounts: []authtest.Account{{Name: "acct", Key1: "a2V5MQ==", Key2: "a2V5Mg=="}}})
	armTok := token(t, s, "https://management.azure.com/")
	storageTok := token(t, s, "https://storage.azure.com/")
	listKeys := s.ARMURL() + "/subscriptions/" + s.Subscription() + "/resourceGroups/" + s.ResourceGroup() +
		"/providers/Microsoft.Storage/storageAccounts/acct/listKeys"
	tests := []struct {
		name   string
		method string
		url    string
		auth   string
		status int
		code   string
	}{
		{"no token", "POST", listKeys + "?api-version=2023-01-01", "", 401, "AuthenticationFailed"},
		{"not a bearer", "POST", listKeys + "?api-version=2023-01-01", "Basic eDp5", 401, "AuthenticationFailedInvalidHeader"},
		{"forged token", "POST", listKeys + "?api-version=2023-01-01", "Bearer eyJhbGciOiJub25lIn0.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tLyJ9.", 401, "InvalidAuthenticationToken"},
		{"storage token", "POST", listKeys + "?api-version=2023-01-01", "Bearer " + storageTok, 401, "InvalidAuthenticationTokenAudience"},
		{"no api-version", "POST", listKeys, "Bearer " + armTok, 400, "MissingApiVersionParameter"},
		{"GET listKeys", "GET", listKeys + "?api-version=2023-01-01", "Bearer " + armTok, 405, "MethodNotAllowed"},
		{"ok", "POST", listKeys + "?api-version=2023-01-01", "Bearer " + armTok, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.auth != "" {
				h["Authorization"] = tt.auth
			}
			status, body := get(t, tt.method, tt.url, h)
			if status != tt.status {
				t.Errorf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.code != "" {
				e, _ := body["error"].(map[string]any)
				if e["code"] != tt.code || e["message"] == "" {
					t.Errorf("error %v, want code %s", body, tt.code)
				}
			}
		})
	}
	// An expired token is refused as such.
	s.RevokeTokens()
	status, body := get(t, "POST", listKeys+"?api-version=2023-01-01", map[string]string{"Authorization": "Bearer " + armTok})
	if e, _ := body["error"].(map[string]any); status != 401 || e["code"] != "ExpiredAuthenticationToken" {
		t.Errorf("expired token: %d %v", status, body)
	}
}

func TestTokenLifetimeAndRotation(t *testing.T) {
	s := authtest.StartT(t, authtest.Options{TokenTTL: 90 * time.Second,
		Accounts: []authtest.Account{{Name: "acct", Key1: "a2V5MQ==", Key2: "a2V5Mg=="}}})
	status, body := get(t, "GET", s.IMDSURL()+tokenPath+"?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F", map[string]string{"Metadata": "true"})
	if status != 200 || body["expires_in"] != "90" {
		t.Errorf("expires_in %v, want 90", body["expires_in"])
	}
	tok := body["access_token"].(string)
	list := func() []any {
		_, body := get(t, "POST", s.ARMURL()+"/subscriptions/"+s.Subscription()+"/resourceGroups/"+s.ResourceGroup()+
			"/providers/Microsoft.Storage/storageAccounts/acct/listKeys?api-version=2023-01-01", map[string]string{"Authorization": "Bearer " + tok})
		return body["keys"].([]any)
	}
	if k := list()[0].(map[string]any)["value"]; k != "a2V5MQ==" {
		t.Errorf("key1 %v", k)
	}
	s.SetKeys("acct", "bmV3MQ==", "bmV3Mg==")
	if k := list()[1].(map[string]any)["value"]; k != "bmV3Mg==" {
		t.Errorf("key2 after rotation %v", k)
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	if _, err := authtest.Start(authtest.Options{IMDSAddr: "0.0.0.0:0"}); err == nil {
		t.Fatal("listened on all interfaces")
	}
}
