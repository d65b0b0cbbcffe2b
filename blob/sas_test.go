package blob_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
	"github.com/sirupsen/logrus"
)

// accountSAS makes an account SAS for the blob service, signed with key.
func accountSAS(t testing.TB, account, key string) string {
	t.Helper()
	tok, _, err := blobtest.AccountSAS(account, key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// With a SAS, every operation works, Copy included: its source URL needs
// the SAS too, as the request's own does not authorize the source.
func TestSASCredential(t *testing.T) {
	ctx := testContext(t)
	az := shared.Get(t)
	c, err := blob.NewClient(az.Endpoint(), blob.NewSAS(accountSAS(t, az.Account(), az.Key())), blob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ct := c.Container("sas")
	if err := ct.Create(ctx); err != nil {
		t.Fatal(err)
	}
	data := []byte("sas content")
	if _, err := ct.Upload(ctx, "src file", data, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.Copy(ctx, blob.CopyRequest{Dst: "dst file", Src: "src file"}); err != nil {
		t.Fatalf("copy with a SAS: %v", err)
	}
	rc, _, err := ct.Download(ctx, "dst file", 0, -1, blob.Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("copied %q", got)
	}
	if page, err := ct.List(ctx, blob.ListOptions{}); err != nil || len(page.Blobs) != 2 {
		t.Errorf("list with a SAS: %v %v", page, err)
	}
	if p, err := ct.GetProperties(ctx, "dst file"); err != nil || strings.Contains(p.CopySource, "sig=") {
		t.Errorf("copy source carries the SAS: %+v %v", p, err)
	}
}

// Secrets never reach errors or logs, at any level, whatever fails.
func TestNoSecretsInErrorsOrLogs(t *testing.T) {
	ctx := testContext(t)
	az := shared.Get(t)
	px := blobtest.StartProxyT(t, az.Endpoint())
	sas := accountSAS(t, az.Account(), az.Key())
	sig := url.Values{}
	if q, err := url.ParseQuery(sas); err == nil {
		sig = q
	}
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetLevel(logrus.TraceLevel)
	retry := blob.RetryPolicy{MaxAttempts: 3, Base: time.Millisecond, AttemptTimeout: 300 * time.Millisecond}
	creds := map[string]blob.Credential{
		"sas":        blob.NewSAS(sas),
		"shared key": &blob.SharedKey{Account: az.Account(), Keys: blob.StaticKey(az.Key())},
		"wrong key":  &blob.SharedKey{Account: az.Account(), Keys: blob.StaticKey(base64.StdEncoding.EncodeToString([]byte("wrong key, 32 bytes long........")))},
	}
	setup, err := blob.NewClient(az.Endpoint(), creds["shared key"], blob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := setup.Container("secrets").Create(ctx); err != nil {
		t.Fatal(err)
	}
	for name, cred := range creds {
		c, err := blob.NewClient(px.Endpoint(), cred, blob.Options{Log: log, Retry: retry})
		if err != nil {
			t.Fatal(err)
		}
		ct := c.Container("secrets")
		var errs []error
		_, err = ct.Upload(ctx, "f", []byte("x"), blob.PutOptions{})
		errs = append(errs, err)
		for _, fault := range []blobtest.Fault{blobtest.FaultReset, blobtest.FaultStall, blobtest.Fault500} {
			px.SetFaults(blobtest.Faults{Rate: 1, Kinds: []blobtest.Fault{fault}})
			_, err := ct.GetProperties(ctx, "f")
			errs = append(errs, err)
			_, err = ct.Copy(ctx, blob.CopyRequest{Dst: "g", Src: "f"})
			errs = append(errs, err)
		}
		px.SetFaults(blobtest.Faults{})
		for _, err := range errs {
			if err == nil {
				continue
			}
			if s := err.Error(); strings.Contains(s, sig.Get("sig")) || strings.Contains(s, az.Key()) || strings.Contains(s, "sig=") {
				t.Errorf("%s: error shows a secret: %s", name, s)
			}
		}
		if name != "wrong key" && errs[0] != nil {
			t.Errorf("%s: upload: %v", name, errs[0])
		}
	}
	out := logs.String()
	if logs.Len() == 0 {
		t.Fatal("nothing was logged: the test shows nothing")
	}
	for _, secret := range []string{sig.Get("sig"), url.QueryEscape(sig.Get("sig")), az.Key(), "sig="} {
		if strings.Contains(out, secret) {
			t.Errorf("logs show a secret (%.8s…)", secret)
		}
	}
}
