// Command blobfs mounts an Azure Blob Storage container as a filesystem.
//
//	blobfs mount MOUNTPOINT --account A --container C
//	blobfs unmount MOUNTPOINT
//	blobfs check --account A --container C
//	blobfs stats MOUNTPOINT
//	blobfs version
//
// Installed as /sbin/mount.fuse.blobfs it is also mount(8)'s helper for
// `mount -t fuse.blobfs` and /etc/fstab.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/blobfs/blobfs/cmd/blobfs/internal/config"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

// Version is the build's version: the one stamped by the Makefile, else
// the module version or VCS revision Go recorded, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}

// env is what a command reads from outside: arguments aside, the
// environment and where to print. Tests run commands in-process with
// their own.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

func main() {
	os.Exit(run(os.Args, env{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr}))
}

func run(args []string, e env) int {
	if isHelperName(filepath.Base(args[0])) {
		return helperMain(args[1:], e)
	}
	if len(args) < 2 {
		fmt.Fprint(e.stderr, topUsage)
		return 2
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "mount":
		return cmdMount(rest, e)
	case "unmount", "umount":
		return cmdUnmount(rest, e)
	case "check", "doctor":
		return cmdCheck(rest, e)
	case "stats":
		return cmdStats(rest, e)
	case "version", "--version", "-version":
		fmt.Fprintf(e.stdout, "blobfs %s\n", Version())
		return 0
	case "help", "-h", "--help", "-help":
		if len(rest) > 0 {
			return run([]string{args[0], rest[0], "--help"}, e)
		}
		fmt.Fprint(e.stdout, topUsage)
		return 0
	case "config-reference":
		// Prints the README's configuration reference (make readme).
		fmt.Fprint(e.stdout, configReference())
		return 0
	}
	hint := ""
	if c := config.Closest(cmd, []string{"mount", "unmount", "check", "stats", "version", "help"}); c != "" {
		hint = fmt.Sprintf(": did you mean %q?", c)
	}
	fmt.Fprintf(e.stderr, "blobfs: unknown command %q%s (run 'blobfs help' for the list)\n", cmd, hint)
	return 2
}

func isHelperName(base string) bool {
	return base == "mount.fuse.blobfs" || base == "mount.blobfs" || strings.HasPrefix(base, "mount.fuse3.blobfs")
}

const topUsage = `blobfs mounts an Azure Blob Storage container as a filesystem.

Usage:
  blobfs mount MOUNTPOINT --account ACCOUNT --container CONTAINER [flags]
  blobfs unmount [--lazy] MOUNTPOINT
  blobfs check --account ACCOUNT --container CONTAINER [--write-probe]   (alias: doctor)
  blobfs stats MOUNTPOINT
  blobfs version

Run 'blobfs COMMAND --help' for a command's flags and examples.
Every flag can also come from an environment variable or a YAML file
(--config); precedence is flag > environment > file > default.

As /sbin/mount.fuse.blobfs, blobfs is mount(8)'s helper:
  mount -t fuse.blobfs ACCOUNT/CONTAINER /mnt/data -o allow_other,_netdev

To try it without Azure, 'make sandbox' in the source tree starts Azurite
and an IMDS/ARM emulator on 127.0.0.1 and prints the mount line to paste.
`
