package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// TestConcurrentChurn runs publishers, subscribers that keep subscribing
// and unsubscribing, and clients that keep taking over each other's
// sessions, all at once, then checks the server still works and shuts
// down cleanly (run with -race).
func TestConcurrentChurn(t *testing.T) {
	s, addr := startServer(t, Options{AllowAnonymous: true, MaxQueued: 50, MaxInflight: 4})
	const rounds = 200
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(3)
		go func() { // publisher
			defer wg.Done()
			r := dialRaw(t, addr, packets.V5)
			r.connect(&packets.Connect{ClientID: fmt.Sprintf("pub%d", w), CleanStart: true})
			var b []byte
			for i := range rounds {
				b = packets.AppendPublish(b[:0], packets.V5, &packets.Publish{Topic: fmt.Sprintf("churn/%d/x", i%5),
					QoS: byte(i % 2), PacketID: uint16(i + 1), Retain: i%17 == 0, Payload: []byte("payload")})
				if _, err := r.nc.Write(b); err != nil {
					return
				}
			}
			r.send(packets.AppendPingreq(nil))
			for {
				h, _, err := r.read()
				if err != nil || h.Type == packets.PINGRESP {
					return
				}
			}
		}()
		go func() { // subscriber churn, never acking
			defer wg.Done()
			r := dialRaw(t, addr, packets.V311)
			r.connect(&packets.Connect{ClientID: fmt.Sprintf("sub%d", w), Properties: packets.Properties{}})
			var b []byte
			for i := range rounds {
				f := fmt.Sprintf("churn/%d/#", i%5)
				b = packets.AppendSubscribe(b[:0], packets.V311, &packets.Subscribe{PacketID: uint16(2*i + 1),
					Subscriptions: []packets.Subscription{{Filter: f, QoS: 1}, {Filter: "churn/+/x", QoS: 0}}})
				b = packets.AppendUnsubscribe(b, packets.V311, &packets.Unsubscribe{PacketID: uint16(2*i + 2), Filters: []string{f}})
				if _, err := r.nc.Write(b); err != nil {
					return
				}
			}
			_ = r.nc.Close()
		}()
		go func() { // takeovers of a shared persistent session
			defer wg.Done()
			for i := range rounds / 10 {
				r := dialRaw(t, addr, packets.V5)
				cp := packets.Connect{ProtocolVersion: packets.V5, ClientID: "contested", KeepAlive: 30,
					Properties: packets.Properties{SessionExpiry: u32(60)}, CleanStart: i%3 == 0,
					WillFlag: true, WillTopic: "churn/will", WillPayload: []byte("w")}
				b := packets.AppendConnect(nil, &cp)
				b = packets.AppendSubscribe(b, packets.V5, &packets.Subscribe{PacketID: 1,
					Subscriptions: []packets.Subscription{{Filter: "churn/#", QoS: 1}}})
				if _, err := r.nc.Write(b); err != nil {
					continue
				}
				_, _, _ = r.read()
				_ = r.nc.Close()
			}
		}()
	}
	wg.Wait()
	c := dialRaw(t, addr, packets.V5)
	c.connect(&packets.Connect{ClientID: "after", CleanStart: true})
	c.subscribe(1, packets.Subscription{Filter: "after", QoS: 1})
	if err := s.Publish(context.Background(), "after", []byte("ok"), 1, false); err != nil {
		t.Fatal(err)
	}
	if p := c.expectPublish(); string(p.Payload) != "ok" {
		t.Fatalf("got %q", p.Payload)
	}
}
