package broker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// fakeAuth accepts "dev"/"secret" as thing "dev", "admin"/"admin" as admin,
// refuses user "blocked" and fails for user "broken".
type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, c *ConnectInfo) (*Principal, error) {
	switch {
	case !c.HasUsername:
		return nil, ErrNoCredentials
	case c.Username == "dev" && string(c.Password) == "secret":
		return &Principal{Name: "dev"}, nil
	case c.Username == "admin" && string(c.Password) == "admin":
		return &Principal{Name: "admin", Admin: true}, nil
	case c.Username == "blocked":
		return nil, ErrNotAuthorized
	case c.Username == "broken":
		return nil, errors.New("database down")
	}
	return nil, ErrBadCredentials
}

// fakeACL lets a thing touch only devices/{name}/...; admins everything.
type fakeACL struct{}

func (fakeACL) CanPublish(p *Principal, topic string) bool {
	return p.Admin || strings.HasPrefix(topic, "devices/"+p.Name+"/")
}

func (fakeACL) CanSubscribe(p *Principal, filter string) bool {
	return p.Admin || strings.HasPrefix(filter, "devices/"+p.Name+"/")
}

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name      string
		anonymous bool
		user      string
		pass      string
		want      byte // v5 reason
		wantV3    byte // 3.1.1 return code
	}{
		{"good", false, "dev", "secret", packets.Success, 0},
		{"bad password", false, "dev", "nope", packets.BadUsernameOrPassword, 4},
		{"not authorized", false, "blocked", "x", packets.NotAuthorized, 5},
		{"authenticator error", false, "broken", "x", packets.ServerUnavailable, 3},
		{"anonymous refused", false, "", "", packets.NotAuthorized, 5},
		{"anonymous allowed", true, "", "", packets.Success, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, addr := startServer(t, Options{Authenticator: fakeAuth{}, AllowAnonymous: tt.anonymous})
			for _, v := range []byte{packets.V311, packets.V5} {
				r := dialRaw(t, addr, v)
				cp := &packets.Connect{ClientID: "c", CleanStart: true}
				if tt.user != "" {
					cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = true, tt.user, true, []byte(tt.pass)
				}
				r.send(packets.AppendConnect(nil, &packets.Connect{ProtocolVersion: v, ClientID: cp.ClientID, CleanStart: true,
					UsernameFlag: cp.UsernameFlag, Username: cp.Username, PasswordFlag: cp.PasswordFlag, Password: cp.Password}))
				h, body := r.expect(packets.CONNACK)
				want := tt.want
				if v == packets.V311 {
					// The client decoder maps 3.1.1 codes to v5 reasons.
					want, _ = packets.ConnackCodeV5(tt.wantV3)
					if len(body) != 2 || body[1] != tt.wantV3 {
						t.Fatalf("v3 connack body %x, want code %d", body, tt.wantV3)
					}
				}
				ca, err := packets.DecodeConnack(v, h, body)
				if err != nil || ca.ReasonCode != want {
					t.Fatalf("v%d: connack %+v %v, want %#x", v, ca, err, want)
				}
				if want != 0 {
					r.expectClosed()
				}
			}
			if tt.want != 0 && s.Stats().AuthFailures != 2 {
				t.Fatalf("AuthFailures = %d", s.Stats().AuthFailures)
			}
		})
	}
}

func TestAuthorization(t *testing.T) {
	for _, v := range []byte{packets.V311, packets.V5} {
		t.Run(map[byte]string{4: "v3", 5: "v5"}[v], func(t *testing.T) {
			s, addr := startServer(t, Options{Authenticator: fakeAuth{}, Authorizer: fakeACL{}})
			admin := dialRaw(t, addr, packets.V5)
			admin.connect(&packets.Connect{ClientID: "adm", CleanStart: true, UsernameFlag: true, Username: "admin", PasswordFlag: true, Password: []byte("admin")})
			admin.subscribe(1, packets.Subscription{Filter: "#", QoS: 0})

			dev := dialRaw(t, addr, v)
			dev.connect(&packets.Connect{ClientID: "dev", CleanStart: true, UsernameFlag: true, Username: "dev", PasswordFlag: true, Password: []byte("secret")})
			sa := dev.subscribe(1,
				packets.Subscription{Filter: "devices/dev/command", QoS: 1},
				packets.Subscription{Filter: "devices/other/command", QoS: 1},
				packets.Subscription{Filter: "#", QoS: 0})
			fail := byte(packets.NotAuthorized)
			if v == packets.V311 {
				fail = packets.SubscriptionFailureV3
			}
			if sa.ReasonCodes[0] != 1 || sa.ReasonCodes[1] != fail || sa.ReasonCodes[2] != fail {
				t.Fatalf("suback %x", sa.ReasonCodes)
			}
			// Denied QoS 1 publish: v5 PUBACK 0x87, v3 PUBACK 0 and dropped.
			dev.send(packets.AppendPublish(nil, v, &packets.Publish{Topic: "devices/other/telemetry", QoS: 1, PacketID: 7, Payload: []byte("x")}))
			h, body := dev.expect(packets.PUBACK)
			var a packets.Ack
			if err := packets.DecodeAck(v, h, body, &a); err != nil {
				t.Fatal(err)
			}
			wantReason := byte(0)
			if v == packets.V5 {
				wantReason = packets.NotAuthorized
			}
			if a.PacketID != 7 || a.ReasonCode != wantReason {
				t.Fatalf("puback %+v", a)
			}
			// '$' topics need explicit permission; QoS 0 is dropped silently.
			dev.send(packets.AppendPublish(nil, v, &packets.Publish{Topic: "$SYS/x", Payload: []byte("x")}))
			dev.send(packets.AppendPublish(nil, v, &packets.Publish{Topic: "devices/dev/telemetry", QoS: 1, PacketID: 8, Payload: []byte("ok")}))
			dev.expect(packets.PUBACK)
			if p := admin.expectPublish(); p.Topic != "devices/dev/telemetry" {
				t.Fatalf("admin got %q", p.Topic)
			}
			if got := s.Stats().Denied; got != 4 {
				t.Fatalf("Denied = %d, want 4", got)
			}
		})
	}
}

func TestDollarTopicsWithoutAuthorizer(t *testing.T) {
	_, addr := startServer(t, anon())
	sub := dialRaw(t, addr, packets.V5)
	sub.connect(&packets.Connect{ClientID: "s", CleanStart: true})
	sub.subscribe(1, packets.Subscription{Filter: "$SYS/#"}, packets.Subscription{Filter: "plain"})
	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "p", CleanStart: true})
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "$SYS/fake", Payload: []byte("x")}))
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "plain", Payload: []byte("y")}))
	if p := sub.expectPublish(); p.Topic != "plain" {
		t.Fatalf("client published to %q", p.Topic)
	}
}
