package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/store"
)

// Status is the state of a certificate or a registered CA.
type Status string

// Certificate states. REVOKED is final.
const (
	StatusActive   Status = "ACTIVE"
	StatusInactive Status = "INACTIVE"
	StatusRevoked  Status = "REVOKED"
)

// ParseStatus accepts a state name in any case.
func ParseStatus(s string) (Status, error) {
	switch st := Status(strings.ToUpper(strings.TrimSpace(s))); st {
	case StatusActive, StatusInactive, StatusRevoked:
		return st, nil
	}
	return "", fmt.Errorf("%w: status %q must be ACTIVE, INACTIVE or REVOKED", ErrInvalid, s)
}

// Errors of the package; returned errors wrap them.
var (
	ErrNotFound      = errors.New("pki: certificate not found")
	ErrCANotFound    = errors.New("pki: certificate authority not found")
	ErrThingNotFound = errors.New("pki: thing not found")
	ErrExists        = errors.New("pki: already registered")
	ErrInvalid       = errors.New("pki: invalid input")
	// Reasons Authenticate refuses a certificate.
	ErrUnknown     = errors.New("pki: unknown certificate")
	ErrInactive    = errors.New("pki: certificate is inactive")
	ErrRevoked     = errors.New("pki: certificate is revoked")
	ErrExpired     = errors.New("pki: certificate is expired or not yet valid")
	ErrNotAttached = errors.New("pki: certificate is not attached to the thing")
	// ErrUntrusted reports a chain no platform or registered CA signed.
	ErrUntrusted = errors.New("pki: certificate not signed by a trusted CA")
)

// Defaults.
const (
	DefaultValidity   = 10 * 365 * 24 * time.Hour // device certificates
	DefaultCAValidity = 20 * 365 * 24 * time.Hour // the generated platform CA
	DefaultListLimit  = 100
	MaxListLimit      = 1000
	// Component is the schema component of the pki tables.
	Component = "pki"
)

