package broker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// TestSlowQoS1Subscriber: a subscriber that never acknowledges (nor reads)
// holds at most its inflight window plus its queue; once the publisher
// waited BackpressureWait for it in vain the rest is dropped and counted,
// and a fast subscriber of the same messages gets all of them without
// waiting for it again.
func TestSlowQoS1Subscriber(t *testing.T) {
	const inflight, queued, n = 10, 100, 2000
	s, addr := startServer(t, Options{AllowAnonymous: true, MaxInflight: inflight, MaxQueued: queued,
		BackpressureWait: 50 * time.Millisecond})
	slow := dialRaw(t, addr, packets.V311)
	slow.connect(&packets.Connect{ClientID: "slow", CleanStart: true})
	slow.subscribe(1, packets.Subscription{Filter: "flow/#", QoS: 1})
	fast := connectV5(t, addr, "fast", true)
	fast.sub(t, paho.SubscribeOptions{Topic: "flow/#", QoS: 1})
	pub := dialRaw(t, addr, packets.V311)
	pub.connect(&packets.Connect{ClientID: "flow-pub", CleanStart: true})
	// In chunks the fast subscriber can take (its window and queue are as
	// small as the slow one's); the slow one never answers.
	const chunk = 50
	for start := 0; start < n; start += chunk {
		var batch []byte
		for i := start; i < start+chunk; i++ {
			batch = packets.AppendPublish(batch, packets.V311, &packets.Publish{Topic: "flow/x", QoS: 1, PacketID: uint16(i + 1), Payload: fmt.Appendf(nil, "%d", i)})
		}
		pub.send(batch)
		for range chunk {
			pub.expect(packets.PUBACK)
		}
		for i := start; i < start+chunk; i++ {
			if p := fast.recv.next(t); string(p.Payload) != fmt.Sprint(i) {
				t.Fatalf("fast subscriber message %d: %q", i, p.Payload)
			}
		}
	}
	st := s.Stats()
	if got, want := st.DroppedQueue, int64(n-inflight-queued); got != want {
		t.Fatalf("DroppedQueue %d, want %d", got, want)
	}
	if st.BackpressureTimeouts != 1 {
		t.Fatalf("BackpressureTimeouts %d, want 1 (a stalled subscriber is waited for once)", st.BackpressureTimeouts)
	}
	// The slow client got exactly its window; the queue drains as it acks.
	for range inflight {
		p := slow.expectPublish()
		slow.puback(p.PacketID)
	}
	for range queued {
		p := slow.expectPublish()
		slow.puback(p.PacketID)
	}
	slow.send(packets.AppendPingreq(nil))
	slow.expect(packets.PINGRESP)
}

// denyAuthorizer refuses topics under "deny/".
type denyAuthorizer struct{}

func (denyAuthorizer) CanPublish(_ *Principal, topic string) bool {
	return !strings.HasPrefix(topic, "deny/")
}
func (denyAuthorizer) CanSubscribe(*Principal, string) bool { return true }

// TestQoS2ReasonCodes: a refused QoS 2 PUBLISH gets PUBREC 0x87 with a
// reason string (v5) and is not recorded, so its PUBREL finds nothing; a
// will with QoS 2 is delivered at QoS 2.
func TestQoS2ReasonCodes(t *testing.T) {
	_, addr := startServer(t, Options{AllowAnonymous: true, Authorizer: denyAuthorizer{}})
	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "rc", CleanStart: true})
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "deny/x", QoS: 2, PacketID: 3}))
	h, body := pub.expect(packets.PUBREC)
	var a packets.Ack
	if err := packets.DecodeAck(packets.V5, h, body, &a); err != nil {
		t.Fatal(err)
	}
	if a.ReasonCode != packets.NotAuthorized || a.Properties.ReasonString == "" {
		t.Fatalf("PUBREC %+v", a)
	}
	pub.send(packets.AppendAck(nil, packets.V5, &packets.Ack{Type: packets.PUBREL, PacketID: 3}))
	expectAck(t, pub, packets.PUBCOMP, 3, packets.PacketIdentifierNotFound)

	sub := connectV5(t, addr, "will-sub", true)
	sub.sub(t, paho.SubscribeOptions{Topic: "will/q2", QoS: 2})
	w := dialRaw(t, addr, packets.V5)
	w.connect(&packets.Connect{ClientID: "will-q2", CleanStart: true, WillFlag: true, WillQoS: 2, WillTopic: "will/q2", WillPayload: []byte("bye")})
	w.nc.Close()
	if p := sub.recv.next(t); string(p.Payload) != "bye" || p.QoS != 2 {
		t.Fatalf("will %q qos %d", p.Payload, p.QoS)
	}
}

// TestTopicAliasPaho: paho.golang sets a topic alias and then publishes
// with the alias alone.
func TestTopicAliasPaho(t *testing.T) {
	_, addr := startServer(t, anon())
	sub := connectV5(t, addr, "pa-sub", true)
	sub.sub(t, paho.SubscribeOptions{Topic: "pa/#", QoS: 1})
	pub := connectV5(t, addr, "pa-pub", true)
	if m := pub.connack.Properties.TopicAliasMaximum; m == nil || *m != DefaultTopicAliasMax {
		t.Fatalf("advertised topic alias maximum %v", m)
	}
	alias := uint16(5)
	pub.pub(t, &paho.Publish{Topic: "pa/t", QoS: 1, Payload: []byte("1"), Properties: &paho.PublishProperties{TopicAlias: &alias}})
	pub.pub(t, &paho.Publish{QoS: 1, Payload: []byte("2"), Properties: &paho.PublishProperties{TopicAlias: &alias}})
	for _, want := range []string{"1", "2"} {
		if p := sub.recv.next(t); p.Topic != "pa/t" || string(p.Payload) != want {
			t.Fatalf("got %q %q, want pa/t %q", p.Topic, p.Payload, want)
		}
	}
}
