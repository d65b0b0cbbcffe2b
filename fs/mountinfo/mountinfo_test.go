package mountinfo

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnescape(t *testing.T) {
	if got := unescape(`/mnt/with\040space\134x`); got != `/mnt/with space\x` {
		t.Errorf("unescape = %q", got)
	}
}

func TestTypeOfRoot(t *testing.T) {
	typ, found, err := Type("/")
	if err != nil || !found || typ == "" {
		t.Errorf(`Type("/") = %q, %v, %v; want the root's type`, typ, found, err)
	}
	if _, found, _ := Type("/no/such/mountpoint"); found {
		t.Error("a path that is no mountpoint was found")
	}
}

// The device number read from the table is the one stat(2) reports for
// the mount (here /proc, which every Linux process has).
func TestLookupDeviceMatchesStat(t *testing.T) {
	m, found, err := Lookup("/proc")
	if err != nil || !found {
		t.Fatalf(`Lookup("/proc") = %+v, %v, %v`, m, found, err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc", &st); err != nil {
		t.Fatal(err)
	}
	if m.Major != unix.Major(st.Dev) || m.Minor != unix.Minor(st.Dev) {
		t.Errorf("device %d:%d from the table, %d:%d from stat", m.Major, m.Minor, unix.Major(st.Dev), unix.Minor(st.Dev))
	}
}
