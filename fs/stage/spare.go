package stage

import "os"

// A spare is the emptied cache and journal files of a committed file,
// kept open for the next Open instead of being closed and unlinked.
// Creating and removing the two files was most of the staging's own CPU
// for a small file: while 4 KiB files were created through the mount,
// openat, unlinkat and close of cache files took a sixth of the daemon's
// CPU, where emptying a pair is two ftruncates.
//
// An empty pair is also what a crash may leave behind: Recover drops an
// empty journal beside an empty cache file. Only files that never sent a
// Put Block are recycled, because block IDs are made from the file's id:
// an id reused for another blob must not name blocks an earlier use of
// it left in the service.
type spare struct {
	id      string
	data    *os.File
	journal *os.File
}

// maxSpares bounds the pairs kept: enough for a few files created at once
// whose releases overtake the next creates.
const maxSpares = 8

// takeSpare returns a spare pair, if there is one.
func (m *Manager) takeSpare() (spare, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.spares)
	if n == 0 {
		return spare{}, false
	}
	s := m.spares[n-1]
	m.spares = m.spares[:n-1]
	return s, true
}

// recycle empties f's files and keeps them as a spare; false leaves them
// to the caller to close and remove. Called by close once f is clean,
// closed and without workers.
func (m *Manager) recycle(f *File) bool {
	if !f.jClean || f.sentBlocks || f.jlog.f == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sparesClosed || len(m.spares) >= maxSpares {
		return false
	}
	// The cache file first: until the journal is emptied too it says the
	// file is committed, and Recover drops the pair either way.
	if f.data.Truncate(0) != nil || f.jlog.f.Truncate(0) != nil {
		return false
	}
	m.spares = append(m.spares, spare{id: f.id, data: f.data, journal: f.jlog.f})
	return true
}

// spareIDs are the ids of the spare pairs, which Recover must leave alone.
func (m *Manager) spareIDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, len(m.spares))
	for i, s := range m.spares {
		ids[i] = s.id
	}
	return ids
}

// closeSpares closes and removes the spare pairs, and makes recycle
// refuse from now on.
func (m *Manager) closeSpares() {
	m.mu.Lock()
	spares := m.spares
	m.spares, m.sparesClosed = nil, true
	m.mu.Unlock()
	for _, s := range spares {
		s.data.Close()
		s.journal.Close()
		m.removeStaged(s.id)
	}
}
