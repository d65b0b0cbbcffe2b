package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/blobfs/blobfs/cmd/blobfs/internal/config"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/control"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/mountpoint"
)

func cmdUnmount(args []string, e env) int {
	var lazy bool
	var timeout time.Duration
	l, err := config.Parse("unmount", args, e.getenv, usageFor("unmount", e.stdout), func(fs *flag.FlagSet) {
		fs.BoolVar(&lazy, "lazy", false, "detach now; the daemon finishes its uploads in the background")
		fs.BoolVar(&lazy, "z", false, "same as --lazy")
		fs.DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for pending uploads")
	})
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil || len(l.Args) != 1 {
		fmt.Fprintf(e.stderr, "blobfs unmount: %v\n", orUsage(err, "give exactly one MOUNTPOINT"))
		return 2
	}
	if err := l.ResolveRunDir(); err != nil {
		fmt.Fprintf(e.stderr, "blobfs unmount: %v\n", err)
		return 1
	}
	mp := control.CleanMountpoint(l.Args[0])
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	if lazy {
		var pending []control.Upload
		_ = control.Call(ctx, l.RunDir, mp, "stats", func(m control.Message) {
			if m.Status != nil {
				pending = m.Status.Uploads
			}
		})
		if err := mountpoint.Detach(ctx, mp); err != nil {
			fmt.Fprintf(e.stderr, "blobfs unmount: %v\n", err)
			return 1
		}
		if len(pending) > 0 {
			fmt.Fprintf(e.stdout, "%s detached; blobfs finishes %d pending upload(s) in the background:\n%s", mp, len(pending), formatUploads(pending))
		}
		return 0
	}

	var last []control.Upload
	shown := ""
	err = control.Call(ctx, l.RunDir, mp, "unmount", func(m control.Message) {
		if m.Status == nil {
			return
		}
		last = m.Status.Uploads
		if s := formatUploads(last); s != shown && s != "" {
			fmt.Fprintf(e.stdout, "waiting for %d upload(s):\n%s", len(last), s)
			shown = s
		}
	})
	switch {
	case err == nil:
		return 0
	case errors.Is(err, control.ErrNoDaemon):
		return unmountWithoutDaemon(ctx, mp, e)
	case ctx.Err() != nil:
		fmt.Fprintf(e.stderr, "blobfs unmount: uploads still pending after %v; the daemon keeps going and unmounts when they are done", timeout)
		if len(last) > 0 {
			fmt.Fprintf(e.stderr, ":\n%s", formatUploads(last))
		} else {
			fmt.Fprintln(e.stderr)
		}
		return 1
	}
	fmt.Fprintf(e.stderr, "blobfs unmount: %v\n", err)
	return 1
}

// unmountWithoutDaemon handles a mountpoint no blobfs answers for: a stale
// mount is detached, anything else mounted is handed to fusermount3.
func unmountWithoutDaemon(ctx context.Context, mp string, e env) int {
	st, err := mountpoint.Inspect(mp)
	if err != nil {
		fmt.Fprintf(e.stderr, "blobfs unmount: %v\n", err)
		return 1
	}
	switch st {
	case mountpoint.Stale:
		if err := mountpoint.Detach(ctx, mp); err != nil {
			fmt.Fprintf(e.stderr, "blobfs unmount: %v\n", err)
			return 1
		}
		fmt.Fprintf(e.stdout, "the blobfs serving %s had died; detached the stale mount\n", mp)
		return 0
	case mountpoint.Mounted:
		if err := mountpoint.Fusermount(ctx, mp, false); err != nil {
			fmt.Fprintf(e.stderr, "blobfs unmount: no blobfs control socket for %s, and %v\n", mp, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(e.stderr, "blobfs unmount: nothing is mounted at %s\n", mp)
	return 1
}

func formatUploads(ups []control.Upload) string {
	var b strings.Builder
	for _, u := range ups {
		pct := 100.0
		if u.Size > 0 {
			pct = 100 * float64(u.Uploaded) / float64(u.Size)
		}
		fmt.Fprintf(&b, "  %s  %s of %s (%.0f%%)\n", u.Name, humanBytes(u.Uploaded), humanBytes(u.Size), pct)
	}
	return b.String()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func orUsage(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}
