package auth_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob"
)

// IMDS answering 410 (updating), then 429 with Retry-After (throttled),
// then dropping the connection, 404 and 500, then a token: the credential
// is still had.
func TestIMDSTransientFailuresAreRiddenOut(t *testing.T) {
	h := newHarness(t, authtest.Options{})
	h.srv.FailIMDS(
		authtest.Fault{Status: http.StatusGone},
		authtest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second},
		authtest.Fault{Drop: true},
		authtest.Fault{Status: http.StatusNotFound},
		authtest.Fault{Status: http.StatusInternalServerError},
	)
	cfg := h.config()
	cfg.Subscription, cfg.ResourceGroup = h.srv.Subscription(), h.srv.ResourceGroup()
	if _, err := h.newCredential(cfg); err != nil {
		t.Fatal(err)
	}
	var statuses []int
	for _, r := range h.srv.Requests() {
		if r.Kind == "token" {
			statuses = append(statuses, r.Status)
		}
	}
	if got, want := fmt.Sprint(statuses), "[410 429 0 404 500 200]"; got != want {
		t.Errorf("IMDS token answers %s, want %s", got, want)
	}
	// The wait after the 429 is the one it asked for, as the log says.
	if !strings.Contains(h.logs.String(), "retry_after=1s") {
		t.Error("the 429's Retry-After was not honoured")
	}
}

// refusingUntil is a transport that counts refused connections and brings
// IMDS up after the n-th, as a VM whose IMDS route comes up late.
type refusingUntil struct {
	n       int32
	refused atomic.Int32
	up      func() error
	next    http.RoundTripper
}

func (r *refusingUntil) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	var op *net.OpError
	if err != nil && asOpError(err, &op) {
		if r.refused.Add(1) == r.n {
			if uerr := r.up(); uerr != nil {
				return nil, uerr
			}
		}
	}
	return resp, err
}

func asOpError(err error, op **net.OpError) bool {
	for err != nil {
		if o, ok := err.(*net.OpError); ok {
			*op = o
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestIMDSConnectionRefusedAtBootIsRiddenOut(t *testing.T) {
	h := newHarness(t, authtest.Options{})
	h.srv.StopIMDS()
	tr := &refusingUntil{n: 3, up: h.srv.StartIMDS, next: http.DefaultTransport.(*http.Transport).Clone()}
	cfg := h.config()
	cfg.Transport = tr
	if _, err := h.newCredential(cfg); err != nil {
		t.Fatal(err)
	}
	if n := tr.refused.Load(); n != 3 {
		t.Errorf("%d refused connections, want 3", n)
	}
	if h.srv.Count("token") != 1 || h.srv.Count("listKeys") != 1 {
		t.Errorf("requests after IMDS came up: %v", h.srv.Counts())
	}
}

func TestUserAssignedIdentitySelectors(t *testing.T) {
	const clientID = "cccccccc-0000-0000-0000-000000000001"
	tests := []struct {
		name  string
		set   func(cfg *auth.Config, id authtest.Identity)
		param string
	}{
		{"client id", func(cfg *auth.Config, id authtest.Identity) { cfg.ClientID = id.ClientID }, "client_id"},
		{"object id", func(cfg *auth.Config, id authtest.Identity) { cfg.ObjectID = id.ObjectID }, "object_id"},
		{"resource id", func(cfg *auth.Config, id authtest.Identity) { cfg.IdentityResourceID = id.ResourceID }, "msi_res_id"},
		{"AZURE_CLIENT_ID", func(cfg *auth.Config, id authtest.Identity) {
			*cfg = cfg.WithEnv(func(k string) string {
				if k == "AZURE_CLIENT_ID" {
					return id.ClientID
				}
				return ""
			})
		}, "client_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, authtest.Options{UserAssigned: []authtest.Identity{
				{ClientID: "cccccccc-0000-0000-0000-000000000002"}, {ClientID: clientID}}})
			var id authtest.Identity
			for _, u := range h.srv.UserAssigned() {
				if u.ClientID == clientID {
					id = u
				}
			}
			cfg := h.config()
			tt.set(&cfg, id)
			if _, err := h.newCredential(cfg); err != nil {
				t.Fatal(err)
			}
			for _, r := range h.srv.Requests() {
				if r.Kind != "token" {
					continue
				}
				q, _ := url.ParseQuery(r.Query)
				if q.Get(tt.param) == "" {
					t.Errorf("token request %q lacks %s", r.Query, tt.param)
				}
				if r.Identity != clientID {
					t.Errorf("token minted for %q, want %s", r.Identity, clientID)
				}
			}
			for _, r := range h.srv.Requests() {
				if r.Server == "arm" && r.Identity != clientID {
					t.Errorf("ARM %s called as %q, want %s", r.Kind, r.Identity, clientID)
				}
			}
		})
	}
}

