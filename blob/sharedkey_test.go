package blob

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/blobfs/blobfs/blob/blobtest"
)

const vectorDate = "Mon, 01 Jan 2024 00:00:00 GMT"

func vectorRequest(t testing.TB, method, rawURL string, h map[string]string) *http.Request {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	req := &http.Request{Method: method, URL: u, Header: http.Header{}}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	return req
}

// Known string-to-sign vectors, written out by hand from the reference
// (§3.2), for path-style (Azurite) and host-style (Azure) endpoints.
func TestStringToSign(t *testing.T) {
	for _, tc := range []struct {
		name, account, method, url string
		header                     map[string]string
		want                       string
	}{
		{
			name: "put block, path-style, escaped name, folded value", account: "devstoreaccount1", method: "PUT",
			url: "http://127.0.0.1:10000/devstoreaccount1/ctr/dir/a%20b%2Bc?comp=block&blockid=YmxrLTAwMDAwMDAwMDA%3D",
			header: map[string]string{"Content-Length": "5", "Content-MD5": "XUFAKrxLKna5cZ2REBfFkg==", "x-ms-date": vectorDate,
				"x-ms-version": "2025-01-05", "X-Ms-Meta-B": "  two   words ", "x-ms-meta-a": "1"},
			want: "PUT\n\n\n5\nXUFAKrxLKna5cZ2REBfFkg==\n\n\n\n\n\n\n\n" +
				"x-ms-date:" + vectorDate + "\nx-ms-meta-a:1\nx-ms-meta-b:two words\nx-ms-version:2025-01-05\n" +
				"/devstoreaccount1/devstoreaccount1/ctr/dir/a%20b%2Bc\nblockid:YmxrLTAwMDAwMDAwMDA=\ncomp:block",
		},
		{
			name: "head, host-style, zero length signs empty, conditions", account: "acct", method: "HEAD",
			url:    "https://acct.blob.core.windows.net/ctr/f",
			header: map[string]string{"Content-Length": "0", "If-Match": `"0x1"`, "x-ms-date": vectorDate, "x-ms-version": "2025-01-05"},
			want: "HEAD\n\n\n\n\n\n\n\n\"0x1\"\n\n\n\n" +
				"x-ms-date:" + vectorDate + "\nx-ms-version:2025-01-05\n/acct/ctr/f",
		},
		{
			name: "list, query names lower-cased and sorted, values decoded and joined", account: "acct", method: "GET",
			url:    "https://acct.blob.core.windows.net/ctr?restype=container&comp=list&Prefix=a%20b%2Fc&include=metadata&include=deleted&marker=2%21x",
			header: map[string]string{"x-ms-date": vectorDate, "x-ms-version": "2025-01-05", "If-None-Match": "*"},
			want: "GET\n\n\n\n\n\n\n\n\n*\n\n\n" +
				"x-ms-date:" + vectorDate + "\nx-ms-version:2025-01-05\n" +
				"/acct/ctr\ncomp:list\ninclude:deleted,metadata\nmarker:2!x\nprefix:a b/c\nrestype:container",
		},
		{
			name: "empty path is /; headers in culture order", account: "acct", method: "GET",
			url: "https://acct.blob.core.windows.net?comp=list",
			header: map[string]string{"x-ms-date": vectorDate, "x-ms-meta-i0": "b", "x-ms-meta-i_": "a", "x-ms-meta-i-": "c",
				"x-ms-meta-ia": "d", "x-ms-version": "2025-01-05", "Content-Type": "text/plain", "Range": "bytes=0-1"},
			want: "GET\n\n\n\n\ntext/plain\n\n\n\n\n\nbytes=0-1\n" +
				"x-ms-date:" + vectorDate + "\nx-ms-meta-i_:a\nx-ms-meta-i-:c\nx-ms-meta-i0:b\nx-ms-meta-ia:d\nx-ms-version:2025-01-05\n" +
				"/acct/\ncomp:list",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := StringToSign(tc.account, vectorRequest(t, tc.method, tc.url, tc.header))
			if got != tc.want {
				t.Errorf("string to sign\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// Signatures computed independently with
// openssl dgst -sha256 -mac HMAC -macopt hexkey:<decoded key>.
func TestSign(t *testing.T) {
	for _, tc := range []struct {
		sts, want string
	}{
		{"PUT\n\n\n5\nXUFAKrxLKna5cZ2REBfFkg==\n\n\n\n\n\n\n\nx-ms-date:" + vectorDate + "\nx-ms-meta-a:1\nx-ms-meta-b:two words\nx-ms-version:2025-01-05\n" +
			"/devstoreaccount1/devstoreaccount1/ctr/dir/a%20b%2Bc\nblockid:YmxrLTAwMDAwMDAwMDA=\ncomp:block",
			"MuBhYoLKXdNM6YrpaT/BFqBkSze25Rc1h+iByjexd9Y="},
		{"HEAD\n\n\n\n\n\n\n\n\"0x1\"\n\n\n\nx-ms-date:" + vectorDate + "\nx-ms-version:2025-01-05\n/acct/ctr/f",
			"2uLWxjc1PoLxVdMyuo9CyaEw1JG0dhl0FVQIGzL5s+4="},
	} {
		got, err := Sign([]byte(blobtest.DevKey), tc.sts)
		if err != nil || got != tc.want {
			t.Errorf("Sign = %q, %v; want %q", got, err, tc.want)
		}
	}
	if _, err := Sign([]byte("not base64!"), "x"); err == nil || contains(err.Error(), "not base64!") {
		t.Errorf("bad key: %v (must fail without showing the key)", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func BenchmarkSign(b *testing.B) {
	req := vectorRequest(b, "PUT", "http://127.0.0.1:10000/devstoreaccount1/ctr/dir/a%20b?comp=block&blockid=YmxrLTAwMDAwMDAwMDA%3D",
		map[string]string{"Content-Length": "8388608", "Content-MD5": "XUFAKrxLKna5cZ2REBfFkg==", "x-ms-date": vectorDate, "x-ms-version": APIVersion})
	key := []byte(blobtest.DevKey)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(key, StringToSign("devstoreaccount1", req)); err != nil {
			b.Fatal(err)
		}
	}
}
