package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/blobfs/blobfs/blob"
)

// Another client rewrites a blob that a program has open for writing
// through the mount: the program's close fails (ESTALE), the other
// writer's version stays the blob, and the program's version is in the
// container as "<name>.conflict-<UTC yyyymmddThhmmssZ>". Neither is lost.
// An edit in place that needs the old version's unchanged bytes fails at
// the write instead (they cannot be read any more): nothing of ours exists
// to keep, and the other writer's version stays.
func TestConflictKeepsBothVersions(t *testing.T) {
	needFUSE(t)
	w := newWorld(t, worldOptions{})
	mp := filepath.Join(w.dir, "mnt")
	w.mount(mp, "--block-size", "1MiB")
	ctx := context.Background()
	tests := []struct {
		name  string
		flags int
		size  int // of our version; 0: edit 6 bytes in place
	}{
		{name: "small.txt", flags: os.O_WRONLY | os.O_TRUNC, size: 300},       // one Put Blob
		{name: "large.bin", flags: os.O_WRONLY | os.O_TRUNC, size: 3<<20 + 5}, // a block list
		{name: "edited.txt", flags: os.O_RDWR, size: 0},                       // in place, over the old content
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			original := []byte("the original content, long enough to be edited in place")
			if _, err := w.ct.Upload(ctx, tc.name, original, blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(filepath.Join(mp, tc.name), tc.flags, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			theirs := []byte("the other client's version")
			if _, err := w.ct.Upload(ctx, tc.name, theirs, blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			var ours []byte
			if tc.size > 0 {
				ours = make([]byte, tc.size)
				rand.Read(ours)
				if _, err := f.Write(ours); err != nil {
					t.Fatal(err)
				}
			} else if _, err := f.WriteAt([]byte("EDITED"), 4); !errors.Is(err, syscall.ESTALE) {
				t.Fatalf("edit in place = %v, want ESTALE", err)
			}
			closeErr := f.Close()
			if got, err := w.restGet(tc.name); err != nil || !bytes.Equal(got, theirs) {
				t.Errorf("blob %s = %q, %v; want the other client's version", tc.name, got, err)
			}
			if ours == nil {
				if closeErr != nil {
					t.Errorf("close after a refused edit = %v, want nil (nothing changed)", closeErr)
				}
				return
			}
			if !errors.Is(closeErr, syscall.ESTALE) {
				t.Fatalf("close = %v, want ESTALE", closeErr)
			}
			re := regexp.MustCompile("^" + regexp.QuoteMeta(tc.name) + `\.conflict-\d{8}T\d{6}Z$`)
			var saved []string
			for n := range w.restNames() {
				if re.MatchString(n) {
					saved = append(saved, n)
				}
			}
			if len(saved) != 1 {
				t.Fatalf("conflict copies of %s: %v, want one", tc.name, saved)
			}
			if got, err := w.restGet(saved[0]); err != nil || !bytes.Equal(got, ours) {
				t.Errorf("%s: %d bytes, %v; want our %d bytes", saved[0], len(got), err, len(ours))
			}
		})
	}
}

// A reader whose blob is rewritten by another client mid-read gets the
// whole old version or an error, never a mix of the two.
func TestReaderSeesOneVersion(t *testing.T) {
	needFUSE(t)
	w := newWorld(t, worldOptions{})
	mp := filepath.Join(w.dir, "mnt")
	// Small blocks and no kernel readahead beyond them: the read spans
	// many requests to the service after the rewrite.
	w.mount(mp, "--block-size", "256KiB")
	ctx := context.Background()
	const size = 4 << 20
	old, next := make([]byte, size), make([]byte, size)
	rand.Read(old)
	rand.Read(next)
	if _, err := w.ct.Upload(ctx, "r.bin", old, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(mp, "r.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, 256<<10)
	if _, err := io.ReadFull(f, got); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ct.Upload(ctx, "r.bin", next, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(f)
	got = append(got, rest...)
	if err != nil {
		t.Logf("read after the rewrite failed, as allowed: %v (%d bytes read)", err, len(got))
	}
	// Whatever was read is a prefix of the old version, and all of it
	// when the read did not fail.
	if !bytes.Equal(got, old[:len(got)]) {
		t.Fatalf("read %d bytes that are not the old version's: a mix of versions", len(got))
	}
	if err == nil && len(got) != size {
		t.Fatalf("read %d of %d bytes without an error", len(got), size)
	}
	// A new open sees the new version.
	if b, err := os.ReadFile(filepath.Join(mp, "r.bin")); err != nil || !bytes.Equal(b, next) {
		t.Errorf("reopened after the rewrite: %d bytes, %v; want the new version", len(b), err)
	}
}
