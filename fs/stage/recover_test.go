package stage_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
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
	// open: the program was still writing (had not closed the file) when
	// the daemon died. Otherwise it had closed it and the daemon died in
	// the middle of the commit.
	open bool
	// appendBlob: base is an append blob, which the commit appends to.
	appendBlob bool
	// props: base has every property a rewrite keeps (fullProps), and
	// the commit is made as the fs layer makes it (base's Content-Type
	// and metadata, as a HEAD gave them); recovery must keep them all.
	props bool
	// where the data must end up: "name", "conflict", "lost+found" (the
	// commit failed), "unclosed" (kept in lost+found, not committed) or
	// "append kept" (an append under way: kept in lost+found, not sent
	// again)
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
	{name: "new small, never closed", open: true, writes: []crashWrite{{0, 3000}}, want: "unclosed"},
	{name: "new large, never closed", open: true, writes: []crashWrite{{0, 10*crashBS + 5}, {3 * crashBS, 100}}, want: "unclosed"},
	{name: "edit in the middle, never closed", open: true, base: pattern(8*crashBS+9, 1), writes: []crashWrite{{2*crashBS + 5, 40}, {8*crashBS + 9, 777}}, want: "unclosed"},
	{name: "streamed through a tiny cache, never closed", open: true, maxBytes: 4 * crashBS, writes: sequential(30*crashBS+3, 8<<10), want: "unclosed"},
	{name: "overwrite keeps properties, Put Blob", base: pattern(3000, 8), truncate: true, props: true, writes: []crashWrite{{0, 2000}}, want: "name"},
	{name: "overwrite keeps properties, Put Block List", base: pattern(3*crashBS, 9), truncate: true, props: true, writes: []crashWrite{{0, 5*crashBS + 1}}, want: "name"},
	{name: "append to an append blob", base: []byte("log head\n"), appendBlob: true, writes: []crashWrite{{9, 3*crashBS + 7}}, want: "append kept"},
}

// stallingStore is the crash helper's service: the commit's last call
// (Put Blob or Put Block List) never returns, so the daemon dies in the
// middle of a commit, after the journal said the program closed the file.
type stallingStore struct {
	*blob.Container
}

func (s stallingStore) stall() {
	fmt.Println("READY")
	time.Sleep(time.Minute) // killed before this ends
}

func (s stallingStore) Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error) {
	s.stall()
	return nil, errors.New("not reached")
}

func (s stallingStore) AppendBlock(ctx context.Context, name string, data []byte, opts blob.AppendOptions) (*blob.Properties, error) {
	s.stall()
	return nil, errors.New("not reached")
}

func (s stallingStore) PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error) {
	s.stall()
	return nil, errors.New("not reached")
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
	m, err := stage.NewManager(stallingStore{ct}, stage.Options{Dir: os.Getenv("CRASH_DIR"), Account: "acct", Container: ct.Name(), BlockSize: crashBS, MaxBytes: c.maxBytes, Concurrency: 3})
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
	if !c.open {
		// close(): the commit stalls, and the daemon dies in it.
		var opts blob.PutOptions
		if c.props {
			opts.ContentType, opts.Metadata = base.ContentType, base.Metadata
		}
		f.Commit(ctx, opts)
		t.Fatal("the commit returned")
	}
	fmt.Println("READY")
	time.Sleep(time.Minute) // killed before this ends
}

