package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob"
)

func TestSecretNeverPrints(t *testing.T) {
	const value = "s3cr3t-value-that-must-not-print"
	s := auth.NewSecret(value)
	type exported struct{ S auth.Secret }
	type unexported struct{ s auth.Secret }
	values := []any{s, &s, exported{s}, &exported{s}, unexported{s}, &unexported{s}, []auth.Secret{s}, map[string]auth.Secret{"k": s}}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
				t.Errorf("Sprintf(%s, %T) = %s", verb, v, out)
			}
		}
		b, _ := json.Marshal(v)
		if strings.Contains(string(b), value) {
			t.Errorf("json of %T = %s", v, b)
		}
	}
	var buf strings.Builder
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetLevel(logrus.DebugLevel)
	l.WithField("secret", s).WithField("struct", unexported{s}).Debug("x")
	l.SetFormatter(&logrus.JSONFormatter{})
	l.WithField("secret", s).Debug("x")
	if strings.Contains(buf.String(), value) {
		t.Errorf("logrus printed the secret: %s", buf.String())
	}
	if s.Reveal() != value {
		t.Error("Reveal lost the value")
	}
}

// Every auth step is logged at debug level (endpoint, identity, status,
// expiry), and no key, token or identity header reaches the log, the
// errors or a printed credential.
func TestDebugLogsCarryNoSecret(t *testing.T) {
	const header = "identity-header-value-0123456789"
	h := newHarness(t, authtest.Options{IdentityHeader: header, TokenTTL: time.Hour})
	ctx := context.Background()

	cfg := h.config()
	cred, err := h.newCredential(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.RevokeTokens()
	k1, k2 := authtest.RandomKey(), authtest.RandomKey()
	h.secrets = append(h.secrets, k1, k2)
	h.srv.SetKeys(testAccount, k1, k2)
	if _, err := cred.(*blob.SharedKey).Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	msi := h.config().WithEnv(func(k string) string {
		return map[string]string{"IDENTITY_ENDPOINT": h.srv.IdentityEndpoint(), "IDENTITY_HEADER": header}[k]
	})
	msi.Mode = auth.ModeMSI
	bearer, err := h.newCredential(msi)
	if err != nil {
		t.Fatal(err)
	}
	bad := h.config()
	bad.ClientID = "ffffffff-0000-0000-0000-000000000000"
	_, errBad := h.newCredential(bad)

	for _, v := range []any{cred, bearer} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			h.assertNoSecrets(fmt.Sprintf(verb, v))
		}
	}
	h.assertNoSecrets(errBad.Error())
	logs := h.logs.String()
	for _, want := range []string{"level=debug", "auth: requesting token", "auth: got token", "expires=", "status=401",
		"auth: listed account keys", "endpoint=\"" + h.srv.IMDSURL() + "\"", "identity=\"system-assigned identity\""} {
		if !strings.Contains(logs, want) {
			t.Errorf("debug log lacks %q", want)
		}
	}
}
