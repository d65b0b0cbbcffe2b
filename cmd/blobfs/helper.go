package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/blobfs/blobfs/cmd/blobfs/internal/config"
)

// helperMain is mount(8)'s helper: `mount -t fuse.blobfs SOURCE DIR -o OPTS`
// runs /sbin/mount.fuse.blobfs SOURCE DIR -o OPTS. SOURCE is CONTAINER or
// ACCOUNT/CONTAINER; each -o key=value is the setting of that name
// (underscores may stand for hyphens), a bare key is a true boolean, and
// the options mount(8) and systemd use for themselves are ignored.
func helperMain(args []string, e env) int {
	// mount(8) may run helpers with a minimal PATH; the daemon needs
	// fusermount3 to unmount.
	path := os.Getenv("PATH")
	for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if !slices.Contains(filepath.SplitList(path), d) {
			path += string(filepath.ListSeparator) + d
		}
	}
	os.Setenv("PATH", strings.TrimPrefix(path, string(filepath.ListSeparator)))
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "--help" || a == "-help" }) {
		fmt.Fprint(e.stdout, helperUsage)
		config.PrintHelp(e.stdout, "mount")
		return 0
	}
	mountArgs, err := helperArgs(args)
	if err != nil {
		fmt.Fprintf(e.stderr, "mount.fuse.blobfs: %v\n", err)
		return 1
	}
	return cmdMount(mountArgs, e)
}

const helperUsage = `Usage: mount -t fuse.blobfs [ACCOUNT/]CONTAINER MOUNTPOINT -o OPTIONS
       mount.fuse.blobfs [ACCOUNT/]CONTAINER MOUNTPOINT [-o key=value,...]

mount(8)'s helper for blobfs, also used by /etc/fstab and systemd:
  ACCOUNT/CONTAINER /mnt/data fuse.blobfs _netdev,allow_other,auth_mode=key,account_key_file=/etc/blobfs/data.key 0 0

Each -o key=value is the blobfs setting of that name (underscores may
stand for hyphens); a bare key sets a true boolean; ro means read-only;
mount(8)'s and systemd's own options (_netdev, nofail, x-systemd.*) are
ignored. The settings are those of blobfs mount:

`

// ignoredOptions belong to mount(8), systemd or the kernel's generic mount
// flags that FUSE mounts get anyway (nosuid, nodev).
var ignoredOptions = map[string]bool{
	"_netdev": true, "nofail": true, "rw": true, "defaults": true, "auto": true, "noauto": true,
	"user": true, "nouser": true, "users": true, "owner": true, "group": true,
	"nosuid": true, "suid": true, "nodev": true, "dev": true, "exec": true, "noexec": true,
	"atime": true, "noatime": true, "relatime": true, "norelatime": true, "strictatime": true,
	"sync": true, "async": true, "dirsync": true, "silent": true, "loud": true,
}

// renamed are the usual FUSE spellings of blobfs settings.
var renamed = map[string]string{
	"ro":                  "read-only",
	"allow_other":         "allow-other",
	"default_permissions": "",
}

func helperArgs(args []string) ([]string, error) {
	var pos, opts []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o":
			if i+1 >= len(args) {
				return nil, fmt.Errorf("-o needs options")
			}
			opts = append(opts, splitOptions(args[i+1])...)
			i++
		case strings.HasPrefix(a, "-o"):
			opts = append(opts, splitOptions(a[2:])...)
		case a == "-n" || a == "-s" || a == "-v" || a == "-f" || a == "-i":
			// mount(8)'s no-mtab, sloppy, verbose, fake, internal-only: nothing to do.
		case a == "-t":
			i++ // type: we know it
		case strings.HasPrefix(a, "-"):
			return nil, fmt.Errorf("unknown argument %q", a)
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, fmt.Errorf("usage: mount.fuse.blobfs [ACCOUNT/]CONTAINER MOUNTPOINT [-o key=value,...]")
	}
	src, dir := pos[0], pos[1]
	out := []string{dir}
	if acct, ct, ok := strings.Cut(src, "/"); ok {
		out = append(out, "--account", acct, "--container", ct)
	} else if src != "" && src != "none" && src != "blobfs" {
		out = append(out, "--container", src)
	}
	for _, o := range opts {
		k, v, hasV := strings.Cut(o, "=")
		if ignoredOptions[k] || strings.HasPrefix(k, "x-") || k == "comment" || k == "helper" {
			continue
		}
		if r, ok := renamed[k]; ok {
			if r == "" {
				continue // blobfs sets it itself when it matters
			}
			k = r
		}
		k = strings.ReplaceAll(k, "_", "-")
		s, ok := config.Lookup(k)
		if !ok || !s.For("mount") {
			return nil, fmt.Errorf("unknown option %q: use blobfs's setting names (see blobfs mount --help)", k)
		}
		switch {
		case hasV:
			out = append(out, "--"+k+"="+v)
		case s.Bool:
			out = append(out, "--"+k)
		default:
			return nil, fmt.Errorf("option %q needs a value (%s=...)", k, k)
		}
	}
	return out, nil
}

// splitOptions splits a -o list on commas, keeping quoted commas.
func splitOptions(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
			}
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
