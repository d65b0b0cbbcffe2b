package stage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/blobfs/blobfs/blob"
)

// journal is the sidecar of one staged file: with the data file beside it,
// it is enough to finish the upload after a crash. The journal file is a
// log of whole journals, one JSON object a line, and the last line that
// parses is the journal: an update is one append to a descriptor held
// open (see journalLog), where rewriting the file through a temp file and
// a rename cost four syscalls, two of them the most expensive a small
// file's create and close make on ext4. A line cut short by a crash never
// parses (a strict prefix of a JSON object is not one), so the line before
// it stands. Files of the earlier format, one JSON object without a
// newline, read the same way.
//
// Routine appends are not fsynced: the data file is not either, and both
// survive a crash of the daemon in the page cache. File.Sync fsyncs both,
// for power loss.
type journal struct {
	Version    int    `json:"version"`
	ID         string `json:"id"`   // also the prefix of this file's block IDs
	Name       string `json:"name"` // where the next commit goes
	UploadName string `json:"upload_name,omitempty"`
	BaseName   string `json:"base_name,omitempty"` // where unchanged content is read from
	BaseETag   string `json:"base_etag,omitempty"` // "" when the blob did not exist
	// Target is the ETag the commit may replace; "" means Name must be free.
	Target    string `json:"target,omitempty"`
	BaseSize  int64  `json:"base_size"`
	BaseLimit int64  `json:"base_limit"` // base bytes past this were truncated away
	BlockSize int64  `json:"block_size"`
	// Local lists, as [first, last] runs, the blocks below BaseLimit that
	// the data file holds; the others there are still the base's.
	Local [][2]int `json:"local,omitempty"`
	// Evicted blocks were uploaded under UploadName and punched out of the
	// data file.
	Evicted [][2]int `json:"evicted,omitempty"`
	Dirty   bool     `json:"dirty"` // changed since the last commit
	// Closing says the program asked for this content to be the blob: a
	// close() or fsync() started a commit of it, and nothing changed
	// since. Recover commits only such files; one still being written
	// when the daemon died may be a prefix of what the program meant.
	Closing bool `json:"closing,omitempty"`
	// State is what may become of the content (see state): Recover
	// publishes only "closing". Dirty and Closing still say the same for
	// a blobfs that predates State, which then keeps failed, incomplete
	// and removed files in lost+found: never publishes them either.
	State        string `json:"state,omitempty"`
	Reason       string `json:"reason,omitempty"`        // why failed or incomplete
	IncompleteAt int64  `json:"incomplete_at,omitempty"` // the offset of the failed write
	NoSpace      bool   `json:"no_space,omitempty"`      // it failed for lack of space
	// DataDropped: in lost+found, only this journal was kept (see keepAside).
	DataDropped   bool `json:"data_dropped,omitempty"`
	Unconditional bool `json:"unconditional,omitempty"`
	// AppendOnly: the base is an append blob, which commits append to
	// (append.go). Recover never sends such a file: it may have been
	// partly appended when blobfs stopped.
	AppendOnly bool `json:"append_only,omitempty"`
	// What a commit keeps of the base blob (keep.go): Put Blob and Put
	// Block List clear the content headers, index tags and tier they are
	// not sent, so Recover's commit needs them as a close's has them.
	// BaseTier is an explicitly set tier only; BaseTagCount without
	// BaseTags means the tags were not read yet (the commit reads them).
	// BaseMetaLowered: Metadata's names came lower-cased from a HEAD, and
	// the commit restores their case from a listing.
	BaseHeaders     *blob.ContentHeaders `json:"base_headers,omitempty"`
	BaseTier        string               `json:"base_tier,omitempty"`
	BaseTags        map[string]string    `json:"base_tags,omitempty"`
	BaseTagCount    int                  `json:"base_tag_count,omitempty"`
	BaseMetaLowered bool                 `json:"base_meta_lowered,omitempty"`
	ContentType     string               `json:"content_type,omitempty"`
	Metadata        map[string]string    `json:"metadata,omitempty"`
	Updated         time.Time            `json:"updated"`
}

const journalVersion = 1

// journalVersionAppend marks the journal of an append blob's file: a
// blobfs that predates appends (and reads only version 1) then keeps it
// in lost+found as unreadable, instead of committing it as a block list,
// which would make the blob a block blob. Other journals stay version 1,
// which every blobfs reads.
const journalVersionAppend = 2

// state is the journal's state, from Dirty and Closing when it was
// written by a blobfs that did not record State.
func (j *journal) state() state {
	if s, ok := parseState(j.State); ok {
		return s
	}
	switch {
	case !j.Dirty:
		return stClean
	case j.Closing:
		return stClosing
	}
	return stWriting
}

