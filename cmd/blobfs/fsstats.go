package main

import (
	"github.com/blobfs/blobfs/cmd/blobfs/internal/control"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/metrics"
	"github.com/blobfs/blobfs/fs"
)

// mountStats reads the filesystem's numbers for metrics and blobfs stats.
//
// TEMPORARY shim: fs.Mounted has no Stats() yet. Expected shape, from the
// brief: pending uploads with progress (name, size, uploaded bytes) and
// cache hits/misses. Until it lands this reports nothing pending.
func mountStats(m *fs.Mounted) ([]control.Upload, metrics.FSStats) {
	_ = m
	return nil, metrics.FSStats{}
}
