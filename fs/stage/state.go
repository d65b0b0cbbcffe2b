package stage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// state says what may become of a staged file's content: whether the next
// mount's Recover may publish it. The journal records it (journal.State)
// before the outcome that set it is reported to the caller, so that a
// crash at any point never publishes what a program was told had failed.
//
//	           write                     Commit                 success
//	clean ──────────────▶ writing ──────────────▶ closing ─────────────▶ clean
//	                        ▲  ▲                     │ failure reported
//	                        │  └──── write ◀─ failed ◀┘ (and Failed)
//	                        │ truncate below the failed write
//	                     incomplete ◀── a write that may have changed the
//	                                    cache file failed (sticky)
//	any ── Removed / Discard ──▶ removed (sticky: never leaves it)
//
// At Close and in Recover: clean is dropped, closing is committed (by
// Recover; Close keeps it staged for that), writing is kept in lost+found
// (a program that never closed it may have written a prefix), failed and
// incomplete go to lost+found at once, with the reason (an incomplete one
// whose write failed for lack of space keeps only its journal there: the
// data is a cut-off copy, and keeping it would keep the cache disk full),
// removed is dropped.
type state uint8

const (
	stClean      state = iota // nothing to publish: committed, or unchanged
	stWriting                 // changed since the last commit; none asked since
	stClosing                 // a commit of this content was asked: Recover may publish it
	stFailed                  // its commit failed and the caller was told: never published
	stIncomplete              // a write failed half-way: the content is not what the program wrote
	stRemoved                 // the name was removed: dropped, nothing kept
)

var stateNames = [...]string{"clean", "writing", "closing", "failed", "incomplete", "removed"}

func (s state) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

func parseState(s string) (state, bool) {
	for i, n := range stateNames {
		if n == s {
			return state(i), true
		}
	}
	return 0, false
}

// setState is the one place the state changes (incomplete is cleared by
// clearIncomplete only): removed is final, and incomplete stays until a
// truncate cuts the failed write away.
func (f *File) setState(s state) {
	switch f.state {
	case stRemoved:
		return
	case stIncomplete:
		if s != stRemoved {
			return
		}
	}
	f.state = s
	if s != stFailed && s != stIncomplete && s != stRemoved {
		f.reason = ""
	}
}

// markIncompleteLocked records, durably, that the write at off failed
// after it may have changed the cache file: what the file holds from off
// on is not what the program meant, so it is never published. Called
// from WriteAt, which settles the space it releases.
func (f *File) markIncompleteLocked(off int64, cause error) {
	if f.state == stRemoved {
		return
	}
	if f.state != stIncomplete || off < f.incompleteAt {
		f.incompleteAt = off
	}
	f.state = stIncomplete
	f.reason = cause.Error()
	if errors.Is(cause, syscall.ENOSPC) || errors.Is(cause, syscall.EDQUOT) {
		f.noSpace = true
		f.dropDataLocked()
	}
	if err := f.writeJournalSync(true); err != nil {
		// The journal then still says writing (a write's markDirty
		// came first), which Recover does not publish either.
		f.m.log.WithError(err).WithField("blob", f.name).Error("cannot record a failed write in the staging journal")
	}
}

// dropDataLocked gives back the disk space, and the cache's count, of a
// file whose write failed for lack of space: the disk is full, and what
// the file holds is never published. Without this the failed file kept
// the cache disk full, and every other file's writes failed, until its
// program closed it, or (before the journal knew) until the next mount.
// From then on the file refuses reads and writes with an IncompleteError
// (EIO): its data is gone. A truncate to 0 makes it usable again.
// Called from WriteAt, which settles the space with f.accounted.
func (f *File) dropDataLocked() {
	var freed int64
	for i := range f.blocks {
		b := &f.blocks[i]
		if b.state == blkLocal {
			freed += blen(i, f.size, f.bs)
		}
		b.state, b.spans, b.frag = blkZero, nil, false
		b.ver = f.nextVer()
	}
	if err := unix.Fallocate(int(f.data.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, max(f.size, 1)); err != nil {
		f.m.log.WithError(err).Warn("cannot punch the data of a failed file out of its cache file")
	}
	f.accounted -= freed
	f.dropped = true
}

// droppedErr is what a dropped file answers reads and writes with.
func (f *File) droppedErr() error {
	return &IncompleteError{Name: f.name, Offset: f.incompleteAt, Reason: f.reason + "; its staged data was dropped to free the cache"}
}

// clearIncomplete: a truncate to size cut away the failed write, so the
// content is again exactly what the program made it (for a file whose
// data was dropped, only a truncate to 0 does).
func (f *File) clearIncomplete(size int64) {
	if f.state == stIncomplete && size <= f.incompleteAt && (!f.dropped || size == 0) {
		f.state, f.reason, f.noSpace, f.dropped = stWriting, "", false, false
		if !f.dirty {
			f.state = stClean
		}
	}
}

// markFailedLocked records, durably, that a commit of this content failed
// and the caller was told: Recover must not publish it later.
func (f *File) markFailedLocked(cause error) {
	if !f.dirty || (f.state != stClosing && f.state != stWriting && f.state != stFailed) {
		return
	}
	f.setState(stFailed)
	f.reason = cause.Error()
	if err := f.writeJournalSync(true); err != nil {
		f.m.log.WithError(err).WithField("blob", f.name).Error("cannot record a failed commit in the staging journal; the next mount may upload it")
	}
}

// State is what may become of the file's content, one of "clean",
// "writing", "closing", "failed", "incomplete" or "removed" (see state):
// the fs layer asks it instead of keeping its own flags, e.g. not to
// retry at the last release a commit whose failure the program was told.
func (f *File) State() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state.String()
}