// Certificate is a device certificate known to the platform.
type Certificate struct {
	ID        string    `json:"id"` // hex SHA-256 of the DER
	Status    Status    `json:"status"`
	Things    []string  `json:"things"`
	CAID      string    `json:"ca_id,omitempty"` // the registered CA that signed it, if known
	Subject   string    `json:"subject"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	PEM       []byte    `json:"-"`
}

// Bundle is a newly issued certificate with its private key (returned only
// once) and the platform CA certificate.
type Bundle struct {
	Certificate
	CertPEM, KeyPEM, CAPEM []byte
}

// CA is a certificate authority whose certificates may connect.
type CA struct {
	ID           string    `json:"id"`
	Subject      string    `json:"subject"`
	Status       Status    `json:"status"` // ACTIVE or INACTIVE
	AutoRegister bool      `json:"auto_register"`
	Platform     bool      `json:"platform"` // the platform's own CA
	NotBefore    time.Time `json:"not_before"`
	NotAfter     time.Time `json:"not_after"`
	CreatedAt    time.Time `json:"created_at"`
	PEM          []byte    `json:"-"`
}

// Options configure Open. The zero value keeps nothing on disk and is
// invalid: Dir or both CA files are required.
type Options struct {
	// Dir holds the generated platform CA (ca.pem, ca.key) and the server
	// certificate issued for the TLS listener.
	Dir string
	// CACertFile and CAKeyFile supply the platform CA instead of generating
	// one (both or neither).
	CACertFile, CAKeyFile string
	// Validity of issued device certificates (default DefaultValidity;
	// never beyond the CA's own expiry).
	Validity time.Duration
	Logger   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// CreateOptions tune CreateCertificate.
type CreateOptions struct {
	Validity   time.Duration // default Options.Validity
	CommonName string        // default the thing name
}

// RegisterCAOptions tune RegisterCA.
type RegisterCAOptions struct {
	// AutoRegister records unknown certificates signed by this CA on first
	// connect (just-in-time registration).
	AutoRegister bool
	// Inactive registers the CA without trusting it yet.
	Inactive bool
}

// ListOptions select a page of certificates ordered by id.
type ListOptions struct {
	Thing  string // only certificates attached to this thing
	Status Status // only certificates in this state
	CAID   string
	Limit  int
	After  string // cursor: the next value of the previous page
}

// Event is what OnChange listeners hear.
type Event struct {
	Certificate Certificate // its state after the change (Things: still attached)
	Detached    string      // thing detached, if this was a detachment
	Deleted     bool
}

// Service is the platform's PKI.
type Service struct {
	db     *sql.DB
	log    *slog.Logger
	now    func() time.Time
	valid  time.Duration
	dir    string
	caCert *x509.Certificate
	caKey  crypto.Signer
	caPEM  []byte
	caID   string

	pool atomic.Pointer[caPool]

	mu        sync.Mutex
	listeners []func(Event)
}

type caPool struct {
	pool *x509.CertPool
	byID map[string]*caEntry // ACTIVE CAs by id
}

type caEntry struct {
	cert *x509.Certificate
	ca   CA
}

var migrations = []string{
	`CREATE TABLE pki_cas (
		id            TEXT    NOT NULL PRIMARY KEY,
		subject       TEXT    NOT NULL,
		status        TEXT    NOT NULL,
		auto_register INTEGER NOT NULL DEFAULT 0,
		platform      INTEGER NOT NULL DEFAULT 0,
		not_before    BIGINT  NOT NULL,
		not_after     BIGINT  NOT NULL,
		pem           TEXT    NOT NULL,
		created_at    BIGINT  NOT NULL
	);
	CREATE TABLE pki_certificates (
		id         TEXT   NOT NULL PRIMARY KEY,
		status     TEXT   NOT NULL,
		ca_id      TEXT   NOT NULL DEFAULT '',
		subject    TEXT   NOT NULL,
		serial     TEXT   NOT NULL,
		not_before BIGINT NOT NULL,
		not_after  BIGINT NOT NULL,
		pem        TEXT   NOT NULL,
		created_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL
	);
	CREATE INDEX pki_certificates_status ON pki_certificates (status, id);
	CREATE TABLE pki_attachments (
		certificate TEXT NOT NULL REFERENCES pki_certificates (id) ON DELETE CASCADE,
		thing       TEXT NOT NULL REFERENCES things (name) ON DELETE CASCADE,
		PRIMARY KEY (certificate, thing)
	);
	CREATE INDEX pki_attachments_thing ON pki_attachments (thing, certificate);`,
}

// Open migrates the pki schema in db (which must hold the registry's things
// table), loads or creates the platform CA and returns the Service.
func Open(ctx context.Context, db *sql.DB, opts Options) (*Service, error) {
	if db == nil {
		return nil, errors.New("pki: nil database")
	}
	if (opts.CACertFile == "") != (opts.CAKeyFile == "") {
		return nil, fmt.Errorf("%w: the CA certificate file and the CA key file go together", ErrInvalid)
	}
	if opts.Dir == "" && opts.CACertFile == "" {
		return nil, fmt.Errorf("%w: a directory or CA files are required", ErrInvalid)
	}
	s := &Service{db: db, log: opts.Logger, now: opts.Now, valid: opts.Validity, dir: opts.Dir}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.valid <= 0 {
		s.valid = DefaultValidity
	}
	if err := store.Migrate(ctx, db, Component, migrations); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	certFile, keyFile := opts.CACertFile, opts.CAKeyFile
	if certFile == "" {
		certFile, keyFile = filepath.Join(opts.Dir, "ca.pem"), filepath.Join(opts.Dir, "ca.key")
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := s.generateCA(certFile, keyFile); err != nil {
				return nil, err
			}
		}
	}
	if err := s.loadCA(certFile, keyFile); err != nil {
		return nil, err
	}
	if err := s.recordPlatformCA(ctx); err != nil {
		return nil, err
	}
	if err := s.reloadPool(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) generateCA(certFile, keyFile string) error {
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("pki: create CA directory: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: generate CA key: %w", err)
	}
	now := s.now()
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{Organization: []string{"Edgewise"}, CommonName: "Edgewise platform CA " + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(DefaultCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("pki: create CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: encode CA key: %w", err)
	}
	// Key first: a crash between the two writes leaves no certificate, so
	// the next start generates a fresh pair instead of a mismatched one.
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	s.log.Info("pki: created the platform CA", "file", certFile)
	return nil
}

func (s *Service) loadCA(certFile, keyFile string) error {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("pki: read CA certificate: %w", err)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("pki: read CA key: %w", err)
	}
	cert, err := parseCertPEM(cb)
	if err != nil {
		return fmt.Errorf("pki: CA certificate %s: %w", certFile, err)
	}
	if !cert.IsCA {
		return fmt.Errorf("%w: %s is not a CA certificate (basic constraints CA:TRUE missing)", ErrInvalid, certFile)
	}
	key, err := parseKeyPEM(kb)
	if err != nil {
		return fmt.Errorf("pki: CA key %s: %w", keyFile, err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return fmt.Errorf("%w: CA key %s does not match certificate %s", ErrInvalid, keyFile, certFile)
	}
	s.caCert, s.caKey = cert, key
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	s.caID = Fingerprint(cert)
	return nil
}

func (s *Service) recordPlatformCA(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE pki_cas SET platform = 0 WHERE platform = 1 AND id <> ?`, s.caID); err != nil {
		return fmt.Errorf("pki: record platform CA: %w", err)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO pki_cas (id, subject, status, auto_register, platform, not_before, not_after, pem, created_at)
		VALUES (?, ?, 'ACTIVE', 0, 1, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET platform = 1, status = 'ACTIVE'`,
		s.caID, s.caCert.Subject.String(), s.caCert.NotBefore.UnixMicro(), s.caCert.NotAfter.UnixMicro(), string(s.caPEM), s.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("pki: record platform CA: %w", err)
	}
	return nil
}

// reloadPool rebuilds the trusted CA pool from the ACTIVE CAs.
func (s *Service) reloadPool(ctx context.Context) error {
	cas, err := s.ListCAs(ctx)
	if err != nil {
		return err
	}
	p := &caPool{pool: x509.NewCertPool(), byID: make(map[string]*caEntry)}
	for _, ca := range cas {
		if ca.Status != StatusActive {
			continue
		}
		c, err := parseCertPEM(ca.PEM)
		if err != nil {
			s.log.Warn("pki: registered CA cannot be parsed; skipped", "ca", ca.ID, "err", err)
			continue
		}
		p.pool.AddCert(c)
		p.byID[ca.ID] = &caEntry{cert: c, ca: ca}
	}
	s.pool.Store(p)
	return nil
}

// CA returns the platform CA certificate in PEM.
func (s *Service) CA() []byte { return append([]byte(nil), s.caPEM...) }

// CAID is the id (fingerprint) of the platform CA.
func (s *Service) CAID() string { return s.caID }

// ClientCAs is the current pool of trusted CAs (the platform CA and the
// ACTIVE registered CAs). It is replaced, not modified, on changes.
func (s *Service) ClientCAs() *x509.CertPool { return s.pool.Load().pool }

// OnChange registers fn to hear certificate state changes, detachments and
// deletions. fn is called synchronously after the change committed and must
// not block.
func (s *Service) OnChange(fn func(Event)) {
	s.mu.Lock()
	s.listeners = append(s.listeners, fn)
	s.mu.Unlock()
}

func (s *Service) notify(ev Event) {
	s.mu.Lock()
	ls := slices.Clone(s.listeners)
	s.mu.Unlock()
	for _, fn := range ls {
		fn(ev)
	}
}

// CreateCertificate issues a new key pair and certificate signed by the
// platform CA, ACTIVE, and attaches it to thing when thing is not empty.
func (s *Service) CreateCertificate(ctx context.Context, thing string, opts CreateOptions) (Bundle, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Bundle{}, fmt.Errorf("pki: generate key: %w", err)
	}
	cn := opts.CommonName
	if cn == "" {
		cn = thing
	}
	c, err := s.issue(ctx, thing, pkix.Name{CommonName: cn}, &key.PublicKey, opts.Validity)
	if err != nil {
		return Bundle{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Bundle{}, fmt.Errorf("pki: encode key: %w", err)
	}
	return Bundle{Certificate: c, CertPEM: c.PEM, CAPEM: s.CA(),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}, nil
}

// SignCSR signs a PEM certificate signing request with the platform CA
// for a device that keeps its own key, and attaches the certificate to
// thing when thing is not empty. The subject is the CSR's; an empty
// common name becomes the thing name.
func (s *Service) SignCSR(ctx context.Context, thing string, csrPEM []byte) (Certificate, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
		return Certificate{}, fmt.Errorf("%w: csr: not a PEM CERTIFICATE REQUEST", ErrInvalid)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return Certificate{}, fmt.Errorf("%w: csr: %w", ErrInvalid, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return Certificate{}, fmt.Errorf("%w: csr signature: %w", ErrInvalid, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return Certificate{}, err
	}
	subj := csr.Subject
	subj.ExtraNames = nil
	if subj.CommonName == "" {
		subj.CommonName = thing
	}
	return s.issue(ctx, thing, subj, csr.PublicKey, 0)
}

func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 256 {
			return fmt.Errorf("%w: csr: ECDSA key below P-256", ErrInvalid)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: csr: RSA key below 2048 bits", ErrInvalid)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: csr: unsupported key type %T", ErrInvalid, pub)
	}
	return nil
}

func (s *Service) issue(ctx context.Context, thing string, subj pkix.Name, pub any, validity time.Duration) (Certificate, error) {
	if validity <= 0 {
		validity = s.valid
	}
	now := s.now()
	notAfter := now.Add(validity)
	if notAfter.After(s.caCert.NotAfter) {
		notAfter = s.caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      subj,
		NotBefore:    now.Add(-5 * time.Minute), // device clocks drift
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if _, ok := pub.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, pub, s.caKey)
	if err != nil {
		return Certificate{}, fmt.Errorf("pki: sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Certificate{}, fmt.Errorf("pki: parse issued certificate: %w", err)
	}
	return s.insert(ctx, cert, s.caID, StatusActive, thing)
}

// insert records cert and attaches it to thing (when not empty) in one
// transaction.
func (s *Service) insert(ctx context.Context, cert *x509.Certificate, caID string, st Status, thing string) (Certificate, error) {
	now := s.now()
	c := Certificate{
		ID: Fingerprint(cert), Status: st, CAID: caID, Subject: cert.Subject.String(),
		Serial: hex.EncodeToString(cert.SerialNumber.Bytes()), NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(),
		CreatedAt: now.UTC().Truncate(time.Microsecond), PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		Things: []string{},
	}
	c.UpdatedAt = c.CreatedAt
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Certificate{}, fmt.Errorf("pki: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if thing != "" {
		if err := thingExists(ctx, tx, thing); err != nil {
			return Certificate{}, err
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO pki_certificates (id, status, ca_id, subject, serial, not_before, not_after, pem, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		c.ID, string(c.Status), c.CAID, c.Subject, c.Serial, c.NotBefore.UnixMicro(), c.NotAfter.UnixMicro(), string(c.PEM),
		c.CreatedAt.UnixMicro(), c.UpdatedAt.UnixMicro())
	if err != nil {
		return Certificate{}, fmt.Errorf("pki: insert certificate: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Certificate{}, fmt.Errorf("pki: certificate %s: %w", c.ID, ErrExists)
	}
	if thing != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO pki_attachments (certificate, thing) VALUES (?, ?)`, c.ID, thing); err != nil {
			return Certificate{}, fmt.Errorf("pki: attach: %w", err)
		}
		c.Things = []string{thing}
	}
	if err := tx.Commit(); err != nil {
		return Certificate{}, fmt.Errorf("pki: commit: %w", err)
	}
	return c, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func thingExists(ctx context.Context, q queryer, thing string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM things WHERE name = ?`, thing).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("pki: thing %q: %w", thing, ErrThingNotFound)
	}
	if err != nil {
		return fmt.Errorf("pki: look up thing %q: %w", thing, err)
	}
	return nil
}

// RegisterCA trusts an external CA (bring your own CA): certificates it
// signs may connect once registered (or, with AutoRegister, on their first
// connection).
func (s *Service) RegisterCA(ctx context.Context, certPEM []byte, opts RegisterCAOptions) (CA, error) {
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return CA{}, fmt.Errorf("%w: CA certificate: %w", ErrInvalid, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return CA{}, fmt.Errorf("%w: CA certificate: basic constraints CA:TRUE missing", ErrInvalid)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return CA{}, fmt.Errorf("%w: CA certificate: key usage lacks certificate signing", ErrInvalid)
	}
	now := s.now()
	if now.After(cert.NotAfter) {
		return CA{}, fmt.Errorf("%w: CA certificate expired on %s", ErrInvalid, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	ca := CA{ID: Fingerprint(cert), Subject: cert.Subject.String(), Status: StatusActive, AutoRegister: opts.AutoRegister,
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(), CreatedAt: now.UTC().Truncate(time.Microsecond),
		PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}
	if opts.Inactive {
		ca.Status = StatusInactive
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO pki_cas (id, subject, status, auto_register, platform, not_before, not_after, pem, created_at)
		VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		ca.ID, ca.Subject, string(ca.Status), boolInt(ca.AutoRegister), ca.NotBefore.UnixMicro(), ca.NotAfter.UnixMicro(), string(ca.PEM), ca.CreatedAt.UnixMicro())
	if err != nil {
		return CA{}, fmt.Errorf("pki: register CA: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return CA{}, fmt.Errorf("pki: CA %s: %w", ca.ID, ErrExists)
	}
	if err := s.reloadPool(ctx); err != nil {
		return CA{}, err
	}
	s.log.Info("pki: CA registered", "ca", ca.ID, "subject", ca.Subject, "auto_register", ca.AutoRegister)
	return ca, nil
}

// UpdateCA changes a registered CA's state and auto-registration. The
// platform CA cannot be deactivated.
func (s *Service) UpdateCA(ctx context.Context, id string, status Status, autoRegister bool) (CA, error) {
	if status != StatusActive && status != StatusInactive {
		return CA{}, fmt.Errorf("%w: CA status %q must be ACTIVE or INACTIVE", ErrInvalid, status)
	}
	ca, err := s.GetCA(ctx, id)
	if err != nil {
		return CA{}, err
	}
	if ca.Platform && status != StatusActive {
		return CA{}, fmt.Errorf("%w: the platform CA cannot be deactivated", ErrInvalid)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE pki_cas SET status = ?, auto_register = ? WHERE id = ?`,
		string(status), boolInt(autoRegister), id); err != nil {
		return CA{}, fmt.Errorf("pki: update CA: %w", err)
	}
	ca.Status, ca.AutoRegister = status, autoRegister
	return ca, s.reloadPool(ctx)
}

