package broker

import (
	"testing"

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
