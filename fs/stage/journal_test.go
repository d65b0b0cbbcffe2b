package stage

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testJournal(n int) *journal {
	return &journal{ID: "0123456789abcdef", Name: fmt.Sprintf("dir/file-%d", n), BlockSize: 8 << 20, Dirty: true, BaseLimit: int64(n)}
}

// TestJournalLog checks that the journal read back is always the last one
// appended in full, whatever a crash cut off after it.
func TestJournalLog(t *testing.T) {
	cases := []struct {
		name    string
		appends int
		// damage is applied to the file after the appends.
		damage func(t *testing.T, path string)
		want   int // BaseLimit of the journal read back; -1: unreadable
	}{
		{"one", 1, nil, 0},
		{"several", 5, nil, 4},
		{"last line cut short", 5, func(t *testing.T, path string) {
			st, _ := os.Stat(path)
			os.Truncate(path, st.Size()-10)
		}, 3},
		{"last line's newline lost", 5, func(t *testing.T, path string) {
			st, _ := os.Stat(path)
			os.Truncate(path, st.Size()-1)
		}, 4}, // the object itself is whole
		{"only line cut short", 1, func(t *testing.T, path string) {
			os.Truncate(path, 20)
		}, -1},
		{"garbage after the last line", 3, func(t *testing.T, path string) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte("\x00\x00\x00"))
			f.Close()
		}, 2},
		{"compacted", 2000, func(t *testing.T, path string) {
			if st, _ := os.Stat(path); st.Size() > compactAt {
				t.Errorf("journal is %d bytes after 2000 appends, want at most %d", st.Size(), compactAt)
			}
		}, 1999},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.json")
			l := journalLog{path: path}
			for i := range c.appends {
				if err := l.append(testJournal(i), i%7 == 0); err != nil {
					t.Fatal(err)
				}
			}
			l.close()
			if c.damage != nil {
				c.damage(t, path)
			}
			j, err := readJournal(path)
			if c.want < 0 {
				if err == nil {
					t.Fatalf("read %+v from a damaged journal, want an error", j)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if j.BaseLimit != int64(c.want) || j.Name != testJournal(c.want).Name {
				t.Errorf("read journal %d (%s), want %d", j.BaseLimit, j.Name, c.want)
			}
		})
	}
}

// A journal written by an earlier blobfs (one JSON object, no newline) is
// still read, and appending to a reopened one replaces it whole first.
func TestJournalEarlierFormatAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.json")
	rec, err := encodeJournal(testJournal(7))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.TrimSuffix(rec, []byte("\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if j, err := readJournal(path); err != nil || j.BaseLimit != 7 {
		t.Fatalf("earlier format: %+v, %v", j, err)
	}
	l := journalLog{path: path, exists: true}
	if err := l.append(testJournal(8), false); err != nil {
		t.Fatal(err)
	}
	if err := l.append(testJournal(9), true); err != nil {
		t.Fatal(err)
	}
	l.close()
	b, _ := os.ReadFile(path)
	if lines := strings.Count(string(b), "\n"); lines != 2 {
		t.Errorf("reopened journal has %d lines, want 2 (rewritten, then appended):\n%s", lines, b)
	}
	if j, err := readJournal(path); err != nil || j.BaseLimit != 9 {
		t.Fatalf("after reopen: %+v, %v", j, err)
	}
}

// A failed append must not leave a partial line for the next append to
// follow: the next one writes the file whole.
func TestJournalAppendAfterFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.json")
	l := journalLog{path: path}
	if err := l.append(testJournal(1), false); err != nil {
		t.Fatal(err)
	}
	// A descriptor that refuses writes stands in for a full disk.
	l.f.Close()
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.f = ro
	if err := l.append(testJournal(2), false); err == nil {
		t.Fatal("append through a read-only descriptor succeeded")
	}
	// What a short write would have left behind.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte(`{"version":1,"id":"0123`))
	f.Close()
	if err := l.append(testJournal(3), false); err != nil {
		t.Fatal(err)
	}
	l.close()
	b, _ := os.ReadFile(path)
	if strings.Count(string(b), "\n") != 1 || !strings.HasSuffix(string(b), "}\n") {
		t.Errorf("journal after a failed append is not one whole line:\n%s", b)
	}
	if j, err := readJournal(path); err != nil || j.BaseLimit != 3 {
		t.Fatalf("after a failed append: %+v, %v", j, err)
	}
}

