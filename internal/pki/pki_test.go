package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/store"
)

func openDB(t testing.TB, things ...string) *sql.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "registry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(ctx, db, registry.Options{HashCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range things {
		if _, _, err := reg.CreateThing(ctx, registry.Thing{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func openService(t *testing.T, db *sql.DB, opts Options) *Service {
	t.Helper()
	if opts.Dir == "" && opts.CACertFile == "" {
		opts.Dir = t.TempDir()
	}
	s, err := Open(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func parse(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	c, err := parseCertPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPlatformCAPersistsWithPrivateKey(t *testing.T) {
	db := openDB(t)
	dir := t.TempDir()
	s := openService(t, db, Options{Dir: dir})
	fi, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v, want 0600", fi.Mode().Perm())
	}
	ca := parse(t, s.CA())
	if !ca.IsCA || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("CA: IsCA=%v alg=%v", ca.IsCA, ca.PublicKeyAlgorithm)
	}
	s2 := openService(t, db, Options{Dir: dir})
	if s2.CAID() != s.CAID() {
		t.Fatal("reopening generated a new CA")
	}
	cas, err := s2.ListCAs(context.Background())
	if err != nil || len(cas) != 1 || !cas[0].Platform || cas[0].ID != s.CAID() {
		t.Fatalf("CAs %+v, %v", cas, err)
	}
}

func TestUserSuppliedCA(t *testing.T) {
	dir := t.TempDir()
	gen := openService(t, openDB(t), Options{Dir: dir})
	s := openService(t, openDB(t, "d1"), Options{CACertFile: filepath.Join(dir, "ca.pem"), CAKeyFile: filepath.Join(dir, "ca.key")})
	if s.CAID() != gen.CAID() {
		t.Fatal("supplied CA not used")
	}
	b, err := s.CreateCertificate(context.Background(), "d1", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := parse(t, b.CertPEM).CheckSignatureFrom(parse(t, gen.CA())); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), openDB(t), Options{CACertFile: filepath.Join(dir, "ca.pem")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("cert without key: %v", err)
	}
	other := t.TempDir()
	openService(t, openDB(t), Options{Dir: other})
	if _, err := Open(context.Background(), openDB(t), Options{CACertFile: filepath.Join(dir, "ca.pem"), CAKeyFile: filepath.Join(other, "ca.key")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("mismatched key: %v", err)
	}
}

func TestCreateCertificate(t *testing.T) {
	ctx := context.Background()
	s := openService(t, openDB(t, "d1", "d2"), Options{})
	b, err := s.CreateCertificate(ctx, "d1", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(b.CertPEM, b.KeyPEM); err != nil {
		t.Fatalf("key does not match certificate: %v", err)
	}
	leaf := parse(t, b.CertPEM)
	if leaf.Subject.CommonName != "d1" || b.ID != Fingerprint(leaf) || b.Status != StatusActive {
		t.Fatalf("bundle %+v", b.Certificate)
	}
	if _, err := s.VerifyChain([][]byte{leaf.Raw}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, b.ID)
	if err != nil || len(got.Things) != 1 || got.Things[0] != "d1" || got.CAID != s.CAID() {
		t.Fatalf("get %+v, %v", got, err)
	}
	if _, err := s.CreateCertificate(ctx, "nope", CreateOptions{}); !errors.Is(err, ErrThingNotFound) {
		t.Fatalf("unknown thing: %v", err)
	}
	// Many-to-many.
	if err := s.Attach(ctx, b.ID, "d2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Attach(ctx, b.ID, "d2"); err != nil {
		t.Fatalf("attach twice: %v", err)
	}
	if err := s.Attach(ctx, b.ID, "zz"); !errors.Is(err, ErrThingNotFound) {
		t.Fatalf("attach to unknown thing: %v", err)
	}
	var mu sync.Mutex
	var events []Event
	s.OnChange(func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	if err := s.Detach(ctx, b.ID, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Detach(ctx, b.ID, "d1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("detach twice: %v", err)
	}
	got, _ = s.Get(ctx, b.ID)
	if len(got.Things) != 1 || got.Things[0] != "d2" {
		t.Fatalf("things %v", got.Things)
	}
	if err := s.Delete(ctx, b.ID); !errors.Is(err, ErrInvalid) {
		t.Fatalf("delete ACTIVE: %v", err)
	}
	if err := s.SetStatus(ctx, b.ID, StatusRevoked); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, b.ID, StatusActive); !errors.Is(err, ErrInvalid) {
		t.Fatalf("reactivate revoked: %v", err)
	}
	if err := s.Delete(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, b.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 3 || events[0].Detached != "d1" || events[1].Certificate.Status != StatusRevoked || !events[2].Deleted {
		t.Fatalf("events %+v", events)
	}
}

func TestSignCSR(t *testing.T) {
	ctx := context.Background()
	s := openService(t, openDB(t, "d1"), Options{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "sensor-1", Organization: []string{"ACME"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.SignCSR(ctx, "d1", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	leaf := parse(t, c.PEM)
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) || leaf.Subject.CommonName != "sensor-1" || c.Things[0] != "d1" {
		t.Fatalf("signed %+v", c)
	}
	for name, in := range map[string][]byte{
		"not pem":     []byte("hello"),
		"wrong block": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"garbage":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2, 3}}),
	} {
		if _, err := s.SignCSR(ctx, "d1", in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestListPagesAndFilters(t *testing.T) {
	ctx := context.Background()
	s := openService(t, openDB(t, "a", "b"), Options{})
	ids := map[string]bool{}
	for i := range 5 {
		thing := "a"
		if i%2 == 1 {
			thing = "b"
		}
		b, err := s.CreateCertificate(ctx, thing, CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids[b.ID] = true
		if i == 4 {
			if err := s.SetStatus(ctx, b.ID, StatusInactive); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := 0
	after := ""
	for {
		page, next, err := s.List(ctx, ListOptions{Limit: 2, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			if !ids[c.ID] || len(c.Things) != 1 {
				t.Fatalf("unexpected %+v", c)
			}
			seen++
		}
		if next == "" {
			break
		}
		after = next
	}
	if seen != 5 {
		t.Fatalf("paged through %d certificates, want 5", seen)
	}
	if l, _, _ := s.List(ctx, ListOptions{Thing: "b"}); len(l) != 2 {
		t.Fatalf("thing b: %d", len(l))
	}
	if l, _, _ := s.List(ctx, ListOptions{Status: StatusInactive}); len(l) != 1 || l[0].Things[0] != "a" {
		t.Fatalf("inactive: %+v", l)
	}
	if _, _, err := s.List(ctx, ListOptions{Limit: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
}

// testCA is an external CA a user brings.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) issue(t *testing.T, cn string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: newSerial(), Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestBringYourOwnCAAndJITR(t *testing.T) {
	ctx := context.Background()
	s := openService(t, openDB(t, "dev-1", "dev-2"), Options{})
	byo := newTestCA(t, "ACME devices")
	now := time.Now()
	leaf := byo.issue(t, "dev-2", now.Add(-time.Minute), now.Add(time.Hour))
	if _, err := s.VerifyChain([][]byte{leaf.Raw}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("before registration: %v", err)
	}
	if _, err := s.RegisterCA(ctx, []byte("nope"), RegisterCAOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	ca, err := s.RegisterCA(ctx, byo.pem, RegisterCAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegisterCA(ctx, byo.pem, RegisterCAOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("twice: %v", err)
	}
	chain, err := s.VerifyChain([][]byte{leaf.Raw})
	if err != nil {
		t.Fatalf("after registration: %v", err)
	}
	// Without auto-registration an unknown certificate stays unknown.
	if _, err := s.Authenticate(ctx, chain, "dev-1"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := s.UpdateCA(ctx, ca.ID, StatusActive, true); err != nil {
		t.Fatal(err)
	}
	// Client id names an existing thing: attached to it.
	c, err := s.Authenticate(ctx, chain, "dev-1")
	if err != nil || c.Status != StatusActive || len(c.Things) != 1 || c.Things[0] != "dev-1" || c.CAID != ca.ID {
		t.Fatalf("JITR: %+v, %v", c, err)
	}
	// Client id is no thing: the common name is used.
	leaf2 := byo.issue(t, "dev-2", now.Add(-time.Minute), now.Add(time.Hour))
	c, err = s.Authenticate(ctx, []*x509.Certificate{leaf2, byo.cert}, "random-client")
	if err != nil || len(c.Things) != 1 || c.Things[0] != "dev-2" {
		t.Fatalf("JITR by CN: %+v, %v", c, err)
	}
	// Neither names a thing: recorded, attached to nothing.
	leaf3 := byo.issue(t, "ghost", now.Add(-time.Minute), now.Add(time.Hour))
	if c, err = s.Authenticate(ctx, []*x509.Certificate{leaf3}, "ghost"); err != nil || len(c.Things) != 0 {
		t.Fatalf("JITR without thing: %+v, %v", c, err)
	}
	// Deactivating the CA removes it from the pool.
	if _, err := s.UpdateCA(ctx, ca.ID, StatusInactive, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyChain([][]byte{leaf.Raw}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("inactive CA: %v", err)
	}
	if _, err := s.UpdateCA(ctx, s.CAID(), StatusInactive, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("deactivate platform CA: %v", err)
	}
}

func TestAuthenticateRefusals(t *testing.T) {
	ctx := context.Background()
	clock := time.Now()
	s := openService(t, openDB(t, "d1"), Options{Now: func() time.Time { return clock }})
	b, err := s.CreateCertificate(ctx, "d1", CreateOptions{Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	leaf := parse(t, b.CertPEM)
	if _, err := s.Authenticate(ctx, []*x509.Certificate{leaf}, "d1"); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Hour)
	if _, err := s.VerifyChain([][]byte{leaf.Raw}); err != nil {
		t.Fatalf("expired certificates pass chain verification so MQTT can refuse them: %v", err)
	}
	if _, err := s.Authenticate(ctx, []*x509.Certificate{leaf}, "d1"); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	clock = time.Now()
	if err := s.SetStatus(ctx, b.ID, StatusInactive); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, []*x509.Certificate{leaf}, "d1"); !errors.Is(err, ErrInactive) {
		t.Fatalf("inactive: %v", err)
	}
	if err := s.SetStatus(ctx, b.ID, StatusRevoked); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, []*x509.Certificate{leaf}, "d1"); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
	// A certificate of the platform CA the database does not know.
	other := openService(t, openDB(t, "d1"), Options{})
	ob, _ := other.CreateCertificate(ctx, "d1", CreateOptions{})
	if _, err := s.VerifyChain([][]byte{parse(t, ob.CertPEM).Raw}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("other platform's certificate: %v", err)
	}
}

func TestServerCertificate(t *testing.T) {
	s := openService(t, openDB(t), Options{})
	cf, kf, err := s.ServerCertificate([]string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(kp.Certificate[0])
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CA())
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(cf)
	cf2, _, _ := s.ServerCertificate([]string{"localhost", "127.0.0.1"})
	st2, _ := os.Stat(cf2)
	if !st.ModTime().Equal(st2.ModTime()) {
		t.Fatal("unchanged names reissued the certificate")
	}
	if _, _, err := s.ServerCertificate([]string{"mqtt.example.com"}); err != nil {
		t.Fatal(err)
	}
	kp, _ = tls.LoadX509KeyPair(cf, kf)
	leaf, _ = x509.ParseCertificate(kp.Certificate[0])
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "mqtt.example.com" {
		t.Fatalf("not reissued for new names: %v", leaf.DNSNames)
	}
}
