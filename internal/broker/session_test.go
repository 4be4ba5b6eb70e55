package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// publishN publishes n QoS 1 messages "0".."n-1" on topic from a raw client.
func publishN(t *testing.T, pub *rawClient, topic string, n int) {
	t.Helper()
	for i := range n {
		pub.send(packets.AppendPublish(nil, pub.version, &packets.Publish{Topic: topic, QoS: 1, PacketID: uint16(i + 1), Payload: fmt.Appendf(nil, "%d", i)}))
		pub.expect(packets.PUBACK)
	}
}

func TestPersistentSession(t *testing.T) {
	tests := []struct {
		name        string
		version     byte
		props       packets.Properties // CONNECT properties (v5)
		clean       bool
		maxQueued   int
		publish     int
		wantPresent bool
		wantFirst   int // first payload received after reconnect
		wantCount   int
	}{
		{"v3 persistent", packets.V311, packets.Properties{}, false, 0, 5, true, 0, 5},
		{"v3 clean", packets.V311, packets.Properties{}, true, 0, 5, false, 0, 0},
		{"v5 expiry", packets.V5, packets.Properties{SessionExpiry: u32(60)}, false, 0, 5, true, 0, 5},
		{"v5 expiry 0", packets.V5, packets.Properties{}, false, 0, 5, false, 0, 0},
		{"v5 drop oldest", packets.V5, packets.Properties{SessionExpiry: u32(60)}, false, 3, 5, true, 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, addr := startServer(t, Options{AllowAnonymous: true, MaxQueued: tt.maxQueued})
			sub := dialRaw(t, addr, tt.version)
			sub.connect(&packets.Connect{ClientID: "p", CleanStart: tt.clean, Properties: tt.props})
			sub.subscribe(1, packets.Subscription{Filter: "q/#", QoS: 1})
			sub.send(packets.AppendDisconnect(nil, tt.version, &packets.Disconnect{}))
			sub.expectClosed()
			eventually(t, func() bool { return s.Stats().Connections == 0 }, "subscriber gone")

			pub := dialRaw(t, addr, packets.V5)
			pub.connect(&packets.Connect{ClientID: "pub", CleanStart: true})
			publishN(t, pub, "q/x", tt.publish)

			sub2 := dialRaw(t, addr, tt.version)
			ca := sub2.connect(&packets.Connect{ClientID: "p", Properties: tt.props})
			if ca.SessionPresent != tt.wantPresent {
				t.Fatalf("session present %v, want %v", ca.SessionPresent, tt.wantPresent)
			}
			for i := range tt.wantCount {
				p := sub2.expectPublish()
				if want := fmt.Sprint(tt.wantFirst + i); string(p.Payload) != want || p.QoS != 1 || p.Dup {
					t.Fatalf("queued message %d: payload %q qos %d dup %v, want %q", i, p.Payload, p.QoS, p.Dup, want)
				}
				sub2.puback(p.PacketID)
			}
			// Nothing else is pending: a PINGREQ is answered next.
			sub2.send(packets.AppendPingreq(nil))
			sub2.expect(packets.PINGRESP)
			if tt.maxQueued > 0 {
				if got, want := s.Stats().DroppedQueue, int64(tt.publish-tt.maxQueued); got != want {
					t.Fatalf("DroppedQueue = %d, want %d", got, want)
				}
			}
		})
	}
}

// TestInflightResend checks that unacknowledged QoS 1 messages are resent
// with DUP and the same packet id after reconnecting.
func TestInflightResend(t *testing.T) {
	s, addr := startServer(t, anon())
	sub := dialRaw(t, addr, packets.V5)
	sub.connect(&packets.Connect{ClientID: "r", Properties: packets.Properties{SessionExpiry: u32(60)}})
	sub.subscribe(1, packets.Subscription{Filter: "r", QoS: 1})
	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "pub", CleanStart: true})
	publishN(t, pub, "r", 2)
	first := sub.expectPublish()
	sub.puback(first.PacketID)
	second := sub.expectPublish()
	_ = sub.nc.Close() // without acking the second
	eventually(t, func() bool { return s.Stats().Connections == 1 }, "subscriber gone")

	sub2 := dialRaw(t, addr, packets.V5)
	if ca := sub2.connect(&packets.Connect{ClientID: "r", Properties: packets.Properties{SessionExpiry: u32(60)}}); !ca.SessionPresent {
		t.Fatal("session not present")
	}
	p := sub2.expectPublish()
	if !p.Dup || p.PacketID != second.PacketID || string(p.Payload) != "1" {
		t.Fatalf("resend: dup %v id %d (want %d) payload %q", p.Dup, p.PacketID, second.PacketID, p.Payload)
	}
}

