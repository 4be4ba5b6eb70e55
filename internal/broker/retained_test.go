package broker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

func TestTopicMatch(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"+", "", true},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"/+", "/x", true},
		{"+", "/x", false},
	}
	for _, tt := range tests {
		if got := topicMatch(tt.filter, tt.topic); got != tt.want {
			t.Errorf("topicMatch(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

// TestRetained covers storing, clearing and delivering retained messages
// with the v5 retain handling and retain-as-published options.
func TestRetained(t *testing.T) {
	type step struct {
		sub      packets.Subscription
		wantMsgs int  // retained deliveries expected after SUBACK
		wantFlag bool // retain flag on a live message
	}
	tests := []struct {
		name    string
		version byte
		payload string // retained payload published first; "" clears
		steps   []step
	}{
		{"v3 delivered with retain flag", packets.V311, "r", []step{{sub: packets.Subscription{Filter: "ret/#", QoS: 1}, wantMsgs: 1}}},
		{"v5 handling 0 resubscribe", packets.V5, "r", []step{
			{sub: packets.Subscription{Filter: "ret/+", QoS: 1}, wantMsgs: 1},
			{sub: packets.Subscription{Filter: "ret/+", QoS: 1}, wantMsgs: 1},
		}},
		{"v5 handling 1 only new", packets.V5, "r", []step{
			{sub: packets.Subscription{Filter: "ret/t", QoS: 0, RetainHandling: 1}, wantMsgs: 1},
			{sub: packets.Subscription{Filter: "ret/t", QoS: 0, RetainHandling: 1}, wantMsgs: 0},
		}},
		{"v5 handling 2 never", packets.V5, "r", []step{{sub: packets.Subscription{Filter: "ret/t", RetainHandling: 2}}}},
		{"v5 retain as published", packets.V5, "r", []step{{sub: packets.Subscription{Filter: "ret/t", RetainAsPublished: true, RetainHandling: 2}, wantFlag: true}}},
		{"cleared", packets.V5, "", []step{{sub: packets.Subscription{Filter: "ret/t"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, addr := startServer(t, anon())
			pub := dialRaw(t, addr, packets.V5)
			pub.connect(&packets.Connect{ClientID: "pub", CleanStart: true})
			pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "ret/t", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("old")}))
			pub.expect(packets.PUBACK)
			pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "ret/t", QoS: 1, PacketID: 2, Retain: true, Payload: []byte(tt.payload)}))
			pub.expect(packets.PUBACK)
			wantStored := int64(1)
			if tt.payload == "" {
				wantStored = 0
			}
			if got := s.Stats().Retained; got != wantStored {
				t.Fatalf("retained = %d, want %d", got, wantStored)
			}

			sub := dialRaw(t, addr, tt.version)
			sub.connect(&packets.Connect{ClientID: "sub", CleanStart: true})
			for i, st := range tt.steps {
				sub.subscribe(uint16(i+1), st.sub)
				for range st.wantMsgs {
					p := sub.expectPublish()
					if !p.Retain || string(p.Payload) != tt.payload || p.Topic != "ret/t" {
						t.Fatalf("step %d: retained delivery %+v", i, p)
					}
					if p.QoS == 1 {
						sub.puback(p.PacketID)
					}
				}
				// A live publish marks the end of the retained deliveries.
				pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "ret/t", Retain: true, Payload: []byte(tt.payload)}))
				p := sub.expectPublish()
				if p.Retain != st.wantFlag {
					t.Fatalf("step %d: live message retain flag %v, want %v", i, p.Retain, st.wantFlag)
				}
			}
		})
	}
}

