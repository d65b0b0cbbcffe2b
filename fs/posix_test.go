package fs_test

import (
	"slices"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"

	"github.com/blobfs/blobfs/fs"
)

// posixSkip lists the go-fuse POSIX tests blob storage cannot pass, each
// with the reason. Everything else in posixtest.All runs on every `make test`.
var posixSkip = map[string]string{
	"Link":             "hard links: a blob has exactly one name, so link(2) is EPERM",
	"LinkUnlinkRename": "hard links: a blob has exactly one name, so link(2) is EPERM",
	"FcntlFlockLocksFile": "expects two fds of one process to conflict (open-file-description locks); " +
		"the mount leaves fcntl locks to the kernel's POSIX semantics, where a process never conflicts with itself",
	"XAttr":      "extended attributes are not stored (ENOTSUP): blob metadata allows only identifier keys and 8 KiB in all",
	"XAttrLarge": "extended attributes are not stored (ENOTSUP): blob metadata allows only identifier keys and 8 KiB in all",
	"Tmpfile":    "O_TMPFILE is EOPNOTSUPP: every staged file needs the blob name it will be committed under",
}

func TestPOSIX(t *testing.T) {
	names := make([]string, 0, len(posixtest.All))
	for n := range posixtest.All {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if why, ok := posixSkip[name]; ok {
				t.Skip(why)
			}
			e := newEnv(t)
			dir, _ := e.mount(t, fs.Options{})
			posixtest.All[name](t, dir)
		})
	}
}
