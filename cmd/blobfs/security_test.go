package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob/blobtest"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/mountpoint"
)

// Issue 8's security checks through the real binary.

// trap is a loopback listener that counts connections. Pointed to by
// HTTP_PROXY and HTTPS_PROXY, it receives any request blobfs would make
// to a non-loopback host (Go never proxies loopback), so a refusal that
// came too late shows as a connection here instead of as traffic leaving
// the machine.
type trap struct {
	ln    net.Listener
	conns atomic.Int64
}

func startTrap(t *testing.T) *trap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trap{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tr.conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tr
}

func (tr *trap) env() []string {
	u := "http://" + tr.ln.Addr().String()
	return []string{"HTTP_PROXY=" + u, "HTTPS_PROXY=" + u, "http_proxy=" + u, "https_proxy=" + u, "NO_PROXY=", "no_proxy="}
}

// Plain http to anything but loopback is refused for the endpoints that
// receive credentials (the blob service gets SharedKey signatures or
// bearer tokens, ARM gets a bearer token), before any connection is made
// to anything: not to the endpoint, not to IMDS or ARM.
//
// IMDS is exempt by design: the real one is plain http on a link-local
// address that never leaves the host (config.checkURL is not strict for
// it), so it is not tested here.
func TestSecurityPlainHTTPRefusedBeforeConnecting(t *testing.T) {
	needFUSE(t)
	w := newWorld(t, worldOptions{})
	tr := startTrap(t)
	cases := []struct {
		name string
		args []string
		flag string
	}{
		{"blob endpoint by address", []string{"--blob-endpoint", "http://10.0.0.1/devstoreaccount1"}, "--blob-endpoint"},
		{"blob endpoint by name", []string{"--blob-endpoint", "http://blobfs-test.invalid/devstoreaccount1"}, "--blob-endpoint"},
		{"blob endpoint in sas mode", []string{"--blob-endpoint", "http://10.0.0.1/devstoreaccount1", "--auth-mode", "sas"}, "--blob-endpoint"},
		{"arm endpoint by address", []string{"--arm-endpoint", "http://10.0.0.1"}, "--arm-endpoint"},
		{"arm endpoint by name", []string{"--arm-endpoint", "http://blobfs-test.invalid"}, "--arm-endpoint"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mp := filepath.Join(w.dir, "mnt"+string(rune('a'+i)))
			if err := os.MkdirAll(mp, 0o755); err != nil {
				t.Fatal(err)
			}
			w.cleanupMount(mp)
			w.emu.ResetRequests()
			before := tr.conns.Load()
			env := append(w.env(tr.env()...), "AZURE_STORAGE_SAS_TOKEN=sv=2021-08-06&sig=notarealsignature")
			_, stderr, code := w.blobfs(env, w.mountArgs(mp, tc.args...)...)
			if code == 0 {
				t.Fatalf("blobfs mount with %v succeeded", tc.args)
			}
			if !strings.Contains(stderr, "https") || !strings.Contains(stderr, tc.flag) {
				t.Errorf("the refusal does not name %s and https:\n%s", tc.flag, stderr)
			}
			if n := tr.conns.Load() - before; n != 0 {
				t.Errorf("%d connections were attempted before the refusal", n)
			}
			if r := w.emu.Requests(); len(r) != 0 {
				t.Errorf("%d requests reached IMDS or ARM before the refusal (first: %s %s)", len(r), r[0].Server, r[0].Kind)
			}
			if _, mounted := mountpoint.MountType(mp); mounted {
				t.Errorf("%s is mounted after the refusal", mp)
			}
		})
	}
}

// seenRequest is what the blob proxy saw of one request.
type seenRequest struct {
	op, uri, auth string
	header        http.Header
}

