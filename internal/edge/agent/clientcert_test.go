package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// selfSigned returns a certificate and key in PEM with common name cn.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func commonName(t *testing.T, c *clientCert) string {
	t.Helper()
	crt, err := c.get(nil)
	if err != nil || crt == nil {
		t.Fatalf("get: %v %v", crt, err)
	}
	x, err := x509.ParseCertificate(crt.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.Subject.CommonName
}

// write replaces a file and moves its modification time forward, so the
// change is seen even on file systems with coarse timestamps.
func write(t *testing.T, path string, b []byte, n int) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(time.Duration(n) * time.Second)
	os.Chtimes(path, ts, ts)
}

func TestClientCertReloadsRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1 := selfSigned(t, "first")
	write(t, cf, c1, 0)
	write(t, kf, k1, 0)
	cc, err := newClientCert(cf, kf, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if cn := commonName(t, cc); cn != "first" {
		t.Fatalf("first load: %q", cn)
	}

	// Half a rotation: the new certificate without its key does not load;
	// the previous pair stays in use.
	c2, k2 := selfSigned(t, "second")
	write(t, cf, c2, 10)
	if cn := commonName(t, cc); cn != "first" {
		t.Fatalf("mismatched pair: serving %q, want the previous certificate", cn)
	}
	// The rotation completes: the next handshake uses the new pair.
	write(t, kf, k2, 20)
	if cn := commonName(t, cc); cn != "second" {
		t.Fatalf("after rotation: %q", cn)
	}

	// A missing file at start is a configuration error.
	if _, err := newClientCert(filepath.Join(dir, "none.pem"), kf, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("missing certificate file accepted")
	}
}

func TestUplinkLogsInByCertificateAlone(t *testing.T) {
	dir := t.TempDir()
	c1, k1 := selfSigned(t, "site-1")
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write(t, cf, c1, 0)
	write(t, kf, k1, 0)
	cfg := Default()
	cfg.Name = "site-1"
	cfg.Uplink.Broker, cfg.Uplink.CertFile, cfg.Uplink.KeyFile = "tls://127.0.0.1:8883", cf, kf
	o, err := uplinkOptions(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if o.ClientID != "site-1" || o.Username != "" || o.Password != nil || o.TLS == nil || o.TLS.GetClientCertificate == nil {
		t.Fatalf("certificate login: client id %q username %q password %q tls %v", o.ClientID, o.Username, o.Password, o.TLS != nil)
	}
	cfg.Uplink.Password = "pw"
	if o, _ = uplinkOptions(cfg, slog.New(slog.DiscardHandler)); o.Username != "site-1" || string(o.Password) != "pw" {
		t.Fatalf("with a password: username %q password %q", o.Username, o.Password)
	}
}