func TestRecover(t *testing.T) {
	for k, c := range crashCases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			az := shared.Get(t)
			ct := newContainer(t)
			switch {
			case c.appendBlob:
				newAppendBlob(t, ct, "f", c.base, nil)
			case c.props:
				if _, err := ct.Upload(ctx, "f", c.base, fullProps); err != nil {
					t.Fatal(err)
				}
			case c.base != nil:
				upload(t, ct, "f", c.base)
			}
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
			cmd.Env = append(os.Environ(), crashEnv+"=1", "CRASH_CASE="+strconv.Itoa(k),
				"CRASH_ENDPOINT="+az.Endpoint(), "CRASH_ACCOUNT="+az.Account(), "CRASH_KEY="+az.Key(),
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
				if c.props {
					checkFullProps(t, az, ct.Name(), "f")
				}
			case "conflict":
				if !errors.Is(r.Err, blob.ErrPrecondition) || !strings.HasPrefix(r.SavedAs, "f.conflict-") {
					t.Errorf("Recovered = %+v", r)
				}
				if got, _ := download(t, ct, r.SavedAs); !bytes.Equal(got, want) {
					t.Errorf("saved content differs")
				}
			case "lost+found":
				if r.Err == nil || errors.Is(r.Err, stage.ErrNotClosed) || !strings.HasPrefix(r.SavedAs, m.LostFound()) {
					t.Errorf("Recovered = %+v", r)
				}
				if _, err := os.Stat(r.SavedAs); err != nil {
					t.Error(err)
				}
			case "append kept":
				if !errors.Is(r.Err, stage.ErrAppendUnfinished) || !strings.HasPrefix(r.SavedAs, m.LostFound()+"/") {
					t.Fatalf("Recovered = %+v", r)
				}
				checkKept(t, r.SavedAs, c, want)
				if got, p := download(t, ct, "f"); !bytes.Equal(got, c.base) || p.BlobType != "AppendBlob" {
					t.Errorf("blob f: %d bytes, a %s; want the append blob as it was", len(got), p.BlobType)
				}
			case "unclosed":
				if !errors.Is(r.Err, stage.ErrNotClosed) || !strings.HasPrefix(r.SavedAs, m.LostFound()+"/") {
					t.Fatalf("Recovered = %+v", r)
				}
				checkKept(t, r.SavedAs, c, want)
				// Not committed: the blob is what it was before.
				if c.base == nil {
					if _, err := ct.GetProperties(ctx, "f"); !errors.Is(err, blob.ErrNotFound) {
						t.Errorf("blob f: %v, want absent", err)
					}
				} else if got, _ := download(t, ct, "f"); !bytes.Equal(got, c.base) {
					t.Errorf("blob f changed (%d bytes)", len(got))
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

// checkKept checks a never-closed file kept in lost+found: private, with
// its journal, its full size, and every byte written (that was still in
// the cache: a tiny cache drops uploaded blocks) at its place.
func checkKept(t *testing.T, path string, c crashCase, want []byte) {
	t.Helper()
	for _, p := range []string{path, path + ".json"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, st.Mode().Perm())
		}
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("lost+found: %v, %v; want mode 0700", st, err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("kept %d bytes, want %d", len(got), len(want))
	}
	if c.maxBytes != 0 {
		return
	}
	for _, w := range c.writes {
		if !bytes.Equal(got[w.off:w.off+int64(w.n)], want[w.off:w.off+int64(w.n)]) {
			t.Errorf("kept copy differs from what was written at %d (+%d)", w.off, w.n)
		}
	}
}

// A change after a commit (close or fsync) makes the file work in progress
// again: a daemon that stops then keeps it aside instead of committing it,
// and the blob stays what the commit made it.
func TestRecoverWriteAfterCommit(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	dir := t.TempDir()
	tests := []struct {
		name      string
		commitErr bool // the commit fails (conflict) before the next write
	}{
		{name: "after a successful commit"},
		{name: "after a failed commit", commitErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-")
			m := newManager(t, ct, stage.Options{Dir: dir, BlockSize: crashBS})
			f, err := m.Open(ctx, name, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			first := pattern(2*crashBS+1, 7)
			if _, err := f.WriteAt(ctx, first, 0); err != nil {
				t.Fatal(err)
			}
			if tc.commitErr {
				upload(t, ct, name, []byte("theirs"))
			}
			if _, err := f.Commit(ctx, blob.PutOptions{}); (err != nil) != tc.commitErr {
				t.Fatalf("Commit = %v", err)
			}
			if _, err := f.WriteAt(ctx, []byte("more"), int64(len(first))); err != nil {
				t.Fatal(err)
			}
			m.Close() // the daemon stops with the file open

			m2 := newManager(t, ct, stage.Options{Dir: dir, BlockSize: crashBS})
			rec, err := m2.Recover(ctx)
			if err != nil || len(rec) != 1 || !errors.Is(rec[0].Err, stage.ErrNotClosed) {
				t.Fatalf("Recover = %+v, %v; want one file kept with ErrNotClosed", rec, err)
			}
			want := []byte("theirs")
			if !tc.commitErr {
				want = first
			}
			if got, _ := download(t, ct, name); !bytes.Equal(got, want) {
				t.Errorf("blob is %d bytes, want %d", len(got), len(want))
			}
			if got, err := os.ReadFile(rec[0].SavedAs); err != nil || !bytes.Equal(got, append(first, "more"...)) {
				t.Errorf("kept copy: %d bytes, %v", len(got), err)
			}
			m2.Close()
		})
	}
}

// At shutdown: Freeze refuses new files (EROFS), an orphan (unlinked
// while open) is dropped by Close, and an ordinary open file is kept.
func TestShutdownFreezeAndOrphans(t *testing.T) {
	ctx := context.Background()
	ct := newContainer(t)
	dir := t.TempDir()
	m := newManager(t, ct, stage.Options{Dir: dir})
	kept, err := m.Open(ctx, "kept", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := m.Open(ctx, "orphan", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []*stage.File{kept, orphan} {
		if _, err := f.WriteAt(ctx, []byte("data of "+f.Name()), 0); err != nil {
			t.Fatal(err)
		}
	}
	orphan.Orphan()
	m.Freeze()
	if _, err := m.Open(ctx, "late", nil, true); !errors.Is(err, stage.ErrFrozen) || !errors.Is(err, syscall.EROFS) {
		t.Errorf("Open after Freeze = %v, want ErrFrozen (EROFS)", err)
	}
	m.Close()

	m2 := newManager(t, ct, stage.Options{Dir: dir})
	rec, err := m2.Recover(ctx)
	if err != nil || len(rec) != 1 || rec[0].Name != "kept" || !errors.Is(rec[0].Err, stage.ErrNotClosed) {
		t.Fatalf("Recover = %+v, %v; want only kept, not closed", rec, err)
	}
	if b, err := os.ReadFile(rec[0].SavedAs); err != nil || string(b) != "data of kept" {
		t.Errorf("kept copy: %q, %v", b, err)
	}
}

// fullProps is a blob with every property a rewrite must keep, as the
// Azure SDK or AzCopy would write it.
var fullProps = blob.PutOptions{
	ContentType: "text/html",
	ContentHeaders: blob.ContentHeaders{CacheControl: "public, max-age=600", ContentEncoding: "gzip",
		ContentLanguage: "de-CH", ContentDisposition: `inline; filename="page.html"`},
	Metadata:   map[string]string{"project_id": "7", "ProjectOwner": "ann"},
	Tags:       map[string]string{"team": "web", "stage": "prod"},
	AccessTier: "Cool",
}

// checkFullProps checks with the Azure SDK that name has fullProps.
func checkFullProps(t *testing.T, az *blobtest.Azurite, ctr, name string) {
	t.Helper()
	ctx := context.Background()
	cred, err := azblob.NewSharedKeyCredential(az.Account(), az.Key())
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(az.Endpoint()+"/"+ctr, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	bc := cc.NewBlobClient(name)
	p, err := bc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	got := blob.ContentHeaders{CacheControl: s(p.CacheControl), ContentEncoding: s(p.ContentEncoding),
		ContentLanguage: s(p.ContentLanguage), ContentDisposition: s(p.ContentDisposition)}
	if got != fullProps.ContentHeaders || s(p.ContentType) != fullProps.ContentType {
		t.Errorf("content headers %+v, type %q; want %+v, %q", got, s(p.ContentType), fullProps.ContentHeaders, fullProps.ContentType)
	}
	if s(p.AccessTier) != "Cool" || (p.AccessTierInferred != nil && *p.AccessTierInferred) {
		t.Errorf("tier %q (inferred %v), want Cool set on the blob", s(p.AccessTier), p.AccessTierInferred)
	}
	tags, err := bc.GetTags(ctx, nil)
	gotTags := map[string]string{}
	if err == nil {
		for _, tg := range tags.BlobTagSet {
			gotTags[*tg.Key] = *tg.Value
		}
	}
	if err != nil || !reflect.DeepEqual(gotTags, fullProps.Tags) {
		t.Errorf("tags %v %v, want %v", gotTags, err, fullProps.Tags)
	}
	// Names as stored: the SDK lower-cases them in listings and
	// canonicalises them on HEAD, so our own listing tells.
	own := client(t, az.Endpoint(), az.Account(), az.Key()).Container(ctr)
	if md := listedMetadata(t, own, name); !reflect.DeepEqual(md, fullProps.Metadata) {
		t.Errorf("listed metadata %v, want %v exactly", md, fullProps.Metadata)
	}
}
