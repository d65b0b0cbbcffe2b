package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
)

func TestExpositionRoundTrip(t *testing.T) {
	s := New("v1.2.3", func() FSStats {
		return FSStats{LookupHits: 5, LookupMisses: 2, ListHits: 7, PendingFiles: 1, PendingBytes: 4096, WrittenBytes: 99}
	})
	s.ObserveCall(blob.Call{Op: "PutBlock", Status: 201, Duration: 30 * time.Millisecond, Sent: 8 << 20})
	s.ObserveCall(blob.Call{Op: "PutBlock", Status: 503, Duration: 2 * time.Second, Sent: 8 << 20})
	s.ObserveCall(blob.Call{Op: "PutBlock", Status: 201, Duration: 40 * time.Millisecond, Sent: 8 << 20, Retry: true})
	s.ObserveCall(blob.Call{Op: "GetBlob", Status: 206, Duration: 100 * time.Second, Received: 1234})
	s.ObserveCall(blob.Call{Op: `we"ird\op`, Duration: time.Millisecond})
	s.OnRefresh("arm-keys")

	srv := httptest.NewServer(s.Registry.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	ss, err := ParseText(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	tests := []struct {
		name  string
		match []string
		want  float64
	}{
		{"blobfs_rest_requests_total", []string{"op", "PutBlock", "status", "201"}, 2},
		{"blobfs_rest_requests_total", []string{"op", "PutBlock", "status", "503"}, 1},
		{"blobfs_rest_requests_total", []string{"op", `we"ird\op`, "status", "0"}, 1},
		{"blobfs_rest_sent_bytes_total", []string{"op", "PutBlock"}, 3 * 8 << 20},
		{"blobfs_rest_received_bytes_total", []string{"op", "GetBlob"}, 1234},
		{"blobfs_rest_retries_total", []string{"op", "PutBlock"}, 1},
		{"blobfs_rest_request_duration_seconds_count", []string{"op", "PutBlock"}, 3},
		{"blobfs_rest_request_duration_seconds_bucket", []string{"op", "PutBlock", "le", "0.05"}, 2},
		{"blobfs_rest_request_duration_seconds_bucket", []string{"op", "PutBlock", "le", "2.5"}, 3},
		{"blobfs_rest_request_duration_seconds_bucket", []string{"op", "GetBlob", "le", "60"}, 0},
		{"blobfs_rest_request_duration_seconds_bucket", []string{"op", "GetBlob", "le", "+Inf"}, 1},
		{"blobfs_rest_request_duration_seconds_sum", []string{"op", "GetBlob"}, 100},
		{"blobfs_credential_refreshes_total", []string{"kind", "arm-keys"}, 1},
		{"blobfs_cache_hits_total", []string{"cache", "lookup"}, 5},
		{"blobfs_cache_hits_total", []string{"cache", "listing"}, 7},
		{"blobfs_cache_misses_total", []string{"cache", "lookup"}, 2},
		{"blobfs_fuse_written_bytes_total", nil, 99},
		{"blobfs_upload_pending_files", nil, 1},
		{"blobfs_upload_pending_bytes", nil, 4096},
		{"blobfs_build_info", []string{"version", "v1.2.3"}, 1},
	}
	for _, tt := range tests {
		if got := ss.Sum(tt.name, tt.match...); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.match, got, tt.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, text string }{
		{"no type", "foo 1\n"},
		{"bad value", "# TYPE foo gauge\nfoo one\n"},
		{"unterminated label", "# TYPE foo gauge\nfoo{a=\"b} 1\n"},
		{"bad type", "# TYPE foo thing\nfoo 1\n"},
	}
	for _, tt := range tests {
		if _, err := ParseText(strings.NewReader(tt.text)); err == nil {
			t.Errorf("%s: parsed %q", tt.name, tt.text)
		}
	}
}
