package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"4096", 4096, false},
		{"4KiB", 4 << 10, false},
		{"100MiB", 100 << 20, false},
		{"1GiB", 1 << 30, false},
		{"1.5GiB", 3 << 29, false},
		{"10MB", 10e6, false},
		{"4G", 4 << 30, false},
		{"", 0, true},
		{"GiB", 0, true},
		{"-1MiB", 0, true},
		{"ten", 0, true},
	}
	for _, tc := range tests {
		got, err := parseSize(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args    []string
		check   func(config) bool
		wantErr string
	}{
		{[]string{}, func(c config) bool { return c.Rounds == 5 && c.Size == 1<<30 && c.RSSSize == 4<<30 && c.List == 10000 }, ""},
		{[]string{"-quick"}, func(c config) bool { return c.Rounds == 1 && c.Size == 64<<20 }, ""},
		{[]string{"-quick", "-size", "2MiB", "-rounds", "3"}, func(c config) bool { return c.Rounds == 3 && c.Size == 2<<20 && c.Small == 100 }, ""},
		{[]string{"-only", "read,ls"}, func(c config) bool { return c.runs("read") && c.runs("ls") && !c.runs("write") }, ""},
		{[]string{"-only", "reed"}, nil, "unknown workload"},
		{[]string{"-rounds", "0"}, nil, "-rounds"},
		{[]string{"extra"}, nil, "unexpected"},
	}
	for _, tc := range tests {
		c, err := parseFlags(tc.args, io.Discard)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want one about %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !tc.check(c) {
			t.Errorf("%v: %+v, %v", tc.args, c, err)
		}
	}
}

// The checker must catch a block in the wrong place: that is what makes
// the harness's throughput numbers trustworthy.
func TestPatternChecker(t *testing.T) {
	p := newPattern(1, 20<<20)
	good := make([]byte, 8<<20)
	p.ReadAt(good, 8<<20)
	shifted := make([]byte, 8<<20)
	p.ReadAt(shifted, 0)
	flipped := append([]byte(nil), good...)
	flipped[12345] ^= 1
	tests := []struct {
		name string
		b    []byte
		off  int64
		ok   bool
	}{
		{"right block", good, 8 << 20, true},
		{"block from another offset", shifted, 8 << 20, false},
		{"one bit flipped", flipped, 8 << 20, false},
		{"past the end", good, 16 << 20, false},
	}
	for _, tc := range tests {
		_, err := p.checker().WriteAt(tc.b, tc.off)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// Sequential reads must reach the end.
	c := p.checker()
	if _, err := io.Copy(c, io.NewSectionReader(p, 0, 10<<20)); err != nil {
		t.Fatal(err)
	}
	if c.complete() == nil {
		t.Error("half a file judged complete")
	}
}

func TestMedianCounts(t *testing.T) {
	got := medianCounts([]map[string]int{
		{"PutBlob": 10, "ListBlobs": 1},
		{"PutBlob": 12},
		{"PutBlob": 11, "ListBlobs": 1, "GetBlob": 5},
	})
	want := map[string]int{"PutBlob": 11, "ListBlobs": 1}
	if len(got) != len(want) || got["PutBlob"] != 11 || got["ListBlobs"] != 1 {
		t.Errorf("medianCounts = %v, want %v", got, want)
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median = %v, want 2.5", m)
	}
}

func TestMountinfoUnescape(t *testing.T) {
	if got := unescapeMountinfo(`/tmp/a\040b\134c`); got != `/tmp/a b\c` {
		t.Errorf("got %q", got)
	}
}
