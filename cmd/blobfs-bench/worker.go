package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/blobfs/blobfs/blob"
)

// workerEnv, set to 1, makes the binary a direct worker instead of the
// harness.
const workerEnv = "BLOBFS_BENCH_DIRECT_WORKER"

// The direct baseline runs in a process of its own, like blobfs does.
// Run inside the harness, it would share the harness's GOMAXPROCS threads
// with the proxy, while blobfs brings threads of its own: on a busy
// machine, where the scheduler shares the CPU by thread, that alone made
// the direct client look up to twice as slow as it is.

// job is what the harness tells a direct worker, on its stdin (the account
// key included: it never goes on a command line or in the environment).
type job struct {
	Endpoint  string
	Account   string
	Key       string
	Container string
	Workload  string
	Config    config
	Round     int
}

// result is what the worker answers on its stdout.
type result struct {
	Seconds float64
	CPU     float64 // the worker's user+system seconds during the work
	Err     string
}

// runDirect runs wl's direct side in a worker process and waits for it.
func runDirect(ctx context.Context, r *round, wl *workload) (result, error) {
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	j := job{
		Endpoint: r.w.proxy.Endpoint(), Account: r.w.az.Account(), Key: r.w.az.Key(), Container: containerName,
		Workload: wl.key, Config: r.cfg, Round: r.n,
	}
	in, err := json.Marshal(j)
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("direct worker: %w", err)
	}
	var res result
	if err := json.Unmarshal(out, &res); err != nil {
		return result{}, fmt.Errorf("direct worker answered %q: %w", out, err)
	}
	return res, nil
}

// workerMain is the worker process: one job, one result.
func workerMain(stdin io.Reader, stdout io.Writer) int {
	var j job
	if err := json.NewDecoder(stdin).Decode(&j); err != nil {
		fmt.Fprintf(os.Stderr, "blobfs-bench worker: reading the job: %v\n", err)
		return 2
	}
	res := work(j)
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

func work(j job) result {
	var wl *workload
	for _, w := range workloads() {
		if w.key == j.Workload {
			wl = w
		}
	}
	if wl == nil || wl.direct == nil {
		return result{Err: fmt.Sprintf("workload %q has no direct side", j.Workload)}
	}
	c, err := blob.NewClient(j.Endpoint, &blob.SharedKey{Account: j.Account, Keys: blob.StaticKey(j.Key)}, blob.Options{})
	if err != nil {
		return result{Err: err.Error()}
	}
	r := newRound(j.Config, j.Round)
	r.w = &world{ct: c.Container(j.Container)}
	ctx, cancel := context.WithTimeout(context.Background(), j.Config.Timeout)
	defer cancel()
	pid := os.Getpid()
	cpu0, _ := cpuTime(pid)
	t0 := time.Now()
	err = wl.direct(ctx, r)
	res := result{Seconds: time.Since(t0).Seconds()}
	cpu1, _ := cpuTime(pid)
	res.CPU = (cpu1 - cpu0).Seconds()
	if err != nil {
		res.Err = err.Error()
	}
	return res
}
