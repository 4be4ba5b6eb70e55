package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"testing"
)

// FuzzUserPEM feeds arbitrary bytes to the two PEM inputs users send
// through the API (a CSR to sign, a CA to register): they must be refused
// with ErrInvalid (or, for a CA registered twice, ErrExists), never panic.
func FuzzUserPEM(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "d1"}}, key)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("not pem"))
	s, err := Open(context.Background(), openDB(f, "d1"), Options{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.CA())
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx := context.Background()
		if _, err := s.SignCSR(ctx, "d1", b); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("SignCSR: error without ErrInvalid: %v", err)
		}
		if _, err := s.RegisterCA(ctx, b, RegisterCAOptions{}); err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExists) {
			t.Fatalf("RegisterCA: error without ErrInvalid: %v", err)
		}
	})
}
