package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// row is one workload's medians over the rounds, and its verdicts.
type row struct {
	Key    string `json:"key"`
	Title  string `json:"title"`
	Rounds int    `json:"rounds"` // rounds in the medians: those without errors

	DirectS    float64          `json:"direct_s,omitempty"` // 0: no baseline
	BlobfsS    float64          `json:"blobfs_s"`
	MBps       float64          `json:"blobfs_mb_per_s,omitempty"` // payload through the mount, 10^6 bytes/s
	Ratio      float64          `json:"time_ratio,omitempty"`      // median over rounds of blobfs s ÷ direct s
	Calls      map[string]int   `json:"calls"`                     // through the mount, by operation
	Sent       map[string]int64 `json:"sent_bytes"`
	Received   map[string]int64 `json:"received_bytes"`
	Direct     map[string]int   `json:"direct_calls,omitempty"`
	FirstS     float64          `json:"first_read_s,omitempty"` // re-read workloads: the first read's time
	FirstCalls map[string]int   `json:"first_read_calls,omitempty"`
	CPU        float64          `json:"daemon_cpu_s"`
	DirectCPU  float64          `json:"direct_cpu_s,omitempty"`
	PeakRSSMiB float64          `json:"daemon_peak_rss_mib"`
	Checks     []check          `json:"targets"`
	Met        bool             `json:"met"`
	Errors     []string         `json:"errors,omitempty"`
	Samples    []sample         `json:"samples"`
}

// report is a whole run.
type report struct {
	Config  config   `json:"config"`
	Version string   `json:"blobfs_version"`
	Load    []string `json:"load_average"` // at start and end
	Rows    []*row   `json:"rows"`
	Failed  []string `json:"failed_rounds,omitempty"`
}

func aggregate(cfg config, wl *workload, samples []sample) *row {
	r := &row{Key: wl.key, Title: wl.title(cfg), Samples: samples}
	// A round that went wrong stopped early or did something else: its
	// numbers are reported as errors, not mixed into the medians (unless
	// no round went right).
	var clean []sample
	for _, s := range samples {
		for _, e := range s.Errors {
			r.Errors = append(r.Errors, e)
		}
		if len(s.Errors) == 0 {
			clean = append(clean, s)
		}
	}
	if len(clean) == 0 {
		clean = samples
	}
	r.Rounds = len(clean)
	if len(clean) == 0 {
		return r
	}
	if len(clean) < len(samples) {
		r.Title += fmt.Sprintf(" (%d of %d rounds)", len(clean), len(samples))
	}
	var direct, blobfs, ratios, cpu, dcpu, rss []float64
	var calls, dcalls, fcalls []map[string]int
	var first []float64
	var sent, recv []map[string]int64
	for _, s := range clean {
		blobfs = append(blobfs, s.Blobfs.Seconds)
		calls = append(calls, s.Blobfs.Calls)
		sent = append(sent, s.Blobfs.Sent)
		recv = append(recv, s.Blobfs.Received)
		cpu = append(cpu, s.CPU)
		rss = append(rss, float64(s.PeakRSS)/(1<<20))
		if s.First != nil {
			first = append(first, s.First.Seconds)
			fcalls = append(fcalls, s.First.Calls)
		}
		if s.Direct != nil {
			direct = append(direct, s.Direct.Seconds)
			dcalls = append(dcalls, s.Direct.Calls)
			dcpu = append(dcpu, s.DirectCPU)
			if s.Direct.Seconds > 0 {
				ratios = append(ratios, s.Blobfs.Seconds/s.Direct.Seconds)
			}
		}
	}
	r.BlobfsS, r.CPU, r.PeakRSSMiB = median(blobfs), median(cpu), median(rss)
	r.Calls, r.Sent, r.Received = medianCounts(calls), medianCounts(sent), medianCounts(recv)
	if len(direct) > 0 {
		r.DirectS, r.Ratio, r.Direct = median(direct), median(ratios), medianCounts(dcalls)
		r.DirectCPU = median(dcpu)
	}
	if len(first) > 0 {
		r.FirstS, r.FirstCalls = median(first), medianCounts(fcalls)
	}
	if wl.bytes != nil && r.BlobfsS > 0 {
		r.MBps = float64(wl.bytes(cfg)) / r.BlobfsS / 1e6
	}
	r.Checks = wl.targets(cfg, r)
	r.Met = len(r.Errors) == 0
	for _, c := range r.Checks {
		r.Met = r.Met && c.Met
	}
	return r
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianCounts takes, for each operation, the lower median over the
// rounds (a round that never made the call counts as 0): counts stay
// whole numbers.
func medianCounts[T int | int64](ms []map[string]T) map[string]T {
	ops := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			ops[k] = true
		}
	}
	out := map[string]T{}
	for op := range ops {
		v := make([]T, len(ms))
		for i, m := range ms {
			v[i] = m[op]
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		if x := v[(len(v)-1)/2]; x != 0 {
			out[op] = x
		}
	}
	return out
}

