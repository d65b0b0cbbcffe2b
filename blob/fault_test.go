package blob_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
	"github.com/blobfs/blobfs/blob/transfer"
)

// A 256 MiB upload and download through a proxy that faults 10 % of the
// requests with every kind of fault end byte-identical, and neither holds
// the blob in memory: the source is generated and the sink verifies as it
// goes, so the heap only ever holds the transfer buffers (Concurrency ×
// BlockSize = 32 MiB here).
func TestTransferThroughFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("256 MiB transfer")
	}
	ctx := testContext(t)
	e := newEnv(t, "faults", envOptions{proxy: true, retry: blob.RetryPolicy{
		AttemptTimeout: 2 * time.Second, Base: 50 * time.Millisecond, MaxWait: time.Second, MaxAttempts: 12,
	}})
	const size = 256 << 20
	src := patternFile{size: size}
	peak := watchHeap(t)
	e.proxy.SetFaults(blobtest.Faults{Rate: 0.10, Stall: 10 * time.Second, RetryAfter: 200 * time.Millisecond, Seed: 42})
	opts := transfer.Options{BlockSize: 4 << 20, Concurrency: 8}
	up, err := transfer.UploadFrom(ctx, e.ct, "big/file.bin", src, size, opts)
	if err != nil {
		t.Fatalf("upload: %v (faults %v)", err, e.proxy.Injected())
	}
	dst := &patternSink{size: size}
	down, err := transfer.DownloadTo(ctx, e.ct, "big/file.bin", dst, opts)
	if err != nil {
		t.Fatalf("download: %v (faults %v)", err, e.proxy.Injected())
	}
	if err := dst.check(); err != nil {
		t.Fatal(err)
	}
	if down.Size != size || down.ETag != up.ETag || len(down.ContentMD5) != 16 {
		t.Errorf("properties: up %+v down %+v", up, down)
	}
	inj := e.proxy.Injected()
	total := 0
	for _, n := range inj {
		total += n
	}
	t.Logf("faults injected: %v; requests: %v; peak heap %d MiB", inj, e.proxy.Counts(), peak()>>20)
	if total < 5 {
		t.Errorf("only %d faults were injected: the test did not exercise the retries", total)
	}
	if p := peak(); p > 128<<20 {
		t.Errorf("peak heap %d MiB while moving 256 MiB with 32 MiB of buffers: transfers are not streaming", p>>20)
	}
}

// Each kind of fault, once, on one operation: the call succeeds after
// exactly one more request, and a stall longer than the attempt timeout
// is abandoned and retried rather than waited out.
func TestEachFaultIsRetried(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "each", envOptions{proxy: true, retry: blob.RetryPolicy{AttemptTimeout: 500 * time.Millisecond, Base: 10 * time.Millisecond}})
	data := randomBytes(1<<20, 2)
	if _, err := e.ct.Upload(ctx, "f", data, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	download := func() error {
		rc, _, err := e.ct.Download(ctx, "f", 0, -1, blob.Conditions{})
		if err != nil {
			return err
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, data) {
			return fmt.Errorf("got %d bytes that differ", len(got))
		}
		return nil
	}
	ranged := func() error {
		rc, _, err := e.ct.Download(ctx, "f", 1000, 300000, blob.Conditions{})
		if err != nil {
			return err
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, data[1000:301000]) {
			return fmt.Errorf("got %d bytes that differ", len(got))
		}
		return nil
	}
	head := func() error {
		p, err := e.ct.GetProperties(ctx, "f")
		if err == nil && p.Size != int64(len(data)) {
			err = fmt.Errorf("size %d", p.Size)
		}
		return err
	}
	put := func() error {
		_, err := e.ct.Upload(ctx, "g", data[:1000], blob.PutOptions{})
		return err
	}
	block := func() error {
		return e.ct.PutBlock(ctx, "h", blob.BlockID(0), bytes.NewReader(data), int64(len(data)))
	}
	for _, tc := range []struct {
		fault blobtest.Fault
		op    string
		call  func() error
		calls int // requests of op expected, the faulted one included
	}{
		{blobtest.FaultStall, "GetBlobProperties", head, 2},
		{blobtest.FaultStall, "GetBlob", download, 2},
		{blobtest.FaultStall, "PutBlob", put, 2},
		{blobtest.FaultBodyStall, "GetBlob", download, 2},
		{blobtest.FaultBodyStall, "GetBlob", ranged, 2},
		{blobtest.FaultTruncate, "GetBlob", download, 2},
		{blobtest.FaultReset, "GetBlob", download, 2},
		{blobtest.FaultReset, "PutBlock", block, 2},
		{blobtest.FaultLost, "PutBlock", block, 2},
		{blobtest.Fault500, "GetBlobProperties", head, 2},
		{blobtest.Fault503, "PutBlob", put, 2},
		{blobtest.Fault429, "GetBlob", download, 2},
	} {
		t.Run(string(tc.fault)+"/"+tc.op, func(t *testing.T) {
			e.proxy.ResetCounts()
			e.proxy.SetFaults(blobtest.Faults{Rate: 1, Kinds: []blobtest.Fault{tc.fault}, Ops: []string{tc.op}, Max: 1, Stall: time.Minute, RetryAfter: 50 * time.Millisecond})
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			if got := e.proxy.Injected()[tc.fault]; got != 1 {
				t.Errorf("%d faults injected, want 1", got)
			}
			if got := e.proxy.Counts()[tc.op]; got != tc.calls {
				t.Errorf("%d %s requests, want %d (%v)", got, tc.op, tc.calls, e.proxy.Counts())
			}
		})
	}
	e.proxy.SetFaults(blobtest.Faults{})
}

