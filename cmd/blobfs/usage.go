package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/blobfs/blobfs/cmd/blobfs/internal/config"
)

// usages are the --help texts, each with examples.
var usages = map[string]string{
	"mount": `Usage: blobfs mount MOUNTPOINT --account ACCOUNT --container CONTAINER [flags]

Mounts the container at MOUNTPOINT. By default blobfs returns once the
mount is ready (exit status 0) and keeps serving in the background; when
the mount cannot be made (bad settings, credentials refused, container
missing, mountpoint unusable) it exits non-zero with the reason. A stale
mountpoint left by a dead blobfs is detached and reused.

SIGTERM or SIGINT finishes pending uploads (up to --unmount-timeout, then
leaves them staged in --cache-dir for the next mount) and unmounts;
SIGHUP reopens --log-file.

Examples:
  # On an Azure VM whose managed identity may list the account's keys:
  blobfs mount /mnt/data --account mystorage --container data

  # With the account key in a root-only file, read-only, for everyone:
  blobfs mount /mnt/data --account mystorage --container data \
      --auth-mode key --account-key-file /etc/blobfs/mystorage.key --read-only --allow-other

  # Under systemd, attached, logging JSON to the journal:
  blobfs mount /mnt/data --config /etc/blobfs/data.yaml --foreground --log-format json

  # Against the local sandbox that 'make sandbox' starts (Azurite on
  # 127.0.0.1:10000, the IMDS/ARM emulator on 127.0.0.1:40342 and 40343):
  mkdir -p /tmp/blobfs-sandbox/mnt
  blobfs mount /tmp/blobfs-sandbox/mnt --account devstoreaccount1 --container sandbox \
      --blob-endpoint http://127.0.0.1:10000/devstoreaccount1 \
      --imds-endpoint http://127.0.0.1:40342 --arm-endpoint http://127.0.0.1:40343

A non-empty MOUNTPOINT is refused unless --nonempty is given (its files
would be hidden while mounted). On success blobfs prints one line: what
is mounted where, the daemon's pid and where it logs.
`,
	"check": `Usage: blobfs check --account ACCOUNT --container CONTAINER [--write-probe] [flags]
       blobfs doctor ...

Walks every hop between this machine and the container with the same
settings as mount: the managed identity endpoint, the token for ARM, the
listKeys permission, storage accepting the credential, the container,
optionally a write/read/delete probe, and FUSE itself (/dev/fuse,
fusermount3, user_allow_other for --allow-other). It prints one line per
hop and, at the first failure, what to do about it. Exit status 0 when
every hop passed. Given a MOUNTPOINT, it also checks that directory, and
asks the blobfs serving it, if one does, how it is.

Examples:
  blobfs check --account mystorage --container data
  blobfs doctor --config /etc/blobfs/data.yaml --write-probe
  blobfs check --account mystorage --container data /mnt/data
`,
	"unmount": `Usage: blobfs unmount [--lazy] [--timeout D] [--run-dir DIR] MOUNTPOINT

Asks the blobfs serving MOUNTPOINT to finish its pending uploads and
unmount, printing the uploads it waits for. If they do not finish within
--timeout, it names them and exits non-zero; the daemon keeps uploading
and unmounts when it is done. With --lazy the mountpoint is detached at
once and the daemon finishes its uploads in the background. A mountpoint
whose daemon died is detached.

Examples:
  blobfs unmount /mnt/data
  blobfs unmount --timeout 30s /mnt/data || echo "uploads still pending"
  blobfs unmount --lazy /mnt/data
`,
	"stats": `Usage: blobfs stats [--json] [--prometheus] [--run-dir DIR] MOUNTPOINT

Prints what the blobfs serving MOUNTPOINT is doing: REST calls by
operation and status, bytes up and down, retries, cache hits and misses,
credential refreshes, and the uploads in flight with their progress.
The same numbers are served to Prometheus with --metrics-addr.

Examples:
  blobfs stats /mnt/data
  blobfs stats --prometheus /mnt/data | grep blobfs_rest_requests_total
`,
}

func usageFor(cmd string, w io.Writer) func(*flag.FlagSet) {
	return func(fset *flag.FlagSet) {
		fmt.Fprint(w, usages[cmd])
		if cmd == "mount" || cmd == "check" {
			fmt.Fprintf(w, "\nSettings (flag, then environment variable; keys of the --config file are the flag names):\n")
			config.PrintHelp(w, cmd)
			return
		}
		printFlags(w, fset)
	}
}

// printFlags lists a small command's flags, settings and its own alike.
func printFlags(w io.Writer, fset *flag.FlagSet) {
	fmt.Fprintf(w, "\nFlags:\n")
	fset.VisitAll(func(f *flag.Flag) {
		name := "--" + f.Name
		if len(f.Name) == 1 {
			name = "-" + f.Name
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
			name += " VALUE"
		}
		fmt.Fprintf(w, "  %s\n      %s", name, f.Usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

func configReference() string { return config.Reference() }
