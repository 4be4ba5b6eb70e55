package broker

import (
	"time"

	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// TestTopicAliasClientToServer: a v5 publisher sets an alias with a topic
// and then publishes with the alias alone; subscribers see the topic.
func TestTopicAliasClientToServer(t *testing.T) {
	_, addr := startServer(t, anon())
	sub := connectV5(t, addr, "alias-sub", true)
	sub.sub(t, paho.SubscribeOptions{Topic: "alias/#", QoS: 1})
	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "alias-pub", CleanStart: true})
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "alias/long/topic", QoS: 1, PacketID: 1,
		Properties: packets.Properties{TopicAlias: u16(3)}, Payload: []byte("a")}))
	pub.expect(packets.PUBACK)
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{QoS: 0,
		Properties: packets.Properties{TopicAlias: u16(3)}, Payload: []byte("b")}))
	// Re-pointing alias 3 at another topic.
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "alias/other", QoS: 1, PacketID: 2,
		Properties: packets.Properties{TopicAlias: u16(3)}, Payload: []byte("c")}))
	pub.expect(packets.PUBACK)
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{QoS: 1, PacketID: 3,
		Properties: packets.Properties{TopicAlias: u16(3)}, Payload: []byte("d")}))
	pub.expect(packets.PUBACK)
	want := [][2]string{{"alias/long/topic", "a"}, {"alias/long/topic", "b"}, {"alias/other", "c"}, {"alias/other", "d"}}
	for _, w := range want {
		p := sub.recv.next(t)
		if p.Topic != w[0] || string(p.Payload) != w[1] || (p.Properties != nil && p.Properties.TopicAlias != nil) {
			t.Fatalf("got %q %q (alias %v), want %q %q", p.Topic, p.Payload, p.Properties.TopicAlias, w[0], w[1])
		}
	}
}

// TestTopicAliasServerToClient: a client advertising Topic Alias Maximum 2
// gets aliases for the first two topics (the topic once, then the alias
// alone) and full topics for the rest, for QoS 0 and QoS 1.
func TestTopicAliasServerToClient(t *testing.T) {
	_, addr := startServer(t, anon())
	sub := dialRaw(t, addr, packets.V5)
	sub.connect(&packets.Connect{ClientID: "alias-in", CleanStart: true, Properties: packets.Properties{TopicAliasMaximum: u16(2)}})
	sub.subscribe(1, packets.Subscription{Filter: "ta/#", QoS: 1})
	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "alias-out", CleanStart: true})
	topics := []string{"ta/1", "ta/1", "ta/2", "ta/3", "ta/2", "ta/3"}
	for i, tp := range topics {
		qos := byte(i % 2)
		pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: tp, QoS: qos, PacketID: uint16(i + 1), Payload: []byte(tp)}))
		if qos == 1 {
			pub.expect(packets.PUBACK)
		}
	}
	type seen struct {
		topic string
		alias uint16
	}
	want := []seen{{"ta/1", 1}, {"", 1}, {"ta/2", 2}, {"ta/3", 0}, {"", 2}, {"ta/3", 0}}
	aliases := map[uint16]string{}
	for i, w := range want {
		p := sub.expectPublish()
		var a uint16
		if p.Properties.TopicAlias != nil {
			a = *p.Properties.TopicAlias
		}
		if p.Topic != w.topic || a != w.alias {
			t.Fatalf("message %d: topic %q alias %d, want %q alias %d", i, p.Topic, a, w.topic, w.alias)
		}
		if p.Topic != "" && a != 0 {
			aliases[a] = p.Topic
		}
		topic := p.Topic
		if topic == "" {
			topic = aliases[a]
		}
		if topic != string(p.Payload) {
			t.Fatalf("message %d resolves to %q, sent on %q", i, topic, p.Payload)
		}
		if p.QoS == 1 {
			sub.puback(p.PacketID)
		}
	}
}

