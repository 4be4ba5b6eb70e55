package auth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"path/filepath"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/pki"
	"github.com/edgewise-iot/edgewise/internal/policy"
	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/store"
)

type identity struct {
	reg   *registry.Registry
	pki   *pki.Service
	pol   *policy.Store
	pass  map[string]string
	chain map[string][]*x509.Certificate
}

func newIdentity(t testing.TB, things ...string) *identity {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	id := &identity{pass: map[string]string{}, chain: map[string][]*x509.Certificate{}}
	if id.reg, err = registry.New(ctx, db, registry.Options{HashCost: 4}); err != nil {
		t.Fatal(err)
	}
	if id.pki, err = pki.Open(ctx, db, pki.Options{Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if id.pol, err = policy.NewStore(ctx, db, policy.StoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range things {
		_, cr, err := id.reg.CreateThing(ctx, registry.Thing{Name: n, Type: "sensor", Attributes: map[string]string{"site": "lab"}})
		if err != nil {
			t.Fatal(err)
		}
		id.pass[n] = cr.Password
		b, err := id.pki.CreateCertificate(ctx, n, pki.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b.CertPEM)
		c, _ := x509.ParseCertificate(blk.Bytes)
		id.chain[n] = []*x509.Certificate{c}
	}
	return id
}

func (id *identity) auth(noPass bool) *Auth {
	return New(Options{Things: id.reg, Certs: id.pki, Lookup: id.reg, Policies: id.pol, DisablePassword: noPass})
}

type recorder struct{ matched []string }

func (r *recorder) DisconnectWhere(match func(string, *broker.Principal) bool, _ byte) int {
	n := 0
	for _, p := range []*broker.Principal{{Name: "d1", CertificateID: "x"}, {Name: "d2"}} {
		if match(p.Name, p) {
			r.matched = append(r.matched, p.Name)
			n++
		}
	}
	return n
}

func TestCertificateAuthenticationAndPolicies(t *testing.T) {
	ctx := context.Background()
	id := newIdentity(t, "d1", "d2")
	a := id.auth(false)
	p, err := a.Authenticate(ctx, &broker.ConnectInfo{ClientID: "d1", PeerCertificates: id.chain["d1"]})
	if err != nil || p.Name != "d1" || p.CertificateID == "" || !p.CheckReceive {
		t.Fatalf("certificate login: %+v %v", p, err)
	}
	if _, err := a.Authenticate(ctx, &broker.ConnectInfo{ClientID: "d2", PeerCertificates: id.chain["d1"]}); !errors.Is(err, broker.ErrNotAuthorized) {
		t.Fatalf("wrong thing: %v", err)
	}
	// Default policy.
	if !a.CanPublish(p, "devices/d1/telemetry") || a.CanPublish(p, "devices/d2/telemetry") ||
		a.CanSubscribe(p, "devices/#") || !a.CanSubscribe(p, "$share/g/devices/d1/#") || a.CanSubscribe(p, "$share/g/devices/d2/#") ||
		!a.CanReceive(p, "devices/d1/command") {
		t.Fatal("default policy not applied to a certificate login")
	}
	// Attaching a policy changes what the live principal may do.
	if _, err := id.pol.Create(ctx, "typed", []byte(`{"Statement":[
		{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
		{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/*"},
		{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/${iot:Connection.Thing.ThingTypeName}/${iot:Connection.Thing.Attributes[site]}/${iot:ClientId}/*"}]}`)); err != nil {
		t.Fatal(err)
	}
	if err := id.pol.Attach(ctx, "typed", policy.Target{Kind: policy.TargetCertificate, Name: p.CertificateID}); err != nil {
		t.Fatal(err)
	}
	if a.CanPublish(p, "devices/d1/telemetry") || !a.CanPublish(p, "sensor/lab/d1/x") || !a.CanSubscribe(p, "devices/#") ||
		a.CanReceive(p, "devices/d2/telemetry") || !a.CanReceive(p, "sensor/lab/d1/y") {
		t.Fatal("attached policy not applied to the live connection")
	}
	// Password logins get the thing's policies too; iot:Connect is checked.
	if err := id.pol.Attach(ctx, "typed", policy.Target{Kind: policy.TargetThing, Name: "d2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, &broker.ConnectInfo{ClientID: "not-d2", HasUsername: true, Username: "d2", Password: []byte(id.pass["d2"])}); !errors.Is(err, broker.ErrNotAuthorized) {
		t.Fatalf("iot:Connect for another client id: %v", err)
	}
	// Client ids with wildcards are literal inside policies.
	if _, err := id.pol.Update(ctx, "typed", []byte(`{"Statement":[
		{"Effect":"Allow","Action":"iot:Connect","Resource":"*"},
		{"Effect":"Allow","Action":["iot:Subscribe"],"Resource":"topicfilter/devices/${iot:ClientId}"},
		{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/devices/${iot:ClientId}/*"}]}`)); err != nil {
		t.Fatal(err)
	}
	for _, cid := range []string{"#", "+", "d1/#", "d1/telemetry"} {
		q, err := a.Authenticate(ctx, &broker.ConnectInfo{ClientID: cid, HasUsername: true, Username: "d2", Password: []byte(id.pass["d2"])})
		if err != nil {
			t.Fatal(err)
		}
		for _, topic := range []string{"devices/d1/telemetry", "devices/x/y"} {
			if a.CanPublish(q, topic) || a.CanReceive(q, topic) {
				t.Errorf("client id %q reaches %s", cid, topic)
			}
		}
		if a.CanSubscribe(q, "devices/#") || a.CanSubscribe(q, "devices/+") || a.CanSubscribe(q, "devices/"+cid) {
			t.Errorf("client id %q widened its subscriptions", cid)
		}
	}
	// Password logins can be disabled.
	if _, err := id.auth(true).Authenticate(ctx, &broker.ConnectInfo{ClientID: "d2", HasUsername: true, Username: "d2", Password: []byte(id.pass["d2"])}); !errors.Is(err, broker.ErrNotAuthorized) {
		t.Fatalf("password with auth.password false: %v", err)
	}
	// Revocation picks the certificate's connections; detachment only the thing's.
	rec := &recorder{}
	a.SetDisconnector(rec)
	a.CertificateChanged(pki.Event{Certificate: pki.Certificate{ID: "x", Status: pki.StatusRevoked}})
	a.CertificateChanged(pki.Event{Certificate: pki.Certificate{ID: "x", Status: pki.StatusActive}, Detached: "d2"})
	a.CertificateChanged(pki.Event{Certificate: pki.Certificate{ID: "x", Status: pki.StatusActive}})
	if len(rec.matched) != 1 || rec.matched[0] != "d1" {
		t.Fatalf("disconnected %v, want [d1]", rec.matched)
	}
}

func BenchmarkCanPublishPolicy(b *testing.B) {
	id := newIdentity(b, "sensor-1")
	a := id.auth(false)
	p, err := a.Authenticate(context.Background(), &broker.ConnectInfo{ClientID: "sensor-1", PeerCertificates: id.chain["sensor-1"]})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !a.CanPublish(p, "devices/sensor-1/telemetry") {
			b.Fatal("denied")
		}
	}
}

// BenchmarkCanPublishNamespace is the fixed namespace check used without a
// policy store, the baseline of BenchmarkCanPublishPolicy.
func BenchmarkCanPublishNamespace(b *testing.B) {
	a := New(Options{})
	p := &broker.Principal{Name: "sensor-1"}
	b.ReportAllocs()
	for b.Loop() {
		if !a.CanPublish(p, "devices/sensor-1/telemetry") {
			b.Fatal("denied")
		}
	}
}
