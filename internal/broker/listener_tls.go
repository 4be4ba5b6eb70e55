package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// ClientAuth says whether a TLS listener asks clients for certificates.
type ClientAuth string

// Client certificate policies.
const (
	// ClientAuthNone does not ask for a client certificate.
	ClientAuthNone ClientAuth = "none"
	// ClientAuthOptional asks for one and verifies it when presented;
	// clients without one fall back to username/password.
	ClientAuthOptional ClientAuth = "optional"
	// ClientAuthRequire refuses the handshake without a verified
	// certificate.
	ClientAuthRequire ClientAuth = "require"
)

// ErrTLSConfig is wrapped by every TLSOptions.Config error.
var ErrTLSConfig = errors.New("broker: invalid TLS settings")

// ParseClientAuth maps "none", "optional" or "require" (or "") to a
// ClientAuth.
func ParseClientAuth(s string) (ClientAuth, error) {
	switch ClientAuth(strings.ToLower(strings.TrimSpace(s))) {
	case "", ClientAuthNone:
		return ClientAuthNone, nil
	case ClientAuthOptional:
		return ClientAuthOptional, nil
	case ClientAuthRequire:
		return ClientAuthRequire, nil
	}
	return "", fmt.Errorf("%w: client auth %q must be none, optional or require", ErrTLSConfig, s)
}

// ParseTLSVersion maps "1.2" or "1.3" (or "", meaning 1.2) to a
// tls.Version* constant.
func ParseTLSVersion(s string) (uint16, error) {
	switch strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "tls") {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%w: minimum version %q must be 1.2 or 1.3", ErrTLSConfig, s)
}

// TLSOptions describe a TLS listener. Certificates are read from files and
// re-read when the files change (checked at most every CertCheckInterval),
// so a renewed certificate is served without a restart.
type TLSOptions struct {
	CertFile, KeyFile string // PEM server certificate chain and key (required)
	// MinVersion is a tls.Version* constant (default TLS 1.2).
	MinVersion uint16
	// ClientAuth asks clients for certificates (default none).
	ClientAuth ClientAuth
	// ClientCAFile is a PEM bundle of CAs that issue client certificates;
	// ClientCAs adds a pool built elsewhere (the platform's own CA). One of
	// them is required when ClientAuth is optional or require.
	ClientCAFile string
	ClientCAs    *x509.CertPool
	// VerifyPeerCertificate runs after the chain verified against the
	// client CAs, with the verified chains (never for a client that sent
	// no certificate); an error fails the handshake (revocation checks,
	// per-identity policy).
	VerifyPeerCertificate func(rawCerts [][]byte, verifiedChains [][]*x509.Certificate) error
	// Configure, when set, may adjust the final tls.Config (cipher suites,
	// ALPN, GetConfigForClient).
	Configure func(*tls.Config)
	// CertCheckInterval bounds how often the certificate files are checked
	// for changes (default 10s; negative disables reloading).
	CertCheckInterval time.Duration
	Logger            *slog.Logger
}

// Config loads the certificate and CA files and returns the tls.Config of
// a listener.
func (o TLSOptions) Config() (*tls.Config, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, fmt.Errorf("%w: a certificate file and a key file are required", ErrTLSConfig)
	}
	if o.MinVersion == 0 {
		o.MinVersion = tls.VersionTLS12
	}
	if o.MinVersion < tls.VersionTLS12 {
		return nil, fmt.Errorf("%w: minimum version below TLS 1.2 is not supported", ErrTLSConfig)
	}
	ca, err := ParseClientAuth(string(o.ClientAuth))
	if err != nil {
		return nil, err
	}
	if o.CertCheckInterval == 0 {
		o.CertCheckInterval = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	kp := &keyPair{certFile: o.CertFile, keyFile: o.KeyFile, every: o.CertCheckInterval, log: o.Logger}
	if err := kp.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     o.MinVersion,
		GetCertificate: kp.get,
	}
	pool := o.ClientCAs
	if o.ClientCAFile != "" {
		b, err := os.ReadFile(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client CA file: %w", ErrTLSConfig, err)
		}
		if pool == nil {
			pool = x509.NewCertPool()
		} else {
			pool = pool.Clone()
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%w: client CA file %s holds no PEM certificate", ErrTLSConfig, o.ClientCAFile)
		}
	}
	switch ca {
	case ClientAuthOptional, ClientAuthRequire:
		if pool == nil {
			return nil, fmt.Errorf("%w: client auth %q needs a client CA file", ErrTLSConfig, ca)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if ca == ClientAuthRequire {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		if verify := o.VerifyPeerCertificate; verify != nil {
			// crypto/tls calls the hook also when an optional client sent
			// no certificate; the hook sees only verified chains.
			cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
				if len(chains) == 0 {
					return nil
				}
				return verify(raw, chains)
			}
		}
	}
	if o.Configure != nil {
		o.Configure(cfg)
	}
	return cfg, nil
}

// keyPair serves a certificate and reloads it when its files change.
type keyPair struct {
	certFile, keyFile string
	every             time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // modification times and sizes of both files
	checked time.Time
}

func fileStamp(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return b.String()
}

func (k *keyPair) load() error {
	stamp := fileStamp(k.certFile, k.keyFile)
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("%w: load certificate: %w", ErrTLSConfig, err)
	}
	k.mu.Lock()
	k.cert, k.stamp, k.checked = &c, stamp, time.Now()
	k.mu.Unlock()
	return nil
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	cert := k.cert
	due := k.every > 0 && time.Since(k.checked) >= k.every
	if due {
		k.checked = time.Now()
	}
	old := k.stamp
	k.mu.Unlock()
	if due && fileStamp(k.certFile, k.keyFile) != old {
		if err := k.load(); err != nil {
			k.log.Warn("broker: TLS certificate changed but cannot be loaded; keeping the old one", "err", err)
		} else {
			k.log.Info("broker: TLS certificate reloaded", "file", k.certFile)
			k.mu.Lock()
			cert = k.cert
			k.mu.Unlock()
		}
	}
	return cert, nil
}
