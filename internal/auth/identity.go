package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/broker/packets"
	"github.com/edgewise-iot/edgewise/internal/pki"
	"github.com/edgewise-iot/edgewise/internal/policy"
	"github.com/edgewise-iot/edgewise/internal/registry"
)

// authenticateCert identifies a client by its certificate: the certificate
// must be known (or registered just in time), ACTIVE, within its validity
// and attached to the thing named by the client id.
func (a *Auth) authenticateCert(ctx context.Context, c *broker.ConnectInfo) (*broker.Principal, error) {
	cert, err := a.certs.Authenticate(ctx, c.PeerCertificates, c.ClientID)
	refuse := func(sentinel error, reason string) (*broker.Principal, error) {
		a.log.Warn("auth: certificate refused", "client", c.ClientID, "remote", addr(c), "certificate", cert.ID,
			"subject", c.PeerCertificates[0].Subject.String(), "reason", reason)
		return nil, fmt.Errorf("%w: certificate %s", sentinel, reason)
	}
	switch {
	case errors.Is(err, pki.ErrUnknown):
		cert.ID = pki.Fingerprint(c.PeerCertificates[0])
		return refuse(broker.ErrBadCredentials, "unknown: register it or its CA with auto-registration")
	case errors.Is(err, pki.ErrExpired):
		return refuse(broker.ErrBadCredentials, "expired or not yet valid")
	case errors.Is(err, pki.ErrInactive):
		return refuse(broker.ErrNotAuthorized, "inactive")
	case errors.Is(err, pki.ErrRevoked):
		return refuse(broker.ErrNotAuthorized, "revoked")
	case err != nil:
		return nil, fmt.Errorf("auth: certificate of %q: %w", c.ClientID, err)
	}
	if c.ClientID == "" || !slices.Contains(cert.Things, c.ClientID) {
		return refuse(broker.ErrNotAuthorized, fmt.Sprintf("not attached to thing %q (the client id must name a thing the certificate is attached to)", c.ClientID))
	}
	t := registry.Thing{Name: c.ClientID}
	if a.lookup != nil {
		if t, err = a.lookup.GetThing(ctx, c.ClientID); err != nil {
			return nil, fmt.Errorf("auth: thing %q: %w", c.ClientID, err)
		}
	}
	p := &broker.Principal{Name: t.Name, CertificateID: cert.ID}
	return p, a.bindPolicy(ctx, p, c.ClientID, t, true)
}

func addr(c *broker.ConnectInfo) string {
	if c.RemoteAddr == nil {
		return ""
	}
	return c.RemoteAddr.String()
}

// connAuthz is a connection's policy state, kept in Principal.Authz: the
// variables and the compiled policy, recompiled when the policy store's
// generation moved on.
type connAuthz struct {
	vars policy.Vars
	cur  atomic.Pointer[compiledAt]
}

type compiledAt struct {
	c   *policy.Compiled
	gen uint64
}

func authzOf(p *broker.Principal) *connAuthz {
	if p == nil || p.Authz == nil {
		return nil
	}
	z, _ := p.Authz.(*connAuthz)
	return z
}

// compiled returns the connection's current policy, recompiling it when a
// policy or an attachment changed since it was compiled. If recompiling
// fails the previous policy stays in force (and the failure is logged).
func (z *connAuthz) compiled(a *Auth) *policy.Compiled {
	cur := z.cur.Load()
	if a.policies.Generation() == cur.gen {
		return cur.c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, gen, err := a.policies.Effective(ctx, z.vars)
	if err != nil {
		a.log.Warn("auth: recompiling a connection's policy failed; keeping the previous one", "client", z.vars.ClientID, "err", err)
		return cur.c
	}
	z.cur.Store(&compiledAt{c: c, gen: gen})
	return c
}

// bindPolicy compiles the effective policy of a thing's connection, checks
// iot:Connect and attaches the policy to p.
func (a *Auth) bindPolicy(ctx context.Context, p *broker.Principal, clientID string, t registry.Thing, attached bool) error {
	if a.policies == nil {
		return nil
	}
	z := &connAuthz{vars: policy.Vars{ClientID: clientID, ThingName: t.Name, ThingTypeName: t.Type,
		Attributes: t.Attributes, IsAttached: attached, CertificateID: p.CertificateID}}
	c, gen, err := a.policies.Effective(ctx, z.vars)
	if err != nil {
		return fmt.Errorf("auth: policy of %q: %w", t.Name, err)
	}
	if !c.Allowed(policy.Connect, clientID) {
		a.log.Warn("auth: connection refused", "client", clientID, "thing", t.Name, "reason", "policy does not allow iot:Connect")
		return fmt.Errorf("%w: policy does not allow iot:Connect for client %q", broker.ErrNotAuthorized, clientID)
	}
	z.cur.Store(&compiledAt{c: c, gen: gen})
	p.Authz = z
	// Deliveries are checked for every policy-confined principal: a
	// policy attached later may restrict receiving. Under the default
	// policy the check is a pointer load and returns at once.
	p.CheckReceive = true
	return nil
}

// SetDisconnector gives the Auth the broker, so revoking, deactivating,
// deleting or detaching a certificate closes the connections using it.
func (a *Auth) SetDisconnector(d Disconnector) {
	a.broker.Store(&d)
}

// CertificateChanged is the PKI's OnChange listener: connections that the
// change no longer allows are closed with reason 0x87 (not authorized).
func (a *Auth) CertificateChanged(ev pki.Event) {
	dp := a.broker.Load()
	if dp == nil {
		return
	}
	id := ev.Certificate.ID
	var match func(string, *broker.Principal) bool
	switch {
	case ev.Deleted || ev.Certificate.Status != pki.StatusActive:
		match = func(_ string, p *broker.Principal) bool { return p != nil && p.CertificateID == id }
	case ev.Detached != "":
		match = func(_ string, p *broker.Principal) bool {
			return p != nil && p.CertificateID == id && p.Name == ev.Detached
		}
	default:
		return
	}
	if n := (*dp).DisconnectWhere(match, packets.NotAuthorized); n > 0 {
		a.log.Warn("auth: connections closed after a certificate change", "certificate", id,
			"status", ev.Certificate.Status, "detached", ev.Detached, "deleted", ev.Deleted, "connections", n)
	}
}
