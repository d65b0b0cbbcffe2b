package blobtest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestOperation(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		header         map[string]string
		want           string
	}{
		{"PUT", "/a/c?restype=container", nil, "CreateContainer"},
		{"HEAD", "/a/c?restype=container", nil, "GetContainerProperties"},
		{"GET", "/a/c?restype=container&comp=list&prefix=x", nil, "ListBlobs"},
		{"GET", "/a/c/b", nil, "GetBlob"},
		{"HEAD", "/a/c/b", nil, "GetBlobProperties"},
		{"PUT", "/a/c/b", nil, "PutBlob"},
		{"PUT", "/a/c/b", map[string]string{"x-ms-copy-source": "http://x/a/c/s"}, "CopyBlob"},
		{"PUT", "/a/c/b?comp=block&blockid=QQ%3D%3D", nil, "PutBlock"},
		{"PUT", "/a/c/b?comp=blocklist", nil, "PutBlockList"},
		{"GET", "/a/c/b?comp=blocklist", nil, "GetBlockList"},
		{"PUT", "/a/c/b?comp=metadata", nil, "SetBlobMetadata"},
		{"PUT", "/a/c/b?comp=properties", nil, "SetBlobProperties"},
		{"DELETE", "/a/c/b", nil, "DeleteBlob"},
		{"PUT", "/a/c/b?comp=lease", nil, "LeaseBlob"},
	} {
		r, err := http.NewRequest(tc.method, "http://127.0.0.1"+tc.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		if got := Operation(r); got != tc.want {
			t.Errorf("%s %s = %s, want %s", tc.method, tc.target, got, tc.want)
		}
	}
}

func TestProxyTargetsLoopbackOnly(t *testing.T) {
	for _, target := range []string{"http://10.0.0.1:10000/acct", "https://127.0.0.1:1/acct", "http://example.com/acct", "http://169.254.169.254/x"} {
		if p, err := StartProxy(target); err == nil {
			p.Close()
			t.Errorf("proxy started in front of %s", target)
		}
	}
}

// The proxy forwards to Azurite, counts by operation and bytes, and its
// outage refuses requests until it is lifted.
func TestProxyCountsAndOutage(t *testing.T) {
	az := StartT(t, Options{})
	p := StartProxyT(t, az.Endpoint())
	if !strings.HasSuffix(p.Endpoint(), "/"+az.Account()) || !strings.HasPrefix(p.Endpoint(), "http://127.0.0.1:") {
		t.Fatalf("endpoint %s", p.Endpoint())
	}
	// Unsigned requests are enough to count: Azurite refuses them.
	get := func() (*http.Response, error) { return http.Get(p.Endpoint() + "/c/b") }
	resp, err := get()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 400 || !strings.HasPrefix(resp.Header.Get("Server"), "Azurite") {
		t.Errorf("forwarded answer: %d %v", resp.StatusCode, resp.Header)
	}
	if c := p.Counts(); c["GetBlob"] != 1 {
		t.Errorf("counts %v", c)
	}
	if _, out := p.Bytes(); out["GetBlob"] != int64(len(body)) {
		t.Errorf("bytes out %v, want %d", out, len(body))
	}
	p.Outage(true)
	if _, err := get(); err == nil {
		t.Errorf("request succeeded during an outage")
	}
	p.Outage(false)
	if _, err := get(); err != nil {
		t.Errorf("after the outage: %v", err)
	}
	p.ResetCounts()
	if n := p.Total(); n != 0 {
		t.Errorf("after reset: %d", n)
	}
}
