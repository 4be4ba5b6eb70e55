package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// countHook counts the messages given to the PublishHook.
type countHook struct {
	mu   sync.Mutex
	msgs []string
}

func (h *countHook) OnPublish(_ context.Context, batch []*Message) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range batch {
		h.msgs = append(h.msgs, fmt.Sprintf("%s:%s:%d", m.Topic, m.Payload, m.QoS))
	}
	return nil
}

func (h *countHook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

// TestQoS2PahoV5 sends QoS 2 messages between two paho.golang clients:
// every PUBLISH completes with PUBCOMP and arrives exactly once, in order,
// at QoS 2.
func TestQoS2PahoV5(t *testing.T) {
	hook := &countHook{}
	_, addr := startServer(t, Options{AllowAnonymous: true, Hook: hook})
	sub := connectV5(t, addr, "q2-sub", true)
	if r := sub.sub(t, paho.SubscribeOptions{Topic: "q2/#", QoS: 2}); r[0] != 2 {
		t.Fatalf("granted %d, want 2", r[0])
	}
	pub := connectV5(t, addr, "q2-pub", true)
	const n = 50
	for i := range n {
		res := pub.pub(t, &paho.Publish{Topic: "q2/a", QoS: 2, Payload: fmt.Appendf(nil, "%d", i)})
		if res.ReasonCode != 0 {
			t.Fatalf("publish %d: reason %#x", i, res.ReasonCode)
		}
	}
	for i := range n {
		p := sub.recv.next(t)
		if string(p.Payload) != fmt.Sprint(i) || p.QoS != 2 {
			t.Fatalf("message %d: %q qos %d", i, p.Payload, p.QoS)
		}
	}
	// The marker proves nothing else (a duplicate) was queued before it.
	sub.sub(t, paho.SubscribeOptions{Topic: "q2m", QoS: 0})
	pub.pub(t, &paho.Publish{Topic: "q2m", Payload: []byte("m")})
	if p := sub.recv.next(t); p.Topic != "q2m" {
		t.Fatalf("after %d messages got %q %q", n, p.Topic, p.Payload)
	}
	// The hook sees a read pass after its messages were routed, so the
	// marker may reach the subscriber first.
	eventually(t, func() bool { return hook.count() >= n+1 }, "hook saw %d messages, want %d", hook.count(), n+1)
	if got := hook.count(); got != n+1 {
		t.Fatalf("hook saw %d messages, want %d", got, n+1)
	}
}

// TestQoS2PahoV311 does the same with paho.mqtt.golang (MQTT 3.1.1).
func TestQoS2PahoV311(t *testing.T) {
	_, addr := startServer(t, anon())
	got := make(chan mqtt3.Message, 100)
	sub, err := connectV3(t, addr, "q2v3-sub", true, func(o *mqtt3.ClientOptions) { o.SetOrderMatters(true) })
	if err != nil {
		t.Fatal(err)
	}
	wait3(t, sub.Subscribe("q2v3/#", 2, func(_ mqtt3.Client, m mqtt3.Message) { got <- m }))
	pub, err := connectV3(t, addr, "q2v3-pub", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		wait3(t, pub.Publish("q2v3/x", 2, false, fmt.Sprint(i)))
	}
	for i := range n {
		select {
		case m := <-got:
			if string(m.Payload()) != fmt.Sprint(i) || m.Qos() != 2 || m.Duplicate() {
				t.Fatalf("message %d: %q qos %d dup %v", i, m.Payload(), m.Qos(), m.Duplicate())
			}
		case <-timeout():
			t.Fatalf("message %d not received", i)
		}
	}
}

// TestQoS2InboundDuplicate resends a QoS 2 PUBLISH before PUBREL: it is
// acknowledged again but routed (and given to the hook) once, and PUBREL
// completes it; a second PUBREL gets 0x92.
func TestQoS2InboundDuplicate(t *testing.T) {
	hook := &countHook{}
	_, addr := startServer(t, Options{AllowAnonymous: true, Hook: hook})
	sub := dialRaw(t, addr, packets.V5)
	sub.connect(&packets.Connect{ClientID: "dup-sub", CleanStart: true})
	sub.subscribe(1, packets.Subscription{Filter: "dup", QoS: 2})

	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "dup-pub", CleanStart: true})
	msg := &packets.Publish{Topic: "dup", QoS: 2, PacketID: 7, Payload: []byte("once")}
	pub.send(packets.AppendPublish(nil, packets.V5, msg))
	expectAck(t, pub, packets.PUBREC, 7, packets.Success)
	msg.Dup = true
	pub.send(packets.AppendPublish(nil, packets.V5, msg))
	expectAck(t, pub, packets.PUBREC, 7, packets.Success)
	pub.send(packets.AppendAck(nil, packets.V5, &packets.Ack{Type: packets.PUBREL, PacketID: 7}))
	expectAck(t, pub, packets.PUBCOMP, 7, packets.Success)
	pub.send(packets.AppendAck(nil, packets.V5, &packets.Ack{Type: packets.PUBREL, PacketID: 7}))
	expectAck(t, pub, packets.PUBCOMP, 7, packets.PacketIdentifierNotFound)
	// The id is free again: a new message with it is a new message.
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "dup", QoS: 2, PacketID: 7, Payload: []byte("again")}))
	expectAck(t, pub, packets.PUBREC, 7, packets.Success)

	var got []*packets.Publish
	for _, want := range []string{"once", "again"} {
		p := sub.expectPublish()
		if string(p.Payload) != want || p.QoS != 2 {
			t.Fatalf("got %q qos %d, want %q", p.Payload, p.QoS, want)
		}
		got = append(got, p)
	}
	for _, p := range got {
		sub.send(packets.AppendAck(nil, packets.V5, &packets.Ack{Type: packets.PUBREC, PacketID: p.PacketID}))
		expectAck(t, sub, packets.PUBREL, p.PacketID, packets.Success)
		sub.send(packets.AppendAck(nil, packets.V5, &packets.Ack{Type: packets.PUBCOMP, PacketID: p.PacketID}))
	}
	sub.send(packets.AppendPingreq(nil))
	sub.expect(packets.PINGRESP)
	if got := hook.count(); got != 2 {
		t.Fatalf("hook saw %d messages, want 2", got)
	}
}