// markdown prints the table the issue asks for, the targets one by one,
// and what the direct client spent.
func (rep *report) markdown(w io.Writer) {
	c := rep.Config
	fmt.Fprintf(w, "## blobfs-bench: medians of %d round(s)\n\n", c.Rounds)
	fmt.Fprintf(w, "%s; Azurite 3.35.0 in memory, fresh each round, behind a counting proxy that both sides use; "+
		"auth-mode msi-key through the IMDS/ARM emulator; blobfs defaults; direct = blob package (8 × 8 MiB parallel blocks/ranges) in a process of its own; the two sides take turns going first, round by round. "+
		"Load average at start / end: %s.\n\n", rep.Version, strings.Join(rep.Load, " / "))
	if len(c.MountFlags) > 0 {
		fmt.Fprintf(w, "**Not the defaults**: blobfs mounted with %s.\n\n", strings.Join(c.MountFlags, " "))
	}
	fmt.Fprintln(w, "| workload | direct s | blobfs s | MB/s | ratio | calls (by op) | daemon CPU s | peak RSS MiB | target | met? |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|---:|---:|---|---|")
	for _, r := range rep.Rows {
		var targets []string
		for _, ck := range r.Checks {
			targets = append(targets, ck.Target)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %.2f | %.0f | %s | %s |\n",
			r.Title, secs(r.DirectS), secs(r.BlobfsS), num(r.MBps, "%.0f"), num(r.Ratio, "%.2f×"),
			formatCalls(r.Calls), r.CPU, r.PeakRSSMiB, strings.Join(targets, "; "), yesNo(r.Met))
	}
	fmt.Fprintln(w, "\nratio = blobfs time ÷ direct time in the same round (median of the rounds' ratios; below 1 is faster). "+
		"CPU and peak RSS (VmHWM, reset before each workload) are the blobfs daemon's.")
	fmt.Fprintln(w, "\n### Targets\n\n| workload | target | measured | met? |\n|---|---|---|---|")
	for _, r := range rep.Rows {
		for _, ck := range r.Checks {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.Key, ck.Target, ck.Measured, yesNo(ck.Met))
		}
		if len(r.Errors) > 0 {
			fmt.Fprintf(w, "| %s | completes correctly | %d error(s), see below | **no** |\n", r.Key, len(r.Errors))
		}
	}
	fmt.Fprintln(w, "\n### Direct client in the same run\n\n| workload | direct s | calls (by op) | worker CPU s |\n|---|---:|---|---:|")
	for _, r := range rep.Rows {
		if r.Direct != nil {
			fmt.Fprintf(w, "| %s | %s | %s | %.2f |\n", r.Key, secs(r.DirectS), formatCalls(r.Direct), r.DirectCPU)
		}
	}
	var errs []string
	for _, r := range rep.Rows {
		for _, e := range r.Errors {
			errs = append(errs, fmt.Sprintf("- %s: %s", r.Key, oneLine(e)))
		}
	}
	for _, f := range rep.Failed {
		errs = append(errs, "- round: "+oneLine(f))
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\n### Errors\n\n%s\n", strings.Join(errs, "\n"))
	}
}

func (rep *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// loadReport reads a run saved with -json and recomputes its rows from the
// samples, so that a change to the medians or targets applies to old runs.
func loadReport(path string) (*report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	byKey := map[string]*workload{}
	for _, wl := range workloads() {
		byKey[wl.key] = wl
	}
	for i, r := range rep.Rows {
		wl := byKey[r.Key]
		if wl == nil {
			return nil, fmt.Errorf("%s: unknown workload %q", path, r.Key)
		}
		rep.Rows[i] = aggregate(rep.Config, wl, r.Samples)
	}
	return &rep, nil
}

func formatCalls(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	ops := make([]string, 0, len(m))
	for op := range m {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		if m[ops[i]] != m[ops[j]] {
			return m[ops[i]] > m[ops[j]]
		}
		return ops[i] < ops[j]
	})
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("%s %d", op, m[op])
	}
	return strings.Join(parts, ", ")
}

func secs(s float64) string {
	if s == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", s)
}

func num(v float64, f string) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf(f, v)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ⏎ ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}
