package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/control"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/metrics"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/mountpoint"
)

// awkward names must survive the trip through FUSE, the blob name and the
// URL both ways.
var awkwardNames = []string{"with space", "per%cent", "hash#tag", "what?", "plus+sign", "ünïcødé 日本語", "a&b=c;d"}

// TestEndToEnd mounts through the real binary on the managed-identity path
// (IMDS token → ARM listKeys → SharedKey against Azurite) and checks what
// users do with a mount.
func TestEndToEnd(t *testing.T) {
	needFUSE(t)
	w := newWorld(t, worldOptions{})
	mp := filepath.Join(w.dir, "mnt")
	metricsAddr := freePort(t)
	w.mount(mp, "--metrics-addr", metricsAddr)

	// A 32 MiB random file copied in with cp reads back identical, and is
	// a blob of the same bytes.
	src := filepath.Join(w.dir, "random.bin")
	data := make([]byte, 32<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sh(t, "cp", src, filepath.Join(mp, "random.bin"))
	got, err := os.ReadFile(filepath.Join(mp, "random.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading the copy back through the mount: %d bytes, equal %v, err %v", len(got), bytes.Equal(got, data), err)
	}
	if b, err := w.restGet("random.bin"); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("REST GetBlob of random.bin: %d bytes, equal %v, err %v", len(b), bytes.Equal(b, data), err)
	}

	// A blob uploaded by REST is readable with cat.
	restData := []byte("uploaded through REST\n")
	if _, err := w.ct.Upload(context.Background(), "from-rest/hello.txt", restData, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := sh(t, "cat", filepath.Join(mp, "from-rest", "hello.txt")); out != string(restData) {
		t.Errorf("cat of a REST blob: %q", out)
	}

	// mkdir then ls.
	sh(t, "mkdir", filepath.Join(mp, "newdir"))
	sh(t, "sh", "-c", "echo inside > '"+filepath.Join(mp, "newdir", "f.txt")+"'")
	if out := sh(t, "ls", mp); !containsLines(out, "from-rest", "newdir", "random.bin") {
		t.Errorf("ls %s:\n%s", mp, out)
	}
	if out := sh(t, "ls", filepath.Join(mp, "newdir")); strings.TrimSpace(out) != "f.txt" {
		t.Errorf("ls newdir: %q", out)
	}

	// Awkward names written through the mount are blobs of those names;
	// awkward blobs written by REST show up in ls and read back.
	for _, name := range awkwardNames {
		if err := os.WriteFile(filepath.Join(mp, name), []byte("fuse:"+name), 0o644); err != nil {
			t.Fatalf("write %q: %v", name, err)
		}
		if _, err := w.ct.Upload(context.Background(), "rest-"+name, []byte("rest:"+name), blob.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	names := w.restNames()
	listing := sh(t, "ls", "-1", mp)
	for _, name := range awkwardNames {
		if b, err := w.restGet(name); err != nil || string(b) != "fuse:"+name {
			t.Errorf("blob %q written through the mount: %q, %v (blobs: %v)", name, b, err, keys(names))
		}
		if !containsLines(listing, name, "rest-"+name) {
			t.Errorf("ls lacks %q or %q:\n%s", name, "rest-"+name, listing)
		}
		if b, err := os.ReadFile(filepath.Join(mp, "rest-"+name)); err != nil || string(b) != "rest:"+name {
			t.Errorf("reading REST blob %q through the mount: %q, %v", "rest-"+name, b, err)
		}
	}

	// unlink and rmdir remove what they should, and only that.
	sh(t, "rm", filepath.Join(mp, "newdir", "f.txt"))
	sh(t, "rmdir", filepath.Join(mp, "newdir"))
	sh(t, "rm", filepath.Join(mp, "with space"))
	names = w.restNames()
	for _, gone := range []string{"newdir/f.txt", "newdir/", "newdir", "with space"} {
		if names[gone] {
			t.Errorf("%q still a blob after rm/rmdir", gone)
		}
	}
	for _, kept := range []string{"random.bin", "from-rest/hello.txt", "per%cent"} {
		if !names[kept] {
			t.Errorf("%q vanished", kept)
		}
	}
	if _, err := os.Stat(filepath.Join(mp, "newdir")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of removed dir: %v", err)
	}

	// The identity path was used as Azure requires.
	imdsTokens, headerOK := 0, true
	for _, r := range w.emu.Requests() {
		if r.Server == "imds" && r.Kind == "token" {
			imdsTokens++
			if r.Header.Get("Metadata") != "true" {
				headerOK = false
			}
		}
	}
	if imdsTokens == 0 || !headerOK {
		t.Errorf("IMDS token requests: %d, all with Metadata: true: %v", imdsTokens, headerOK)
	}
	if n := w.emu.Count("listKeys"); n == 0 {
		t.Errorf("listKeys was never called")
	}

	// The metrics endpoint serves what happened, in a format Prometheus parses.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ss, err := metrics.ParseText(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("scrape does not parse: %v\n%s", err, body)
	}
	upOps := ss.Sum("blobfs_rest_requests_total", "op", "PutBlock") + ss.Sum("blobfs_rest_requests_total", "op", "PutBlob")
	if upOps == 0 || ss.Sum("blobfs_rest_sent_bytes_total") < float64(len(data)) ||
		ss.Sum("blobfs_rest_received_bytes_total") == 0 || ss.Sum("blobfs_credential_refreshes_total") == 0 ||
		!ss.Has("blobfs_rest_request_duration_seconds_bucket") || ss.Sum("blobfs_build_info", "version", "e2e-test") != 1 {
		t.Errorf("metrics do not show the traffic:\n%s", body)
	}

	// blobfs stats shows the same at a glance.
	out, stderr, code := w.blobfs(w.env(), "stats", mp)
	if code != 0 || !strings.Contains(out, "REST calls:") || !strings.Contains(out, w.az.Account()+"/"+w.container) {
		t.Errorf("blobfs stats: exit %d\n%s%s", code, out, stderr)
	}

	// SIGHUP reopens the log file (logrotate moves it away first).
	var pid int
	_ = control.Call(context.Background(), w.runDir, mp, "stats", func(m control.Message) {
		if m.Status != nil {
			pid = m.Status.PID
		}
	})
	logPath := filepath.Join(w.dir, "blobfs.log")
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the log file to be reopened", 0x10*1e9, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "log file reopened")
	})

	// blobfs unmount, then a fresh mount still has everything.
	if out, stderr, code := w.blobfs(w.env(), "unmount", mp); code != 0 {
		t.Fatalf("blobfs unmount: exit %d\n%s%s", code, out, stderr)
	}
	if _, mounted := mountpoint.MountType(mp); mounted {
		t.Fatal("still mounted after blobfs unmount")
	}
	w.mount(mp)
	if got, err := os.ReadFile(filepath.Join(mp, "random.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after remount: %d bytes, equal %v, err %v", len(got), bytes.Equal(got, data), err)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "ünïcødé 日本語")); err != nil || string(b) != "fuse:ünïcødé 日本語" {
		t.Errorf("after remount, awkward name: %q, %v", b, err)
	}

	// The log never holds a secret.
	logs, _ := os.ReadFile(logPath + ".1")
	logs = append(logs, []byte(w.log())...)
	for _, secret := range append(w.emu.Tokens(), w.az.Key()) {
		if bytes.Contains(logs, []byte(secret)) {
			t.Fatalf("the log contains a secret")
		}
	}
	if !bytes.Contains(logs, []byte("blobfs starting")) || !bytes.Contains(logs, []byte("auth_mode=msi-key")) {
		t.Errorf("no start-up line in the log")
	}
}

func containsLines(out string, want ...string) bool {
	have := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		have[strings.TrimSpace(l)] = true
	}
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var _ = exec.Command
