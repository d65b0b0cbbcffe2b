package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// config is what one run measures. Sizes are in bytes.
type config struct {
	Rounds     int
	Size       int64 // the sequential file, written and read
	Small      int   // files of SmallSize created, then read back
	SmallSize  int64
	List       int // blobs in the listed directory
	Tree       int // blobs in the tree walked by find and du
	TreeDirs   int // its directories
	Rm         int // files removed by rm -rf
	RmDirs     int // their directories
	RenameSize int64
	Written    int64 // the file written through the mount, then re-read
	Random     int   // 4 KiB reads at random offsets of the Size file
	RSSSize    int64
	Only       map[string]bool // workload keys; empty: all
	Blobfs     string          // a prebuilt binary; empty: build one
	MountFlags []string        // extra blobfs mount flags, for experiments
	JSON       string          // also write the results there
	Render     string          // print the table of a saved -json run instead of running
	DropCaches bool            // echo 3 > /proc/sys/vm/drop_caches before cold reads
	Keep       bool            // keep the scratch directory (logs) after the run
	// ScratchIn is where the scratch directory (mountpoints, caches,
	// logs) is made; empty: the system's temporary directory. Tests set
	// it to tell their mounts from other runs'.
	ScratchIn string `json:"-"`
	Verbose   bool
	Timeout   time.Duration // the whole run
}

// defaults are the sizes.
func defaults() config {
	return config{
		Rounds:     5,
		Size:       1 << 30,
		Small:      1000,
		SmallSize:  4 << 10,
		List:       10000,
		Tree:       20000,
		TreeDirs:   200,
		Rm:         5000,
		RmDirs:     10,
		RenameSize: 100 << 20,
		Written:    200 << 20,
		Random:     2000,
		RSSSize:    4 << 30,
		Timeout:    2 * time.Hour,
	}
}