// topicMatch reports whether topic name matches a subscription filter, with
// '$' topics not matched by a leading wildcard.
func topicMatch(filter, topic string) bool {
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		if filter == "#" {
			return true
		}
		fl, frest, fmore := strings.Cut(filter, "/")
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore {
			return !tmore
		}
		if !tmore {
			// "a/#" matches "a" too.
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}

// TestRetainedStoreMatchesOracle compares the retained tree with a brute
// force filter match over random topics and filters.
func TestRetainedStoreMatchesOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	levels := []string{"a", "b", "", "$SYS", "c"}
	randTopic := func() string {
		n := 1 + rng.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = levels[rng.IntN(len(levels))]
		}
		return strings.Join(parts, "/")
	}
	var rs retainedStore
	rs.init()
	topics := map[string]bool{}
	for range 300 {
		tp := randTopic()
		if rng.IntN(4) == 0 {
			rs.set(&message{topic: tp})
			delete(topics, tp)
			continue
		}
		rs.set(&message{topic: tp, payload: []byte("x")})
		topics[tp] = true
	}
	if rs.len() != len(topics) {
		t.Fatalf("len %d, want %d", rs.len(), len(topics))
	}
	for range 2000 {
		f := randTopic()
		parts := strings.Split(f, "/")
		for i := range parts {
			switch rng.IntN(4) {
			case 0:
				parts[i] = "+"
			case 1:
				if i == len(parts)-1 {
					parts[i] = "#"
				}
			}
		}
		f = strings.Join(parts, "/")
		var got []string
		for _, m := range rs.match(f, nil) {
			got = append(got, m.topic)
		}
		var want []string
		for tp := range topics {
			if topicMatch(f, tp) {
				want = append(want, tp)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("filter %q: got %v, want %v", f, got, want)
		}
	}
}

func TestRetainedExpiry(t *testing.T) {
	s, addr := startServer(t, anon())
	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "pub", CleanStart: true})
	for _, tc := range []struct {
		topic  string
		expiry uint32
	}{{"rx/short", 1}, {"rx/long", 100}} {
		pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: tc.topic, Retain: true, Payload: []byte("v"),
			Properties: packets.Properties{MessageExpiry: u32(tc.expiry)}}))
	}
	eventually(t, func() bool { return s.Stats().Retained == 2 }, "both retained")
	time.Sleep(1100 * time.Millisecond) // let the short expiry pass (not a timing assertion)
	sub := dialRaw(t, addr, packets.V5)
	sub.connect(&packets.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, packets.Subscription{Filter: "rx/#"})
	if p := sub.expectPublish(); p.Topic != "rx/long" || p.Properties.MessageExpiry == nil || *p.Properties.MessageExpiry > 100 {
		t.Fatalf("got %q expiry %v", p.Topic, p.Properties.MessageExpiry)
	}
	if got := s.Stats().Retained; got != 1 {
		t.Fatalf("expired retained message kept: %d", got)
	}
}

// TestRetainedFloodBounded subscribes to many retained QoS 0 messages with a
// small output bound: the excess is dropped and counted, not buffered.
func TestRetainedFloodBounded(t *testing.T) {
	// A 1-byte bound admits a message only when the output is empty.
	s, addr := startServer(t, Options{AllowAnonymous: true, MaxOutboundBytes: 1})
	for i := range 2000 {
		if err := s.Publish(t.Context(), fmt.Sprintf("flood/%d", i), make([]byte, 100), 0, true); err != nil {
			t.Fatal(err)
		}
	}
	r := dialRaw(t, addr, packets.V311)
	r.connect(&packets.Connect{ClientID: "f", CleanStart: true})
	r.subscribe(1, packets.Subscription{Filter: "flood/#"})
	r.send(packets.AppendPingreq(nil))
	n := 0
	for {
		h, _, err := r.read()
		if err != nil {
			t.Fatal(err)
		}
		if h.Type == packets.PINGRESP {
			break
		}
		n++
	}
	st := s.Stats()
	if int64(n)+st.DroppedSlow != 2000 || st.DroppedSlow == 0 {
		t.Fatalf("received %d, dropped %d of 2000", n, st.DroppedSlow)
	}
}
