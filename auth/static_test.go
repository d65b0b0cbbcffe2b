package auth_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
)

// accountSAS signs an account SAS for Azurite's development account, the
// way the portal's "Shared access signature" blade does.
func accountSAS(t *testing.T, permissions string, expiry time.Time) string {
	t.Helper()
	v := url.Values{
		"sv":  {"2020-12-06"},
		"ss":  {"b"},
		"srt": {"sco"},
		"sp":  {permissions},
		"se":  {expiry.UTC().Format(time.RFC3339)},
		"spr": {"https,http"},
	}
	toSign := blobtest.DevAccount + "\n" + v.Get("sp") + "\n" + v.Get("ss") + "\n" + v.Get("srt") + "\n" +
		"\n" + v.Get("se") + "\n" + "\n" + v.Get("spr") + "\n" + v.Get("sv") + "\n" + "\n"
	sig, err := blob.Sign([]byte(blobtest.DevKey), toSign)
	if err != nil {
		t.Fatal(err)
	}
	v.Set("sig", sig)
	return v.Encode()
}

// key and sas modes against the real service: a good secret works, given
// directly or in a file, and talks to neither IMDS nor ARM.
func TestStaticSecretsAgainstStorage(t *testing.T) {
	az := blobtest.StartT(t, blobtest.Options{})
	h := newHarness(t, authtest.Options{})
	sas := accountSAS(t, "rwdlac", time.Now().Add(time.Hour))
	sasFile := filepath.Join(t.TempDir(), "sas")
	if err := os.WriteFile(sasFile, []byte("?"+sas+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q, _ := url.ParseQuery(sas)
	h.secrets = append(h.secrets, q.Get("sig"), url.QueryEscape(q.Get("sig")))
	tests := []struct {
		name string
		cfg  auth.Config
	}{
		{"key", auth.Config{Mode: auth.ModeKey, AccountKey: blobtest.DevKey}},
		{"sas", auth.Config{Mode: auth.ModeSAS, SASToken: sas}},
		{"sas file", auth.Config{Mode: auth.ModeSAS, SASFile: sasFile}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Account, tt.cfg.Log = testAccount, h.log
			cred, err := auth.NewCredential(context.Background(), tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			c, err := blob.NewClient(az.Endpoint(), cred, blob.Options{Log: h.log})
			if err != nil {
				t.Fatal(err)
			}
			ct := c.Container("static" + string(rune('a'+i)))
			if err := ct.Create(context.Background()); err != nil {
				t.Fatal(auth.Explain(tt.cfg, err))
			}
			if err := roundTrip(context.Background(), ct, "f"); err != nil {
				t.Fatal(auth.Explain(tt.cfg, err))
			}
		})
	}
	if n := len(h.srv.Requests()); n != 0 {
		t.Errorf("key and sas modes sent %d requests to IMDS or ARM", n)
	}

	// A SAS without write permission is refused by storage, and Explain
	// points at its permissions.
	cfg := auth.Config{Mode: auth.ModeSAS, Account: testAccount, SASToken: accountSAS(t, "rl", time.Now().Add(time.Hour)), Log: h.log}
	q, _ = url.ParseQuery(cfg.SASToken)
	h.secrets = append(h.secrets, q.Get("sig"))
	cred, err := auth.NewCredential(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := blob.NewClient(az.Endpoint(), cred, blob.Options{Log: h.log})
	_, err = c.Container("statica").Upload(context.Background(), "g", []byte("x"), blob.PutOptions{})
	err = auth.Explain(cfg, err)
	t.Log(err)
	h.assertNoSecrets(err.Error())
	if !errors.Is(err, auth.ErrSecretRefused) {
		t.Errorf("read-only SAS writing: %v", err)
	}
}
