package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/blobfs/blobfs/blob"
)

// The tree walked by find and du -s: cfg.Tree blobs in cfg.TreeDirs
// directories below treeDir.
const treeDir = "tree"

func treeName(c config, i int) string {
	return fmt.Sprintf("%s/d%04d/f%06d", treeDir, i%c.TreeDirs, i)
}

// ensureTree uploads the walked tree, once per round.
func ensureTree(ctx context.Context, r *round) error {
	if r.have[treeDir] {
		return nil
	}
	data := []byte("sixteen bytes..\n")
	err := parallel(ctx, r.cfg.Tree, 16, func(i int) error {
		_, err := r.w.ct.Upload(ctx, treeName(r.cfg, i), data, blob.PutOptions{})
		return err
	})
	if err == nil {
		r.have[treeDir] = true
	}
	return err
}

// flatList is the direct side of a walk: every blob below prefix, with
// metadata (modes), no delimiter, 5,000 a page.
func flatList(ctx context.Context, ct *blob.Container, prefix string) ([]string, error) {
	var names []string
	for marker := ""; ; {
		page, err := ct.List(ctx, blob.ListOptions{Prefix: prefix, Marker: marker, MaxResults: listPage, IncludeMetadata: true})
		if err != nil {
			return nil, err
		}
		for _, b := range page.Blobs {
			names = append(names, b.Name)
		}
		if marker = page.NextMarker; marker == "" {
			return names, nil
		}
	}
}

// walkTree is find or du -s of the tree: the direct side lists it flat.
func walkTree(key, what string, args []string, checkOut func(out []byte, c config) error) *workload {
	return &workload{
		key: key,
		title: func(c config) string {
			return fmt.Sprintf("%s of %d blobs in %d directories, cold", what, c.Tree, c.TreeDirs)
		},
		cold:  true,
		setup: ensureTree,
		direct: func(ctx context.Context, r *round) error {
			names, err := flatList(ctx, r.w.ct, treeDir+"/")
			if err != nil {
				return err
			}
			if len(names) != r.cfg.Tree {
				return fmt.Errorf("listed %d blobs, want %d", len(names), r.cfg.Tree)
			}
			return nil
		},
		prepare: statDir(treeDir),
		blobfs: func(ctx context.Context, r *round) error {
			cmd := exec.CommandContext(ctx, args[0], append(args[1:], r.mnt(treeDir))...)
			cmd.Env = append(os.Environ(), "LC_ALL=C")
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s: %w: %s", what, err, bytes.TrimSpace(errb.Bytes()))
			}
			return checkOut(out.Bytes(), r.cfg)
		},
		targets: func(c config, rw *row) []check {
			lists, heads := rw.Calls["ListBlobs"], rw.Calls["GetBlobProperties"]
			return []check{
				{Target: "0 HEAD", Measured: fmt.Sprintf("%d List (flat listing: %d), %d HEAD, %d calls in all", lists, pages(c.Tree), heads, total(rw.Calls)), Met: heads == 0},
				timeCheck(rw, 1.5),
			}
		},
	}
}

func findTree() *workload {
	return walkTree("find", "find", []string{"find"}, func(out []byte, c config) error {
		// The top, its directories and every file.
		if n, want := bytes.Count(out, []byte("\n")), 1+c.TreeDirs+c.Tree; n != want {
			return fmt.Errorf("find printed %d paths, want %d", n, want)
		}
		return nil
	})
}

func duTree() *workload {
	return walkTree("du", "du -s", []string{"du", "-s"}, func(out []byte, c config) error {
		if f := strings.Fields(string(out)); len(f) != 2 {
			return fmt.Errorf("du -s printed %q", out)
		}
		return nil
	})
}

// The tree removed by rm -rf: cfg.Rm files in cfg.RmDirs directories,
// one copy for each side.
const (
	rmFS     = "rmtree"
	rmDirect = "rmtree-direct"
)

// rmEntryTTL is the issue's: removals outlast it, so that a lookup per
// name would have to list again.
const rmEntryTTL = "1s"

func rmName(c config, top string, i int) string {
	return fmt.Sprintf("%s/d%03d/f%06d", top, i%c.RmDirs, i)
}

func rmTree() *workload {
	return &workload{
		key: "rm",
		title: func(c config) string {
			return fmt.Sprintf("rm -rf of %d files in %d directories, --entry-ttl %s", c.Rm, c.RmDirs, rmEntryTTL)
		},
		cold:       true,
		mountFlags: []string{"--entry-ttl", rmEntryTTL},
		// Both copies every round: each side removes its own.
		setup: func(ctx context.Context, r *round) error {
			return parallel(ctx, 2*r.cfg.Rm, 16, func(i int) error {
				top := rmFS
				if i >= r.cfg.Rm {
					top = rmDirect
				}
				_, err := r.w.ct.Upload(ctx, rmName(r.cfg, top, i%r.cfg.Rm), []byte("x"), blob.PutOptions{})
				return err
			})
		},
		direct: func(ctx context.Context, r *round) error {
			// One flat listing and a Delete per blob, one after the
			// other, as rm does.
			names, err := flatList(ctx, r.w.ct, rmDirect+"/")
			if err != nil {
				return err
			}
			for _, n := range names {
				if err := r.w.ct.Delete(ctx, n, blob.Conditions{}); err != nil {
					return err
				}
			}
			return nil
		},
		prepare: statDir(rmFS),
		blobfs: func(ctx context.Context, r *round) error {
			out, err := exec.CommandContext(ctx, "rm", "-rf", r.mnt(rmFS)).CombinedOutput()
			if err != nil {
				return fmt.Errorf("rm -rf: %w: %s", err, bytes.TrimSpace(out))
			}
			return nil
		},
		verify: func(ctx context.Context, r *round) error {
			left, err := flatList(ctx, r.w.ct, rmFS+"/")
			if err != nil {
				return err
			}
			if len(left) > 0 {
				return fmt.Errorf("%d blobs left after rm -rf, e.g. %s", len(left), left[0])
			}
			return nil
		},
		targets: func(c config, rw *row) []check {
			dels, lists, puts := rw.Calls["DeleteBlob"], rw.Calls["ListBlobs"], rw.Calls["PutBlob"]
			maxLists := 2 * c.RmDirs
			return []check{{
				Target:   fmt.Sprintf("≤ %d Deletes + %d Lists, no Put Blob", c.Rm, maxLists),
				Measured: fmt.Sprintf("%d Delete, %d List, %d Put Blob, %d HEAD", dels, lists, puts, rw.Calls["GetBlobProperties"]),
				Met:      dels <= c.Rm && lists <= maxLists && puts == 0,
			}}
		},
	}
}