// TestReceiveMaximum checks outbound flow control by the client's Receive
// Maximum: beyond it messages wait until PUBACKs arrive.
func TestReceiveMaximum(t *testing.T) {
	_, addr := startServer(t, anon())
	sub := dialRaw(t, addr, packets.V5)
	sub.connect(&packets.Connect{ClientID: "rm", CleanStart: true, Properties: packets.Properties{ReceiveMaximum: u16(2)}})
	sub.subscribe(1, packets.Subscription{Filter: "rm", QoS: 1})
	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "pub", CleanStart: true})
	publishN(t, pub, "rm", 5)
	a := sub.expectPublish()
	b := sub.expectPublish()
	// The window is full: the next packet must be the PINGRESP.
	sub.send(packets.AppendPingreq(nil))
	sub.expect(packets.PINGRESP)
	sub.puback(a.PacketID)
	sub.puback(b.PacketID)
	for i := 2; i < 5; i++ {
		p := sub.expectPublish()
		if string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("got %q, want %d", p.Payload, i)
		}
		sub.puback(p.PacketID)
	}
}

func TestMessageExpiry(t *testing.T) {
	s, addr := startServer(t, anon())
	sub := dialRaw(t, addr, packets.V5)
	sub.connect(&packets.Connect{ClientID: "e", Properties: packets.Properties{SessionExpiry: u32(60)}})
	sub.subscribe(1, packets.Subscription{Filter: "e/#", QoS: 1})
	_ = sub.nc.Close()
	eventually(t, func() bool { return s.Stats().Connections == 0 }, "subscriber gone")

	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "pub", CleanStart: true})
	send := func(id uint16, topic string, expiry *uint32) {
		pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: topic, QoS: 1, PacketID: id,
			Properties: packets.Properties{MessageExpiry: expiry}, Payload: []byte(topic)}))
		pub.expect(packets.PUBACK)
	}
	send(1, "e/short", u32(1))
	send(2, "e/long", u32(100))
	time.Sleep(1100 * time.Millisecond) // let the short expiry pass (not a timing assertion)

	sub2 := dialRaw(t, addr, packets.V5)
	sub2.connect(&packets.Connect{ClientID: "e", Properties: packets.Properties{SessionExpiry: u32(60)}})
	p := sub2.expectPublish()
	if p.Topic != "e/long" {
		t.Fatalf("expired message delivered: %q", p.Topic)
	}
	if p.Properties.MessageExpiry == nil || *p.Properties.MessageExpiry >= 100 {
		t.Fatalf("expiry not lowered: %v", p.Properties.MessageExpiry)
	}
}

func TestTakeover(t *testing.T) {
	s, addr := startServer(t, anon())
	old := connectV5(t, addr, "dup", false)
	old.sub(t, paho.SubscribeOptions{Topic: "t/o", QoS: 1})

	r := dialRaw(t, addr, packets.V5)
	ca := r.connect(&packets.Connect{ClientID: "dup"})
	if ca.ReasonCode != 0 {
		t.Fatalf("connack %#x", ca.ReasonCode)
	}
	select {
	case d := <-old.disconnects:
		if d.ReasonCode != packets.SessionTakenOver {
			t.Fatalf("old connection got reason %#x", d.ReasonCode)
		}
	case <-time.After(waitFor):
		t.Fatal("old connection not told about the takeover")
	}
	eventually(t, func() bool { return s.Stats().Connections == 1 }, "one connection left")
	// The new connection has the old subscriptions only if the session
	// was resumed; v5 CleanStart=false with expiry 0 ends with the old one.
	if ca.SessionPresent {
		t.Fatal("session with expiry 0 reported present")
	}
}

func TestTakeoverKeepsSession(t *testing.T) {
	_, addr := startServer(t, anon())
	props := packets.Properties{SessionExpiry: u32(60)}
	a := dialRaw(t, addr, packets.V5)
	a.connect(&packets.Connect{ClientID: "k", Properties: props})
	a.subscribe(1, packets.Subscription{Filter: "k", QoS: 1})
	b := dialRaw(t, addr, packets.V5)
	if ca := b.connect(&packets.Connect{ClientID: "k", Properties: props}); !ca.SessionPresent {
		t.Fatal("session not present after takeover")
	}
	h, body := a.expect(packets.DISCONNECT)
	if d, err := packets.DecodeDisconnect(packets.V5, h, body); err != nil || d.ReasonCode != packets.SessionTakenOver {
		t.Fatalf("disconnect %+v %v", d, err)
	}
	a.expectClosed()
	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "pub", CleanStart: true})
	publishN(t, pub, "k", 1)
	if p := b.expectPublish(); string(p.Payload) != "0" {
		t.Fatalf("got %q", p.Payload)
	}
}

