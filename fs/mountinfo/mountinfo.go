// Package mountinfo reads /proc/self/mountinfo: what is mounted where in
// this process's mount namespace. The daemon's shutdown (fs) and the
// command line (cmd/blobfs) both ask it.
package mountinfo

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Mount is one line of the table.
type Mount struct {
	Type         string // "fuse.blobfs", "ext4", …
	Major, Minor uint32 // the device number (st_dev of everything in it)
}

// Type returns the filesystem type mounted exactly at mp (an absolute,
// clean path) and whether anything is; the last mount there wins, as in
// the kernel. err is set when the table cannot be read.
func Type(mp string) (typ string, found bool, err error) {
	m, found, err := Lookup(mp)
	return m.Type, found, err
}

// Lookup returns what is mounted exactly at mp, read from the table and
// not from the mount itself: a FUSE daemon that stat(2)s its own mount
// waits on itself, and cannot even be killed while it does.
func Lookup(mp string) (m Mount, found bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return Mount{}, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent maj:min root mountpoint options [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 || unescape(fields[4]) != mp {
			continue
		}
		var cur Mount
		if maj, min, ok := strings.Cut(fields[2], ":"); ok {
			a, errA := strconv.ParseUint(maj, 10, 32)
			b, errB := strconv.ParseUint(min, 10, 32)
			if errA == nil && errB == nil {
				cur.Major, cur.Minor = uint32(a), uint32(b)
			}
		}
		for i := 6; i < len(fields)-1; i++ {
			if fields[i] == "-" {
				cur.Type = fields[i+1]
				m, found = cur, true
				break
			}
		}
	}
	return m, found, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
