package broker

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

func TestPubSubV5(t *testing.T) {
	tests := []struct {
		name      string
		filter    string
		topic     string
		subQoS    byte
		pubQoS    byte
		wantQoS   byte
		wantMatch bool
	}{
		{"exact qos0", "a/b", "a/b", 0, 0, 0, true},
		{"exact qos1", "a/b", "a/b", 1, 1, 1, true},
		{"downgrade to sub qos", "a/b", "a/b", 0, 1, 0, true},
		{"downgrade to pub qos", "a/b", "a/b", 1, 0, 0, true},
		{"exact qos2", "a/b", "a/b", 2, 2, 2, true},
		{"qos2 downgraded to sub qos 1", "a/b", "a/b", 1, 2, 1, true},
		{"plus", "a/+/c", "a/x/c", 1, 1, 1, true},
		{"hash", "a/#", "a/x/y/z", 0, 0, 0, true},
		{"hash parent", "a/#", "a", 0, 0, 0, true},
		{"no match", "a/+", "a/b/c", 0, 0, 0, false},
	}
	_, addr := startServer(t, anon())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := connectV5(t, addr, uniq(t, "sub"), true)
			reasons := sub.sub(t, paho.SubscribeOptions{Topic: tt.filter, QoS: tt.subQoS})
			if want := tt.subQoS; reasons[0] != want {
				t.Fatalf("granted %d, want %d", reasons[0], want)
			}
			pub := connectV5(t, addr, uniq(t, "pub"), true)
			pub.pub(t, &paho.Publish{Topic: tt.topic, QoS: tt.pubQoS, Payload: []byte("hello")})
			// A marker published afterwards proves the first was routed.
			sub.sub(t, paho.SubscribeOptions{Topic: "marker/" + t.Name(), QoS: 0})
			pub.pub(t, &paho.Publish{Topic: "marker/" + t.Name(), Payload: []byte("m")})
			got := sub.recv.next(t)
			if !tt.wantMatch {
				if got.Topic != "marker/"+t.Name() {
					t.Fatalf("unexpected delivery on %q", got.Topic)
				}
				return
			}
			if got.Topic != tt.topic || string(got.Payload) != "hello" || got.QoS != tt.wantQoS || got.Retain {
				t.Fatalf("got topic %q payload %q qos %d retain %v", got.Topic, got.Payload, got.QoS, got.Retain)
			}
		})
	}
}

func TestPropertiesForwarded(t *testing.T) {
	_, addr := startServer(t, anon())
	sub := connectV5(t, addr, "sub", true)
	sub.sub(t, paho.SubscribeOptions{Topic: "props", QoS: 1})
	pub := connectV5(t, addr, "pub", true)
	pf := byte(1)
	exp := uint32(3600)
	in := &paho.PublishProperties{
		PayloadFormat:   &pf,
		MessageExpiry:   &exp,
		ContentType:     "application/json",
		ResponseTopic:   "reply/here",
		CorrelationData: []byte{1, 2, 3},
		User:            paho.UserProperties{{Key: "k1", Value: "v1"}, {Key: "k1", Value: "v2"}},
	}
	for _, qos := range []byte{0, 1} {
		pub.pub(t, &paho.Publish{Topic: "props", QoS: qos, Payload: []byte(`{}`), Properties: in})
		got := sub.recv.next(t)
		p := got.Properties
		if p == nil || p.PayloadFormat == nil || *p.PayloadFormat != 1 || p.ContentType != in.ContentType ||
			p.ResponseTopic != in.ResponseTopic || !bytes.Equal(p.CorrelationData, in.CorrelationData) ||
			len(p.User) != 2 || p.User[1].Value != "v2" || p.MessageExpiry == nil || *p.MessageExpiry > exp || *p.MessageExpiry < exp-5 {
			t.Fatalf("qos %d: properties not forwarded: %+v", qos, p)
		}
	}
}

func TestNoLocal(t *testing.T) {
	_, addr := startServer(t, anon())
	c := connectV5(t, addr, "self", true)
	c.sub(t, paho.SubscribeOptions{Topic: "nl/a", QoS: 1, NoLocal: true}, paho.SubscribeOptions{Topic: "nl/b", QoS: 1})
	c.pub(t, &paho.Publish{Topic: "nl/a", QoS: 1, Payload: []byte("x")})
	c.pub(t, &paho.Publish{Topic: "nl/b", QoS: 1, Payload: []byte("y")})
	if got := c.recv.next(t); got.Topic != "nl/b" {
		t.Fatalf("no-local message delivered: %q", got.Topic)
	}
}

