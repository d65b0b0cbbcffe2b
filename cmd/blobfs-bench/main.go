// Command blobfs-bench is the performance harness of issue 6: it measures
// the real blobfs binary, mounted over an in-memory Azurite on loopback,
// against the blob package used directly in the same run, and prints the
// time, throughput, REST calls by operation, daemon CPU and peak RSS of
// each workload with the targets met or not.
//
//	go run ./cmd/blobfs-bench [-rounds 5] [-size 1GiB] [-small 1000] [-list 10000] [-rss-size 4GiB] [-only read,write,…] [-quick]
//
// Nothing leaves 127.0.0.1: Azurite (started with --disableTelemetry by
// blobtest), the counting proxy and the IMDS/ARM emulator all listen there
// and blobfs is given their endpoints.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(workerMain(os.Stdin, os.Stdout))
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "blobfs-bench: %v\n", err)
		os.Exit(2)
	}
	if cfg.Render != "" {
		rep, err := loadReport(cfg.Render)
		if err != nil {
			fmt.Fprintf(os.Stderr, "blobfs-bench: -render: %v\n", err)
			os.Exit(1)
		}
		rep.markdown(os.Stdout)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	rep, err := run(ctx, cfg, os.Stderr)
	if rep != nil {
		rep.markdown(os.Stdout)
		if cfg.JSON != "" {
			if jerr := rep.writeJSON(cfg.JSON); jerr != nil {
				fmt.Fprintf(os.Stderr, "blobfs-bench: -json: %v\n", jerr)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "blobfs-bench: %v\n", err)
		os.Exit(1)
	}
}

// run measures every selected workload in cfg.Rounds fresh worlds. A round
// that fails is reported and the others go on; run fails only when no
// round could be measured at all.
func run(ctx context.Context, cfg config, progress io.Writer) (*report, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(progress, format+"\n", args...) }
	scratch, err := os.MkdirTemp(cfg.ScratchIn, "blobfs-bench-")
	if err != nil {
		return nil, err
	}
	if cfg.Keep {
		logf("scratch directory (logs): %s", scratch)
	} else {
		defer os.RemoveAll(scratch)
	}
	bin := cfg.Blobfs
	if bin == "" {
		logf("building blobfs…")
		if bin, err = buildBlobfs(ctx, scratch); err != nil {
			return nil, err
		}
	}
	rep := &report{Config: cfg, Version: blobfsVersion(ctx, bin), Load: []string{loadAvg()}}
	var selected []*workload
	for _, wl := range workloads() {
		if cfg.runs(wl.key) {
			selected = append(selected, wl)
		}
	}
	samples := make([][]sample, len(selected))
	measured := 0
	for n := 0; n < cfg.Rounds; n++ {
		if ctx.Err() != nil {
			break
		}
		logf("round %d of %d", n+1, cfg.Rounds)
		got, err := runRound(ctx, cfg, bin, filepath.Join(scratch, fmt.Sprintf("round%d", n+1)), n, selected, logf)
		for i, s := range got {
			samples[i] = append(samples[i], s...)
		}
		if err != nil {
			logf("round %d failed: %v", n+1, err)
			rep.Failed = append(rep.Failed, fmt.Sprintf("round %d: %v", n+1, err))
			continue
		}
		measured++
	}
	rep.Load = append(rep.Load, loadAvg())
	for i, wl := range selected {
		rep.Rows = append(rep.Rows, aggregate(cfg, wl, samples[i]))
	}
	if measured == 0 {
		return rep, fmt.Errorf("no round completed: %s", strings.Join(rep.Failed, "; "))
	}
	return rep, ctx.Err()
}

// runRound measures the workloads once, in a world of their own. It
// returns, per workload, zero or one sample.
func runRound(ctx context.Context, cfg config, bin, dir string, n int, selected []*workload, logf func(string, ...any)) (got [][]sample, err error) {
	got = make([][]sample, len(selected))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return got, err
	}
	w, err := startWorld(ctx, dir)
	if err != nil {
		return got, err
	}
	defer w.close()
	r := newRound(cfg, n)
	r.bin, r.w, r.logf = bin, w, logf
	defer func() {
		if uerr := r.unmount(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	for i, wl := range selected {
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
		logf("  %s", wl.title(cfg))
		s, err := r.measure(ctx, wl)
		for _, e := range s.Errors {
			logf("    error: %s", e)
		}
		if err != nil {
			return got, err
		}
		logf("    direct %s s, blobfs %.2f s, %s", directSecs(s), s.Blobfs.Seconds, formatCalls(s.Blobfs.Calls))
		got[i] = append(got[i], s)
	}
	return got, nil
}

func directSecs(s sample) string {
	if s.Direct == nil {
		return "—"
	}
	return fmt.Sprintf("%.2f", s.Direct.Seconds)
}

// buildBlobfs builds the binary from this module into dir.
func buildBlobfs(ctx context.Context, dir string) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", fmt.Errorf("run blobfs-bench inside the blobfs module, or give -blobfs PATH (go env GOMOD: %v)", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	// Stamped as the Makefile does, so that the table says what was measured.
	version := "dev"
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	bin := filepath.Join(dir, "blobfs")
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version="+version, "-o", bin, "github.com/blobfs/blobfs/cmd/blobfs")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building blobfs: %v\n%s", err, out)
	}
	return bin, nil
}

func blobfsVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "(unknown version)"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
