package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob/blobtest"
)

// TestMain lets the test binary be the harness's direct worker too: the
// harness re-executes itself for the direct side.
func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(workerMain(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// TestQuickRun runs the whole harness once at tiny sizes through a real
// mount: every workload must produce a row, verify its data, and be
// charged the calls it must have made.
func TestQuickRun(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse on this machine")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil && os.Geteuid() != 0 {
		t.Skip("fusermount3 not installed")
	}
	blobtest.Require(t)
	cfg := defaults()
	cfg.Rounds = 2 // the second round runs the mount's side first
	cfg.Size = 3 << 20
	cfg.Small = 12
	cfg.List = 30
	cfg.RenameSize = 1 << 20
	cfg.Written = 9 << 20 // two blocks: handed to the read cache whole
	cfg.Random = 16
	cfg.RSSSize = 2 << 20
	cfg.Tree, cfg.TreeDirs = 40, 4
	cfg.Rm, cfg.RmDirs = 20, 2
	cfg.JSON = t.TempDir() + "/bench.json"
	// Its own mounts only: other tests and benches may mount beside it.
	cfg.ScratchIn = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := run(ctx, cfg, &progress)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	if len(rep.Failed) > 0 {
		t.Fatalf("failed rounds: %v\nprogress:\n%s", rep.Failed, progress.String())
	}

	rows := map[string]*row{}
	for _, r := range rep.Rows {
		rows[r.Key] = r
		if r.Rounds != cfg.Rounds {
			t.Errorf("%s: %d samples, want %d", r.Key, r.Rounds, cfg.Rounds)
		}
		// Errors are the harness's own checks of the data: a wrong byte or
		// a missing blob is a failure, whatever the targets say.
		for _, e := range r.Errors {
			t.Errorf("%s: %s", r.Key, e)
		}
		if r.BlobfsS <= 0 {
			t.Errorf("%s: blobfs side took %v s", r.Key, r.BlobfsS)
		}
		if len(r.Checks) == 0 {
			t.Errorf("%s: no targets judged", r.Key)
		}
	}
	for _, k := range workloadKeys() {
		if rows[k] == nil {
			t.Fatalf("no row for workload %q", k)
		}
	}

	tests := []struct {
		name string
		got  int
		want int
	}{
		{"direct small creates: one Put Blob per file", rows["small"].Direct["PutBlob"], cfg.Small},
		{"direct small reads: one GET per file", rows["small-read"].Direct["GetBlob"], cfg.Small},
		{"direct listing: one page", rows["ls"].Direct["ListBlobs"], 1},
		{"direct random reads: one GET per read", rows["random"].Direct["GetBlob"], cfg.Random},
		{"direct rename: one copy", rows["rename"].Direct["CopyBlob"], 1},
		{"direct rename: one delete", rows["rename"].Direct["DeleteBlob"], 1},
		{"blobfs rename: the old blob deleted once", rows["rename"].Calls["DeleteBlob"], 1},
		{"blobfs re-read after remount: no GET", rows["reread"].Calls["GetBlob"], 0},
		{"blobfs re-read of written small files: no GET", rows["small-reread"].Calls["GetBlob"], 0},
		{"blobfs re-read of a written large file: no GET", rows["written-reread"].Calls["GetBlob"], 0},
		{"direct find: one flat page", rows["find"].Direct["ListBlobs"], 1},
		{"blobfs find: no HEAD", rows["find"].Calls["GetBlobProperties"], 0},
		{"blobfs du: no HEAD", rows["du"].Calls["GetBlobProperties"], 0},
		{"blobfs rm -rf: one Delete per file", rows["rm"].Calls["DeleteBlob"], cfg.Rm},
		{"blobfs rm -rf: no Put Blob", rows["rm"].Calls["PutBlob"], 0},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	atLeast := []struct {
		name string
		got  int64
		min  int64
	}{
		// Every small file reached the service through the mount.
		{"blobfs small creates: write calls", int64(sumCalls(rows["small"].Calls, "PutBlob", "PutBlockList")), int64(cfg.Small)},
		{"blobfs small reads: GETs", int64(rows["small-read"].Calls["GetBlob"]), 1},
		{"blobfs cold read: bytes received", rows["read"].Received["GetBlob"], cfg.Size},
		{"blobfs write: bytes sent", rows["write"].Sent["PutBlob"] + rows["write"].Sent["PutBlock"], cfg.Size},
		{"blobfs random reads: bytes received", rows["random"].Received["GetBlob"], 4096},
		{"daemon peak RSS", int64(rows["rss"].PeakRSSMiB * (1 << 20)), 1 << 20},
		// The re-reads are compared with first reads from the service.
		{"first read before the re-read: GETs", int64(rows["reread"].FirstCalls["GetBlob"]), 1},
		{"first read of the written small files: GETs", int64(rows["small-reread"].FirstCalls["GetBlob"]), int64(cfg.Small)},
		{"first read of the written large file: GETs", int64(rows["written-reread"].FirstCalls["GetBlob"]), 1},
	}
	for _, tc := range atLeast {
		if tc.got < tc.min {
			t.Errorf("%s: got %d, want at least %d", tc.name, tc.got, tc.min)
		}
	}
	if n := rows["stat"].Calls; len(n) > 0 && rows["stat"].Checks[0].Met {
		t.Errorf("stat: %v calls judged as 0 calls", n)
	}

	var md bytes.Buffer
	rep.markdown(&md)
	for _, wl := range workloads() {
		if !strings.Contains(md.String(), "| "+wl.title(cfg)+" |") {
			t.Errorf("the table has no row %q:\n%s", wl.title(cfg), md.String())
		}
	}
	if err := rep.writeJSON(cfg.JSON); err != nil {
		t.Fatal(err)
	}
	back, err := loadReport(cfg.JSON)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range back.Rows {
		if r.Key != rep.Rows[i].Key || r.BlobfsS != rep.Rows[i].BlobfsS || r.Met != rep.Rows[i].Met {
			t.Errorf("-render recomputed %s as %+v, the run had %+v", r.Key, r, rep.Rows[i])
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && bytes.Contains(mi, []byte(cfg.ScratchIn+"/")) {
		t.Errorf("a mount of this run was left behind under %s:\n%s", cfg.ScratchIn, mi)
	}
}
