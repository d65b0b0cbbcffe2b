package authtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
)

// claims are what the emulator puts in the tokens it mints: enough for
// Azurite's --oauth basic check (iss, aud, iat, nbf, exp) and for the ARM
// side to know who is calling.
type claims struct {
	Aud    string `json:"aud"`
	Iss    string `json:"iss"`
	Iat    int64  `json:"iat"`
	Nbf    int64  `json:"nbf"`
	Exp    int64  `json:"exp"`
	Oid    string `json:"oid"`
	Sub    string `json:"sub"`
	AppID  string `json:"appid"`
	Tid    string `json:"tid"`
	MIRID  string `json:"xms_mirid,omitempty"`
	IdType string `json:"idtyp"`
	UTI    string `json:"uti"`
	Ver    string `json:"ver"`
}

// mint makes an unsigned JWT (header.payload.): the emulator is the only
// one that checks it, by looking it up, and Azurite does not check
// signatures.
func mint(c claims) string {
	c.UTI = randomHex(12)
	h, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "none"})
	p, _ := json.Marshal(c)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "."
}

// parse decodes a token's claims without trusting them.
func parse(tok string) (claims, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return claims{}, false
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims{}, false
	}
	var c claims
	if json.Unmarshal(p, &c) != nil {
		return claims{}, false
	}
	return c, true
}

func (c claims) expires() time.Time { return time.Unix(c.Exp, 0) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomGUID makes an identifier shaped like Azure's object and client ids.
func randomGUID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// RandomKey makes a random storage account key (64 bytes, base64), as ARM
// would after a rotation.
func RandomKey() string {
	b := make([]byte, 64)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
