package metrics

import (
	"strconv"

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
	LookupHits, LookupMisses int64 // names answered from a cached listing, or by a call
	ListHits, ListMisses     int64 // directory reads answered from the cache, or by listing
	PendingFiles             int64
	PendingBytes             int64
	CachedBytes, CacheLimit  int64 // staging directory use and bound
	ReadBytes, WrittenBytes  int64 // through the mount
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
		r.NewCounterFuncVec("blobfs_cache_hits_total", "Lookups and directory reads answered from the cache, by cache.", "cache", func() map[string]float64 {
			st := fsStats()
			return map[string]float64{"lookup": float64(st.LookupHits), "listing": float64(st.ListHits)}
		})
		r.NewCounterFuncVec("blobfs_cache_misses_total", "Lookups and directory reads that had to ask the service, by cache.", "cache", func() map[string]float64 {
			st := fsStats()
			return map[string]float64{"lookup": float64(st.LookupMisses), "listing": float64(st.ListMisses)}
		})
		r.NewGaugeFunc("blobfs_upload_pending_files", "Files written but not yet uploaded.", func() float64 { return float64(fsStats().PendingFiles) })
		r.NewGaugeFunc("blobfs_upload_pending_bytes", "Size of the files written but not yet uploaded.", func() float64 { return float64(fsStats().PendingBytes) })
		r.NewGaugeFunc("blobfs_cache_used_bytes", "Bytes held in the staging directory.", func() float64 { return float64(fsStats().CachedBytes) })
		r.NewGaugeFunc("blobfs_cache_limit_bytes", "Most bytes the staging directory may hold (--cache-size).", func() float64 { return float64(fsStats().CacheLimit) })
		r.NewCounterFunc("blobfs_fuse_read_bytes_total", "Bytes read through the mount.", func() float64 { return float64(fsStats().ReadBytes) })
		r.NewCounterFunc("blobfs_fuse_written_bytes_total", "Bytes written through the mount.", func() float64 { return float64(fsStats().WrittenBytes) })
	}
	return s
}

var _ blob.Observer = (*Set)(nil)

// ObserveCall implements blob.Observer.
func (s *Set) ObserveCall(c blob.Call) {
	s.calls.Inc(c.Op, strconv.Itoa(c.Status))
	if c.Sent > 0 {
		s.sent.Add(float64(c.Sent), c.Op)
	}
	if c.Received > 0 {
		s.received.Add(float64(c.Received), c.Op)
	}
	s.latency.Observe(c.Duration.Seconds(), c.Op)
	if c.Retry {
		s.retries.Inc(c.Op)
	}
}

// OnRefresh counts a credential refresh; it is auth.Config.OnRefresh.
func (s *Set) OnRefresh(kind string) { s.refreshes.Inc(kind) }
