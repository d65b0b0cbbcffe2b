package metrics

import (
	"strconv"
	"time"

	"github.com/blobfs/blobfs/blob"
)

// Set is blobfs's metrics: what the blob client observes, credential
// refreshes, and the filesystem's own numbers read at scrape time.
type Set struct {
	Registry *Registry

	calls     *CounterVec
	sent      *CounterVec
	received  *CounterVec
	latency   *HistogramVec
	retries   *CounterVec
	refreshes *CounterVec
}

// FSStats are the filesystem's numbers, read at scrape time.
type FSStats struct {
	CacheHits, CacheMisses int64
	PendingFiles           int64
	PendingBytes           int64
}

var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// New registers blobfs's metrics in a fresh registry. fsStats, when not
// nil, is called at every scrape.
func New(version string, fsStats func() FSStats) *Set {
	r := NewRegistry()
	s := &Set{
		Registry:  r,
		calls:     r.NewCounter("blobfs_rest_requests_total", "REST calls to the blob service, by operation and HTTP status (0: no answer).", "op", "status"),
		sent:      r.NewCounter("blobfs_rest_sent_bytes_total", "Body bytes sent to the blob service (uploads).", "op"),
		received:  r.NewCounter("blobfs_rest_received_bytes_total", "Body bytes received from the blob service (downloads).", "op"),
		latency:   r.NewHistogram("blobfs_rest_request_duration_seconds", "Time to the response headers of each REST attempt.", latencyBuckets, "op"),
		retries:   r.NewCounter("blobfs_rest_retries_total", "REST attempts that were retries of a failed attempt.", "op"),
		refreshes: r.NewCounter("blobfs_credential_refreshes_total", "Credentials fetched (tokens from IMDS, keys from ARM), by kind.", "kind"),
	}
	bi := r.NewCounter("blobfs_build_info", "Always 1; the version label says which blobfs runs.", "version")
	bi.Add(1, version)
	if fsStats != nil {
		r.NewCounterFunc("blobfs_cache_hits_total", "Reads served from the local cache.", func() float64 { return float64(fsStats().CacheHits) })
		r.NewCounterFunc("blobfs_cache_misses_total", "Reads that had to download.", func() float64 { return float64(fsStats().CacheMisses) })
		r.NewGaugeFunc("blobfs_upload_pending_files", "Files written but not yet uploaded.", func() float64 { return float64(fsStats().PendingFiles) })
		r.NewGaugeFunc("blobfs_upload_pending_bytes", "Bytes written but not yet uploaded.", func() float64 { return float64(fsStats().PendingBytes) })
	}
	return s
}

var _ blob.Observer = (*Set)(nil)

// ObserveCall implements blob.Observer.
func (s *Set) ObserveCall(op string, status int, d time.Duration, sent, received int64, retry bool) {
	s.calls.Inc(op, strconv.Itoa(status))
	if sent > 0 {
		s.sent.Add(float64(sent), op)
	}
	if received > 0 {
		s.received.Add(float64(received), op)
	}
	s.latency.Observe(d.Seconds(), op)
	if retry {
		s.retries.Inc(op)
	}
}

// OnRefresh counts a credential refresh; it is auth.Config.OnRefresh.
func (s *Set) OnRefresh(kind string) { s.refreshes.Inc(kind) }