// Failed records that the program was told err about this file's
// content by something other than Commit (which records its own
// failures): what is staged now is never published by recovery, and goes
// to lost+found when the file is closed. A later write or Commit starts
// over. The journal is on disk when Failed returns.
func (f *File) Failed(err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !f.dirty {
		return nil
	}
	if f.state != stClosing && f.state != stWriting && f.state != stFailed {
		return nil
	}
	f.setState(stFailed)
	f.reason = err.Error()
	return f.writeJournalSync(true)
}

// Removed says the file's name was removed (unlink, or a rename over it):
// its content must never be published. Readers may go on reading it until
// Close, which drops it, as do Manager.Close and the next mount's Recover
// (a crash right after Removed returns included: the journal is on disk).
// Commit fails with ErrRemoved from now on. A commit already under way is
// not stopped (nor are its uploads): whether it lands is the caller's
// ordering (the fs layer lets it land, then deletes the blob).
func (f *File) Removed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orphan = true
	if f.closed || f.state == stRemoved {
		return nil
	}
	f.setState(stRemoved)
	if err := f.writeJournalSync(true); err != nil {
		return fmt.Errorf("stage: recording that %q was removed: %w", f.name, err)
	}
	return nil
}

// keepAside moves a closed file that must not be published (failed or
// incomplete) to lost+found now, with its journal saying why, and logs
// where. The data of a file whose write failed for lack of space is
// removed first: it is a cut-off copy, and keeping it would keep the disk
// full for every other file.
func (f *File) keepAside() {
	j := f.journal()
	log := f.m.log.WithFields(map[string]any{"blob": f.name, "state": f.state.String(), "reason": f.reason})
	if f.state == stIncomplete && f.noSpace {
		os.Remove(dataPath(f.m.root, f.id))
		j.DataDropped = true
	}
	path, err := f.m.moveToLostFound(f.id, j)
	if err != nil {
		log.WithError(err).Errorf("cannot move a staged file that must not be uploaded to %s; it stays at %s, and the next mount moves it", f.m.LostFound(), dataPath(f.m.root, f.id))
		return
	}
	if j.DataDropped {
		log.Warnf("not uploading a file whose write failed for lack of space in the cache; its data was dropped, the record is %s.json", path)
		return
	}
	log.Warnf("not uploading a file the program was told had failed; its data is kept at %s", path)
}

// Kept is a staged file whose content is not in the service and will not
// be put there by this mount: in lost+found, or left in the cache
// directory for the next mount's Recover.
type Kept struct {
	Name string // the blob it was meant for
	// Path is the data file; "" when it was dropped (DataDropped).
	Path        string
	Size        int64
	State       string // "failed", "incomplete", "writing" (never closed), "closing" (the next mount commits it), "damaged"
	Reason      string // why, when known
	InLostFound bool   // false: waiting in the cache directory for the next mount
	DataDropped bool
	Updated     time.Time
}

// Kept lists lost+found and the staged files that no open File holds:
// what `blobfs stats` should show besides Pending.
func (m *Manager) Kept() ([]Kept, error) {
	open := map[string]bool{}
	for _, f := range m.openFiles() {
		open[f.id] = true
	}
	for _, id := range m.spareIDs() {
		open[id] = true
	}
	var out []Kept
	ents, err := os.ReadDir(m.root)
	if err != nil {
		return nil, fmt.Errorf("stage: reading the cache directory: %w", err)
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || open[id] {
			continue
		}
		k := keptEntry(journalPath(m.root, id), dataPath(m.root, id))
		if k.State == stClean.String() || k.State == stRemoved.String() {
			continue // dropped by the next Recover
		}
		out = append(out, k)
	}
	lf, err := os.ReadDir(m.LostFound())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return out, fmt.Errorf("stage: reading %s: %w", m.LostFound(), err)
	}
	for _, e := range lf {
		base, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		k := keptEntry(filepath.Join(m.LostFound(), e.Name()), filepath.Join(m.LostFound(), base))
		k.InLostFound = true
		out = append(out, k)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Updated.Before(out[b].Updated) })
	return out, nil
}

func keptEntry(jpath, data string) Kept {
	k := Kept{Path: data}
	if st, err := os.Stat(data); err == nil {
		k.Size = st.Size()
	} else {
		k.Path = ""
	}
	j, err := readJournal(jpath)
	if err != nil {
		k.State, k.Reason = "damaged", err.Error()
		return k
	}
	k.Name, k.Reason, k.Updated, k.DataDropped = j.Name, j.Reason, j.Updated, j.DataDropped
	k.State = j.state().String()
	if k.DataDropped {
		k.Path, k.Size = "", 0
	}
	return k
}
