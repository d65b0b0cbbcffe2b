package stage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
		path, lerr := m.moveToLostFound(id, "damaged")
		if lerr != nil {
			path = journalPath(m.root, id)
		}
		log.WithError(err).Error("unreadable staging journal")
		return Recovered{SavedAs: path, Err: err}, true
	}
	if !j.Dirty {
		// Committed (or saved aside) before the crash.
		m.removeStaged(id)
		return Recovered{}, false
	}
	r := Recovered{Name: j.Name}
	if !j.Closing {
		// The writer was still writing when the daemon died (or was
		// stopped): committing would publish what may be a prefix.
		if st, err := os.Stat(dataPath(m.root, id)); err == nil {
			r.Size = st.Size()
		}
		r.Err = ErrNotClosed
		path, err := m.moveToLostFound(id, j.Name)
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
	f, err := m.reopen(j)
	if err != nil {
		r.Err = err
		r.SavedAs, _ = m.moveToLostFound(id, j.Name)
		log.WithError(err).Error("cannot reopen a staged file")
		return r, true
	}
	r.Size = f.size
	_, err = f.Commit(ctx, blob.PutOptions{ContentType: j.ContentType, Metadata: j.Metadata})
	var ce *ConflictError
	switch {
	case err == nil:
		r.SavedAs = j.Name
		log.WithField("blob", j.Name).Info("uploaded a file left staged by a crash")
	case errors.As(err, &ce):
		r.SavedAs, r.Err = ce.SavedAs, err
	case errors.Is(err, blob.ErrPrecondition) || errors.Is(err, blob.ErrNotFound) || errors.Is(err, ErrEvicted):
		// The base it needs is gone: nothing to retry.
		r.Err = err
		f.mu.Lock()
		r.SavedAs, _ = f.keepLocally()
		f.dirty = false
		f.journalLogged()
		f.mu.Unlock()
	default:
		r.Err = err
		r.SavedAs = dataPath(m.root, id)
		log.WithError(err).Warn("cannot upload a file left staged by a crash yet; will try again at the next mount")
	}
	f.Close()
	return r, true
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
		dirty: true, jDirty: true, closing: j.Closing, jClosing: j.Closing,
		unconditional: j.Unconditional,
		ctype:         j.ContentType, meta: j.Metadata,
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

// moveToLostFound moves a staged file's data and journal out of the way.
func (m *Manager) moveToLostFound(id, name string) (string, error) {
	lf := m.LostFound()
	if err := os.MkdirAll(lf, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(lf, strings.ReplaceAll(name, "/", "_")+"."+id)
	if err := os.Rename(dataPath(m.root, id), path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
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
