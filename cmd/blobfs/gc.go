package main

import (
	"os"
	"runtime/debug"
)

// daemonGCPercent is the garbage collector's target for the mount daemon,
// unless GOGC is set: the heap grows by this share of what is live before
// a collection.
//
// The daemon's live heap is mostly its block buffers (the upload buffers
// and the readahead pool, 8 MiB each: about 160 MiB at the defaults),
// which live as long as the mount. Go's default of 100 % lets garbage
// grow to their size again before a collection, so a 4 GiB copy in and
// out peaked at 263-283 MiB of RSS. The buffers hold no pointers, so
// marking them costs next to nothing and collecting more often is cheap:
// at 25 % the same copy peaked at 231 MiB, at 23.5 daemon CPU s against
// 24.2-26.9 s at 100 % (blobfs-bench -only rss, one round each).
const daemonGCPercent = 25

// tuneGC sets daemonGCPercent, unless the environment sets GOGC (or
// GOMEMLIMIT, which an administrator may prefer to bound the daemon
// with).
func tuneGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(daemonGCPercent)
}
