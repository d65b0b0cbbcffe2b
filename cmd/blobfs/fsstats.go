package main

import (
	"github.com/blobfs/blobfs/cmd/blobfs/internal/control"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/metrics"
	"github.com/blobfs/blobfs/fs"
)

// mountStats reads the filesystem's numbers for metrics and blobfs stats.
func mountStats(m *fs.Mounted) ([]control.Upload, metrics.FSStats) {
	st := m.Stats()
	ups := make([]control.Upload, 0, len(st.Pending))
	for _, p := range st.Pending {
		ups = append(ups, control.Upload{Name: p.Name, Size: p.Size, Uploaded: p.Uploaded})
	}
	return ups, metrics.FSStats{
		LookupHits: st.LookupCacheHits, LookupMisses: st.LookupCacheMisses,
		ListHits: st.ListCacheHits, ListMisses: st.ListCacheMisses,
		PendingFiles: int64(st.PendingFiles), PendingBytes: st.PendingBytes,
		CachedBytes: st.CachedBytes, CacheLimit: st.CacheLimit,
		ReadBytes: st.BytesRead, WrittenBytes: st.BytesWritten,
	}
}