// quick is one round at sizes small enough for development: the table's
// shape and the call counts are the same, the timings mean little.
func quick(c config) config {
	c.Rounds = 1
	c.Size = 64 << 20
	c.Small = 100
	c.List = 1000
	c.Tree = 2000
	c.TreeDirs = 20
	c.Rm = 500
	c.RmDirs = 5
	c.RenameSize = 16 << 20
	c.Written = 24 << 20
	c.Random = 200
	c.RSSSize = 128 << 20
	return c
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := defaults()
	fs := flag.NewFlagSet("blobfs-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: blobfs-bench [flags]\n\n"+
			"Starts an in-memory Azurite, a counting proxy and the IMDS/ARM emulator on\n"+
			"127.0.0.1, mounts them with the real blobfs binary, runs the issue-6\n"+
			"workloads through the mount and with the blob package directly, and\n"+
			"prints a Markdown table of medians over the rounds.\n\nWorkloads: %s\n\nFlags:\n",
			strings.Join(workloadKeys(), ","))
		fs.PrintDefaults()
	}
	quickMode := fs.Bool("quick", false, "one round at small sizes (development); explicit size flags still apply")
	rounds := fs.Int("rounds", c.Rounds, "repetitions; the table shows medians")
	size := sizeFlag(fs, "size", c.Size, "sequential file written and read")
	small := fs.Int("small", c.Small, "number of small files created and read back")
	smallSize := sizeFlag(fs, "small-size", c.SmallSize, "size of each small file")
	list := fs.Int("list", c.List, "blobs in the directory listed with ls -l")
	tree := fs.Int("tree", c.Tree, "blobs in the tree walked by find and du -s")
	treeDirs := fs.Int("tree-dirs", c.TreeDirs, "directories of that tree")
	rm := fs.Int("rm", c.Rm, "files removed by rm -rf (with --entry-ttl "+rmEntryTTL+")")
	rmDirs := fs.Int("rm-dirs", c.RmDirs, "directories of those files")
	renameSize := sizeFlag(fs, "rename-size", c.RenameSize, "file renamed")
	written := sizeFlag(fs, "written", c.Written, "file written through the mount, then re-read after a remount")
	random := fs.Int("random", c.Random, "4 KiB reads at random offsets of the sequential file")
	rss := sizeFlag(fs, "rss-size", c.RSSSize, "file copied in and out while peak RSS is watched")
	only := fs.String("only", "", "comma-separated workloads to run (default all)")
	fs.StringVar(&c.Blobfs, "blobfs", "", "blobfs binary to mount with (default: go build ./cmd/blobfs)")
	mountFlags := fs.String("mount-flags", "", "extra blobfs mount flags, space-separated (e.g. \"--block-size 16MiB\"); the table is then not of the defaults")
	fs.StringVar(&c.JSON, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&c.Render, "render", "", "print the table of a run saved with -json, recomputed from its samples, instead of running")
	fs.BoolVar(&c.DropCaches, "drop-caches", false, "drop the kernel's page cache before cold reads (root; affects the whole machine)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the scratch directory with blobfs's logs")
	fs.BoolVar(&c.Verbose, "v", false, "log each step to stderr")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quickMode {
		q := quick(c)
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		// Explicit flags win over -quick's sizes.
		if !set["rounds"] {
			*rounds = q.Rounds
		}
		if !set["size"] {
			*size = q.Size
		}
		if !set["small"] {
			*small = q.Small
		}
		if !set["list"] {
			*list = q.List
		}
		if !set["tree"] {
			*tree = q.Tree
		}
		if !set["tree-dirs"] {
			*treeDirs = q.TreeDirs
		}
		if !set["rm"] {
			*rm = q.Rm
		}
		if !set["rm-dirs"] {
			*rmDirs = q.RmDirs
		}
		if !set["rename-size"] {
			*renameSize = q.RenameSize
		}
		if !set["written"] {
			*written = q.Written
		}
		if !set["random"] {
			*random = q.Random
		}
		if !set["rss-size"] {
			*rss = q.RSSSize
		}
	}
	c.Rounds, c.Size, c.Small, c.SmallSize = *rounds, *size, *small, *smallSize
	c.List, c.RenameSize, c.Random, c.RSSSize = *list, *renameSize, *random, *rss
	c.Written = *written
	c.Tree, c.TreeDirs, c.Rm, c.RmDirs = *tree, *treeDirs, *rm, *rmDirs
	c.MountFlags = strings.Fields(*mountFlags)
	if *only != "" {
		c.Only = map[string]bool{}
		known := map[string]bool{}
		for _, k := range workloadKeys() {
			known[k] = true
		}
		for _, k := range strings.Split(*only, ",") {
			k = strings.TrimSpace(k)
			if !known[k] {
				return c, fmt.Errorf("-only: unknown workload %q; choose from %s", k, strings.Join(workloadKeys(), ","))
			}
			c.Only[k] = true
		}
	}
	return c, c.check()
}

func (c config) check() error {
	switch {
	case c.Rounds < 1:
		return errors.New("-rounds must be at least 1")
	case c.Size < 1<<20:
		return errors.New("-size must be at least 1MiB")
	case c.Small < 1 || c.SmallSize < 1:
		return errors.New("-small and -small-size must be at least 1")
	case c.List < 1:
		return errors.New("-list must be at least 1")
	case c.TreeDirs < 1 || c.Tree < c.TreeDirs:
		return errors.New("-tree-dirs must be at least 1 and -tree at least -tree-dirs")
	case c.RmDirs < 1 || c.Rm < c.RmDirs:
		return errors.New("-rm-dirs must be at least 1 and -rm at least -rm-dirs")
	case c.RenameSize < 1 || c.RSSSize < 1<<20:
		return errors.New("-rename-size must be positive and -rss-size at least 1MiB")
	case c.Random < 1:
		return errors.New("-random must be at least 1")
	}
	return nil
}

func (c config) runs(key string) bool { return len(c.Only) == 0 || c.Only[key] }

// parseSize reads 1GiB, 100MiB, 4096, 4KiB, 1.5GiB, 10MB (decimal units too).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit such as 4KiB, 100MiB or 1GiB", s)
	}
	return int64(v * mult), nil
}

type sizeValue struct{ p *int64 }

func (v sizeValue) String() string {
	if v.p == nil {
		return ""
	}
	return formatSize(*v.p)
}

func (v sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func sizeFlag(fs *flag.FlagSet, name string, def int64, usage string) *int64 {
	p := new(int64)
	*p = def
	fs.Var(sizeValue{p}, name, usage)
	return p
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