// TestSubscriptionIdentifiers: each delivery carries the identifiers of
// the subscriptions it matched (paho.golang for one, raw for several).
func TestSubscriptionIdentifiers(t *testing.T) {
	_, addr := startServer(t, anon())
	c := connectV5(t, addr, "subid", true)
	id := 7
	if _, err := c.Subscribe(t.Context(), &paho.Subscribe{Properties: &paho.SubscribeProperties{SubscriptionIdentifier: &id},
		Subscriptions: []paho.SubscribeOptions{{Topic: "sid/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub := connectV5(t, addr, "subid-pub", true)
	pub.pub(t, &paho.Publish{Topic: "sid/a", QoS: 1, Payload: []byte("x")})
	p := c.recv.next(t)
	if p.Properties == nil || p.Properties.SubscriptionIdentifier == nil || *p.Properties.SubscriptionIdentifier != 7 {
		t.Fatalf("paho got properties %+v", p.Properties)
	}

	raw := dialRaw(t, addr, packets.V5)
	raw.connect(&packets.Connect{ClientID: "subid-raw", CleanStart: true})
	for i, f := range []string{"m/#", "m/+/x", "m/a/x"} {
		raw.send(packets.AppendSubscribe(nil, packets.V5, &packets.Subscribe{PacketID: uint16(i + 1),
			Properties:    packets.Properties{SubscriptionIDs: []int{100 + i}},
			Subscriptions: []packets.Subscription{{Filter: f, QoS: byte(i % 2)}}}))
		raw.expect(packets.SUBACK)
	}
	// A subscription without identifier adds none.
	raw.subscribe(9, packets.Subscription{Filter: "m/a/#"})
	for _, tc := range []struct {
		topic string
		qos   byte
		ids   []int
	}{{"m/a/x", 0, []int{100, 101, 102}}, {"m/b/x", 1, []int{100, 101}}, {"m/c", 1, []int{100}}} {
		pub.pub(t, &paho.Publish{Topic: tc.topic, QoS: tc.qos, Payload: []byte(tc.topic)})
		p := raw.expectPublish()
		got := slices.Sorted(slices.Values(p.Properties.SubscriptionIDs))
		if p.Topic != tc.topic || !slices.Equal(got, tc.ids) {
			t.Fatalf("%s: topic %q ids %v, want %v", tc.topic, p.Topic, got, tc.ids)
		}
		if p.QoS == 1 {
			raw.puback(p.PacketID)
		}
	}
	// Identifier 0 is a protocol error.
	raw.send(packets.AppendSubscribe(nil, packets.V5, &packets.Subscribe{PacketID: 20,
		Properties: packets.Properties{SubscriptionIDs: []int{0}}, Subscriptions: []packets.Subscription{{Filter: "z"}}}))
	if types := raw.expectClosed(); !slices.Equal(types, []byte{packets.DISCONNECT}) && !slices.Equal(types, nil) {
		t.Fatalf("after subscription id 0 got %v", types)
	}
}

// TestRequestResponse: response topic, correlation data, content type and
// user properties reach the responder unchanged, and its answer reaches
// the requester.
func TestRequestResponse(t *testing.T) {
	_, addr := startServer(t, anon())
	responder := connectV5(t, addr, "responder", true)
	responder.sub(t, paho.SubscribeOptions{Topic: "rpc/req", QoS: 1})
	requester := connectV5(t, addr, "requester", true)
	requester.sub(t, paho.SubscribeOptions{Topic: "rpc/resp/requester", QoS: 1})
	requester.pub(t, &paho.Publish{Topic: "rpc/req", QoS: 1, Payload: []byte("ping"), Properties: &paho.PublishProperties{
		ResponseTopic: "rpc/resp/requester", CorrelationData: []byte{1, 2, 3}, ContentType: "text/plain",
		User: paho.UserProperties{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}}}})
	req := responder.recv.next(t)
	pp := req.Properties
	if pp == nil || pp.ResponseTopic != "rpc/resp/requester" || !slices.Equal(pp.CorrelationData, []byte{1, 2, 3}) ||
		pp.ContentType != "text/plain" || len(pp.User) != 2 || pp.User[1].Value != "w" {
		t.Fatalf("request properties %+v", pp)
	}
	responder.pub(t, &paho.Publish{Topic: pp.ResponseTopic, QoS: 1, Payload: []byte("pong"),
		Properties: &paho.PublishProperties{CorrelationData: pp.CorrelationData}})
	resp := requester.recv.next(t)
	if string(resp.Payload) != "pong" || resp.Properties == nil || !slices.Equal(resp.Properties.CorrelationData, []byte{1, 2, 3}) {
		t.Fatalf("response %q %+v", resp.Payload, resp.Properties)
	}
}

// TestSharedSubscriptions: v5 and 3.1.1 members of one group share the
// messages round-robin (each exactly once), a normal subscriber gets all,
// and a second group gets its own copy.
func TestSharedSubscriptions(t *testing.T) {
	_, addr := startServer(t, anon())
	var members []*v5Client
	for i := range 2 {
		c := connectV5(t, addr, fmt.Sprintf("share-%d", i), true)
		if r := c.sub(t, paho.SubscribeOptions{Topic: "$share/g/jobs/#", QoS: 1}); r[0] != 1 {
			t.Fatalf("granted %#x", r[0])
		}
		members = append(members, c)
	}
	var mu sync.Mutex
	var v3got []string
	v3, err := connectV3(t, addr, "share-v3", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait3(t, v3.Subscribe("$share/g/jobs/#", 1, func(_ mqtt3.Client, m mqtt3.Message) {
		mu.Lock()
		v3got = append(v3got, string(m.Payload()))
		mu.Unlock()
	}))
	all := connectV5(t, addr, "share-all", true)
	all.sub(t, paho.SubscribeOptions{Topic: "jobs/#", QoS: 1})
	other := connectV5(t, addr, "share-other", true)
	other.sub(t, paho.SubscribeOptions{Topic: "$share/h/jobs/+", QoS: 0})

	pub := connectV5(t, addr, "share-pub", true)
	const n = 30
	for i := range n {
		pub.pub(t, &paho.Publish{Topic: "jobs/x", QoS: 1, Payload: fmt.Appendf(nil, "%d", i)})
	}
	for range n {
		all.recv.next(t)
		other.recv.next(t)
	}
	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return members[0].recv.len()+members[1].recv.len()+len(v3got) == n
	}, "shared members received %d", n)
	seen := map[string]bool{}
	counts := []int{}
	for _, m := range members {
		counts = append(counts, m.recv.len())
		for range m.recv.len() {
			seen[string(m.recv.next(t).Payload)] = true
		}
	}
	mu.Lock()
	counts = append(counts, len(v3got))
	for _, p := range v3got {
		seen[p] = true
	}
	mu.Unlock()
	if len(seen) != n {
		t.Fatalf("members saw %d distinct messages, want %d", len(seen), n)
	}
	for _, c := range counts {
		if c != n/3 {
			t.Fatalf("round-robin counts %v, want %d each", counts, n/3)
		}
	}
}

// TestSharedRedelivery: a member that disconnects with unacknowledged QoS 1
// messages hands them to another member of the group.
func TestSharedRedelivery(t *testing.T) {
	s, addr := startServer(t, Options{AllowAnonymous: true, MaxInflight: 2})
	lazy := dialRaw(t, addr, packets.V5)
	lazy.connect(&packets.Connect{ClientID: "lazy", CleanStart: true})
	lazy.subscribe(1, packets.Subscription{Filter: "$share/w/work", QoS: 1})
	good := connectV5(t, addr, "good", true)
	good.sub(t, paho.SubscribeOptions{Topic: "$share/w/work", QoS: 1})
	pub := connectV5(t, addr, "work-pub", true)
	const n = 10
	for i := range n {
		pub.pub(t, &paho.Publish{Topic: "work", QoS: 1, Payload: fmt.Appendf(nil, "%d", i)})
	}
	// lazy got its first messages and acknowledges none of them.
	lazy.expectPublish()
	lazy.nc.Close()
	eventually(t, func() bool { return good.recv.len() >= n }, "good member got all %d messages", n)
	seen := map[string]bool{}
	for range good.recv.len() {
		seen[string(good.recv.next(t).Payload)] = true
	}
	if len(seen) != n {
		t.Fatalf("good member saw %d distinct messages, want %d", len(seen), n)
	}
	eventually(t, func() bool { return s.Stats().Connections == 2 }, "lazy gone")
}

// TestSharedSubscriptionNoLocal: No Local on a shared subscription is a
// protocol error.
func TestSharedSubscriptionNoLocal(t *testing.T) {
	_, addr := startServer(t, anon())
	r := dialRaw(t, addr, packets.V5)
	r.connect(&packets.Connect{ClientID: "nl", CleanStart: true})
	r.send(packets.AppendSubscribe(nil, packets.V5, &packets.Subscribe{PacketID: 1,
		Subscriptions: []packets.Subscription{{Filter: "$share/g/a", NoLocal: true}}}))
	if types := r.expectClosed(); !slices.Equal(types, []byte{packets.DISCONNECT}) {
		t.Fatalf("got %v", types)
	}
}

// TestQueuePolicies: with a full queue, drop_newest keeps the first
// messages and disconnect ends a connected consumer with 0x97.
func TestQueuePolicies(t *testing.T) {
	t.Run("drop newest", func(t *testing.T) {
		s, addr := startServer(t, Options{AllowAnonymous: true, MaxQueued: 3, QueuePolicy: DropNewest})
		sub := dialRaw(t, addr, packets.V5)
		sub.connect(&packets.Connect{ClientID: "dn", Properties: packets.Properties{SessionExpiry: u32(60)}})
		sub.subscribe(1, packets.Subscription{Filter: "dn", QoS: 1})
		sub.nc.Close()
		eventually(t, func() bool { return s.Stats().Connections == 0 }, "offline")
		pub := dialRaw(t, addr, packets.V5)
		pub.connect(&packets.Connect{ClientID: "dn-pub", CleanStart: true})
		publishN(t, pub, "dn", 5)
		sub = dialRaw(t, addr, packets.V5)
		sub.connect(&packets.Connect{ClientID: "dn", Properties: packets.Properties{SessionExpiry: u32(60)}})
		for i := range 3 {
			p := sub.expectPublish()
			if string(p.Payload) != fmt.Sprint(i) {
				t.Fatalf("queued %d: %q", i, p.Payload)
			}
			sub.puback(p.PacketID)
		}
		sub.send(packets.AppendPingreq(nil))
		sub.expect(packets.PINGRESP)
		if d := s.Stats().DroppedQueue; d != 2 {
			t.Fatalf("DroppedQueue %d, want 2", d)
		}
	})
	t.Run("disconnect", func(t *testing.T) {
		_, addr := startServer(t, Options{AllowAnonymous: true, MaxQueued: 2, MaxInflight: 1, QueuePolicy: DropDisconnect,
			BackpressureWait: 50 * time.Millisecond})
		sub := dialRaw(t, addr, packets.V5)
		sub.connect(&packets.Connect{ClientID: "dd", CleanStart: true})
		sub.subscribe(1, packets.Subscription{Filter: "dd", QoS: 1})
		pub := dialRaw(t, addr, packets.V5)
		pub.connect(&packets.Connect{ClientID: "dd-pub", CleanStart: true})
		publishN(t, pub, "dd", 4) // 1 inflight, 2 queued, 1 too many
		var last []byte
		for {
			h, body, err := sub.read()
			if err != nil {
				break
			}
			if h.Type == packets.DISCONNECT {
				last = body
			}
		}
		if len(last) == 0 || last[0] != packets.QuotaExceeded {
			t.Fatalf("disconnect %v, want reason 0x97", last)
		}
	})
}

// TestPublishRateLimit: a client publishing above PublishRate is slowed
// down (its reads pause), not disconnected, and loses nothing.
func TestPublishRateLimit(t *testing.T) {
	s, addr := startServer(t, Options{AllowAnonymous: true, PublishRate: 200, PublishBurst: 5})
	sub := connectV5(t, addr, "rl-sub", true)
	sub.sub(t, paho.SubscribeOptions{Topic: "rl", QoS: 1})
	pub := dialRaw(t, addr, packets.V311)
	pub.connect(&packets.Connect{ClientID: "rl-pub", CleanStart: true})
	const n = 40
	var burst []byte
	for i := range n {
		burst = packets.AppendPublish(burst, packets.V311, &packets.Publish{Topic: "rl", QoS: 1, PacketID: uint16(i + 1), Payload: fmt.Appendf(nil, "%d", i)})
	}
	pub.send(burst)
	for range n {
		pub.expect(packets.PUBACK)
	}
	for i := range n {
		if p := sub.recv.next(t); string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, p.Payload)
		}
	}
	if s.Stats().Throttled == 0 {
		t.Fatal("a burst of 40 above a bucket of 5 was not throttled")
	}
}