func TestIdentityEndpointVariant(t *testing.T) {
	const header = "x-identity-header-secret-value"
	h := newHarness(t, authtest.Options{IdentityHeader: header,
		UserAssigned: []authtest.Identity{{ClientID: "dddddddd-0000-0000-0000-000000000001"}}})
	ids := h.srv.UserAssigned()
	cfg := h.config().WithEnv(func(k string) string {
		return map[string]string{
			"IDENTITY_ENDPOINT": h.srv.IdentityEndpoint(),
			"IDENTITY_HEADER":   header,
		}[k]
	})
	cfg.IdentityResourceID = ids[0].ResourceID
	cfg.Subscription, cfg.ResourceGroup = h.srv.Subscription(), h.srv.ResourceGroup()
	var hops []string
	if _, err := auth.Diagnose(context.Background(), cfg, func(hop auth.Hop) { hops = append(hops, hop.Name) }); err != nil {
		t.Fatal(err)
	}
	if hops[0] != "IDENTITY_ENDPOINT reachable" {
		t.Errorf("hops %v", hops)
	}
	if n := h.srv.Count("token"); n != 0 {
		t.Errorf("%d IMDS token requests although IDENTITY_ENDPOINT is set", n)
	}
	var seen int
	for _, r := range h.srv.Requests() {
		if r.Kind != "appservice-token" {
			continue
		}
		seen++
		q, _ := url.ParseQuery(r.Query)
		if r.Header.Get("X-IDENTITY-HEADER") != header || q.Get("api-version") != "2019-08-01" ||
			q.Get("mi_res_id") != ids[0].ResourceID || r.Status != 200 {
			t.Errorf("IDENTITY_ENDPOINT request %q status %d", r.Query, r.Status)
		}
	}
	if seen != 1 {
		t.Errorf("%d IDENTITY_ENDPOINT requests, want 1", seen)
	}

	// Without instance metadata, the subscription must be given.
	cfg.Subscription, cfg.ResourceGroup = "", ""
	_, err := auth.NewCredential(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "--subscription") {
		t.Errorf("err = %v, want one asking for --subscription", err)
	}
}

func TestMSIModeGetsStorageToken(t *testing.T) {
	h := newHarness(t, authtest.Options{})
	cfg := h.config()
	cfg.Mode = auth.ModeMSI
	cred, err := h.newCredential(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := cred.(*blob.Bearer)
	if !ok {
		t.Fatalf("credential %T, want *blob.Bearer", cred)
	}
	tok, err := b.Tokens.Token(context.Background())
	if err != nil || !strings.Contains(strings.Join(h.srv.Tokens(), " "), tok) {
		t.Fatalf("token not one the emulator minted (%v)", err)
	}
	reqs := h.srv.Requests()
	if len(reqs) != 1 || !strings.Contains(reqs[0].Query, url.QueryEscape("https://storage.azure.com/")) {
		t.Errorf("requests %+v, want one token request for storage", reqs)
	}
	if h.srv.Count("listKeys") != 0 {
		t.Error("msi mode listed keys")
	}
}
