package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/registry"
)

type fakeThings map[string]string // test double for the registry lookup only

func (f fakeThings) VerifyPassword(_ context.Context, u, p string) (registry.Thing, error) {
	if pw, ok := f[u]; ok && pw == p {
		return registry.Thing{Name: u}, nil
	}
	return registry.Thing{}, registry.ErrBadCredentials
}

func TestAuthenticate(t *testing.T) {
	a := New(Options{AdminToken: "tok", Things: fakeThings{"d1": "pw"}})
	cases := []struct {
		name    string
		user    string
		hasUser bool
		pass    string
		want    string
		err     error
	}{
		{"thing", "d1", true, "pw", "d1", nil},
		{"wrong password", "d1", true, "nope", "", broker.ErrBadCredentials},
		{"unknown", "d2", true, "pw", "", broker.ErrBadCredentials},
		{"admin", "admin", true, "tok", "admin", nil},
		{"admin wrong", "admin", true, "tok2", "", broker.ErrBadCredentials},
		{"anonymous", "", false, "", "", broker.ErrNoCredentials},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(context.Background(), &broker.ConnectInfo{Username: tc.user, HasUsername: tc.hasUser, Password: []byte(tc.pass), HasPassword: tc.pass != ""})
			if !errors.Is(err, tc.err) || (err == nil && p.Name != tc.want) {
				t.Fatalf("got %+v, %v", p, err)
			}
		})
	}
	if _, err := New(Options{}).Authenticate(context.Background(), &broker.ConnectInfo{Username: "admin", HasUsername: true}); !errors.Is(err, broker.ErrBadCredentials) {
		t.Fatalf("empty admin token must not log in: %v", err)
	}
}

func TestConfinement(t *testing.T) {
	a := New(Options{})
	d1 := &broker.Principal{Name: "d1"}
	anon := &broker.Principal{Anonymous: true}
	admin := &broker.Principal{Name: "admin", Admin: true}
	cases := []struct {
		p        *broker.Principal
		topic    string
		pub, sub bool
	}{
		{d1, "devices/d1/telemetry", true, true},
		{d1, "devices/d1/command", true, true},
		{d1, "devices/d1/#", false, true}, // wildcard is a filter, never a topic name the broker accepts
		{d1, "devices/d1/+", false, true},
		{d1, "devices/d1", false, false},
		{d1, "devices/d2/telemetry", false, false},
		{d1, "devices/+/telemetry", false, false},
		{d1, "devices/#", false, false},
		{d1, "#", false, false},
		{d1, "devices/d10/telemetry", false, false},
		{d1, "$SYS/broker", false, false},
		{d1, "$share/g/devices/d1/telemetry", false, true},
		{d1, "$share/g/devices/d2/telemetry", false, false},
		{d1, "$aws/things/d1/shadow/update", true, true},
		{d1, "$aws/things/d1/shadow/name/cfg/update/delta", true, true},
		{d1, "$aws/things/d1/shadow/#", false, true},
		{d1, "$aws/things/d1/jobs/notify-next", true, true},
		{d1, "$edgewise/things/d1/shadow/get", true, true},
		{d1, "$aws/things/d1", false, false},
		{d1, "$aws/things/d1/", false, false},
		{d1, "$aws/things/d2/shadow/update", false, false},
		{d1, "$aws/things/d10/shadow/update", false, false},
		{d1, "$aws/things/+/shadow/update", false, false},
		{d1, "$aws/things/#", false, false},
		{d1, "$aws/#", false, false},
		{d1, "$edgewise/things/+/shadow/#", false, false},
		{d1, "$edgewise/things/d2/jobs/notify-next", false, false},
		{d1, "$share/g/$aws/things/d1/shadow/update/delta", false, true},
		{d1, "$share/g/$aws/things/d2/shadow/update/delta", false, false},
		{d1, "$share/$aws/things/d1/shadow/update", false, false},
		{d1, "$share/g", false, false},
		{anon, "$aws/things/d1/shadow/update", false, false},
		{anon, "anything/at/all", true, true},
		{anon, "$SYS/x", false, false},
		{admin, "devices/d2/command", true, true},
		{nil, "devices/d1/telemetry", false, false},
	}
	for _, tc := range cases {
		// Publishing to a filter string is rejected by the codec before
		// authorization; here only the namespace rule is checked.
		if tc.pub && !a.CanPublish(tc.p, tc.topic) {
			t.Errorf("%+v publish %q denied", tc.p, tc.topic)
		}
		if got := a.CanSubscribe(tc.p, tc.topic); got != tc.sub {
			t.Errorf("%+v subscribe %q = %v, want %v", tc.p, tc.topic, got, tc.sub)
		}
	}
	if a.CanPublish(d1, "devices/d2/telemetry") || a.CanPublish(d1, "devices/d1") {
		t.Error("publish outside namespace allowed")
	}
}
