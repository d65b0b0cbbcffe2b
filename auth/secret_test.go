package auth_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/auth"
)

func TestSecretNeverPrints(t *testing.T) {
	const value = "s3cr3t-value-that-must-not-print"
	s := auth.NewSecret(value)
	type exported struct{ S auth.Secret }
	type unexported struct{ s auth.Secret }
	values := []any{s, &s, exported{s}, &exported{s}, unexported{s}, &unexported{s}, []auth.Secret{s}, map[string]auth.Secret{"k": s}}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
				t.Errorf("Sprintf(%s, %T) = %s", verb, v, out)
			}
		}
		b, _ := json.Marshal(v)
		if strings.Contains(string(b), value) {
			t.Errorf("json of %T = %s", v, b)
		}
	}
	var buf strings.Builder
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetLevel(logrus.DebugLevel)
	l.WithField("secret", s).WithField("struct", unexported{s}).Debug("x")
	l.SetFormatter(&logrus.JSONFormatter{})
	l.WithField("secret", s).Debug("x")
	if strings.Contains(buf.String(), value) {
		t.Errorf("logrus printed the secret: %s", buf.String())
	}
	if s.Reveal() != value {
		t.Error("Reveal lost the value")
	}
}
