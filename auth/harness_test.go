package auth_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob/blobtest"
)

// Keys the emulated ARM lists unless a test says otherwise: key1 is
// Azurite's development key, so that credentials built from the emulator
// work against blobtest's Azurite.
const (
	testAccount = blobtest.DevAccount
	testKey1    = blobtest.DevKey
	testKey2    = "a2V5MmtleTJrZXkya2V5MmtleTJrZXkya2V5MmtleTJrZXkya2V5MmtleTJrZXkya2V5Mg=="
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is an emulator plus a Config pointing at it, logging at debug
// level into a buffer that is searched for secrets when the test ends.
type harness struct {
	t       *testing.T
	srv     *authtest.Server
	logs    *syncBuffer
	log     *logrus.Logger
	secrets []string // besides the emulator's tokens and keys

	mu        sync.Mutex
	refreshes map[string]int
}

func newHarness(t *testing.T, opts authtest.Options) *harness {
	t.Helper()
	if opts.Accounts == nil {
		opts.Accounts = []authtest.Account{{Name: testAccount, Key1: testKey1, Key2: testKey2}}
	}
	h := &harness{t: t, srv: authtest.StartT(t, opts), logs: &syncBuffer{}, refreshes: map[string]int{}}
	h.log = logrus.New()
	h.log.SetOutput(h.logs)
	h.log.SetLevel(logrus.DebugLevel)
	for _, a := range opts.Accounts {
		h.secrets = append(h.secrets, a.Key1, a.Key2)
	}
	if opts.IdentityHeader != "" {
		h.secrets = append(h.secrets, opts.IdentityHeader)
	}
	t.Cleanup(func() { h.assertNoSecrets(h.logs.String()) })
	return h
}

// config points at the emulator with a retry schedule short enough for tests.
func (h *harness) config() auth.Config {
	return auth.Config{
		Mode:         auth.ModeMSIKey,
		Account:      testAccount,
		IMDSEndpoint: h.srv.IMDSURL(),
		ARMEndpoint:  h.srv.ARMURL(),
		Retry: auth.Retry{Base: 5 * time.Millisecond, MaxWait: 100 * time.Millisecond,
			Budget: 3 * time.Second, AttemptTimeout: 5 * time.Second},
		KeyRefreshInterval: 200 * time.Millisecond,
		Log:                h.log,
		OnRefresh: func(kind string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.refreshes[kind]++
		},
	}
}

func (h *harness) refreshCount(kind string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refreshes[kind]
}

// assertNoSecrets fails if any key, token or header value occurs in s.
func (h *harness) assertNoSecrets(s string) {
	h.t.Helper()
	for _, secret := range append(h.secrets, h.srv.Tokens()...) {
		if secret == "" {
			continue
		}
		if strings.Contains(s, secret) {
			h.t.Errorf("a secret (%d chars, starting %.4q) appears in logs or errors", len(secret), secret)
		}
		// A token's signature-less payload is the secret part too.
		if i := strings.IndexByte(secret, '.'); i > 0 && strings.Contains(s, secret[i+1:]) && len(secret[i+1:]) > 16 {
			h.t.Errorf("a token's payload appears in logs or errors")
		}
	}
}

func (h *harness) newCredential(cfg auth.Config) (any, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cred, err := auth.NewCredential(ctx, cfg)
	if err != nil {
		h.assertNoSecrets(err.Error())
	}
	return cred, err
}
