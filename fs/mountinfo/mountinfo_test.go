package mountinfo

import "testing"

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
