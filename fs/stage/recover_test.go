package stage_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/stage"
)

const crashBS = 16 << 10

// crashCase is a file left half-written by a daemon that was SIGKILLed.
type crashCase struct {
	name     string
	base     []byte // the blob before; nil: it did not exist
	truncate bool
	maxBytes int64
	writes   []crashWrite
	// theirs, when set, replaces the blob after the crash: recovery
	// must not overwrite it.
	theirs []byte
	// where the data must end up: "name", "conflict" or "lost+found"
	want string
}

type crashWrite struct {
	off int64
	n   int
}

func (c crashCase) content() []byte {
	var b []byte
	if !c.truncate {
		b = append(b, c.base...)
	}
	for k, w := range c.writes {
		if end := int(w.off) + w.n; end > len(b) {
			b = append(b, make([]byte, end-len(b))...)
		}
		copy(b[w.off:], pattern(w.n, byte(k+50)))
	}
	return b
}

var crashCases = []crashCase{
	{name: "new small", writes: []crashWrite{{0, 3000}}, want: "name"},
	{name: "new large", writes: []crashWrite{{0, 10*crashBS + 5}, {3 * crashBS, 100}}, want: "name"},
	{name: "edit in the middle", base: pattern(8*crashBS+9, 1), writes: []crashWrite{{2*crashBS + 5, 40}, {8*crashBS + 9, 777}}, want: "name"},
	{name: "streamed through a tiny cache", maxBytes: 4 * crashBS, writes: sequential(30*crashBS+3, 8<<10), want: "name"},
	{name: "replaced meanwhile", base: pattern(3*crashBS, 2), truncate: true, writes: []crashWrite{{0, 5 * crashBS}}, theirs: []byte("theirs"), want: "conflict"},
	{name: "created meanwhile", writes: []crashWrite{{0, 100}}, theirs: []byte("theirs"), want: "conflict"},
	{name: "base gone", base: pattern(6*crashBS, 3), writes: []crashWrite{{crashBS, 10}}, theirs: []byte("theirs"), want: "lost+found"},
}

func sequential(size, chunk int) []crashWrite {
	var ws []crashWrite
	for off := 0; off < size; off += chunk {
		ws = append(ws, crashWrite{int64(off), min(chunk, size-off)})
	}
	return ws
}

// TestCrashHelper is the daemon that gets killed: it runs only as the
// subprocess of TestRecover.
func TestCrashHelper(t *testing.T) {
	if os.Getenv(crashEnv) == "" {
		t.Skip("only run by TestRecover")
	}
	ctx := context.Background()
	k, _ := strconv.Atoi(os.Getenv("CRASH_CASE"))
	c := crashCases[k]
	cl := client(t, os.Getenv("CRASH_ENDPOINT"), os.Getenv("CRASH_ACCOUNT"), os.Getenv("CRASH_KEY"))
	ct := cl.Container(os.Getenv("CRASH_CONTAINER"))
	m, err := stage.NewManager(ct, stage.Options{Dir: os.Getenv("CRASH_DIR"), Account: "acct", Container: ct.Name(), BlockSize: crashBS, MaxBytes: c.maxBytes, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	var base *blob.Properties
	if c.base != nil {
		if base, err = ct.GetProperties(ctx, "f"); err != nil {
			t.Fatal(err)
		}
	}
	f, err := m.Open(ctx, "f", base, c.truncate)
	if err != nil {
		t.Fatal(err)
	}
	for k, w := range c.writes {
		if _, err := f.WriteAt(ctx, pattern(w.n, byte(k+50)), w.off); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("READY")
	time.Sleep(time.Minute) // killed before this ends
}

func TestRecover(t *testing.T) {
	for k, c := range crashCases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			ct := newContainer(t)
			if c.base != nil {
				upload(t, ct, "f", c.base)
			}
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
			cmd.Env = append(os.Environ(), crashEnv+"=1", "CRASH_CASE="+strconv.Itoa(k),
				"CRASH_ENDPOINT="+azurite.Endpoint(), "CRASH_ACCOUNT="+azurite.Account(), "CRASH_KEY="+azurite.Key(),
				"CRASH_CONTAINER="+ct.Name(), "CRASH_DIR="+dir)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			var log []string
			ready := false
			for !ready && sc.Scan() {
				log = append(log, sc.Text())
				ready = sc.Text() == "READY"
			}
			cmd.Process.Kill() // SIGKILL: no cleanup of any kind
			cmd.Wait()
			if !ready {
				t.Fatalf("helper did not get ready:\n%s", strings.Join(log, "\n"))
			}
			if c.theirs != nil {
				upload(t, ct, "f", c.theirs)
			}

			m := newManager(t, ct, stage.Options{Dir: dir, Account: "acct", Container: ct.Name()})
			rec, err := m.Recover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rec) != 1 {
				t.Fatalf("Recover = %+v, want one file", rec)
			}
			r, want := rec[0], c.content()
			t.Logf("recovered %+v", r)
			if r.Name != "f" || r.Size != int64(len(want)) {
				t.Errorf("name %q size %d, want f, %d", r.Name, r.Size, len(want))
			}
			switch c.want {
			case "name":
				if r.Err != nil || r.SavedAs != "f" {
					t.Errorf("Recovered = %+v", r)
				}
				if got, _ := download(t, ct, "f"); !bytes.Equal(got, want) {
					t.Errorf("recovered content differs (%d bytes, want %d)", len(got), len(want))
				}
			case "conflict":
				if !errors.Is(r.Err, blob.ErrPrecondition) || !strings.HasPrefix(r.SavedAs, "f.conflict-") {
					t.Errorf("Recovered = %+v", r)
				}
				if got, _ := download(t, ct, r.SavedAs); !bytes.Equal(got, want) {
					t.Errorf("saved content differs")
				}
			case "lost+found":
				if r.Err == nil || !strings.HasPrefix(r.SavedAs, m.LostFound()) {
					t.Errorf("Recovered = %+v", r)
				}
				if _, err := os.Stat(r.SavedAs); err != nil {
					t.Error(err)
				}
			}
			if c.theirs != nil {
				if got, _ := download(t, ct, "f"); !bytes.Equal(got, c.theirs) {
					t.Errorf("the other writer's version was overwritten")
				}
			}
			// Done means done: a second pass finds nothing.
			if rec, err := m.Recover(ctx); err != nil || len(rec) != 0 {
				t.Errorf("second Recover = %+v, %v", rec, err)
			}
		})
	}
}
