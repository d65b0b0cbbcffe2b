package stage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/blob"
)

// Recovered reports one staged file found by Recover.
type Recovered struct {
	Name string // the blob it was meant for
	Size int64
	// SavedAs is where the data went: Name when it was committed, a
	// conflict name when the blob had changed meanwhile, or a local path
	// (under lost+found) when it could not be uploaded at all or its
	// program had not closed it (Err is then ErrNotClosed).
	SavedAs string
	// Err is set when the data is still staged (a transient failure: the
	// next Recover tries again) or went to lost+found.
	Err error
}

// Recover finishes the uploads a crashed daemon left behind in the cache
// directory. Call it once at mount, before Open: it commits every staged
// file with changes whose program had closed or fsynced it (a commit was
// under way), conditionally on the blob being what the file was based on;
// if it changed meanwhile, the staged version is saved under ConflictName,
// and if even the base's unchanged parts are gone, the cache file goes to
// lost+found. A file still being written when the daemon stopped is not
// committed (it may be incomplete): it goes to lost+found, reported with
// ErrNotClosed. Committed data is removed from the cache only after the
// service confirmed it; nothing else is removed.
func (m *Manager) Recover(ctx context.Context) ([]Recovered, error) {
	entries, err := os.ReadDir(m.root)
	if err != nil {
		return nil, fmt.Errorf("stage: reading the cache directory: %w", err)
	}
	open := map[string]bool{}
	for _, f := range m.openFiles() {
		open[f.id] = true
	}
	for _, id := range m.spareIDs() {
		open[id] = true
	}
	var out []Recovered
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || open[id] {
			continue
		}
		if r, ok := m.recoverOne(ctx, id); ok {
			out = append(out, r)
		}
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	// Data files whose journal never got written hold nothing acknowledged,
	// and half-written journal rewrites were superseded by the rename.
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json.tmp") {
			os.Remove(filepath.Join(m.root, e.Name()))
		}
		if id, ok := strings.CutSuffix(e.Name(), ".data"); ok && !open[id] {
			if _, err := os.Stat(journalPath(m.root, id)); errors.Is(err, os.ErrNotExist) {
				os.Remove(dataPath(m.root, id))
			}
		}
	}
	return out, nil
}

func (m *Manager) recoverOne(ctx context.Context, id string) (Recovered, bool) {
	log := m.log.WithField("journal", journalPath(m.root, id))
	j, err := readJournal(journalPath(m.root, id))
	if err != nil && !errors.Is(err, os.ErrNotExist) && emptyFile(dataPath(m.root, id)) {
		// The first journal is written before anything: one cut short
		// with nothing staged is a file whose Open never returned.
		m.removeStaged(id)
		log.WithError(err).Debug("removed the journal of a staged file that never got going")
		return Recovered{}, false
	}
	if err != nil {
		path, lerr := m.moveToLostFound(id, &journal{ID: id, Name: "damaged", State: "damaged", Reason: err.Error()})
		if lerr != nil {
			path = journalPath(m.root, id)
		}
		log.WithError(err).Error("unreadable staging journal")
		return Recovered{SavedAs: path, Err: err}, true
	}
	r := Recovered{Name: j.Name}
	switch j.state() {
	case stClean:
		// Committed (or saved aside) before the crash.
		m.removeStaged(id)
		return Recovered{}, false
	case stRemoved:
		m.removeStaged(id)
		log.WithField("blob", j.Name).Info("dropped a staged file whose name was removed")
		return Recovered{}, false
	case stFailed, stIncomplete:
		return m.keepFailed(id, j, log), true
	case stWriting:
		// The writer was still writing when the daemon died (or was
		// stopped): committing would publish what may be a prefix.
		if st, err := os.Stat(dataPath(m.root, id)); err == nil {
			r.Size = st.Size()
		}
		r.Err = ErrNotClosed
		j.Reason = ErrNotClosed.Error()
		path, err := m.moveToLostFound(id, j)
		if err != nil {
			r.SavedAs = dataPath(m.root, id)
			r.Err = fmt.Errorf("%w; moving it to %s failed, it stays at %s: %v", ErrNotClosed, m.LostFound(), r.SavedAs, err)
		} else {
			r.SavedAs = path
		}
		if len(j.Evicted) > 0 {
			r.Err = fmt.Errorf("%w; blocks %v were only in the service, as uncommitted blocks of %q, and are holes in the kept copy", r.Err, j.Evicted, j.UploadName)
		}
		log.WithFields(map[string]any{"blob": j.Name, "size": r.Size, "kept_at": r.SavedAs}).Warnf("not uploading a staged file: %v; its data (and journal, .json) is kept at %s", r.Err, r.SavedAs)
		return r, true
	}
	if j.AppendOnly {
		return m.keepAppend(id, j, log), true
	}
	f, err := m.reopen(j)
	if err != nil {
		r.Err = err
		j.State, j.Reason = stFailed.String(), err.Error()
		r.SavedAs, _ = m.moveToLostFound(id, j)
		log.WithError(err).Error("cannot reopen a staged file")
		return r, true
	}
	r.Size = f.size
	_, err = f.commit(ctx, blob.PutOptions{ContentType: j.ContentType, Metadata: j.Metadata}, false)
	var ce *ConflictError
	switch {
	case err == nil:
		r.SavedAs = j.Name
		log.WithField("blob", j.Name).Info("uploaded a file left staged by a crash")
	case errors.As(err, &ce):
		r.SavedAs, r.Err = ce.SavedAs, err
	case refusedForGood(err):
		// The base it needs is gone, or the service refuses the
		// change for a reason that does not go away by itself (a
		// lease): nothing to retry.
		r.Err = err
		f.mu.Lock()
		r.SavedAs, _ = f.keepLocally(err.Error())
		f.dirty = false
		f.setState(stClean)
		f.journalLogged()
		f.mu.Unlock()
		log.WithError(err).WithFields(map[string]any{"blob": j.Name, "kept_at": r.SavedAs}).Warn("the service refuses a file left staged by a crash; kept it in lost+found")
	default:
		r.Err = err
		r.SavedAs = dataPath(m.root, id)
		log.WithError(err).Warn("cannot upload a file left staged by a crash yet; will try again at the next mount")
	}
	f.Close()
	return r, true
}

