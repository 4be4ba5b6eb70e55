package loadgen

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
)

// TestBenchConnOverTLS runs the connection storm against a TLS listener:
// every connection completes a verified TLS handshake, then CONNECT.
func TestBenchConnOverTLS(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	cfg, err := broker.TLSOptions{CertFile: certFile, KeyFile: keyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := broker.New(broker.Options{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { srv.Close(context.Background()) })

	if _, err := TLSDial(TLSOptions{CAFile: keyFile}); err == nil {
		t.Fatal("a CA file without certificates must be refused")
	}
	dial, err := TLSDial(TLSOptions{CAFile: certFile})
	if err != nil {
		t.Fatal(err)
	}
	r, err := RunBench(context.Background(), BenchOptions{Addr: ln.Addr().String(), Scenario: ScenarioConn, Conns: 20, Dial: dial})
	if err != nil || r.Connected != 20 {
		t.Fatalf("connected %d of 20: %v (%s)", r.Connected, err, r.FirstError)
	}
	// A client that does not trust the server gets nowhere.
	other, _ := TLSDial(TLSOptions{ServerName: "elsewhere.example", CAFile: certFile})
	if r, _ := RunBench(context.Background(), BenchOptions{Addr: ln.Addr().String(), Scenario: ScenarioConn, Conns: 2, Dial: other}); r.Connected != 0 {
		t.Fatal("connected without verifying the server name")
	}
}