// A write whose answer is lost after the service applied it, or that got a
// server error before it was applied, ends as if nothing had happened, even
// when repeating it blindly would fail (conditional writes, Delete).
func TestAmbiguousWrites(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "ambiguous", envOptions{proxy: true, retry: blob.RetryPolicy{AttemptTimeout: 2 * time.Second, Base: 10 * time.Millisecond}})
	data := []byte("some content")
	for _, fault := range []blobtest.Fault{blobtest.FaultLost, blobtest.Fault500} {
		t.Run(string(fault), func(t *testing.T) {
			ct := e.ct
			inject := func(op string) {
				e.proxy.SetFaults(blobtest.Faults{Rate: 1, Kinds: []blobtest.Fault{fault}, Ops: []string{op}, Max: 1})
			}
			name := "f-" + string(fault)
			inject("PutBlob")
			p, err := ct.Upload(ctx, name, data, blob.PutOptions{Conditions: blob.Conditions{IfNoneMatch: "*"}})
			if err != nil {
				t.Fatalf("create-only upload: %v", err)
			}
			if p.ETag == "" {
				t.Errorf("create-only upload returned no ETag: %+v", p)
			}
			p, err = ct.GetProperties(ctx, name)
			if err != nil {
				t.Fatal(err)
			}

			inject("SetBlobMetadata")
			md := map[string]string{"mode": "0600"}
			p, err = ct.SetMetadata(ctx, name, md, blob.Conditions{IfMatch: p.ETag})
			if err != nil {
				t.Fatalf("conditional set metadata: %v", err)
			}
			if got, _ := ct.GetProperties(ctx, name); got.Metadata["mode"] != "0600" || got.ETag != p.ETag {
				t.Errorf("after set metadata: %+v, returned %+v", got, p)
			}

			ids := []string{blob.BlockID(0)}
			if err := ct.PutBlock(ctx, name, ids[0], bytes.NewReader([]byte("new")), 3); err != nil {
				t.Fatal(err)
			}
			inject("PutBlockList")
			sum := md5sum([]byte("new"))
			p, err = ct.PutBlockList(ctx, name, ids, blob.PutOptions{ContentMD5: sum, Conditions: blob.Conditions{IfMatch: p.ETag}})
			if err != nil {
				t.Fatalf("conditional put block list: %v", err)
			}

			inject("CopyBlob")
			cp, err := ct.Copy(ctx, blob.CopyRequest{Dst: name + ".copy", Src: name, SrcCond: blob.Conditions{IfMatch: p.ETag}, DstCond: blob.Conditions{IfNoneMatch: "*"}})
			if err != nil {
				t.Fatalf("create-only copy: %v", err)
			}
			if cp.Size != 3 {
				t.Errorf("copy: size %d, want 3", cp.Size)
			}

			inject("DeleteBlob")
			if err := ct.Delete(ctx, name, blob.Conditions{IfMatch: p.ETag}); err != nil {
				t.Fatalf("conditional delete: %v", err)
			}
			if _, err := ct.GetProperties(ctx, name); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("after delete: %v", err)
			}
			if n := e.proxy.Injected()[fault]; n == 0 {
				t.Errorf("no fault injected")
			}
			e.proxy.SetFaults(blobtest.Faults{})
			e.proxy.ResetCounts()
		})
	}
}

// An outage fails calls with ErrUnavailable once the budget is spent, and
// the client recovers when the service is back; a hung service is not
// waited on beyond the attempt timeout.
func TestOutage(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "outage", envOptions{proxy: true, retry: blob.RetryPolicy{
		AttemptTimeout: 300 * time.Millisecond, Base: 20 * time.Millisecond, MaxWait: 100 * time.Millisecond, Budget: time.Second,
	}})
	if _, err := e.ct.Upload(ctx, "f", []byte("x"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		set   func(bool)
		match error
	}{
		{"refused", e.proxy.Outage, blob.ErrUnavailable},
		{"hung", e.proxy.Hang, blob.ErrStalled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.set(true)
			_, err := e.ct.GetProperties(ctx, "f")
			tc.set(false)
			if !errors.Is(err, blob.ErrUnavailable) || !errors.Is(err, tc.match) {
				t.Fatalf("during the outage: %v, want %v", err, tc.match)
			}
			for _, k := range blob.Kinds() {
				if k != blob.ErrUnavailable && errors.Is(err, k) {
					t.Errorf("error also matches %v", k)
				}
			}
			if _, err := e.ct.GetProperties(ctx, "f"); err != nil {
				t.Fatalf("after the outage: %v", err)
			}
		})
	}
}
