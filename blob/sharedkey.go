package blob

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// SharedKey signs requests with the storage account key
// (Authorization: SharedKey account:signature).
type SharedKey struct {
	Account string
	Keys    KeySource
}

var _ Credential = (*SharedKey)(nil)

// Authorize signs req. It must be the last change made to the request.
func (s *SharedKey) Authorize(ctx context.Context, req *http.Request) error {
	key, err := s.Keys.AccountKey(ctx)
	if err != nil {
		return err
	}
	sig, err := Sign(key, StringToSign(s.Account, req))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "SharedKey "+s.Account+":"+sig)
	return nil
}

// Refresh asks the key source for a fresh key when it can give one (the
// account's keys were rotated).
func (s *SharedKey) Refresh(ctx context.Context) (bool, error) {
	if r, ok := s.Keys.(Refresher); ok {
		return r.Refresh(ctx)
	}
	return false, nil
}

// Sign computes the base64 HMAC-SHA256 of stringToSign under the decoded key.
// The error never contains the key.
func Sign(key []byte, stringToSign string) (string, error) {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(key)))
	n, err := base64.StdEncoding.Decode(raw, key)
	if err != nil {
		return "", fmt.Errorf("account key is not valid base64 (check the key's value, not shown here)")
	}
	mac := hmac.New(sha256.New, raw[:n])
	mac.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// StringToSign builds the SharedKey string-to-sign for req, as the service
// rebuilds it: the standard headers in their fixed order, the x-ms-* headers,
// then the canonicalized resource.
func StringToSign(account string, req *http.Request) string {
	h := req.Header
	length := h.Get("Content-Length")
	if length == "" && req.ContentLength > 0 {
		length = fmt.Sprint(req.ContentLength)
	}
	if length == "0" {
		length = "" // versions since 2015-02-21 sign an empty length for zero
	}
	var b strings.Builder
	for _, s := range []string{
		req.Method,
		h.Get("Content-Encoding"),
		h.Get("Content-Language"),
		length,
		h.Get("Content-MD5"),
		h.Get("Content-Type"),
		"", // Date: we always send x-ms-date
		h.Get("If-Modified-Since"),
		h.Get("If-Match"),
		h.Get("If-None-Match"),
		h.Get("If-Unmodified-Since"),
		h.Get("Range"),
	} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	b.WriteString(canonicalHeaders(h))
	b.WriteString(canonicalResource(account, req.URL))
	return b.String()
}

// canonicalHeaders reads the header map directly, not through Get or
// Values: metadata names are set as map keys in the case they are sent
// ("x-ms-meta-project_id"), which the canonicalising accessors would not
// find. Keys that differ only in case are one header to the service.
func canonicalHeaders(h http.Header) string {
	byName := map[string][]string{}
	var keys []string
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys) // repeats join in one order whatever the map's
	var names []string
	for _, k := range keys {
		l := strings.ToLower(k)
		if !strings.HasPrefix(l, "x-ms-") {
			continue
		}
		if _, seen := byName[l]; !seen {
			names = append(names, l)
		}
		byName[l] = append(byName[l], h[k]...)
	}
	sort.Slice(names, func(i, j int) bool { return headerLess(names[i], names[j]) })
	var b strings.Builder
	for _, name := range names {
		vals := append([]string(nil), byName[name]...)
		for i, v := range vals {
			vals[i] = strings.Join(strings.Fields(v), " ")
		}
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(strings.Join(vals, ","))
		b.WriteByte('\n')
	}
	return b.String()
}

func canonicalResource(account string, u *url.URL) string {
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	var b strings.Builder
	b.WriteByte('/')
	b.WriteString(account)
	b.WriteString(path)
	q, _ := url.ParseQuery(u.RawQuery)
	params := make(map[string][]string, len(q))
	var names []string
	for k, v := range q {
		l := strings.ToLower(k)
		if _, seen := params[l]; !seen {
			names = append(names, l)
		}
		params[l] = append(params[l], v...)
	}
	sort.Strings(names)
	for _, name := range names {
		vals := params[name]
		sort.Strings(vals)
		b.WriteByte('\n')
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(strings.Join(vals, ","))
	}
	return b.String()
}

// headerLess orders lower-cased x-ms-* header names as the service does:
// culture-aware, not bytewise (Azure sorts with .NET's culture compare,
// Azurite with JavaScript's localeCompare). For the characters header
// names use, that puts '_' first, then '-', then digits, then letters, so
// "x-ms-meta-i_" sorts before "x-ms-meta-i0" (bytewise it comes after).
// Other characters keep their byte order, after letters.
func headerLess(a, b string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if wa, wb := collationWeight(a[i]), collationWeight(b[i]); wa != wb {
			return wa < wb
		}
	}
	return len(a) < len(b)
}

func collationWeight(c byte) int {
	switch {
	case c == '_':
		return 1
	case c == '-':
		return 2
	case c >= '0' && c <= '9':
		return 10 + int(c-'0')
	case c >= 'a' && c <= 'z':
		return 20 + int(c-'a')
	}
	return 100 + int(c)
}
