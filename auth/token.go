package auth

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// token is an OAuth access token with its lifetime.
type token struct {
	value     Secret
	expiresOn time.Time
	refreshIn time.Duration // from the answer's refresh_in; 0 if absent
	fetched   time.Time
}

// tokenAnswer is the 200 body of IMDS and IDENTITY_ENDPOINT. Every value
// is documented as a string, but MSAL accepts numbers too, and dates for
// expires_on (older App Service versions), so we do as well.
type tokenAnswer struct {
	AccessToken string          `json:"access_token"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
	ExpiresOn   json.RawMessage `json:"expires_on"`
	RefreshIn   json.RawMessage `json:"refresh_in"`
	TokenType   string          `json:"token_type"`
	Resource    string          `json:"resource"`
}

// parseToken reads a token answer received at now.
func parseToken(body []byte, now time.Time) (token, error) {
	var a tokenAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		// The body holds the token: never quote it in the error.
		return token{}, fmt.Errorf("token answer is not JSON (%d bytes)", len(body))
	}
	if a.AccessToken == "" {
		return token{}, fmt.Errorf("token answer has no access_token")
	}
	if a.TokenType != "" && !strings.EqualFold(a.TokenType, "Bearer") {
		return token{}, fmt.Errorf("token answer has token_type %q, want Bearer", a.TokenType)
	}
	t := token{value: NewSecret(a.AccessToken), fetched: now}
	if on, ok := parseExpiresOn(rawString(a.ExpiresOn)); ok {
		t.expiresOn = on
	} else if in, err := strconv.ParseInt(rawString(a.ExpiresIn), 10, 64); err == nil && in > 0 {
		t.expiresOn = now.Add(time.Duration(in) * time.Second)
	} else {
		return token{}, fmt.Errorf("token answer has neither a usable expires_on nor expires_in")
	}
	if in, err := strconv.ParseInt(rawString(a.RefreshIn), 10, 64); err == nil && in > 0 {
		t.refreshIn = time.Duration(in) * time.Second
	}
	return t, nil
}

// rawString is a JSON string's content, or a bare JSON number's text.
func rawString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	return strings.TrimSpace(string(raw))
}

func parseExpiresOn(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return time.Time{}, false
		}
		return time.Unix(n, 0), true
	}
	for _, layout := range []string{time.RFC3339, "1/2/2006 3:04:05 PM -07:00", "01/02/2006 15:04:05 -07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// identityError is the error body of IMDS and IDENTITY_ENDPOINT.
type identityError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func parseIdentityError(body []byte) identityError {
	var e identityError
	if json.Unmarshal(body, &e) != nil {
		// Some hosts answer {"statusCode":…,"message":…}; keep it short.
		s := strings.TrimSpace(string(body))
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		e.Description = s
	}
	return e
}

func (e identityError) String() string {
	switch {
	case e.Error != "" && e.Description != "":
		return e.Error + ": " + e.Description
	case e.Error != "":
		return e.Error
	}
	return e.Description
}