// Each credential goes only where it belongs, and none shows in a debug
// log or in what blobfs prints, even while 5 % of the blob requests fail
// (reset, lost answers, 5xx, 429, truncated bodies), so that retries and
// failures log their errors: in msi-key mode the ARM token reaches ARM
// only (the blob service sees SharedKey signatures) and IMDS never gets
// an Authorization header; in sas mode the SAS stays in request queries;
// in key mode the key never travels at all.
func TestSecurityCredentialsStayWithTheirEndpoints(t *testing.T) {
	needFUSE(t)
	az := blobtest.StartT(t, blobtest.Options{})
	sas, sig := accountSAS(t, az.Account(), az.Key())
	cases := []struct {
		mode string
		env  []string
	}{
		{"msi-key", nil},
		{"sas", []string{"AZURE_STORAGE_SAS_TOKEN=" + sas}},
		{"key", []string{"AZURE_STORAGE_KEY=" + az.Key()}},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			a := newAuthWorld(t, az, authtest.Options{})
			a.addSecrets(sig)
			proxy := blobtest.StartProxyT(t, az.Endpoint())
			var mu sync.Mutex
			var seen []seenRequest
			proxy.Observe(func(op string, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, seenRequest{op: op, uri: r.RequestURI, auth: r.Header.Get("Authorization"), header: r.Header.Clone()})
			})
			proxy.SetFaults(blobtest.Faults{
				Rate:  0.05,
				Kinds: []blobtest.Fault{blobtest.FaultReset, blobtest.FaultLost, blobtest.Fault500, blobtest.Fault503, blobtest.Fault429, blobtest.FaultTruncate},
				Seed:  3,
			})
			mp := filepath.Join(a.dir, "mnt")
			a.mountWith(mp, tc.env, "--auth-mode", tc.mode, "--blob-endpoint", proxy.Endpoint(), "--retry-attempt-timeout", "5s")

			big := make([]byte, 20<<20)
			for i := range big {
				big[i] = byte(i * 31)
			}
			for i, data := range [][]byte{[]byte("small\n"), big} {
				p := filepath.Join(mp, "f"+string(rune('0'+i)))
				if err := roundTripFile(p, data); err != nil {
					t.Fatalf("%v\nlog:\n%s", err, tail(a.log(), 4000))
				}
			}
			if err := os.Rename(filepath.Join(mp, "f0"), filepath.Join(mp, "moved")); err != nil {
				t.Fatal(err)
			}
			if _, err := os.ReadDir(mp); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(mp, "moved")); err != nil {
				t.Fatal(err)
			}
			if total := sumInjected(proxy.Injected()); total == 0 {
				t.Logf("no fault was injected this run (%d requests)", proxy.Total())
			}

			tokens := a.emu.Tokens()
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 {
				t.Fatal("the proxy saw no request")
			}
			for _, r := range seen {
				switch tc.mode {
				case "msi-key", "key":
					if !strings.HasPrefix(r.auth, "SharedKey ") {
						t.Errorf("%s reached the blob service with Authorization %.12q, want a SharedKey signature", r.op, r.auth)
					}
				case "sas":
					if r.auth != "" {
						t.Errorf("%s carried an Authorization header in sas mode (%.12q)", r.op, r.auth)
					}
					if !strings.Contains(r.uri, "sig=") {
						t.Errorf("%s carried no SAS", r.op)
					}
				}
				for _, tok := range tokens {
					if strings.Contains(r.uri, tok) || strings.Contains(strings.Join(flatten(r.header), "\n"), tok) {
						t.Errorf("%s sent a token minted by IMDS to the blob service", r.op)
					}
				}
				if strings.Contains(r.uri, az.Key()) || strings.Contains(strings.Join(flatten(r.header), "\n"), az.Key()) {
					t.Errorf("%s sent the account key itself", r.op)
				}
			}

			reqs := a.emu.Requests()
			listKeys := 0
			for _, r := range reqs {
				switch r.Server {
				case "imds":
					if v := r.Header.Get("Authorization"); v != "" {
						t.Errorf("IMDS %s request carried an Authorization header", r.Kind)
					}
				case "arm":
					if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
						t.Errorf("ARM %s request without a bearer token", r.Kind)
					}
					listKeys += boolInt(r.Kind == "listKeys")
				}
			}
			if tc.mode == "msi-key" && listKeys == 0 {
				t.Errorf("msi-key mode never called listKeys: the check of the ARM token proves nothing")
			}
			if tc.mode != "msi-key" && len(reqs) != 0 {
				t.Errorf("%s mode sent %d requests to IMDS or ARM", tc.mode, len(reqs))
			}
			// The debug log and output are searched for the keys, every
			// token and the SAS signature by newAuthWorld's cleanup.
		})
	}
}

func flatten(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}

func sumInjected(m map[blobtest.Fault]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
