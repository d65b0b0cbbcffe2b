package blob_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/blobfs/blobfs/blob"
)

// awkwardNames covers every class of character a file name can hold and
// the service accepts unchanged.
func awkwardNames() map[string]string {
	names := map[string]string{
		"plain":             "plain",
		"space":             "with space",
		"leading space":     " lead",
		"trailing space":    "trail ",
		"plus":              "plus+sign",
		"plus and space":    "a + b",
		"percent":           "per%cent",
		"percent escape":    "x%2Fy",
		"percent space":     "a%20b",
		"percent invalid":   "100%zz",
		"query chars":       "what?a=b&c=d",
		"hash":              "hash#tag",
		"xml chars":         "<tag attr=\"v\">&amp;'",
		"semicolon colon":   "a;b:c,d",
		"brackets":          "[x]{y}(z)",
		"dots inside":       "a..b/.hidden/..c",
		"deep":              "dir/sub/deep file",
		"latin nfc":         "caf\u00e9",
		"latin nfd":         "cafe\u0301",
		"cjk":               "日本語/中文",
		"rtl":               "שלום/مرحبا",
		"emoji (astral)":    "😀/🏳️‍🌈",
		"nbsp bom zwj":      "a\u00a0b\ufeffc\u200dd",
		"line separator":    "a\u2028b",
		"max length ascii":  strings.Repeat("x", 1024),
		"max length astral": strings.Repeat("😀", 512),
		"max segments":      strings.Repeat("s/", 253) + "f",
	}
	for _, c := range "!\"#$%&'()*+,-:;<=>?@[]^_`{|}~" {
		names[fmt.Sprintf("ascii %U", c)] = fmt.Sprintf("%c/a%cb", c, c)
	}
	return names
}

func TestRoundTripAwkwardNames(t *testing.T) {
	ctx := testContext(t)
	e := newEnv(t, "names", envOptions{})
	ct := e.ct
	names := awkwardNames()
	for class, name := range names {
		t.Run(class, func(t *testing.T) {
			if err := blob.ValidateName(name); err != nil {
				t.Fatalf("valid name refused: %v", err)
			}
			data := []byte("content of " + name)
			if _, err := ct.Upload(ctx, name, data, blob.PutOptions{Metadata: map[string]string{"mode": "0644"}}); err != nil {
				t.Fatalf("upload: %v", err)
			}
			rc, p, err := ct.Download(ctx, name, 0, -1, blob.Conditions{})
			if err != nil {
				t.Fatalf("download: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) || p.Size != int64(len(data)) || p.Metadata["mode"] != "0644" {
				t.Errorf("got %q %v size %d md %v", got, err, p.Size, p.Metadata)
			}
			page, err := ct.List(ctx, blob.ListOptions{Prefix: name})
			if err != nil {
				t.Fatalf("list by prefix: %v", err)
			}
			if len(page.Blobs) == 0 || page.Blobs[0].Name != name {
				t.Errorf("listing by prefix: %v", page.Blobs)
			}
			if len(name) < 900 {
				cp, err := ct.Copy(ctx, blob.CopyRequest{Dst: "copies/" + class, Src: name})
				if err != nil || cp.Size != int64(len(data)) {
					t.Errorf("copy: %v %+v", err, cp)
				}
			}
		})
	}
	var listed []string
	marker := ""
	for {
		page, err := ct.List(ctx, blob.ListOptions{Marker: marker, MaxResults: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Blobs {
			if !strings.HasPrefix(b.Name, "copies/") {
				listed = append(listed, b.Name)
			}
		}
		if marker = page.NextMarker; marker == "" {
			break
		}
	}
	var want []string
	for _, n := range names {
		want = append(want, n)
	}
	sort.Strings(want)
	sort.Strings(listed)
	if d := diff(listed, want); d != "" {
		t.Errorf("listing differs from the names uploaded: %s", d)
	}
	for class, name := range names {
		if err := ct.Delete(ctx, name, blob.Conditions{}); err != nil {
			t.Errorf("delete %s: %v", class, err)
		}
	}
	if _, err := ct.GetProperties(ctx, "plain"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
}

// A listing pages past the service's 5,000 entries with NextMarker, and
// splits directories with a delimiter.
func TestListPagingAndDelimiter(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 5,001 blobs")
	}
	ctx := testContext(t)
	e := newEnv(t, "paging", envOptions{})
	const n = 5001 // one past a full page
	names := make(chan string)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				if _, err := e.ct.Upload(ctx, name, nil, blob.PutOptions{Metadata: map[string]string{"n": name[2:]}}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		names <- fmt.Sprintf("p/%05d", i)
	}
	close(names)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	var pages []int
	seen := map[string]bool{}
	marker := ""
	for {
		page, err := e.ct.List(ctx, blob.ListOptions{Prefix: "p/", Marker: marker, IncludeMetadata: true})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(page.Blobs))
		for _, b := range page.Blobs {
			if seen[b.Name] {
				t.Errorf("%s listed twice", b.Name)
			}
			seen[b.Name] = true
			if b.Metadata["n"] != b.Name[2:] || b.Size != 0 || b.ETag == "" || b.LastModified.IsZero() {
				t.Errorf("listed %+v", b)
			}
		}
		if marker = page.NextMarker; marker == "" {
			break
		}
	}
	if len(seen) != n || len(pages) < 2 || pages[0] != 5000 {
		t.Errorf("listed %d blobs in pages %v, want %d with a first page of 5000", len(seen), pages, n)
	}

	for _, name := range []string{"d/a", "d/b/c", "d/b/d", "d/e/f/g", "d.x", "dz"} {
		if _, err := e.ct.Upload(ctx, name, []byte("x"), blob.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		prefix, delim  string
		blobs, entries string
	}{
		{"d/", "/", "d/a", "d/b/ d/e/"},
		{"d/b/", "/", "d/b/c d/b/d", ""},
		{"d", "/", "d.x dz", "d/"},
		{"d/", "", "d/a d/b/c d/b/d d/e/f/g", ""},
		{"nothing/", "/", "", ""},
	} {
		t.Run(tc.prefix+tc.delim, func(t *testing.T) {
			page, err := e.ct.List(ctx, blob.ListOptions{Prefix: tc.prefix, Delimiter: tc.delim})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range page.Blobs {
				got = append(got, b.Name)
			}
			if strings.Join(got, " ") != tc.blobs || strings.Join(page.Prefixes, " ") != tc.entries {
				t.Errorf("blobs %q prefixes %q, want %q and %q", got, page.Prefixes, tc.blobs, tc.entries)
			}
		})
	}
}

// diff describes how two sorted lists differ, briefly.
func diff(got, want []string) string {
	in := func(s string, l []string) bool {
		i := sort.SearchStrings(l, s)
		return i < len(l) && l[i] == s
	}
	var extra, missing []string
	for _, s := range got {
		if !in(s, want) {
			extra = append(extra, s)
		}
	}
	for _, s := range want {
		if !in(s, got) {
			missing = append(missing, s)
		}
	}
	if len(extra)+len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("unexpected %q, missing %q", extra, missing)
}
