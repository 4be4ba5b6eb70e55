package broker

import (
	"testing"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

func TestWill(t *testing.T) {
	tests := []struct {
		name     string
		version  byte
		willProp packets.Properties // v5 will properties
		connProp packets.Properties // v5 CONNECT properties
		end      func(r *rawClient)
		reattach bool // reconnect the same client id before the will is due
		wantWill bool
	}{
		{"v3 abnormal close", packets.V311, packets.Properties{}, packets.Properties{},
			func(r *rawClient) { _ = r.nc.Close() }, false, true},
		{"v3 clean disconnect", packets.V311, packets.Properties{}, packets.Properties{},
			func(r *rawClient) { r.send(packets.AppendDisconnect(nil, packets.V311, &packets.Disconnect{})) }, false, false},
		{"v5 disconnect with will", packets.V5, packets.Properties{}, packets.Properties{},
			func(r *rawClient) {
				r.send(packets.AppendDisconnect(nil, packets.V5, &packets.Disconnect{ReasonCode: packets.DisconnectWithWill}))
			}, false, true},
		{"v5 normal disconnect", packets.V5, packets.Properties{}, packets.Properties{},
			func(r *rawClient) { r.send(packets.AppendDisconnect(nil, packets.V5, &packets.Disconnect{})) }, false, false},
		{"v5 protocol error", packets.V5, packets.Properties{}, packets.Properties{},
			func(r *rawClient) { r.send([]byte{0xF0, 0x00}) }, false, true},
		{"v5 delayed will, session ends first", packets.V5, packets.Properties{WillDelay: u32(3600)}, packets.Properties{},
			func(r *rawClient) { _ = r.nc.Close() }, false, true},
		{"v5 delayed will cancelled by reconnect", packets.V5, packets.Properties{WillDelay: u32(3600)},
			packets.Properties{SessionExpiry: u32(3600)},
			func(r *rawClient) { _ = r.nc.Close() }, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, addr := startServer(t, anon())
			watcher := dialRaw(t, addr, packets.V5)
			watcher.connect(&packets.Connect{ClientID: "watcher", CleanStart: true})
			watcher.subscribe(1, packets.Subscription{Filter: "will/#", QoS: 1})

			r := dialRaw(t, addr, tt.version)
			r.connect(&packets.Connect{ClientID: "dying", CleanStart: !tt.reattach, WillFlag: true, WillQoS: 1,
				WillTopic: "will/dying", WillPayload: []byte("gone"), WillProperties: tt.willProp, Properties: tt.connProp})
			tt.end(r)
			r.expectClosed()
			eventually(t, func() bool { return s.Stats().Connections == 1 }, "client gone")
			if tt.reattach {
				r2 := dialRaw(t, addr, tt.version)
				if ca := r2.connect(&packets.Connect{ClientID: "dying", Properties: tt.connProp}); !ca.SessionPresent {
					t.Fatal("session not resumed")
				}
			}
			// The marker is routed after the will would have been.
			marker := dialRaw(t, addr, packets.V5)
			marker.connect(&packets.Connect{ClientID: "marker", CleanStart: true})
			marker.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "will/marker", Payload: []byte("m")}))
			p := watcher.expectPublish()
			if tt.wantWill {
				if p.Topic != "will/dying" || string(p.Payload) != "gone" || p.QoS != 1 {
					t.Fatalf("got %q %q qos %d, want the will", p.Topic, p.Payload, p.QoS)
				}
				watcher.puback(p.PacketID)
				p = watcher.expectPublish()
			}
			if p.Topic != "will/marker" {
				t.Fatalf("unexpected %q", p.Topic)
			}
		})
	}
}

// TestWillDelayFires checks that a delayed will is published once the
// delay passes while the session still exists.
func TestWillDelayFires(t *testing.T) {
	_, addr := startServer(t, anon())
	watcher := dialRaw(t, addr, packets.V5)
	watcher.connect(&packets.Connect{ClientID: "watcher", CleanStart: true})
	watcher.subscribe(1, packets.Subscription{Filter: "will/#"})
	r := dialRaw(t, addr, packets.V5)
	r.connect(&packets.Connect{ClientID: "delayed", CleanStart: true, Properties: packets.Properties{SessionExpiry: u32(3600)},
		WillFlag: true, WillTopic: "will/delayed", WillPayload: []byte("late"), WillProperties: packets.Properties{WillDelay: u32(1)}})
	_ = r.nc.Close()
	if p := watcher.expectPublish(); p.Topic != "will/delayed" {
		t.Fatalf("got %q", p.Topic)
	}
}