// TestQoS2OutboundResume interrupts an outbound QoS 2 delivery twice: after
// the PUBLISH the session resends it with DUP and the same packet id, after
// the PUBREC it resends only the PUBREL.
func TestQoS2OutboundResume(t *testing.T) {
	for _, version := range []byte{packets.V311, packets.V5} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			_, addr := startServer(t, anon())
			cp := func() *packets.Connect {
				return &packets.Connect{ClientID: "resume", Properties: packets.Properties{SessionExpiry: u32(60)}}
			}
			sub := dialRaw(t, addr, version)
			sub.connect(cp())
			sub.subscribe(1, packets.Subscription{Filter: "r/#", QoS: 2})
			pub := dialRaw(t, addr, packets.V5)
			pub.connect(&packets.Connect{ClientID: "resume-pub", CleanStart: true})
			pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "r/1", QoS: 2, PacketID: 1, Payload: []byte("x")}))
			expectAck(t, pub, packets.PUBREC, 1, packets.Success)

			first := sub.expectPublish()
			if first.Dup || first.QoS != 2 {
				t.Fatalf("first delivery dup %v qos %d", first.Dup, first.QoS)
			}
			sub.nc.Close()

			sub = dialRaw(t, addr, version)
			if ca := sub.connect(cp()); !ca.SessionPresent {
				t.Fatal("session not present")
			}
			again := sub.expectPublish()
			if !again.Dup || again.PacketID != first.PacketID || string(again.Payload) != "x" {
				t.Fatalf("resend: dup %v id %d (want %d) payload %q", again.Dup, again.PacketID, first.PacketID, again.Payload)
			}
			sub.send(packets.AppendAck(nil, version, &packets.Ack{Type: packets.PUBREC, PacketID: first.PacketID}))
			expectAck(t, sub, packets.PUBREL, first.PacketID, packets.Success)
			sub.nc.Close()

			sub = dialRaw(t, addr, version)
			sub.connect(cp())
			expectAck(t, sub, packets.PUBREL, first.PacketID, packets.Success)
			sub.send(packets.AppendAck(nil, version, &packets.Ack{Type: packets.PUBCOMP, PacketID: first.PacketID}))
			sub.send(packets.AppendPingreq(nil))
			sub.expect(packets.PINGRESP)
			sub.nc.Close()

			// Completed: nothing is resent any more.
			sub = dialRaw(t, addr, version)
			sub.connect(cp())
			sub.send(packets.AppendPingreq(nil))
			sub.expect(packets.PINGRESP)
		})
	}
}

// TestQoS2ReceiveMaximum: unacknowledged inbound QoS 2 (no PUBREL yet)
// count against the Receive Maximum the server advertised.
func TestQoS2ReceiveMaximum(t *testing.T) {
	_, addr := startServer(t, Options{AllowAnonymous: true, ReceiveMaximum: 2})
	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "rm", CleanStart: true})
	for id := uint16(1); id <= 2; id++ {
		pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "rm", QoS: 2, PacketID: id}))
		expectAck(t, pub, packets.PUBREC, id, packets.Success)
	}
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "rm", QoS: 2, PacketID: 3}))
	_, body := pub.expect(packets.DISCONNECT)
	if body[0] != packets.ReceiveMaximumExceeded {
		t.Fatalf("disconnect reason %#x", body[0])
	}
}

// TestServerPublishQoS2 delivers a server-originated QoS 2 message.
func TestServerPublishQoS2(t *testing.T) {
	s, addr := startServer(t, anon())
	c := connectV5(t, addr, "srvq2", true)
	c.sub(t, paho.SubscribeOptions{Topic: "srv/q2", QoS: 2})
	if err := s.Publish(context.Background(), "srv/q2", []byte("x"), 2, false); err != nil {
		t.Fatal(err)
	}
	if p := c.recv.next(t); p.QoS != 2 || string(p.Payload) != "x" {
		t.Fatalf("got qos %d %q", p.QoS, p.Payload)
	}
}

// expectAck reads an ack of type typ and checks its id and reason.
func expectAck(t *testing.T, r *rawClient, typ byte, id uint16, reason byte) {
	t.Helper()
	h, body := r.expect(typ)
	var a packets.Ack
	if err := packets.DecodeAck(r.version, h, body, &a); err != nil {
		t.Fatal(err)
	}
	if a.PacketID != id || a.ReasonCode != reason {
		t.Fatalf("%s id %d reason %#x, want id %d reason %#x", packets.TypeName(typ), a.PacketID, a.ReasonCode, id, reason)
	}
}

func timeout() <-chan time.Time { return time.After(waitFor) }
