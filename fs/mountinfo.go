package fs

import (
	"path/filepath"
	"strings"

	"github.com/blobfs/blobfs/fs/mountinfo"
)

// fuseMountedAt reports whether a FUSE filesystem is mounted at dir in
// this process's mount namespace. When that cannot be read it says true,
// so that the caller goes on asking the kernel to unmount as it would
// without the check.
func fuseMountedAt(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return true
	}
	typ, found, err := mountinfo.Type(abs)
	if err != nil {
		return true
	}
	return found && (typ == "fuse" || strings.HasPrefix(typ, "fuse."))
}
