package auth_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob"
)

func TestMSIKeyFetchesKeyThroughIMDSAndARM(t *testing.T) {
	h := newHarness(t, authtest.Options{})
	cred, err := h.newCredential(h.config())
	if err != nil {
		t.Fatal(err)
	}
	sk, ok := cred.(*blob.SharedKey)
	if !ok {
		t.Fatalf("credential is %T, want *blob.SharedKey", cred)
	}
	key, err := sk.Keys.AccountKey(context.Background())
	if err != nil || string(key) != testKey1 {
		t.Fatalf("AccountKey = %d bytes, %v; want key1", len(key), err)
	}
	if sk.Account != testAccount {
		t.Errorf("account %q", sk.Account)
	}

	var tokenReqs, listKeys, instance int
	for _, r := range h.srv.Requests() {
		switch {
		case r.Server == "imds":
			if got := r.Header.Get("Metadata"); got != "true" {
				t.Errorf("IMDS %s request without Metadata: true (got %q)", r.Kind, got)
			}
			if r.Header.Get("Authorization") != "" {
				t.Errorf("IMDS %s request carries an Authorization header", r.Kind)
			}
			q, _ := url.ParseQuery(r.Query)
			switch r.Kind {
			case "token":
				tokenReqs++
				if q.Get("api-version") != "2018-02-01" || q.Get("resource") != "https://management.azure.com/" {
					t.Errorf("token request query %q", r.Query)
				}
			case "instance":
				instance++
			}
		case r.Server == "arm":
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				t.Errorf("ARM %s request without a bearer token", r.Kind)
			}
			if r.Status != 200 {
				t.Errorf("ARM %s answered %d", r.Kind, r.Status)
			}
			if r.Kind == "listKeys" {
				listKeys++
				if r.Method != "POST" || !strings.Contains(r.Path, "/resourceGroups/"+authtest.DefaultResourceGroup+"/") {
					t.Errorf("listKeys %s %s", r.Method, r.Path)
				}
			}
		}
	}
	if tokenReqs != 1 || listKeys != 1 || instance != 1 {
		t.Errorf("IMDS token requests %d, instance %d, ARM listKeys %d; want 1 each", tokenReqs, instance, listKeys)
	}
	if h.refreshCount(auth.RefreshToken) != 1 || h.refreshCount(auth.RefreshKey) != 1 {
		t.Errorf("OnRefresh counts %v", h.refreshes)
	}
}

func TestMSIKeyUsesGivenSubscriptionAndGroupWithoutInstanceMetadata(t *testing.T) {
	h := newHarness(t, authtest.Options{})
	cfg := h.config()
	cfg.Subscription, cfg.ResourceGroup = h.srv.Subscription(), h.srv.ResourceGroup()
	if _, err := h.newCredential(cfg); err != nil {
		t.Fatal(err)
	}
	if n := h.srv.Count("instance"); n != 0 {
		t.Errorf("instance metadata asked %d times although subscription and group were given", n)
	}
}

func TestMSIKeyFindsAccountInAnotherResourceGroup(t *testing.T) {
	h := newHarness(t, authtest.Options{
		PageSize: 1, // make the search follow nextLink
		Accounts: []authtest.Account{
			{Name: "otheraccount1", ResourceGroup: "rg-a", Key1: testKey2, Key2: testKey2},
			{Name: "otheraccount2", ResourceGroup: "rg-b", Key1: testKey2, Key2: testKey2},
			{Name: testAccount, ResourceGroup: "Data-RG", Key1: testKey1, Key2: testKey2},
		},
	})
	var hops []auth.Hop
	cred, err := auth.Diagnose(context.Background(), h.config(), func(hop auth.Hop) { hops = append(hops, hop) })
	if err != nil {
		t.Fatal(err)
	}
	key, _ := cred.(*blob.SharedKey).Keys.AccountKey(context.Background())
	if string(key) != testKey1 {
		t.Fatal("got another account's key")
	}
	found := false
	for _, hop := range hops {
		if hop.Name == "find the account's resource group" && hop.OK && strings.Contains(hop.Detail, "Data-RG") {
			found = true
		}
	}
	if !found {
		t.Errorf("no hop says the account was found in Data-RG: %+v", hops)
	}
	if !strings.Contains(h.logs.String(), "Data-RG") {
		t.Error("the log does not say which resource group was found")
	}
	if n := h.srv.Count("listAccounts"); n != 3 {
		t.Errorf("listed %d pages, want 3 (page size 1)", n)
	}
}

func TestDiagnoseReportsEachHop(t *testing.T) {
	h := newHarness(t, authtest.Options{})
	var names []string
	_, err := auth.Diagnose(context.Background(), h.config(), func(hop auth.Hop) {
		if !hop.OK {
			t.Errorf("hop %s failed: %s", hop.Name, hop.Detail)
		}
		names = append(names, hop.Name)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "IMDS reachable,token for ARM,subscription and resource group,storage account,ARM listKeys"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("hops %s\nwant %s", got, want)
	}
}

func TestMSIKeyRefetchesARMTokenWhenARMRefusesIt(t *testing.T) {
	h := newHarness(t, authtest.Options{})
	cred, err := h.newCredential(h.config())
	if err != nil {
		t.Fatal(err)
	}
	keys := cred.(*blob.SharedKey).Keys
	h.srv.RevokeTokens() // ARM now answers 401 ExpiredAuthenticationToken
	h.srv.SetKeys(testAccount, testKey2, testKey1)
	changed, err := keys.(blob.Refresher).Refresh(context.Background())
	if err != nil || !changed {
		t.Fatalf("Refresh = %v, %v", changed, err)
	}
	key, _ := keys.AccountKey(context.Background())
	if string(key) != testKey2 {
		t.Error("the new key1 is not in use")
	}
	if n := h.srv.Count("token"); n != 2 {
		t.Errorf("%d token requests, want 2 (the first, and one after ARM's 401)", n)
	}
}

func TestKeyRefreshTriesOtherKeyThenGivesUp(t *testing.T) {
	h := newHarness(t, authtest.Options{})
	cfg := h.config()
	// For 1 s after a key change, a refusal is assumed to come from a call
	// signed before it.
	cfg.KeyRefreshInterval = time.Second
	cred, err := h.newCredential(cfg)
	if err != nil {
		t.Fatal(err)
	}
	keys := cred.(*blob.SharedKey).Keys
	ctx := context.Background()
	// The first refusal may list again (the initial listing does not count).
	if changed, err := keys.(blob.Refresher).Refresh(ctx); err != nil || !changed {
		t.Fatalf("first Refresh = %v, %v", changed, err)
	}
	key, _ := keys.AccountKey(ctx)
	if string(key) != testKey2 {
		t.Fatal("after key1 was refused and ARM listed the same keys, key2 should be in use")
	}
	// Once that is over, a refusal of key2 too has nothing left to try:
	// ARM lists the same two keys and both were refused.
	time.Sleep(1200 * time.Millisecond)
	changed, err := keys.(blob.Refresher).Refresh(ctx)
	if changed || !errors.Is(err, auth.ErrSecretRefused) {
		t.Fatalf("second Refresh = %v, %v; want false, ErrSecretRefused", changed, err)
	}
	if n := h.srv.Count("listKeys"); n < 2 {
		t.Errorf("listKeys called %d times: the first refusal did not list the keys again", n)
	}
}
