package fs

import (
	"fmt"
	"os"
	"strconv"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/fs/mountinfo"
)

// kernelReadahead is the page-cache readahead the kernel is told to do on
// the mount, which is also the size of its READ requests for a sequential
// reader. The kernel starts a FUSE mount at its default of 128 KiB and
// caps MaxReadAhead by that, so the mount option alone cannot raise it.
// At 1 MiB (the most MaxPages allows) a cold 512 MiB cat took 8× fewer
// requests and about a quarter less daemon CPU than at 128 KiB.
const kernelReadahead = 1 << 20

// raiseKernelReadahead sets the mount's read_ahead_kb in sysfs. Only root
// may; anyone else keeps the kernel's default, which is slower but correct.
// The mount's device number comes from the mount table: a stat of the
// mountpoint would be a request to this very daemon, and one killed while
// it waits for its own answer never exits.
func raiseKernelReadahead(log logrus.FieldLogger, mountpoint string) {
	mt, found, err := mountinfo.Lookup(mountpoint)
	if err != nil || !found || (mt.Major == 0 && mt.Minor == 0) {
		log.WithError(err).Debug("kernel readahead left at its default: the mount is not in /proc/self/mountinfo")
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", mt.Major, mt.Minor)
	if err := os.WriteFile(p, []byte(strconv.Itoa(kernelReadahead>>10)), 0o644); err != nil {
		log.WithError(err).Debug("kernel readahead left at its default (128 KiB); raising it needs root")
	}
}
