package broker_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgewise-iot/edgewise/internal/auth"
	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/registry"
)

type oneThing struct{}

func (oneThing) VerifyPassword(_ context.Context, user, pass string) (registry.Thing, error) {
	if user == "dev1" && pass == "secret-password" {
		return registry.Thing{Name: "dev1"}, nil
	}
	return registry.Thing{}, registry.ErrBadCredentials
}

// TestSysReadableOnlyByAdmin checks, with the platform's Authorizer, that
// $SYS statistics are readable by the admin and refused to things and
// anonymous clients, and that nobody but the server can publish there.
func TestSysReadableOnlyByAdmin(t *testing.T) {
	a := auth.New(auth.Options{AdminToken: "admin-token-0123456789", Things: oneThing{}})
	s, err := broker.New(broker.Options{Authenticator: a, Authorizer: a, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	defer func() { _ = s.Close(context.Background()) }()
	go func() { _ = s.RunSys(ctx, broker.SysOptions{Interval: 10 * time.Millisecond}) }()

	for _, tc := range []struct {
		user, pass string
		want       byte
	}{
		{"admin", "admin-token-0123456789", 0},
		{"dev1", "secret-password", 0x87},
		{"", "", 0x87},
	} {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: nc, OnClientError: func(error) {}})
		cp := &paho.Connect{ClientID: "c-" + tc.user, CleanStart: true, KeepAlive: 30}
		if tc.user != "" {
			cp.Username, cp.UsernameFlag = tc.user, true
			cp.Password, cp.PasswordFlag = []byte(tc.pass), true
		}
		if _, err := c.Connect(ctx, cp); err != nil {
			t.Fatalf("%q connect: %v", tc.user, err)
		}
		sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$SYS/#"}}})
		if tc.want == 0 && err != nil {
			t.Fatalf("%q subscribe: %v", tc.user, err)
		}
		if sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != tc.want {
			t.Fatalf("%q SUBACK %+v (%v), want reason 0x%02X", tc.user, sa, err, tc.want)
		}
		// Publishing into $SYS is refused to everyone but the server.
		pr, _ := c.Publish(ctx, &paho.Publish{Topic: "$SYS/broker/version", QoS: 1, Payload: []byte("fake")})
		if tc.user != "admin" && (pr == nil || pr.ReasonCode != 0x87) {
			t.Fatalf("%q publish to $SYS: %+v", tc.user, pr)
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
}
