package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/blobfs/blobfs/cmd/blobfs/internal/config"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/control"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/metrics"
)

func cmdStats(args []string, e env) int {
	var asJSON, prom bool
	l, err := config.Parse("stats", args, e.getenv, usageFor("stats", e.stdout), func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the daemon's answer as JSON")
		fs.BoolVar(&prom, "prometheus", false, "print the metrics in the Prometheus text format")
	})
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil || len(l.Args) != 1 {
		fmt.Fprintf(e.stderr, "blobfs stats: %v\n", orUsage(err, "give exactly one MOUNTPOINT"))
		return 2
	}
	if err := l.ResolveRunDir(); err != nil {
		fmt.Fprintf(e.stderr, "blobfs stats: %v\n", err)
		return 1
	}
	mp := control.CleanMountpoint(l.Args[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var st *control.Status
	if err := control.Call(ctx, l.RunDir, mp, "stats", func(m control.Message) {
		if m.Status != nil {
			st = m.Status
		}
	}); err != nil || st == nil {
		fmt.Fprintf(e.stderr, "blobfs stats: %v (is %s mounted by blobfs? the control socket lives in --run-dir %s)\n", err, mp, l.RunDir)
		return 1
	}
	switch {
	case prom:
		fmt.Fprint(e.stdout, st.Metrics)
	case asJSON:
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	default:
		if err := printStats(e.stdout, st); err != nil {
			fmt.Fprintf(e.stderr, "blobfs stats: %v\n", err)
			return 1
		}
	}
	return 0
}

// printStats is the at-a-glance view of the daemon's metrics.
func printStats(w io.Writer, st *control.Status) error {
	ss, err := metrics.ParseText(strings.NewReader(st.Metrics))
	if err != nil {
		return fmt.Errorf("the daemon's metrics: %w", err)
	}
	fmt.Fprintf(w, "blobfs %s, pid %d: %s/%s at %s (auth %s), up %s\n",
		st.Version, st.PID, st.Account, st.Container, st.Mountpoint, st.AuthMode,
		time.Since(st.Since).Round(time.Second))

	type opRow struct {
		op       string
		byStatus map[string]float64
		total    float64
	}
	ops := map[string]*opRow{}
	var calls, failed float64
	for _, s := range ss {
		if s.Name != "blobfs_rest_requests_total" {
			continue
		}
		r := ops[s.Labels["op"]]
		if r == nil {
			r = &opRow{op: s.Labels["op"], byStatus: map[string]float64{}}
			ops[r.op] = r
		}
		r.byStatus[s.Labels["status"]] += s.Value
		r.total += s.Value
		calls += s.Value
		if code := s.Labels["status"]; code == "0" || code >= "400" {
			failed += s.Value
		}
	}
	fmt.Fprintf(w, "REST calls: %.0f (%.0f failed or refused, %.0f retries)\n", calls, failed, ss.Sum("blobfs_rest_retries_total"))
	names := make([]string, 0, len(ops))
	for k := range ops {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		r := ops[k]
		var parts []string
		for _, code := range sortedStatus(r.byStatus) {
			parts = append(parts, fmt.Sprintf("%s×%.0f", code, r.byStatus[code]))
		}
		mean := ""
		if n := ss.Sum("blobfs_rest_request_duration_seconds_count", "op", k); n > 0 {
			mean = fmt.Sprintf(", mean %s", time.Duration(ss.Sum("blobfs_rest_request_duration_seconds_sum", "op", k)/n*float64(time.Second)).Round(time.Millisecond))
		}
		fmt.Fprintf(w, "  %-22s %6.0f  (%s%s)\n", k, r.total, strings.Join(parts, " "), mean)
	}
	fmt.Fprintf(w, "Bytes: %s up, %s down\n",
		humanBytes(int64(ss.Sum("blobfs_rest_sent_bytes_total"))), humanBytes(int64(ss.Sum("blobfs_rest_received_bytes_total"))))
	fmt.Fprintf(w, "Through the mount: %s read, %s written\n",
		humanBytes(int64(ss.Sum("blobfs_fuse_read_bytes_total"))), humanBytes(int64(ss.Sum("blobfs_fuse_written_bytes_total"))))
	fmt.Fprintf(w, "Cache: lookups %.0f hits / %.0f misses, listings %.0f hits / %.0f misses; staging %s of %s\n",
		ss.Sum("blobfs_cache_hits_total", "cache", "lookup"), ss.Sum("blobfs_cache_misses_total", "cache", "lookup"),
		ss.Sum("blobfs_cache_hits_total", "cache", "listing"), ss.Sum("blobfs_cache_misses_total", "cache", "listing"),
		humanBytes(int64(ss.Sum("blobfs_cache_used_bytes"))), humanBytes(int64(ss.Sum("blobfs_cache_limit_bytes"))))
	var refreshes []string
	for _, s := range ss {
		if s.Name == "blobfs_credential_refreshes_total" {
			refreshes = append(refreshes, fmt.Sprintf("%s %.0f", s.Labels["kind"], s.Value))
		}
	}
	if len(refreshes) == 0 {
		refreshes = []string{"none"}
	}
	fmt.Fprintf(w, "Credential refreshes: %s\n", strings.Join(refreshes, ", "))
	fmt.Fprintf(w, "Pending upload: %d file(s)\n", len(st.Uploads))
	fmt.Fprint(w, formatUploads(st.Uploads))
	if len(st.LostFound) > 0 {
		fmt.Fprintf(w, "In lost+found (%s), not uploaded: %d file(s); see the README on restoring one\n", st.LostFoundDir, len(st.LostFound))
		for i, name := range st.LostFound {
			if i == 20 {
				fmt.Fprintf(w, "  ... and %d more\n", len(st.LostFound)-i)
				break
			}
			fmt.Fprintf(w, "  %s\n", name)
		}
	}
	return nil
}

func sortedStatus(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