func TestOverlappingSubscriptionsDeliverOnce(t *testing.T) {
	_, addr := startServer(t, anon())
	c := connectV5(t, addr, "ovl", true)
	c.sub(t, paho.SubscribeOptions{Topic: "o/#", QoS: 0}, paho.SubscribeOptions{Topic: "o/+", QoS: 1}, paho.SubscribeOptions{Topic: "o/x", QoS: 0})
	c.pub(t, &paho.Publish{Topic: "o/x", QoS: 1, Payload: []byte("1")})
	c.pub(t, &paho.Publish{Topic: "o/end", QoS: 0, Payload: []byte("2")})
	if got := c.recv.next(t); got.Topic != "o/x" || got.QoS != 1 {
		t.Fatalf("got %q qos %d, want o/x qos 1", got.Topic, got.QoS)
	}
	if got := c.recv.next(t); got.Topic != "o/end" {
		t.Fatalf("duplicate delivery: %q", got.Topic)
	}
}

func TestPubSubV3(t *testing.T) {
	_, addr := startServer(t, anon())
	got := make(chan mqtt3.Message, 10)
	sub, err := connectV3(t, addr, "sub3", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait3(t, sub.Subscribe("v3/+", 1, func(_ mqtt3.Client, m mqtt3.Message) { got <- m }))
	pub, err := connectV3(t, addr, "pub3", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, qos := range []byte{0, 1} {
		wait3(t, pub.Publish("v3/x", qos, false, "payload"))
		select {
		case m := <-got:
			if m.Topic() != "v3/x" || string(m.Payload()) != "payload" || m.Qos() != qos {
				t.Fatalf("got %q %q qos %d", m.Topic(), m.Payload(), m.Qos())
			}
		case <-time.After(waitFor):
			t.Fatal("no message")
		}
	}
	// v3 <-> v5 interop.
	v5 := connectV5(t, addr, "v5", true)
	v5.pub(t, &paho.Publish{Topic: "v3/from5", QoS: 1, Payload: []byte("hi")})
	select {
	case m := <-got:
		if m.Topic() != "v3/from5" {
			t.Fatalf("got %q", m.Topic())
		}
	case <-time.After(waitFor):
		t.Fatal("no message from v5")
	}
}

func TestServerPublish(t *testing.T) {
	s, addr := startServer(t, anon())
	c := connectV5(t, addr, "c", true)
	c.sub(t, paho.SubscribeOptions{Topic: "srv/#", QoS: 1})
	ctx := context.Background()
	if err := s.Publish(ctx, "srv/a", []byte("x"), 1, false); err != nil {
		t.Fatal(err)
	}
	if got := c.recv.next(t); got.Topic != "srv/a" || got.QoS != 1 {
		t.Fatalf("got %q qos %d", got.Topic, got.QoS)
	}
	for _, tc := range []struct {
		topic string
		qos   byte
	}{{"bad/+", 0}, {"", 0}, {"ok", 3}} {
		if err := s.Publish(ctx, tc.topic, nil, tc.qos, false); err == nil {
			t.Errorf("Publish(%q, qos %d) succeeded", tc.topic, tc.qos)
		}
	}
	st := s.Stats()
	if st.MessagesIn < 1 || st.MessagesOut < 1 || st.Subscriptions != 1 || st.Connections != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestPingAndUnsubscribeRaw(t *testing.T) {
	_, addr := startServer(t, anon())
	for _, v := range []byte{packets.V311, packets.V5} {
		r := dialRaw(t, addr, v)
		r.connect(&packets.Connect{ClientID: "raw", CleanStart: true})
		r.send(packets.AppendPingreq(nil))
		r.expect(packets.PINGRESP)
		r.subscribe(1, packets.Subscription{Filter: "x", QoS: 1})
		r.send(packets.AppendUnsubscribe(nil, v, &packets.Unsubscribe{PacketID: 2, Filters: []string{"x", "y"}}))
		h, body := r.expect(packets.UNSUBACK)
		ua, err := packets.DecodeUnsuback(v, h, body)
		if err != nil {
			t.Fatal(err)
		}
		if ua.PacketID != 2 || (v == packets.V5 && (len(ua.ReasonCodes) != 2 || ua.ReasonCodes[0] != 0 || ua.ReasonCodes[1] != packets.NoSubscriptionExisted)) {
			t.Fatalf("v%d unsuback %+v", v, ua)
		}
		r.send(packets.AppendDisconnect(nil, v, &packets.Disconnect{}))
		r.expectClosed()
	}
}
