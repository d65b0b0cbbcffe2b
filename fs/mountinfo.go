package fs

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// fuseMountedAt reports whether a FUSE filesystem is mounted at dir in
// this process's mount namespace, from /proc/self/mountinfo. When that
// cannot be read it says true, so that the caller goes on asking the
// kernel to unmount as it would without the check.
func fuseMountedAt(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return true
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return true
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent maj:min root mountpoint options [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 || unescapeMountinfo(fields[4]) != abs {
			continue
		}
		for i := 6; i < len(fields)-1; i++ {
			if fields[i] == "-" {
				if typ := fields[i+1]; typ == "fuse" || strings.HasPrefix(typ, "fuse.") {
					return true
				}
				break
			}
		}
	}
	if sc.Err() != nil {
		return true
	}
	return false
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
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
