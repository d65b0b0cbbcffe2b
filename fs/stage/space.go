package stage

import (
	"context"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// reserve takes n bytes of cache space, waiting for uploads to free room
// when the cache is full: clean (uploaded) blocks are dropped, least
// recently written first; dirty ones are uploaded so that they become
// clean. It gives up with ErrNoSpace only when nothing is left to upload
// or drop.
func (m *Manager) reserve(ctx context.Context, n int64) error {
	if m.opts.MaxBytes > 0 && n > m.opts.MaxBytes {
		return fmt.Errorf("stage: %d bytes at once: %w", n, ErrNoSpace)
	}
	rc := m.opts.ReadCache
	for {
		var cached int64
		if rc != nil {
			cached = rc.Used() // without m.mu: the cache takes its own lock
		}
		m.mu.Lock()
		if m.opts.MaxBytes <= 0 || m.used+n+cached <= m.opts.MaxBytes {
			m.used += n
			m.mu.Unlock()
			return nil
		}
		need, ch := m.used+n+cached-m.opts.MaxBytes, m.changed
		m.mu.Unlock()
		// The read cache's data is a copy of the service's: it goes
		// first, before uploaded blocks of files still open.
		if cached > 0 && rc.Evict(need) > 0 {
			continue
		}
		freed, pending := m.makeRoom(need)
		if freed > 0 {
			continue
		}
		if !pending {
			return fmt.Errorf("stage: %d bytes more: %w", n, ErrNoSpace)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("stage: waiting for room in the cache: %w", ctx.Err())
		}
	}
}

// settle replaces a reservation by what was actually used (negative:
// freed).
func (m *Manager) settle(reserved, used int64) {
	if reserved == used {
		return
	}
	m.mu.Lock()
	m.used += used - reserved
	m.mu.Unlock()
	if used < reserved {
		m.notify()
	}
}

type candidate struct {
	f       *File
	i       int
	lastUse int64
}

// makeRoom frees at least need bytes if it can, by evicting clean blocks,
// and starts uploads of dirty ones. pending says uploads are under way, so
// waiting is worthwhile.
//
// Blocks with gaps come last, both for upload and eviction: a write the
// kernel sent out of order may still land in one, and it could not be
// merged into an evicted block. They are touched only when nothing else
// can free room and nothing is under way.
func (m *Manager) makeRoom(need int64) (freed int64, pending bool) {
	var clean, gappyClean []candidate
	var dirty, gappyDirty []candidate
	for _, f := range m.openFiles() {
		f.mu.Lock()
		if f.closed || f.appendOnly {
			// An append blob's file uploads nothing before its commit.
			f.mu.Unlock()
			continue
		}
		// Evicted blocks of one file must all belong to one name's list.
		canEvict := f.upName == "" || f.upName == f.name
		// The last block is never evicted: appends change it.
		for i := 0; i < len(f.blocks)-1; i++ {
			b := &f.blocks[i]
			if b.state != blkLocal {
				continue
			}
			c := candidate{f, i, b.lastUse}
			full := b.complete(f.bs)
			switch {
			case f.inflight[i] || b.queued:
				pending = true
			case f.uploaded(i) && canEvict && full:
				clean = append(clean, c)
			case f.uploaded(i) && canEvict:
				gappyClean = append(gappyClean, c)
			case f.uploaded(i):
			case full:
				dirty = append(dirty, c)
			default:
				gappyDirty = append(gappyDirty, c)
			}
		}
		if f.workers > 0 {
			pending = true
		}
		f.mu.Unlock()
	}
	if freed = evictLRU(clean, need); freed > 0 {
		return freed, pending
	}
	if scheduleAll(dirty) {
		return 0, true
	}
	if pending {
		return 0, true
	}
	if scheduleAll(gappyDirty) {
		return 0, true
	}
	return evictLRU(gappyClean, need), false
}

func scheduleAll(cs []candidate) bool {
	for _, c := range cs {
		c.f.mu.Lock()
		if !c.f.closed && c.i < len(c.f.blocks) {
			c.f.schedule(c.i)
		}
		c.f.mu.Unlock()
	}
	return len(cs) > 0
}

// evictLRU evicts the least recently written of cs until need bytes are
// free.
func evictLRU(cs []candidate, need int64) (freed int64) {
	sort.Slice(cs, func(a, b int) bool { return cs[a].lastUse < cs[b].lastUse })
	victims := map[*File][]int{}
	var total int64
	for _, c := range cs {
		if total >= need {
			break
		}
		victims[c.f] = append(victims[c.f], c.i)
		total += c.f.bs
	}
	for f, is := range victims {
		freed += f.evict(is)
	}
	return freed
}

// evict drops clean blocks from the cache file, once the journal says
// where they are (uploaded as this file's blocks).
func (f *File) evict(is []int) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || (f.upName != "" && f.upName != f.name) {
		return 0
	}
	var ok []int
	for _, i := range is {
		if i < len(f.blocks)-1 && f.blocks[i].state == blkLocal && !f.inflight[i] && f.uploaded(i) {
			ok = append(ok, i)
		}
	}
	if len(ok) == 0 {
		return 0
	}
	saved := make([]block, len(ok))
	for k, i := range ok {
		saved[k] = f.blocks[i]
		f.blocks[i].state = blkEvicted
	}
	oldUp := f.upName
	f.upName = f.name
	if err := f.writeJournal(); err != nil {
		for k, i := range ok {
			f.blocks[i] = saved[k]
		}
		f.upName = oldUp
		f.m.log.WithError(err).Error("cannot record evicted blocks in the journal; keeping them")
		return 0
	}
	var freed int64
	for _, i := range ok {
		n := blen(i, f.size, f.bs)
		if err := unix.Fallocate(int(f.data.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(i)*f.bs, n); err != nil {
			// The journal already calls it evicted; the bytes just stay
			// on disk, counted or not, until the file is closed.
			f.m.log.WithError(err).Warn("cannot punch an uploaded block out of its cache file")
		}
		freed += n
	}
	f.accounted -= freed
	f.m.settle(freed, 0)
	return freed
}
