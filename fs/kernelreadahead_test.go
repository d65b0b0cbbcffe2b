package fs_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/blobfs/blobfs/fs"
)

// As root, the mount asks the kernel for 1 MiB of readahead, so a
// sequential reader sends 1 MiB READs instead of the default 128 KiB.
func TestKernelReadaheadRaised(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root may set a mount's read_ahead_kb")
	}
	e := newEnv(t)
	dir, _ := e.mount(t, fs.Options{})
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "1024" {
		t.Errorf("read_ahead_kb = %s, want 1024", got)
	}
}
