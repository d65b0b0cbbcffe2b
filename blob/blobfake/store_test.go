package blobfake_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobfake"
	"github.com/blobfs/blobfs/fs"
	"github.com/blobfs/blobfs/fs/clock"
	"github.com/blobfs/blobfs/fs/readahead"
	"github.com/blobfs/blobfs/fs/stage"
)

// The fake stands in wherever the mount's stores are asked for, optional
// interfaces included: without one, the mount's code would take another
// path on the fake than on the service (stage keeps index tags through
// TagGetter and restores metadata names' case through Lister).
var (
	_ fs.Store          = (*blobfake.Store)(nil)
	_ stage.Store       = (*blobfake.Store)(nil)
	_ stage.BlockLister = (*blobfake.Store)(nil)
	_ stage.TagGetter   = (*blobfake.Store)(nil)
	_ stage.Lister      = (*blobfake.Store)(nil)
	_ readahead.Store   = (*blobfake.Store)(nil)
)

// Content shows what the fake holds, not what a HEAD answers: metadata
// names as sent, the index tags.
func TestContentShowsWhatIsStored(t *testing.T) {
	ctx := testCtx(t)
	s := blobfake.New(blobfake.Options{})
	tags := map[string]string{"Project": "x"}
	if _, err := s.Upload(ctx, "f", []byte("x"), blob.PutOptions{Metadata: map[string]string{"ProjectOwner": "ann"}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	_, p, ok := s.Content("f")
	if !ok || !reflect.DeepEqual(p.Metadata, map[string]string{"ProjectOwner": "ann"}) || p.MetaNamesLowered || !reflect.DeepEqual(p.Tags, tags) || p.TagCount != 1 {
		t.Errorf("Content: %+v, want metadata ProjectOwner as sent and tags %v", p, tags)
	}
	if got := s.Calls(blobfake.OpGetTags); got != 0 {
		t.Errorf("Content made %d GetBlobTags calls", got)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Last-Modified comes from the clock given, in whole seconds.
func TestLastModifiedFollowsClock(t *testing.T) {
	ctx := testCtx(t)
	clk := clock.NewFake(time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC))
	s := blobfake.New(blobfake.Options{Clock: clk})
	clk.Advance(1500 * time.Millisecond)
	p, err := s.Upload(ctx, "f", []byte("x"), blob.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2030, 1, 1, 10, 0, 1, 0, time.UTC); !p.LastModified.Equal(want) {
		t.Errorf("Last-Modified %v, want %v", p.LastModified, want)
	}
	clk.Advance(time.Hour)
	md, err := s.SetMetadata(ctx, "f", map[string]string{"a": "b"}, blob.Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2030, 1, 1, 11, 0, 1, 0, time.UTC); !md.LastModified.Equal(want) {
		t.Errorf("Last-Modified after SetMetadata %v, want %v", md.LastModified, want)
	}
}

// Where Azure and Azurite differ the fake answers as Azure; the contract
// leaves these out, so they are checked here.
func TestAzureOnlyBehaviour(t *testing.T) {
	ctx := testCtx(t)
	s := blobfake.New(blobfake.Options{})

	// Put Blob drops the blocks staged for the blob.
	if err := s.PutBlock(ctx, "f", blob.BlockID(0), strings.NewReader("blk"), 3); err != nil {
		t.Fatal(err)
	}
	if got := s.UncommittedBlocks("f"); len(got) != 1 {
		t.Fatalf("staged blocks %v, want one", got)
	}
	if _, err := s.Upload(ctx, "f", []byte("whole"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := s.UncommittedBlocks("f"); len(got) != 0 {
		t.Errorf("staged blocks after Put Blob: %v", got)
	}

	// A wrong MD5 is Md5Mismatch, ErrIntegrity.
	_, err := s.Upload(ctx, "g", []byte("x"), blob.PutOptions{ContentMD5: make([]byte, 16)})
	if !errors.Is(err, blob.ErrIntegrity) {
		t.Errorf("Upload with a wrong MD5: %v, want ErrIntegrity", err)
	}

	// All block IDs of a blob have one length.
	if err := s.PutBlock(ctx, "h", blob.BlockID(0), strings.NewReader("a"), 1); err != nil {
		t.Fatal(err)
	}
	err = s.PutBlock(ctx, "h", "c2hvcnQ=", strings.NewReader("b"), 1)
	var se *blob.StorageError
	if !errors.As(err, &se) || se.Status != 400 || se.Code != "InvalidBlobOrBlock" {
		t.Errorf("PutBlock with an ID of another length: %v, want 400 InvalidBlobOrBlock", err)
	}
	if err := s.PutBlock(ctx, "h", "not base64!", strings.NewReader("b"), 1); err == nil {
		t.Error("PutBlock with an ID that is not base64 succeeded")
	}

	// If-Match: * needs the blob to exist.
	_, err = s.Upload(ctx, "new", []byte("x"), blob.PutOptions{Conditions: blob.Conditions{IfMatch: "*"}})
	if !errors.Is(err, blob.ErrPrecondition) {
		t.Errorf("If-Match: * on a missing blob: %v, want ErrPrecondition", err)
	}
	if _, err := s.Upload(ctx, "f", []byte("x"), blob.PutOptions{Conditions: blob.Conditions{IfMatch: "*"}}); err != nil {
		t.Errorf("If-Match: * on an existing blob: %v", err)
	}

	// Copy Blob does not carry an explicit tier over: the copy has the
	// account's default (blob.Container.CopyFrom sends it for that
	// reason). Azurite copies it.
	if _, err := s.Upload(ctx, "cool", []byte("x"), blob.PutOptions{AccessTier: "Cool"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, blob.CopyRequest{Dst: "copy", Src: "cool"}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.GetProperties(ctx, "copy"); err != nil || p.AccessTier != "Hot" || !p.AccessTierInferred {
		t.Errorf("Copy of a Cool blob: %+v, %v; want the default tier, Hot, inferred", p, err)
	}

	// A marker the fake did not give is refused.
	if _, err := s.List(ctx, blob.ListOptions{Marker: "garbage"}); err == nil {
		t.Error("List with a made-up marker succeeded")
	}
}

// A hook fails calls before they are applied; an after-hook after, as a
// lost answer: the write happened but the caller hears an error.
func TestHooks(t *testing.T) {
	ctx := testCtx(t)
	s := blobfake.New(blobfake.Options{})
	var seen []string
	var mu sync.Mutex
	s.SetHook(func(op, name string) error {
		mu.Lock()
		seen = append(seen, op+" "+name)
		mu.Unlock()
		if op == blobfake.OpPut && name == "refused" {
			return blobfake.Injected(op, name)
		}
		return nil
	})
	_, err := s.Upload(ctx, "refused", []byte("x"), blob.PutOptions{})
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Errorf("hooked Upload: %v, want ErrUnavailable", err)
	}
	if _, ok, _ := content(s, "refused"); ok {
		t.Error("a call refused by the hook was applied")
	}
	if _, err := s.Upload(ctx, "ok", []byte("x"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if want := []string{"PutBlob refused", "PutBlob ok"}; strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("hook saw %q, want %q", seen, want)
	}
	mu.Unlock()
	s.SetHook(nil)

	s.SetAfterHook(func(op, name string) error {
		if op == blobfake.OpDelete {
			return blobfake.ErrorFor(op, name, 503, "ServerBusy")
		}
		return nil
	})
	err = s.Delete(ctx, "ok", blob.Conditions{})
	if !errors.Is(err, blob.ErrThrottled) {
		t.Errorf("Delete with a lost answer: %v, want ErrThrottled", err)
	}
	if _, ok, _ := content(s, "ok"); ok {
		t.Error("the after-hook's failed Delete was not applied")
	}
	s.SetAfterHook(nil)

	// The hook may act as another client in the middle of a call.
	if _, err := s.Upload(ctx, "raced", []byte("v1"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	p, _ := s.GetProperties(ctx, "raced")
	s.SetHook(func(op, name string) error {
		if op == blobfake.OpSetMetadata {
			s.SetHook(nil)
			_, err := s.Upload(ctx, name, []byte("other client"), blob.PutOptions{})
			return err
		}
		return nil
	})
	if _, err := s.SetMetadata(ctx, "raced", nil, blob.Conditions{IfMatch: p.ETag}); !errors.Is(err, blob.ErrPrecondition) {
		t.Errorf("SetMetadata after another client's write: %v, want ErrPrecondition", err)
	}
}

func content(s *blobfake.Store, name string) ([]byte, bool, *blob.Properties) {
	b, p, ok := s.Content(name)
	return b, ok, p
}

func TestCallCounts(t *testing.T) {
	ctx := testCtx(t)
	s := blobfake.New(blobfake.Options{})
	s.Upload(ctx, "a", []byte("x"), blob.PutOptions{})
	s.GetProperties(ctx, "a")
	s.GetProperties(ctx, "missing") // failed calls count too
	s.List(ctx, blob.ListOptions{})
	want := map[string]int{blobfake.OpPut: 1, blobfake.OpGetProperties: 2, blobfake.OpList: 1}
	got := s.CallCounts()
	if len(got) != len(want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	for op, n := range want {
		if got[op] != n || s.Calls(op) != n {
			t.Errorf("%s: %d calls (Calls says %d), want %d", op, got[op], s.Calls(op), n)
		}
	}
	s.Content("a") // a test's look is not a call
	if s.Calls(blobfake.OpGet) != 0 {
		t.Error("Content counted as a GetBlob")
	}
	s.ResetCalls()
	if n := len(s.CallCounts()); n != 0 {
		t.Errorf("after ResetCalls: %v", s.CallCounts())
	}
}

// A gate stops a call before it is applied: a race staged step by step.
func TestGateHoldsBeforeApplying(t *testing.T) {
	ctx := testCtx(t)
	s := blobfake.New(blobfake.Options{})
	v1, _ := s.Upload(ctx, "f", []byte("v1"), blob.PutOptions{})
	g := s.Hold(blobfake.OpPut, "f")
	errc := make(chan error, 1)
	go func() {
		_, err := s.Upload(ctx, "f", []byte("mine"), blob.PutOptions{Conditions: blob.Conditions{IfMatch: v1.ETag}})
		errc <- err
	}()
	if err := g.WaitHeld(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Other names and other ops pass the gate.
	if _, err := s.Upload(ctx, "other", []byte("x"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetMetadata(ctx, "f", map[string]string{"by": "another client"}, blob.Conditions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		t.Fatalf("the held Upload returned (%v) before Release", err)
	default:
	}
	g.Release()
	if err := <-errc; !errors.Is(err, blob.ErrPrecondition) {
		t.Errorf("held Upload after another client's write: %v, want ErrPrecondition", err)
	}
	if g.Held() != 0 || g.Arrivals() != 1 {
		t.Errorf("gate: %d held, %d arrivals; want 0 and 1", g.Held(), g.Arrivals())
	}
	// A released gate is gone.
	if _, err := s.Upload(ctx, "f", []byte("later"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	g.Release() // twice is fine
}

// HoldAfter stops a write once applied, before it answers.
func TestGateHoldsAfterApplying(t *testing.T) {
	ctx := testCtx(t)
	s := blobfake.New(blobfake.Options{})
	g := s.HoldAfter(blobfake.OpDelete, "")
	s.Upload(ctx, "f", []byte("x"), blob.PutOptions{})
	errc := make(chan error, 1)
	go func() { errc <- s.Delete(ctx, "f", blob.Conditions{}) }()
	if err := g.WaitHeld(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := content(s, "f"); ok {
		t.Error("the blob is still there while its Delete is held after applying")
	}
	g.Release()
	if err := <-errc; err != nil {
		t.Errorf("Delete: %v", err)
	}
}

// A held call whose context ends returns the context's error and is not
// applied.
func TestGateHonoursContext(t *testing.T) {
	s := blobfake.New(blobfake.Options{})
	g := s.Hold(blobfake.OpPut, "")
	defer g.Release()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.Upload(ctx, "f", []byte("x"), blob.PutOptions{})
		errc <- err
	}()
	if err := g.WaitHeld(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("held Upload after cancel: %v, want context.Canceled", err)
	}
	if _, ok, _ := content(s, "f"); ok {
		t.Error("a cancelled held call was applied")
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := g.WaitHeld(short, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitHeld with nothing held: %v, want DeadlineExceeded", err)
	}
}

// Conditional writes racing on one blob: exactly one wins each round, and
// the blob holds the winner's data. Run with -race.
func TestConcurrentConditionalWrites(t *testing.T) {
	ctx := testCtx(t)
	s := blobfake.New(blobfake.Options{})
	p, _ := s.Upload(ctx, "f", []byte("start"), blob.PutOptions{})
	for round := 0; round < 20; round++ {
		const writers = 8
		var wg sync.WaitGroup
		wins := make(chan []byte, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := []byte{byte(round), byte(w)}
				var err error
				if w%2 == 0 {
					_, err = s.Upload(ctx, "f", data, blob.PutOptions{Conditions: blob.Conditions{IfMatch: p.ETag}})
				} else {
					id := blob.BlockID(w)
					if err = s.PutBlock(ctx, "f", id, bytes.NewReader(data), 2); err == nil {
						_, err = s.PutBlockList(ctx, "f", []string{id}, blob.PutOptions{Conditions: blob.Conditions{IfMatch: p.ETag}})
					}
				}
				if err == nil {
					wins <- data
				} else if !errors.Is(err, blob.ErrPrecondition) && !isBadBlockList(err) {
					t.Errorf("round %d writer %d: %v", round, w, err)
				}
				s.List(ctx, blob.ListOptions{})
				if rc, _, err := s.Download(ctx, "f", 0, -1, blob.Conditions{}); err == nil {
					rc.Close()
				}
			}()
		}
		wg.Wait()
		close(wins)
		var won [][]byte
		for d := range wins {
			won = append(won, d)
		}
		got, _, _ := s.Content("f")
		if len(won) != 1 || !bytes.Equal(got, won[0]) {
			t.Fatalf("round %d: %d winners %v, blob holds %v", round, len(won), won, got)
		}
		p, _ = s.GetProperties(ctx, "f")
	}
}

// isBadBlockList is a Put Block List whose staged block another writer's
// commit dropped first: a 400 the service gives in that race too.
func isBadBlockList(err error) bool {
	var se *blob.StorageError
	return errors.As(err, &se) && se.Code == "InvalidBlockList"
}
