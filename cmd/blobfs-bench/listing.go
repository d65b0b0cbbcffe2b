package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/blobfs/blobfs/blob"
)

const listDir = "list"

// listPage is the service's largest page, which both sides should use.
const listPage = 5000

func listName(i int) string { return fmt.Sprintf("%s/f%06d", listDir, i) }

func pages(n int) int { return (n + listPage - 1) / listPage }

func listing() *workload {
	return &workload{
		key:   "ls",
		title: func(c config) string { return fmt.Sprintf("ls -l of %d blobs, cold", c.List) },
		cold:  true,
		setup: ensureList,
		direct: func(ctx context.Context, r *round) error {
			// What ls -l needs: names, sizes, times and the metadata that
			// holds modes, a page of 5,000 at a time.
			n := 0
			for marker := ""; ; {
				page, err := r.w.ct.List(ctx, blob.ListOptions{Prefix: listDir + "/", Delimiter: "/", Marker: marker, MaxResults: listPage, IncludeMetadata: true})
				if err != nil {
					return err
				}
				n += len(page.Blobs)
				if marker = page.NextMarker; marker == "" {
					break
				}
			}
			if n != r.cfg.List {
				return fmt.Errorf("listed %d blobs, want %d", n, r.cfg.List)
			}
			return nil
		},
		prepare: statDir(listDir),
		blobfs:  lsL,
		targets: func(c config, rw *row) []check {
			lists, heads := rw.Calls["ListBlobs"], rw.Calls["GetBlobProperties"]
			return []check{
				{Target: fmt.Sprintf("%d List calls, 0 HEAD", pages(c.List)), Measured: fmt.Sprintf("%d List, %d HEAD, %d calls in all", lists, heads, total(rw.Calls)), Met: lists == pages(c.List) && heads == 0 && total(rw.Calls) == lists},
				timeCheck(rw, 1.2),
			}
		},
	}
}

func statAfterList() *workload {
	return &workload{
		key:   "stat",
		title: func(c config) string { return fmt.Sprintf("stat × %d after ls -l", c.List) },
		setup: ensureList,
		// The ls -l this follows; within the attribute TTL of it.
		prepare: lsL,
		blobfs: func(ctx context.Context, r *round) error {
			for i := 0; i < r.cfg.List; i++ {
				if _, err := os.Lstat(r.mnt(listName(i))); err != nil {
					return err
				}
			}
			return nil
		},
		targets: func(c config, rw *row) []check {
			return []check{{Target: "0 calls within the TTL", Measured: fmt.Sprintf("%d calls", total(rw.Calls)), Met: total(rw.Calls) == 0}}
		},
	}
}

// lsL runs the real ls -l on the listed directory and checks that it shows
// every blob.
func lsL(ctx context.Context, r *round) error {
	cmd := exec.CommandContext(ctx, "ls", "-l", r.mnt(listDir))
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ls -l: %w: %s", err, bytes.TrimSpace(errb.Bytes()))
	}
	// The first line is "total N".
	if n := bytes.Count(out.Bytes(), []byte("\n")) - 1; n != r.cfg.List {
		return fmt.Errorf("ls -l shows %d entries, want %d", n, r.cfg.List)
	}
	return nil
}

// ensureList uploads the listed directory's blobs, once per round.
func ensureList(ctx context.Context, r *round) error {
	if r.have[listDir] {
		return nil
	}
	data := []byte("sixteen bytes..\n")
	err := parallel(ctx, r.cfg.List, 16, func(i int) error {
		_, err := r.w.ct.Upload(ctx, listName(i), data, blob.PutOptions{})
		return err
	})
	if err == nil {
		r.have[listDir] = true
	}
	return err
}

func listAll(ctx context.Context, ct *blob.Container, prefix string) ([]string, error) {
	var names []string
	for marker := ""; ; {
		page, err := ct.List(ctx, blob.ListOptions{Prefix: prefix, Delimiter: "/", Marker: marker, MaxResults: listPage, IncludeMetadata: true})
		if err != nil {
			return nil, err
		}
		for _, b := range page.Blobs {
			// The directory's own marker (mkdir through the mount) is not a file.
			if b.Name != prefix {
				names = append(names, b.Name)
			}
		}
		if marker = page.NextMarker; marker == "" {
			return names, nil
		}
	}
}

func readAllClose(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	return io.ReadAll(rc)
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
