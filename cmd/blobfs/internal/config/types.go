package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Mode is a permission mask written in octal, as chmod takes it.
type Mode uint32

// Set parses octal such as 0644 or 644.
func (m *Mode) Set(s string) error {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(s), "0o"), 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("%q is not an octal permission like 0644", s)
	}
	*m = Mode(v)
	return nil
}

func (m Mode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// FileMode converts to os.FileMode.
func (m Mode) FileMode() os.FileMode { return os.FileMode(m) }

// Size is a byte count written with an optional unit: 4096, 512K, 8MiB, 10G.
// K, M, G and T are powers of 1024, with or without "iB" or "B".
type Size int64

// Set parses a size.
func (z *Size) Set(s string) error {
	t := strings.TrimSpace(s)
	u := strings.ToUpper(t)
	mult := int64(1)
	for _, unit := range []struct {
		suffix string
		mult   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		for _, suf := range []string{unit.suffix + "IB", unit.suffix + "B", unit.suffix} {
			if strings.HasSuffix(u, suf) {
				u, mult = strings.TrimSpace(strings.TrimSuffix(u, suf)), unit.mult
				goto parse
			}
		}
	}
	u = strings.TrimSuffix(u, "B")
parse:
	v, err := strconv.ParseInt(u, 10, 64)
	if err != nil || v < 0 || (mult > 1 && v > (1<<62)/mult) {
		return fmt.Errorf("%q is not a size like 512MiB or 10G", s)
	}
	*z = Size(v * mult)
	return nil
}

func (z Size) String() string {
	v := int64(z)
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v >= u.mult && v%u.mult == 0 {
			return fmt.Sprintf("%d%s", v/u.mult, u.name)
		}
	}
	return strconv.FormatInt(v, 10)
}

// Duration is a time.Duration written like 1s, 500ms or 2m.
type Duration time.Duration

// Set parses a Go duration; a bare 0 is accepted.
func (d *Duration) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration like 1s, 500ms or 2m", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// D converts to time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
