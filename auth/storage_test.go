package auth_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
)

// statusLog records every status storage answered, to prove that no
// request was refused even when the refusal was recovered from.
type statusLog struct {
	mu     sync.Mutex
	counts map[int]int
}

func (s *statusLog) ObserveCall(c blob.Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts = map[int]int{}
	}
	s.counts[c.Status]++
}

func (s *statusLog) count(status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[status]
}

// newContainer makes a container on az whose client logs into h's
// debug-level log, searched for secrets at the end of the test.
func newContainer(t *testing.T, h *harness, az *blobtest.Azurite, cred blob.Credential, obs blob.Observer) *blob.Container {
	t.Helper()
	tr := blob.DefaultTransport()
	tr.TLSClientConfig = az.TLSConfig()
	opts := blob.Options{Observer: obs, Transport: tr, Log: h.log}
	c, err := blob.NewClient(az.Endpoint(), cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	ct := c.Container("authtest")
	if err := ct.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ct
}

// roundTrip writes a blob and reads it back.
func roundTrip(ctx context.Context, ct *blob.Container, name string) error {
	want := []byte("content of " + name)
	if _, err := ct.Upload(ctx, name, want, blob.PutOptions{}); err != nil {
		return err
	}
	rc, _, err := ct.Download(ctx, name, 0, -1, blob.Conditions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: read %q, wrote %q", name, got, want)
	}
	return nil
}

// A mount doing 1,000 operations asks IMDS and ARM once each, in both
// managed-identity modes.
func TestThousandOperationsAskIMDSAndARMOnce(t *testing.T) {
	tests := []struct {
		mode     string
		oauth    bool
		listKeys int
	}{
		{auth.ModeMSIKey, false, 1},
		{auth.ModeMSI, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			az := blobtest.StartT(t, blobtest.Options{OAuth: tt.oauth})
			h := newHarness(t, authtest.Options{})
			cfg := h.config()
			cfg.Mode = tt.mode
			cred, err := h.newCredential(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ct := newContainer(t, h, az, cred.(blob.Credential), nil)
			ctx := context.Background()
			if _, err := ct.Upload(ctx, "f", []byte("x"), blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 1000; i++ {
				if _, err := ct.GetProperties(ctx, "f"); err != nil {
					t.Fatalf("operation %d: %v", i, err)
				}
			}
			c := h.srv.Counts()
			t.Logf("emulator requests for 1,000 operations: %v", c)
			if c["token"] != 1 || c["listKeys"] != tt.listKeys {
				t.Errorf("IMDS tokens %d, listKeys %d; want 1 and %d", c["token"], c["listKeys"], tt.listKeys)
			}
		})
	}
}

// msi mode: tokens living 3 s are renewed before they expire while
// operations run, and storage never refuses one.
func TestBearerTokenRenewedBeforeExpiryDuringMount(t *testing.T) {
	az := blobtest.StartT(t, blobtest.Options{OAuth: true})
	h := newHarness(t, authtest.Options{TokenTTL: 3 * time.Second})
	cfg := h.config()
	cfg.Mode = auth.ModeMSI
	cred, err := h.newCredential(cfg)
	if err != nil {
		t.Fatal(err)
	}
	obs := &statusLog{}
	ct := newContainer(t, h, az, cred.(blob.Credential), obs)
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	ops := 0
	for h.srv.Count("token") < 4 { // three renewals
		if time.Now().After(deadline) {
			t.Fatalf("only %d tokens fetched in 60 s of operations", h.srv.Count("token"))
		}
		if err := roundTrip(ctx, ct, fmt.Sprintf("blob-%d", ops%10)); err != nil {
			t.Fatalf("operation %d failed: %v", ops, err)
		}
		ops++
		time.Sleep(20 * time.Millisecond)
	}
	if n := obs.count(http.StatusForbidden); n != 0 {
		t.Errorf("storage refused %d requests: a token was renewed after it failed, not before", n)
	}
	t.Logf("%d operations, %d token fetches, no refusal", ops, h.srv.Count("token"))
}

// msi-key mode: the account's keys are rotated while the mount lives
// (Azurite restarted with new keys, ARM listing them); reads and writes
// carry on, the keys being listed again once.
func TestKeyRotationMidMount(t *testing.T) {
	tests := []struct {
		name string
		// azurite is the new AZURITE_ACCOUNTS; arm the keys ARM lists then
		// (nil: unchanged, ARM lagging behind).
		azurite func(k1, k2 string) string
		arm     func(k1, k2 string) []string
	}{
		{
			name:    "both keys regenerated, ARM lists them",
			azurite: func(k1, k2 string) string { return testAccount + ":" + k1 + ":" + k2 },
			arm:     func(k1, k2 string) []string { return []string{k1, k2} },
		},
		{
			name:    "key1 regenerated, ARM lagging, key2 still valid",
			azurite: func(k1, _ string) string { return testAccount + ":" + k1 + ":" + testKey2 },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			az := blobtest.StartT(t, blobtest.Options{Dir: t.TempDir()})
			h := newHarness(t, authtest.Options{})
			cfg := h.config()
			// Long enough that all eight calls refused at once count as one
			// rotation even on a loaded machine.
			cfg.KeyRefreshInterval = 5 * time.Second
			cred, err := h.newCredential(cfg)
			if err != nil {
				t.Fatal(err)
			}
			obs := &statusLog{}
			ct := newContainer(t, h, az, cred.(blob.Credential), obs)
			ctx := context.Background()
			for i := 0; i < 4; i++ {
				if err := roundTrip(ctx, ct, fmt.Sprintf("before-%d", i)); err != nil {
					t.Fatal(err)
				}
			}

			k1, k2 := authtest.RandomKey(), authtest.RandomKey()
			h.secrets = append(h.secrets, k1, k2)
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			t0 := time.Now()
			if err := az.Restart(rctx, tt.azurite(k1, k2)); err != nil {
				t.Fatal(err)
			}
			t.Logf("Azurite restarted with new keys in %v", time.Since(t0).Round(time.Millisecond))
			t0 = time.Now()
			if tt.arm != nil {
				keys := tt.arm(k1, k2)
				h.srv.SetKeys(testAccount, keys[0], keys[1])
			}

			// Eight concurrent calls hit the rotated key at once.
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rc, _, err := ct.Download(ctx, fmt.Sprintf("before-%d", i%4), 0, -1, blob.Conditions{})
					if err == nil {
						_, err = io.Copy(io.Discard, rc)
						rc.Close()
					}
					if err == nil {
						err = roundTrip(ctx, ct, fmt.Sprintf("after-%d", i))
					}
					errs <- err
				}()
			}
			wg.Wait()
			t.Logf("8 concurrent calls across the rotation took %v", time.Since(t0).Round(time.Millisecond))
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("operation after rotation: %v", err)
				}
			}
			if obs.count(http.StatusForbidden) == 0 {
				t.Error("storage never refused the old key: the rotation did not happen")
			}
			if n := h.srv.Count("listKeys"); n != 2 {
				t.Errorf("listKeys called %d times, want 2 (mount, rotation)", n)
			}
		})
	}
}
