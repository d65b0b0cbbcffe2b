package stage

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// journal is the sidecar of one staged file: with the data file beside it,
// it is enough to finish the upload after a crash. It is rewritten whole
// (temp file, rename) whenever something recovery depends on changes; the
// data file's size is the file's size, so writes that only append or
// overwrite local blocks never touch it.
//
// Routine rewrites are not fsynced: the data file is not either, and both
// survive a crash of the daemon in the page cache, while the rename keeps
// the journal whole. File.Sync fsyncs both, for power loss.
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
	Closing       bool              `json:"closing,omitempty"`
	Unconditional bool              `json:"unconditional,omitempty"`
	ContentType   string            `json:"content_type,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	Updated       time.Time         `json:"updated"`
}

const journalVersion = 1

func writeJournal(path string, j *journal, sync bool) error {
	j.Version = journalVersion
	j.Updated = time.Now().UTC()
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("staging journal: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("staging journal %s: %w", tmp, err)
	}
	// With sync, fsync before rename: a power loss must leave the old or
	// the new journal, never an empty one.
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("staging journal %s: %w", tmp, err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("staging journal: %w", err)
	}
	if sync {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

func readJournal(path string) (*journal, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("staging journal %s is damaged: %w", path, err)
	}
	if j.Version != journalVersion {
		return nil, fmt.Errorf("staging journal %s has version %d, this blobfs reads %d", path, j.Version, journalVersion)
	}
	if j.BlockSize <= 0 || j.ID == "" || j.Name == "" {
		return nil, fmt.Errorf("staging journal %s is incomplete", path)
	}
	return &j, nil
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

func dataPath(root, id string) string    { return filepath.Join(root, id+".data") }
func journalPath(root, id string) string { return filepath.Join(root, id+".json") }