// The journal is written three times for every small file (create, the
// closing mark, after the commit): an append against the whole-file
// rewrite it replaced.
func BenchmarkJournal(b *testing.B) {
	j := testJournal(1)
	j.Metadata = map[string]string{"mode": "0644", "mtime": "2026-12-02T05:00:00.123456789Z"}
	b.Run("append", func(b *testing.B) {
		l := journalLog{path: filepath.Join(b.TempDir(), "j.json")}
		defer l.close()
		for b.Loop() {
			if err := l.append(j, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rewrite", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "j.json")
		for b.Loop() {
			if err := writeJournal(path, j, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Recover drops a staged file whose first journal a crash cut short (its
// Open never returned, nothing was written) and a spare pair (both files
// empty), but keeps anything with data whose journal cannot be read.
func TestRecoverUnreadableJournal(t *testing.T) {
	const cut = `{"version":1,"id":"0011`
	cases := []struct {
		name      string
		journal   string
		data      []byte
		wantKept  bool // in lost+found, and reported
		wantFiles int  // left in the staging directory besides the lock
	}{
		{"first journal cut short, no data", cut, nil, false, 0},
		{"a spare left by a crash", "", nil, false, 0},
		{"unreadable journal with data", cut, []byte("acknowledged bytes"), true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := NewManager(nil, Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			id := "00112233aabbccdd"
			if err := os.WriteFile(journalPath(m.root, id), []byte(c.journal), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dataPath(m.root, id), c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			rec, err := m.Recover(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if kept := len(rec) == 1 && rec[0].Err != nil; kept != c.wantKept || len(rec) > 1 {
				t.Errorf("Recover reported %+v, want kept=%v", rec, c.wantKept)
			}
			if c.wantKept {
				if b, err := os.ReadFile(rec[0].SavedAs); err != nil || !bytes.Equal(b, c.data) {
					t.Errorf("kept copy %s: %q, %v", rec[0].SavedAs, b, err)
				}
			}
			ents, _ := os.ReadDir(m.root)
			var left []string
			for _, e := range ents {
				if e.Name() != ".lock" && e.Name() != "lost+found" {
					left = append(left, e.Name())
				}
			}
			if len(left) != c.wantFiles {
				t.Errorf("left in the staging directory: %v", left)
			}
		})
	}
}

// The state read from a journal: from State when it is there, else (a
// journal of a blobfs before State) from Dirty and Closing. And a blobfs
// before State, which reads only Dirty and Closing, must not publish a
// file that may not be: only a closing State says Closing.
func TestJournalState(t *testing.T) {
	tests := []struct {
		line string
		want state
	}{
		{`{"version":1,"id":"a","name":"n","block_size":1,"dirty":false}`, stClean},
		{`{"version":1,"id":"a","name":"n","block_size":1,"dirty":true}`, stWriting},
		{`{"version":1,"id":"a","name":"n","block_size":1,"dirty":true,"closing":true}`, stClosing},
		{`{"version":1,"id":"a","name":"n","block_size":1,"dirty":true,"state":"failed"}`, stFailed},
		{`{"version":1,"id":"a","name":"n","block_size":1,"dirty":true,"state":"incomplete"}`, stIncomplete},
		{`{"version":1,"id":"a","name":"n","block_size":1,"dirty":false,"state":"removed"}`, stRemoved},
		{`{"version":1,"id":"a","name":"n","block_size":1,"dirty":true,"closing":true,"state":"some later state"}`, stClosing},
	}
	for _, tc := range tests {
		path := filepath.Join(t.TempDir(), "j.json")
		if err := os.WriteFile(path, []byte(tc.line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := readJournal(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := j.state(); got != tc.want {
			t.Errorf("%s: state %v, want %v", tc.line, got, tc.want)
		}
	}
	for s := stClean; s <= stRemoved; s++ {
		f := &File{id: "a", name: "n", bs: 1, dirty: true, state: s}
		if j := f.journal(); j.Closing != (s == stClosing) || j.state() != s {
			t.Errorf("%v journals closing=%v state=%v", s, j.Closing, j.state())
		}
	}
}