func TestAssignedClientID(t *testing.T) {
	_, addr := startServer(t, anon())
	r := dialRaw(t, addr, packets.V5)
	ca := r.connect(&packets.Connect{CleanStart: true})
	if ca.ReasonCode != 0 || ca.Properties.AssignedClientID == "" {
		t.Fatalf("connack %+v", ca)
	}
	p := ca.Properties
	if p.MaximumQoS != nil || p.RetainAvailable == nil || *p.RetainAvailable != 1 ||
		p.SharedSubAvailable == nil || *p.SharedSubAvailable != 1 || p.SubIDAvailable == nil || *p.SubIDAvailable != 1 ||
		p.WildcardSubAvailable == nil || *p.WildcardSubAvailable != 1 || p.TopicAliasMaximum == nil || *p.TopicAliasMaximum != DefaultTopicAliasMax ||
		p.ReceiveMaximum == nil || *p.ReceiveMaximum != DefaultReceiveMaximum || p.MaximumPacketSize == nil {
		t.Fatalf("connack properties %+v", p)
	}
	r3 := dialRaw(t, addr, packets.V311)
	if ca := r3.connect(&packets.Connect{CleanStart: false}); ca.ReasonCode != packets.ClientIdentifierNotValid {
		t.Fatalf("v3 empty id without clean session: %#x", ca.ReasonCode)
	}
}

func TestKeepAliveTimeout(t *testing.T) {
	tests := []struct {
		name    string
		version byte
		want    []byte
	}{
		{"v3", packets.V311, nil},
		{"v5", packets.V5, []byte{packets.DISCONNECT}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := startServer(t, anon())
			r := dialRaw(t, addr, tt.version)
			r.connect(&packets.Connect{ClientID: "ka", CleanStart: true, KeepAlive: 1})
			if got := r.expectClosed(); string(got) != string(tt.want) {
				t.Fatalf("packets before close %v, want %v", got, tt.want)
			}
		})
	}
}

func TestServerKeepAliveCap(t *testing.T) {
	_, addr := startServer(t, Options{AllowAnonymous: true, MaxKeepAlive: 30})
	r := dialRaw(t, addr, packets.V5)
	ca := r.connect(&packets.Connect{ClientID: "cap", CleanStart: true, KeepAlive: 0})
	if ca.Properties.ServerKeepAlive == nil || *ca.Properties.ServerKeepAlive != 30 {
		t.Fatalf("server keep alive %v", ca.Properties.ServerKeepAlive)
	}
}

// TestKeepAliveZero checks that a client with keep alive 0 is not timed
// out by the CONNECT deadline.
func TestKeepAliveZero(t *testing.T) {
	_, addr := startServer(t, Options{AllowAnonymous: true, ConnectTimeout: 100 * time.Millisecond})
	r := dialRaw(t, addr, packets.V311)
	r.connect(&packets.Connect{ClientID: "ka0", CleanStart: true})
	time.Sleep(300 * time.Millisecond) // past the connect timeout (not a timing assertion)
	r.send(packets.AppendPingreq(nil))
	r.expect(packets.PINGRESP)
}

func TestSessionExpires(t *testing.T) {
	s, addr := startServer(t, anon())
	r := dialRaw(t, addr, packets.V5)
	r.connect(&packets.Connect{ClientID: "short", Properties: packets.Properties{SessionExpiry: u32(1)}})
	r.subscribe(1, packets.Subscription{Filter: "s", QoS: 1})
	r.send(packets.AppendDisconnect(nil, packets.V5, &packets.Disconnect{}))
	r.expectClosed()
	eventually(t, func() bool { st := s.Stats(); return st.Sessions == 0 && st.Subscriptions == 0 }, "session expired")
	r2 := dialRaw(t, addr, packets.V5)
	if ca := r2.connect(&packets.Connect{ClientID: "short"}); ca.SessionPresent {
		t.Fatal("expired session resumed")
	}
}

func TestDisconnectChangesSessionExpiry(t *testing.T) {
	s, addr := startServer(t, anon())
	r := dialRaw(t, addr, packets.V5)
	r.connect(&packets.Connect{ClientID: "chg", Properties: packets.Properties{SessionExpiry: u32(3600)}})
	r.send(packets.AppendDisconnect(nil, packets.V5, &packets.Disconnect{Properties: packets.Properties{SessionExpiry: u32(0)}}))
	r.expectClosed()
	eventually(t, func() bool { return s.Stats().Sessions == 0 }, "session ended at disconnect")

	// 0 on CONNECT then non-zero on DISCONNECT is a protocol error.
	r2 := dialRaw(t, addr, packets.V5)
	r2.connect(&packets.Connect{ClientID: "chg2", CleanStart: true})
	r2.send(packets.AppendDisconnect(nil, packets.V5, &packets.Disconnect{Properties: packets.Properties{SessionExpiry: u32(10)}}))
	if got := r2.expectClosed(); len(got) != 1 || got[0] != packets.DISCONNECT {
		t.Fatalf("got %v", got)
	}
}
