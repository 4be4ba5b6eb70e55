package auth

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/pki"
	"github.com/edgewise-iot/edgewise/internal/policy"
	"github.com/edgewise-iot/edgewise/internal/registry"
)

// AdminUser is the MQTT username of the platform's administrative client.
const AdminUser = "admin"

// PasswordVerifier checks a thing's password (the registry).
type PasswordVerifier interface {
	VerifyPassword(ctx context.Context, username, password string) (registry.Thing, error)
}

// CertAuthenticator maps a verified client certificate chain to its
// record (the PKI).
type CertAuthenticator interface {
	Authenticate(ctx context.Context, chain []*x509.Certificate, clientID string) (pki.Certificate, error)
}

// ThingGetter looks up a thing's type and attributes (the registry).
type ThingGetter interface {
	GetThing(ctx context.Context, name string) (registry.Thing, error)
}

// PolicySource compiles the policies of a connection (the policy store).
type PolicySource interface {
	Effective(ctx context.Context, v policy.Vars) (*policy.Compiled, uint64, error)
	Generation() uint64
}

// Disconnector closes connections whose credentials were revoked (the
// broker).
type Disconnector interface {
	DisconnectWhere(match func(clientID string, p *broker.Principal) bool, reason byte) int
}

// Options configure an Auth.
type Options struct {
	// AdminToken is the password of the "admin" MQTT user; empty disables it.
	AdminToken string
	Things     PasswordVerifier
	// Certs authenticates client certificates; nil ignores them.
	Certs CertAuthenticator
	// Lookup gives a certificate-authenticated thing's type and
	// attributes to the policy variables; nil leaves them empty.
	Lookup ThingGetter
	// Policies confine things by policy; nil keeps the fixed namespace
	// confinement (see Namespaces).
	Policies PolicySource
	// DisablePassword refuses password logins of things, so they must use
	// certificates (the admin keeps its token).
	DisablePassword bool
	Logger          *slog.Logger
}

// Auth implements broker.Authenticator, broker.Authorizer and
// broker.Receiver.
type Auth struct {
	admin    []byte
	things   PasswordVerifier
	certs    CertAuthenticator
	lookup   ThingGetter
	policies PolicySource
	noPass   bool
	log      *slog.Logger
	broker   atomic.Pointer[Disconnector]
}

// New returns an Auth.
func New(opts Options) *Auth {
	a := &Auth{admin: []byte(opts.AdminToken), things: opts.Things, certs: opts.Certs, lookup: opts.Lookup,
		policies: opts.Policies, noPass: opts.DisablePassword, log: opts.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a
}

// Authenticate maps CONNECT credentials to a principal. A client that
// presented a certificate is identified by it alone (username and
// password are ignored); otherwise the username and password are checked.
func (a *Auth) Authenticate(ctx context.Context, c *broker.ConnectInfo) (*broker.Principal, error) {
	if len(c.PeerCertificates) > 0 && a.certs != nil {
		return a.authenticateCert(ctx, c)
	}
	if !c.HasUsername || c.Username == "" {
		return nil, broker.ErrNoCredentials
	}
	if c.Username == AdminUser {
		if len(a.admin) > 0 && subtle.ConstantTimeCompare(a.admin, c.Password) == 1 {
			return &broker.Principal{Name: AdminUser, Admin: true}, nil
		}
		return nil, broker.ErrBadCredentials
	}
	if a.things == nil {
		return nil, broker.ErrBadCredentials
	}
	if a.noPass {
		a.log.Warn("auth: connection refused", "client", c.ClientID, "username", c.Username,
			"reason", "password authentication is disabled (auth.password: false); use a client certificate")
		return nil, fmt.Errorf("%w: password authentication is disabled; use a client certificate", broker.ErrNotAuthorized)
	}
	t, err := a.things.VerifyPassword(ctx, c.Username, string(c.Password))
	if errors.Is(err, registry.ErrBadCredentials) || errors.Is(err, registry.ErrNotFound) {
		return nil, broker.ErrBadCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("auth: verify %q: %w", c.Username, err)
	}
	p := &broker.Principal{Name: t.Name}
	return p, a.bindPolicy(ctx, p, c.ClientID, t, true)
}

// CanPublish reports whether p may publish on topic.
func (a *Auth) CanPublish(p *broker.Principal, topic string) bool {
	if z := authzOf(p); z != nil {
		return z.compiled(a).Allowed(policy.Publish, topic)
	}
	return allowed(p, topic)
}

// CanSubscribe reports whether p may subscribe to filter (shared
// subscriptions are judged by their inner filter).
func (a *Auth) CanSubscribe(p *broker.Principal, filter string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, inner, found := strings.Cut(rest, "/")
		if !found {
			return false
		}
		filter = inner
	}
	if z := authzOf(p); z != nil {
		return z.compiled(a).Allowed(policy.Subscribe, filter)
	}
	return allowed(p, filter)
}

// CanReceive reports whether p may receive a message published on topic
// (iot:Receive).
func (a *Auth) CanReceive(p *broker.Principal, topic string) bool {
	z := authzOf(p)
	if z == nil {
		return allowed(p, topic)
	}
	c := z.compiled(a)
	return !c.RestrictsReceive() || c.Allowed(policy.Receive, topic)
}

func allowed(p *broker.Principal, topic string) bool {
	switch {
	case p == nil:
		return false
	case p.Admin:
		return true
	case p.Anonymous || p.Name == "":
		return !strings.HasPrefix(topic, "$")
	}
	for _, ns := range Namespaces(p.Name) {
		if len(topic) > len(ns) && strings.HasPrefix(topic, ns) {
			return true
		}
	}
	return false
}

// Namespace is the topic prefix of a thing's device API: "devices/{name}/".
func Namespace(thing string) string { return "devices/" + thing + "/" }

// Namespaces are the topic prefixes a thing owns by default: its device API
// (devices/{name}/), its shadow and jobs topics ($aws/things/{name}/) and
// their Edgewise mirror ($edgewise/things/{name}/).
func Namespaces(thing string) [3]string {
	return [3]string{"devices/" + thing + "/", "$aws/things/" + thing + "/", "$edgewise/things/" + thing + "/"}
}