func encodeJournal(j *journal) ([]byte, error) {
	j.Version = journalVersion
	if j.AppendOnly {
		j.Version = journalVersionAppend
	}
	j.Updated = time.Now().UTC()
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// writeJournal writes a journal file whole, through a temp file and a
// rename, so that path holds the old journal or the new one.
func writeJournal(path string, j *journal, sync bool) error {
	rec, err := encodeJournal(j)
	if err != nil {
		return err
	}
	f, err := replaceFile(path, rec, sync)
	if err != nil {
		return err
	}
	return f.Close()
}

// replaceFile makes b the content of path (temp file, rename) and returns
// the new file, open for appending. With sync, the content and the rename
// are on disk when it returns.
func replaceFile(path string, b []byte, sync bool) (*os.File, error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("staging journal: %w", err)
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("staging journal %s: %w", tmp, err)
	}
	if _, err := f.Write(b); err != nil {
		return fail(err)
	}
	// With sync, fsync before rename: a power loss must leave the old or
	// the new journal, never an empty one.
	if sync {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if sync {
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, fmt.Errorf("staging journal: %w", err)
		}
	}
	return f, nil
}

// journalLog is the open journal file of a staged file.
type journalLog struct {
	path string
	f    *os.File // nil: the next append writes the file whole
	// exists: path holds a journal that the next whole write must replace
	// atomically (else it is created in place: a first journal cut short
	// by a crash belongs to a file nothing was acknowledged for yet).
	exists    bool
	size      int64
	dirSynced bool // the directory entries are on disk
}

// compactAt is the journal size past which an append rewrites the file
// with just the new record instead.
const compactAt = 64 << 10

// append makes j the journal. With sync, it is on disk when append returns.
func (l *journalLog) append(j *journal, sync bool) error {
	rec, err := encodeJournal(j)
	if err != nil {
		return err
	}
	switch {
	case l.f == nil && !l.exists:
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("staging journal: %w", err)
		}
		l.f, l.exists, l.size, l.dirSynced = f, true, 0, false
	case l.f == nil || l.size+int64(len(rec)) > max(compactAt, 4*int64(len(rec))):
		f, err := replaceFile(l.path, rec, sync)
		if err != nil {
			return err
		}
		l.close()
		l.f, l.size, l.dirSynced = f, int64(len(rec)), sync
		return nil
	}
	if _, err := l.f.Write(rec); err != nil {
		// A partial line would hide every line after it: write the
		// file whole next time.
		l.close()
		return fmt.Errorf("staging journal %s: %w", l.path, err)
	}
	l.size += int64(len(rec))
	if !sync {
		return nil
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("staging journal %s: %w", l.path, err)
	}
	if !l.dirSynced {
		if err := syncDir(filepath.Dir(l.path)); err != nil {
			return fmt.Errorf("staging journal: %w", err)
		}
		l.dirSynced = true
	}
	return nil
}

func (l *journalLog) close() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// readJournal reads the journal file at path: its last line that parses.
func readJournal(path string) (*journal, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var j *journal
	var last error = errors.New("no journal in it")
	for len(b) > 0 && j == nil {
		b = bytes.TrimRight(b, "\n")
		line := b[bytes.LastIndexByte(b, '\n')+1:]
		b = b[:len(b)-len(line)]
		var cand journal
		if err := json.Unmarshal(line, &cand); err != nil {
			last = err
			continue
		}
		j = &cand
	}
	if j == nil {
		return nil, fmt.Errorf("staging journal %s is damaged: %w", path, last)
	}
	if j.Version != journalVersion && j.Version != journalVersionAppend {
		return nil, fmt.Errorf("staging journal %s has version %d, this blobfs reads %d and %d", path, j.Version, journalVersion, journalVersionAppend)
	}
	if j.BlockSize <= 0 || j.ID == "" || j.Name == "" {
		return nil, fmt.Errorf("staging journal %s is incomplete", path)
	}
	return j, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// runs packs a set of block numbers into sorted [first, last] runs, which
// keeps the journal small for the common case of long stretches.
func runs(set []int) [][2]int {
	sort.Ints(set)
	var out [][2]int
	for _, n := range set {
		if k := len(out); k > 0 && out[k-1][1]+1 == n {
			out[k-1][1] = n
			continue
		}
		out = append(out, [2]int{n, n})
	}
	return out
}

func unrun(rs [][2]int) []int {
	var out []int
	for _, r := range rs {
		for n := r[0]; n <= r[1]; n++ {
			out = append(out, n)
		}
	}
	return out
}

// removeStaged removes a staged file's journal, then its data: a crash in
// between leaves data without a journal, which Recover drops.
func (m *Manager) removeStaged(id string) {
	os.Remove(journalPath(m.root, id))
	os.Remove(dataPath(m.root, id))
}

func dataPath(root, id string) string    { return filepath.Join(root, id+".data") }
func journalPath(root, id string) string { return filepath.Join(root, id+".json") }
