package blobtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// selfSigned is the certificate Azurite serves HTTPS with in OAuth mode.
// It is made once per Azurite and kept across restarts, so that a client
// built before a Restart still trusts the service after it.
type selfSigned struct {
	certPEM, keyPEM []byte
	pool            *x509.CertPool
}

func newSelfSigned() (*selfSigned, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "127.0.0.1", Organization: []string{"blobtest"}},
		NotBefore:             now.Add(-time.Hour), // tolerate a little clock skew
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // it is its own root in the client's pool
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &selfSigned{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		pool:    pool,
	}, nil
}

// writeFiles puts the PEM files where Azurite can read them at start; the
// caller removes dir once Azurite listens.
func (s *selfSigned) writeFiles() (dir, certFile, keyFile string, err error) {
	dir, err = os.MkdirTemp("", "blobtest-tls-")
	if err != nil {
		return "", "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, s.certPEM, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", "", "", fmt.Errorf("write test certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, s.keyPEM, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", "", "", fmt.Errorf("write test certificate key: %w", err)
	}
	return dir, certFile, keyFile, nil
}

// CertPool trusts the certificate of an Azurite started with Options.OAuth;
// it is nil otherwise.
func (a *Azurite) CertPool() *x509.CertPool {
	if a.tls == nil {
		return nil
	}
	return a.tls.pool
}

// TLSConfig is a client configuration that trusts an Azurite started with
// Options.OAuth (and nothing else); it is nil otherwise.
func (a *Azurite) TLSConfig() *tls.Config {
	if a.tls == nil {
		return nil
	}
	return &tls.Config{RootCAs: a.tls.pool, MinVersion: tls.VersionTLS12}
}

// CertPEM is the PEM certificate of an Azurite started with Options.OAuth
// (nil otherwise), for processes that cannot be handed a pool: a blobfs
// binary trusts it through SSL_CERT_FILE.
func (a *Azurite) CertPEM() []byte {
	if a.tls == nil {
		return nil
	}
	return append([]byte(nil), a.tls.certPEM...)
}
