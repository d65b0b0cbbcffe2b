// Package mountpoint inspects and repairs the directory blobfs mounts on:
// it finds FUSE mounts whose daemon died (every access fails with "Transport
// endpoint is not connected") and detaches them, and it reads
// /proc/self/mountinfo and /etc/fuse.conf for the checks mount and doctor make.
package mountpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/blobfs/blobfs/fs/mountinfo"
)

// State is what a mountpoint looks like.
type State int

const (
	Ready   State = iota // an existing directory with nothing mounted on it
	Missing              // does not exist
	NotDir               // exists but is not a directory
	Stale                // a FUSE mount whose daemon is gone (ENOTCONN)
	Mounted              // something live is mounted there
)

func (s State) String() string {
	return [...]string{"ready", "missing", "not a directory", "stale FUSE mount", "already mounted"}[s]
}

// Inspect reports the state of mp (an absolute path).
func Inspect(mp string) (State, error) {
	var st unix.Stat_t
	err := unix.Stat(mp, &st)
	switch {
	case errors.Is(err, unix.ENOTCONN), errors.Is(err, unix.ECONNABORTED):
		return Stale, nil
	case errors.Is(err, unix.ENOENT):
		if _, ok := MountType(mp); ok {
			// A dead mount can also answer ENOENT for its own root.
			return Stale, nil
		}
		return Missing, nil
	case err != nil:
		return 0, fmt.Errorf("mountpoint %s: %w", mp, err)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return NotDir, nil
	}
	if _, ok := MountType(mp); ok {
		return Mounted, nil
	}
	return Ready, nil
}

// Detach lazily unmounts mp: it disappears from the namespace at once and
// the kernel drops it when nothing uses it any more.
func Detach(ctx context.Context, mp string) error {
	if err := unix.Unmount(mp, unix.MNT_DETACH); err == nil {
		return nil
	} else if !errors.Is(err, unix.EPERM) {
		if _, mounted := MountType(mp); !mounted {
			return nil
		}
	}
	return Fusermount(ctx, mp, true)
}

// Fusermount runs fusermount3 (or fusermount) -u, lazily with -z.
func Fusermount(ctx context.Context, mp string, lazy bool) error {
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		if bin, err = exec.LookPath("fusermount"); err != nil {
			return errors.New("fusermount3 is not installed: install the fuse3 package")
		}
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	out, err := exec.CommandContext(ctx, bin, append(args, "--", mp)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// MountType returns the filesystem type mounted exactly at mp, from
// /proc/self/mountinfo (the last mount there wins, as in the kernel).
func MountType(mp string) (string, bool) {
	typ, found, _ := mountinfo.Type(mp)
	return typ, found
}

// UserAllowOther reports whether /etc/fuse.conf lets non-root users pass
// allow_other.
func UserAllowOther(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "user_allow_other" {
			return true
		}
	}
	return false
}
