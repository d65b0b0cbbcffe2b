package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blobfs/blobfs/blob/blobtest"
)

// recordingCred notes the canonical resource of every request it signs.
type recordingCred struct {
	*SharedKey
	mu     sync.Mutex
	signed []string
}

func (r *recordingCred) Authorize(ctx context.Context, req *http.Request) error {
	r.mu.Lock()
	r.signed = append(r.signed, canonicalResource(r.Account, req.URL))
	r.mu.Unlock()
	return r.SharedKey.Authorize(ctx, req)
}

// wireResource builds the canonical resource the way the service does,
// from the request target exactly as it arrived: the raw path, and the
// query's names lower-cased and values decoded.
func wireResource(account, requestURI string) string {
	path, rawQuery, _ := strings.Cut(requestURI, "?")
	var b strings.Builder
	b.WriteString("/" + account + path)
	q, _ := url.ParseQuery(rawQuery)
	var names []string
	vals := map[string][]string{}
	for k, v := range q {
		l := strings.ToLower(k)
		if _, ok := vals[l]; !ok {
			names = append(names, l)
		}
		vals[l] = append(vals[l], v...)
	}
	sort.Strings(names)
	for _, n := range names {
		v := vals[n]
		sort.Strings(v)
		b.WriteString("\n" + n + ":" + strings.Join(v, ","))
	}
	return b.String()
}

// FuzzNameRoundTrip: every name ValidateName accepts survives a round trip
// through Azurite unchanged (upload, HEAD, download, list, copy, delete),
// with the resource signed equal to the resource on the wire; every name
// it refuses fails with exactly one name kind and sends nothing. The
// second input is used as a listing prefix and marker (query values).
func FuzzNameRoundTrip(f *testing.F) {
	for _, s := range []string{
		"plain", "with space", "a+b", "100%", "%2F", "x%20y", "q?a=b&c", "#frag", "<&>\"'", "é/日本/😀", "cafe\u0301",
		"a/b/c", ".hidden", "a..b", "a.", "dir./f", "/lead", "trail/", "a//b", "\\", "a\\b", "\x00", "\u0085", "\ufffe",
		"", strings.Repeat("x", 1025), strings.Repeat("😀", 513), strings.Repeat("a/", 254) + "b", "~!$&'()*+,;=:@",
	} {
		f.Add(s, s)
	}
	az := blobtest.StartT(f, blobtest.Options{})
	px := blobtest.StartProxyT(f, az.Endpoint())
	var mu sync.Mutex
	var wire []string
	px.Observe(func(_ string, r *http.Request) {
		mu.Lock()
		wire = append(wire, wireResource(az.Account(), r.RequestURI))
		mu.Unlock()
	})
	cred := &recordingCred{SharedKey: &SharedKey{Account: az.Account(), Keys: StaticKey(az.Key())}}
	c, err := NewClient(px.Endpoint(), cred, Options{Retry: RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		f.Fatal(err)
	}
	ct := c.Container("fuzz")
	if err := ct.Create(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		mu.Lock()
		wire = nil
		mu.Unlock()
		cred.mu.Lock()
		cred.signed = nil
		cred.mu.Unlock()
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			cred.mu.Lock()
			defer cred.mu.Unlock()
			if strings.Join(wire, "\n---\n") != strings.Join(cred.signed, "\n---\n") {
				t.Errorf("signed resources differ from the wire:\nsigned %q\n  wire %q", cred.signed, wire)
			}
		}()

		if page, err := ct.List(ctx, ListOptions{Prefix: value, Marker: value, MaxResults: 2}); err != nil && !strings.ContainsRune(value, 0) {
			// Any prefix lists (possibly nothing); a marker that is not one
			// of the service's may be refused, but never with a 403.
			if errors.Is(err, ErrAuthentication) || errors.Is(err, ErrAuthorization) {
				t.Fatalf("listing with prefix/marker %q: %v", value, err)
			}
		} else if err == nil && len(page.Blobs) > 2 {
			t.Errorf("maxresults 2 listed %d", len(page.Blobs))
		}

		if err := ValidateName(name); err != nil {
			n := 0
			for _, k := range Kinds() {
				if errors.Is(err, k) {
					n++
				}
			}
			if n != 1 || !errors.Is(err, ErrInvalidName) && !errors.Is(err, ErrNameTooLong) {
				t.Fatalf("refused name %q: %v matches %d kinds", name, err, n)
			}
			before := px.Total()
			if _, err := ct.Upload(ctx, name, []byte("x"), PutOptions{}); err == nil && !strings.HasSuffix(name, "/") {
				t.Fatalf("upload of refused name %q succeeded", name)
			}
			if strings.HasSuffix(name, "/") {
				ct.Delete(ctx, name, Conditions{})
			} else if px.Total() != before {
				t.Fatalf("a refused name was sent")
			}
			return
		}
		data := []byte("<" + name + ">")
		if _, err := ct.Upload(ctx, name, data, PutOptions{Metadata: map[string]string{"k": "v"}}); err != nil {
			t.Fatalf("upload %q: %v", name, err)
		}
		defer ct.Delete(ctx, name, Conditions{})
		p, err := ct.GetProperties(ctx, name)
		if err != nil || p.Size != int64(len(data)) {
			t.Fatalf("HEAD %q: %+v %v", name, p, err)
		}
		rc, _, err := ct.Download(ctx, name, 0, -1, Conditions{})
		if err != nil {
			t.Fatalf("download %q: %v", name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("download %q: %q %v", name, got, err)
		}
		page, err := ct.List(ctx, ListOptions{Prefix: name, MaxResults: 1})
		if err != nil || len(page.Blobs) != 1 || page.Blobs[0].Name != name {
			var listed []string
			if page != nil {
				for _, b := range page.Blobs {
					listed = append(listed, b.Name)
				}
			}
			t.Fatalf("list prefix %q: %q %v (the service changed the name)", name, listed, err)
		}
		if len(name) < 600 {
			if _, err := ct.Copy(ctx, CopyRequest{Dst: "copy", Src: name, SrcCond: Conditions{IfMatch: p.ETag}}); err != nil {
				t.Fatalf("copy from %q: %v", name, err)
			}
		}
		if err := ct.Delete(ctx, name, Conditions{}); err != nil {
			t.Fatalf("delete %q: %v", name, err)
		}
	})
}