// refusedForGood says a commit failed for a reason that retrying at the
// next mount does not cure.
func refusedForGood(err error) bool {
	for _, kind := range []error{blob.ErrPrecondition, blob.ErrNotFound, ErrEvicted, blob.ErrBusy, blob.ErrExists,
		blob.ErrTooLarge, blob.ErrInvalidName, blob.ErrNameTooLong} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

// keepFailed moves a staged file that must never be published (its
// commit failed and the program was told, or a write failed half-way) to
// lost+found; the data of one that failed for lack of space is dropped
// (see keepAside).
func (m *Manager) keepFailed(id string, j *journal, log logrus.FieldLogger) Recovered {
	r := Recovered{Name: j.Name}
	if st, err := os.Stat(dataPath(m.root, id)); err == nil {
		r.Size = st.Size()
	}
	r.Err = fmt.Errorf("%w: %s", ErrCommitFailed, j.Reason)
	if j.state() == stIncomplete {
		r.Err = &IncompleteError{Name: j.Name, Offset: j.IncompleteAt, Reason: j.Reason}
		if j.NoSpace {
			os.Remove(dataPath(m.root, id))
			j.DataDropped = true
		}
	}
	path, err := m.moveToLostFound(id, j)
	if err != nil {
		r.SavedAs = dataPath(m.root, id)
		r.Err = fmt.Errorf("%w; moving it to %s failed, it stays at %s: %v", r.Err, m.LostFound(), r.SavedAs, err)
	} else if j.DataDropped {
		r.SavedAs = path + ".json"
	} else {
		r.SavedAs = path
	}
	log.Warnf("not uploading %q: %v; kept at %s", j.Name, r.Err, r.SavedAs)
	return r
}

// keepAppend moves to lost+found an append to an append blob whose commit
// was under way when blobfs stopped. It is not finished: some of its
// Append Blocks may have been applied, and sending them again would
// duplicate them in the blob (and a Put Block List would make the blob a
// block blob under the program that owns it). The journal and the log
// say how far the blob went and what the staged copy holds.
func (m *Manager) keepAppend(id string, j *journal, log logrus.FieldLogger) Recovered {
	r := Recovered{Name: j.Name}
	if st, err := os.Stat(dataPath(m.root, id)); err == nil {
		r.Size = st.Size()
	}
	r.Err = fmt.Errorf("%w: %q is an append blob; it held at least %d bytes (version %s) when blobfs stopped, and the kept copy's bytes from offset %d on may or may not be in it: compare before appending them", ErrAppendUnfinished, j.Name, j.BaseSize, j.BaseETag, j.BaseSize)
	j.State, j.Reason = stFailed.String(), r.Err.Error()
	path, err := m.moveToLostFound(id, j)
	if err != nil {
		r.SavedAs = dataPath(m.root, id)
		r.Err = fmt.Errorf("%w; moving it to %s failed, it stays at %s: %v", r.Err, m.LostFound(), r.SavedAs, err)
	} else {
		r.SavedAs = path
	}
	log.WithFields(map[string]any{"blob": j.Name, "kept_at": r.SavedAs}).Warn(r.Err)
	return r
}

// reopen rebuilds a File from its journal and cache file.
func (m *Manager) reopen(j *journal) (*File, error) {
	data, err := os.OpenFile(dataPath(m.root, j.ID), os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("stage: staged data of %q: %w", j.Name, err)
	}
	st, err := data.Stat()
	if err != nil {
		data.Close()
		return nil, err
	}
	f := &File{
		m: m, id: j.ID, data: data, bs: j.BlockSize,
		name: j.Name, upName: j.UploadName,
		baseName: j.BaseName, baseETag: j.BaseETag, target: j.Target,
		baseLimit: min(j.BaseLimit, st.Size()), size: st.Size(),
		dirty: true, jDirty: true, state: j.state(), jState: j.state(),
		unconditional: j.Unconditional,
		ctype:         j.ContentType, meta: j.Metadata,
	}
	if j.BaseETag != "" {
		// What the commit keeps of the base, as Open had it.
		b := &blob.Properties{
			Name: j.BaseName, ETag: j.BaseETag, Size: j.BaseSize,
			ContentType: j.ContentType, Metadata: j.Metadata, MetaNamesLowered: j.BaseMetaLowered,
			AccessTier: j.BaseTier, AccessTierInferred: j.BaseTier == "",
			Tags: j.BaseTags, TagCount: max(j.BaseTagCount, len(j.BaseTags)),
		}
		if j.BaseHeaders != nil {
			b.ContentHeaders = *j.BaseHeaders
		}
		f.baseProps = b
	}
	f.changed = make(chan struct{})
	f.jlog = journalLog{path: journalPath(m.root, j.ID), exists: true}
	local := map[int]bool{}
	for _, i := range unrun(j.Local) {
		local[i] = true
	}
	evicted := map[int]bool{}
	for _, i := range unrun(j.Evicted) {
		evicted[i] = true
	}
	f.blocks = make([]block, nblocks(f.size, f.bs))
	for i := range f.blocks {
		b := &f.blocks[i]
		b.ver = f.nextVer()
		switch start := int64(i) * f.bs; {
		case evicted[i]:
			b.state, b.upVer = blkEvicted, b.ver
		case start < f.baseLimit && !local[i]:
			b.state = blkRemote
		default:
			b.state, b.jLocal = blkLocal, true
			b.whole(f.bs)
			f.accounted += blen(i, f.size, f.bs)
		}
	}
	m.mu.Lock()
	m.used += f.accounted
	m.files[f] = struct{}{}
	m.mu.Unlock()
	return f, nil
}

// moveToLostFound moves a staged file's data out of the way, next to j
// (which says why it is there), and removes its journal from the cache
// directory. A crash half-way leaves the journal, and the next Recover
// does it again.
func (m *Manager) moveToLostFound(id string, j *journal) (string, error) {
	lf := m.LostFound()
	if err := os.MkdirAll(lf, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(lf, strings.ReplaceAll(j.Name, "/", "_")+"."+id)
	if err := os.Rename(dataPath(m.root, id), path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if j.BlockSize > 0 {
		j.Closing = false // what is in lost+found is not to be committed
		if err := writeJournal(path+".json", j, true); err != nil {
			return "", err
		}
		if err := os.Remove(journalPath(m.root, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		return path, nil
	}
	// An unreadable journal is moved as it is, for whoever looks into it.
	if err := os.Rename(journalPath(m.root, id), path+".json"); err != nil {
		return "", err
	}
	return path, nil
}

// emptyFile says path is missing or holds nothing.
func emptyFile(path string) bool {
	st, err := os.Stat(path)
	return errors.Is(err, os.ErrNotExist) || (err == nil && st.Size() == 0)
}
