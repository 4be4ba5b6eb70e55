package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/registry"
)

// AdminUser is the MQTT username of the platform's administrative client.
const AdminUser = "admin"

// PasswordVerifier checks a thing's password (the registry).
type PasswordVerifier interface {
	VerifyPassword(ctx context.Context, username, password string) (registry.Thing, error)
}

// Options configure an Auth.
type Options struct {
	// AdminToken is the password of the "admin" MQTT user; empty disables it.
	AdminToken string
	Things     PasswordVerifier
}

// Auth implements broker.Authenticator and broker.Authorizer.
type Auth struct {
	admin  []byte
	things PasswordVerifier
}

// New returns an Auth.
func New(opts Options) *Auth {
	return &Auth{admin: []byte(opts.AdminToken), things: opts.Things}
}

// Authenticate maps CONNECT credentials to a principal.
func (a *Auth) Authenticate(ctx context.Context, c *broker.ConnectInfo) (*broker.Principal, error) {
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
	t, err := a.things.VerifyPassword(ctx, c.Username, string(c.Password))
	if errors.Is(err, registry.ErrBadCredentials) || errors.Is(err, registry.ErrNotFound) {
		return nil, broker.ErrBadCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("auth: verify %q: %w", c.Username, err)
	}
	return &broker.Principal{Name: t.Name}, nil
}

// CanPublish reports whether p may publish on topic.
func (a *Auth) CanPublish(p *broker.Principal, topic string) bool {
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
	return allowed(p, filter)
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
