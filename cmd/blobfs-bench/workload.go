package main

import (
	"context"
)

// workload is one line of the table: the same work done by the direct
// client and through the mount.
type workload struct {
	key   string // for -only
	title func(config) string
	// cold remounts before the blobfs side, so that neither blobfs nor the
	// kernel has anything of it cached.
	cold bool
	// mountFlags are extra blobfs flags the workload is measured with
	// (the mount is remounted with them, and without them afterwards).
	mountFlags []string
	// bytes is the payload moved through the mount, for MB/s; 0 for none.
	bytes func(config) int64
	// setup uploads fixtures, untimed and uncounted.
	setup func(context.Context, *round) error
	// direct is the baseline with the blob package; nil for none. It runs
	// in a worker process (see worker.go), where only the round's config,
	// number, content and direct client are set.
	direct func(context.Context, *round) error
	// directMakes are the fixtures the direct side leaves for later
	// workloads.
	directMakes []string
	// prepare runs on the mount before the counters are zeroed: the
	// kernel's first lookup of the workload's directory, which is not what
	// is measured.
	prepare func(context.Context, *round) error
	blobfs  func(context.Context, *round) error
	// verify checks the outcome after the counters are read.
	verify func(context.Context, *round) error
	// targets judges the medians against the targets.
	targets func(config, *row) []check
}

// side is what one side of a workload cost.
type side struct {
	Seconds  float64
	Calls    map[string]int   // requests by REST operation
	Sent     map[string]int64 // request body bytes, by operation
	Received map[string]int64 // response body bytes, by operation
}

// sample is one round of one workload.
type sample struct {
	Direct *side
	Blobfs side
	CPU    float64 // daemon user+system seconds during the blobfs side
	// DirectCPU is the direct worker's user+system seconds.
	DirectCPU float64
	PeakRSS   int64 // daemon VmHWM during the blobfs side, bytes
	// First is the first read through the mount that a re-read workload
	// is compared with (see reread.go); nil for the others.
	First  *side `json:",omitempty"`
	Errors []string
}

// check is one target and how the run fared against it.
type check struct {
	Target   string
	Measured string
	Met      bool
}

// workloads are the issue's, in the order they run: each may rely on the
// fixtures of the ones before it (uploading its own when run alone).
func workloads() []*workload {
	return []*workload{
		seqWrite(),
		seqRead(),
		randomRead(),
		smallCreate(),
		smallRead(),
		listing(),
		statAfterList(),
		findTree(),
		duTree(),
		rename(),
		rmTree(),
		rssCopy(),
		rereadLarge(),
		rereadSmall(),
		rereadWritten(),
	}
}

func workloadKeys() []string {
	var keys []string
	for _, w := range workloads() {
		keys = append(keys, w.key)
	}
	return keys
}
