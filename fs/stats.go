package fs

import (
	"sync/atomic"
)

// counters are the mount's running totals.
type counters struct {
	lookupHits, lookupMisses atomic.Int64 // lookups answered from a listing / by a call
	listHits, listMisses     atomic.Int64 // readdirs answered from the cache / by listing
	listCalls, headCalls     atomic.Int64
	commits, copies          atomic.Int64
	bytesRead, bytesWritten  atomic.Int64
}

// Upload is one file whose written data is not committed yet.
type Upload struct {
	Name     string
	Size     int64 // bytes the file has
	Uploaded int64 // of which already in the service as blocks
}

// Stats describe a mount for metrics and for the user at shutdown.
type Stats struct {
	PendingFiles int      // files with data not yet committed
	PendingBytes int64    // their total size
	Pending      []Upload // per file

	StagedFiles int   // files open for writing
	CachedBytes int64 // bytes held in the staging directory
	CacheLimit  int64

	LookupCacheHits, LookupCacheMisses int64 // names answered from a listing, or by a List call
	ListCacheHits, ListCacheMisses     int64 // readdirs answered from the listing cache, or by listing
	ListCalls, HeadCalls               int64
	Commits, Copies                    int64
	BytesRead, BytesWritten            int64 // through the mount
}

// Stats returns the current totals.
func (mt *Mounted) Stats() Stats {
	m := mt.m
	c := &m.stats
	s := Stats{
		LookupCacheHits: c.lookupHits.Load(), LookupCacheMisses: c.lookupMisses.Load(),
		ListCacheHits: c.listHits.Load(), ListCacheMisses: c.listMisses.Load(),
		ListCalls: c.listCalls.Load(), HeadCalls: c.headCalls.Load(),
		Commits: c.commits.Load(), Copies: c.copies.Load(),
		BytesRead: c.bytesRead.Load(), BytesWritten: c.bytesWritten.Load(),
	}
	if m.stage != nil {
		for _, p := range m.stage.Pending() {
			s.Pending = append(s.Pending, Upload{Name: p.Name, Size: p.Size, Uploaded: p.Uploaded})
			s.PendingBytes += p.Size
		}
		s.PendingFiles = len(s.Pending)
		st := m.stage.Stats()
		s.StagedFiles, s.CachedBytes, s.CacheLimit = st.Files, st.CachedBytes, st.MaxBytes
	}
	return s
}