const caColumns = `id, subject, status, auto_register, platform, not_before, not_after, pem, created_at`

func scanCA(sc interface{ Scan(...any) error }) (CA, error) {
	var ca CA
	var st, p string
	var auto, plat int
	var nb, na, ca0 int64
	if err := sc.Scan(&ca.ID, &ca.Subject, &st, &auto, &plat, &nb, &na, &p, &ca0); err != nil {
		return CA{}, err
	}
	ca.Status, ca.AutoRegister, ca.Platform, ca.PEM = Status(st), auto != 0, plat != 0, []byte(p)
	ca.NotBefore, ca.NotAfter, ca.CreatedAt = micro(nb), micro(na), micro(ca0)
	return ca, nil
}

// GetCA returns a CA by id.
func (s *Service) GetCA(ctx context.Context, id string) (CA, error) {
	ca, err := scanCA(s.db.QueryRowContext(ctx, `SELECT `+caColumns+` FROM pki_cas WHERE id = ?`, strings.ToLower(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return CA{}, fmt.Errorf("pki: CA %q: %w", id, ErrCANotFound)
	}
	if err != nil {
		return CA{}, fmt.Errorf("pki: get CA: %w", err)
	}
	return ca, nil
}

// ListCAs returns every CA (the platform CA first).
func (s *Service) ListCAs(ctx context.Context) ([]CA, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+caColumns+` FROM pki_cas ORDER BY platform DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("pki: list CAs: %w", err)
	}
	defer rows.Close()
	out := []CA{}
	for rows.Next() {
		ca, err := scanCA(rows)
		if err != nil {
			return nil, fmt.Errorf("pki: list CAs: %w", err)
		}
		out = append(out, ca)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pki: list CAs: %w", err)
	}
	return out, nil
}

const certColumns = `id, status, ca_id, subject, serial, not_before, not_after, pem, created_at, updated_at`

func scanCert(sc interface{ Scan(...any) error }) (Certificate, error) {
	var c Certificate
	var st, p string
	var nb, na, cr, up int64
	if err := sc.Scan(&c.ID, &st, &c.CAID, &c.Subject, &c.Serial, &nb, &na, &p, &cr, &up); err != nil {
		return Certificate{}, err
	}
	c.Status, c.PEM = Status(st), []byte(p)
	c.NotBefore, c.NotAfter, c.CreatedAt, c.UpdatedAt = micro(nb), micro(na), micro(cr), micro(up)
	return c, nil
}

// Get returns a certificate with the things it is attached to.
func (s *Service) Get(ctx context.Context, id string) (Certificate, error) {
	id = strings.ToLower(id)
	c, err := scanCert(s.db.QueryRowContext(ctx, `SELECT `+certColumns+` FROM pki_certificates WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Certificate{}, fmt.Errorf("pki: certificate %s: %w", shortID(id), ErrNotFound)
	}
	if err != nil {
		return Certificate{}, fmt.Errorf("pki: get certificate: %w", err)
	}
	if c.Things, err = s.things(ctx, id); err != nil {
		return Certificate{}, err
	}
	return c, nil
}

func (s *Service) things(ctx context.Context, id string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT thing FROM pki_attachments WHERE certificate = ? ORDER BY thing`, id)
	if err != nil {
		return nil, fmt.Errorf("pki: attachments: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("pki: attachments: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// List returns a page of certificates ordered by id, and the cursor of the
// next page ("" at the end).
func (s *Service) List(ctx context.Context, o ListOptions) ([]Certificate, string, error) {
	limit := o.Limit
	switch {
	case limit < 0:
		return nil, "", fmt.Errorf("%w: limit must not be negative, got %d", ErrInvalid, limit)
	case limit == 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	q := `SELECT ` + certColumns + ` FROM pki_certificates c WHERE c.id > ?`
	args := []any{strings.ToLower(o.After)}
	if o.Status != "" {
		q += ` AND c.status = ?`
		args = append(args, string(o.Status))
	}
	if o.CAID != "" {
		q += ` AND c.ca_id = ?`
		args = append(args, strings.ToLower(o.CAID))
	}
	if o.Thing != "" {
		q += ` AND EXISTS (SELECT 1 FROM pki_attachments a WHERE a.certificate = c.id AND a.thing = ?)`
		args = append(args, o.Thing)
	}
	q += ` ORDER BY c.id LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("pki: list certificates: %w", err)
	}
	out := []Certificate{}
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			rows.Close()
			return nil, "", fmt.Errorf("pki: list certificates: %w", err)
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("pki: list certificates: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	for i := range out {
		if out[i].Things, err = s.things(ctx, out[i].ID); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}

// SetStatus changes a certificate's state. REVOKED is final: a revoked
// certificate cannot be activated again.
func (s *Service) SetStatus(ctx context.Context, id string, st Status) error {
	if _, err := ParseStatus(string(st)); err != nil {
		return err
	}
	c, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if c.Status == st {
		return nil
	}
	if c.Status == StatusRevoked {
		return fmt.Errorf("%w: certificate %s is revoked; revocation is final", ErrInvalid, shortID(c.ID))
	}
	now := s.now()
	if _, err := s.db.ExecContext(ctx, `UPDATE pki_certificates SET status = ?, updated_at = ? WHERE id = ?`,
		string(st), now.UnixMicro(), c.ID); err != nil {
		return fmt.Errorf("pki: set status: %w", err)
	}
	c.Status, c.UpdatedAt = st, micro(now.UnixMicro())
	s.log.Info("pki: certificate state changed", "certificate", c.ID, "status", st)
	s.notify(Event{Certificate: c})
	return nil
}

// Attach attaches a certificate to a thing (idempotent).
func (s *Service) Attach(ctx context.Context, id, thing string) error {
	c, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := thingExists(ctx, s.db, thing); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO pki_attachments (certificate, thing) VALUES (?, ?) ON CONFLICT DO NOTHING`, c.ID, thing); err != nil {
		return fmt.Errorf("pki: attach: %w", err)
	}
	return nil
}

// Detach removes a certificate's attachment to a thing; connections of
// that thing using the certificate are told through OnChange.
func (s *Service) Detach(ctx context.Context, id, thing string) error {
	id = strings.ToLower(id)
	res, err := s.db.ExecContext(ctx, `DELETE FROM pki_attachments WHERE certificate = ? AND thing = ?`, id, thing)
	if err != nil {
		return fmt.Errorf("pki: detach: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Get(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("pki: certificate %s is not attached to %q: %w", shortID(id), thing, ErrNotFound)
	}
	c, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	s.notify(Event{Certificate: c, Detached: thing})
	return nil
}

// Delete removes a certificate that is not ACTIVE (deactivate or revoke it
// first), with its attachments.
func (s *Service) Delete(ctx context.Context, id string) error {
	c, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if c.Status == StatusActive {
		return fmt.Errorf("%w: certificate %s is ACTIVE; deactivate or revoke it before deleting", ErrInvalid, shortID(c.ID))
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM pki_certificates WHERE id = ?`, c.ID); err != nil {
		return fmt.Errorf("pki: delete: %w", err)
	}
	s.notify(Event{Certificate: c, Deleted: true})
	return nil
}

// Fingerprint is a certificate's id: the lowercase hex SHA-256 of its DER.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16] + "…"
	}
	return id
}

func micro(us int64) time.Time { return time.UnixMicro(us).UTC() }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("pki: random serial: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM private key block")
		}
		var k any
		var err error
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key type %T cannot sign", k)
		}
		return signer, nil
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	ae, ok := a.(eq)
	return ok && ae.Equal(b)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("pki: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}
