package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// VerifyChain checks a TLS client's raw certificate chain (leaf first)
// against the trusted CAs, for client authentication. The validity period
// is checked at the leaf's own lifetime rather than now, so an expired or
// not yet valid certificate passes here and is refused by Authenticate
// with a reason the client and the log can see. It returns the verified
// chain.
func (s *Service) VerifyChain(raw [][]byte) ([]*x509.Certificate, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: no certificate", ErrUntrusted)
	}
	certs := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
		}
		certs = append(certs, c)
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	at := s.now()
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	} else if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: s.pool.Load().pool, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return chains[0], nil
}

// Authenticate maps a verified client chain (leaf first) presented by the
// MQTT client clientID to its certificate record, registering it just in
// time when its CA allows. It refuses unknown (ErrUnknown), INACTIVE
// (ErrInactive), REVOKED (ErrRevoked) and expired or not yet valid
// (ErrExpired) certificates. Whether the certificate is attached to the
// thing named by the client id is the caller's decision (Certificate.Things).
func (s *Service) Authenticate(ctx context.Context, chain []*x509.Certificate, clientID string) (Certificate, error) {
	if len(chain) == 0 {
		return Certificate{}, fmt.Errorf("%w: no certificate", ErrUnknown)
	}
	leaf := chain[0]
	id := Fingerprint(leaf)
	c, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		c, err = s.autoRegister(ctx, leaf, chain, clientID)
	}
	if err != nil {
		return Certificate{}, err
	}
	switch c.Status {
	case StatusInactive:
		return c, fmt.Errorf("pki: certificate %s: %w", shortID(id), ErrInactive)
	case StatusRevoked:
		return c, fmt.Errorf("pki: certificate %s: %w", shortID(id), ErrRevoked)
	case StatusActive:
	default:
		return c, fmt.Errorf("pki: certificate %s has state %q: %w", shortID(id), c.Status, ErrInactive)
	}
	if now := s.now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return c, fmt.Errorf("pki: certificate %s valid %s to %s: %w", shortID(id),
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339), ErrExpired)
	}
	return c, nil
}

// issuerOf finds the ACTIVE CA in the pool that signed the chain: the
// registered CA whose certificate is in the chain or signed its last
// element.
func (s *Service) issuerOf(chain []*x509.Certificate) *caEntry {
	p := s.pool.Load()
	for _, c := range slices.Backward(chain) {
		if e, ok := p.byID[Fingerprint(c)]; ok {
			return e
		}
		for _, e := range p.byID {
			if bytes.Equal(c.RawIssuer, e.cert.RawSubject) && c.CheckSignatureFrom(e.cert) == nil {
				return e
			}
		}
	}
	return nil
}

func (s *Service) autoRegister(ctx context.Context, leaf *x509.Certificate, chain []*x509.Certificate, clientID string) (Certificate, error) {
	id := Fingerprint(leaf)
	e := s.issuerOf(chain)
	if e == nil || !e.ca.AutoRegister {
		return Certificate{}, fmt.Errorf("pki: certificate %s: %w", shortID(id), ErrUnknown)
	}
	thing := ""
	for _, name := range []string{clientID, leaf.Subject.CommonName} {
		if name != "" && thingExists(ctx, s.db, name) == nil {
			thing = name
			break
		}
	}
	c, err := s.insert(ctx, leaf, e.ca.ID, StatusActive, thing)
	if errors.Is(err, ErrExists) { // registered concurrently by another connection
		return s.Get(ctx, id)
	}
	if err != nil {
		return Certificate{}, err
	}
	s.log.Info("pki: certificate registered just in time", "certificate", id, "ca", e.ca.ID, "thing", thing)
	return c, nil
}

// ServerCertificate returns the files of a TLS server certificate for
// names (DNS names and IP addresses), issued by the platform CA into Dir.
// It is reissued when missing, issued by another CA, for other names, or
// within 30 days of expiry.
func (s *Service) ServerCertificate(names []string) (certFile, keyFile string, err error) {
	if s.dir == "" {
		return "", "", fmt.Errorf("%w: no directory for the server certificate", ErrInvalid)
	}
	if len(names) == 0 {
		return "", "", fmt.Errorf("%w: server certificate needs at least one name", ErrInvalid)
	}
	certFile, keyFile = filepath.Join(s.dir, "server.pem"), filepath.Join(s.dir, "server.key")
	var dns []string
	var ips []net.IP
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else if n = strings.TrimSpace(n); n != "" {
			dns = append(dns, n)
		}
	}
	if b, err := os.ReadFile(certFile); err == nil {
		if c, err := parseCertPEM(b); err == nil && s.serverCertFits(c, dns, ips) {
			if _, err := os.Stat(keyFile); err == nil {
				return certFile, keyFile, nil
			}
		}
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return "", "", fmt.Errorf("pki: create %s: %w", s.dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("pki: generate server key: %w", err)
	}
	now := s.now()
	notAfter := now.Add(825 * 24 * time.Hour)
	if notAfter.After(s.caCert.NotAfter) {
		notAfter = s.caCert.NotAfter
	}
	cn := "edgewise"
	if len(dns) > 0 {
		cn = dns[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{Organization: []string{"Edgewise"}, CommonName: cn},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, &key.PublicKey, s.caKey)
	if err != nil {
		return "", "", fmt.Errorf("pki: sign server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("pki: encode server key: %w", err)
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	// The chain: server certificate, then the CA (clients that trust the
	// CA need only ca.pem).
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), s.caPEM...)
	if err := writeFileAtomic(certFile, chain, 0o644); err != nil {
		return "", "", err
	}
	s.log.Info("pki: issued the TLS server certificate", "names", names, "not_after", notAfter.UTC().Format(time.RFC3339))
	return certFile, keyFile, nil
}

func (s *Service) serverCertFits(c *x509.Certificate, dns []string, ips []net.IP) bool {
	if c.CheckSignatureFrom(s.caCert) != nil || s.now().Add(30*24*time.Hour).After(c.NotAfter) {
		return false
	}
	if !slices.Equal(c.DNSNames, dns) || len(c.IPAddresses) != len(ips) {
		return false
	}
	for i := range ips {
		if !c.IPAddresses[i].Equal(ips[i]) {
			return false
		}
	}
	return true
}
