package blobtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"time"
)

// AccountSAS signs an account SAS for the blob service with the account
// key (the 2020-12-06+ string-to-sign), valid for an hour, with every
// permission a mount needs. It returns the query string and, so tests can
// search logs for it, the signature alone. It signs on its own rather than
// with the blob package, which imports this one in its tests.
func AccountSAS(account, key string) (token, sig string, err error) {
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return "", "", fmt.Errorf("account key is not base64: %w", err)
	}
	v := url.Values{
		"sv":  {"2021-08-06"},
		"ss":  {"b"},
		"srt": {"sco"},
		"sp":  {"rwdlac"},
		"se":  {time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05Z")},
		"spr": {"https,http"},
	}
	sts := account + "\n" + v.Get("sp") + "\n" + v.Get("ss") + "\n" + v.Get("srt") + "\n\n" + v.Get("se") + "\n\n" + v.Get("spr") + "\n" + v.Get("sv") + "\n\n"
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte(sts))
	sig = base64.StdEncoding.EncodeToString(mac.Sum(nil))
	v.Set("sig", sig)
	return v.Encode(), sig, nil
}
