package broker

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

type nopHook struct{}

func (nopHook) OnPublish(context.Context, []*Message) error { return nil }

// fuzzSeeds are complete client byte streams: a CONNECT and what follows.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for _, v := range []byte{packets.V311, packets.V5} {
		b := packets.AppendConnect(nil, &packets.Connect{ProtocolVersion: v, ClientID: "f", CleanStart: true,
			WillFlag: true, WillTopic: "w", WillPayload: []byte("x"), KeepAlive: 10})
		seeds = append(seeds, append([]byte(nil), b...))
		b = packets.AppendSubscribe(b, v, &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{
			{Filter: "a/#", QoS: 1}, {Filter: "+/b", QoS: 0, NoLocal: true, RetainHandling: 1}}})
		b = packets.AppendPublish(b, v, &packets.Publish{Topic: "a/b", QoS: 1, PacketID: 2, Retain: true, Payload: []byte("p"),
			Properties: packets.Properties{MessageExpiry: u32(5), User: []packets.UserProperty{{Key: "k", Value: "v"}}}})
		b = packets.AppendPublish(b, v, &packets.Publish{Topic: "a/b", Payload: []byte("q")})
		b = packets.AppendAck(b, v, &packets.Ack{Type: packets.PUBACK, PacketID: 1})
		b = packets.AppendAck(b, v, &packets.Ack{Type: packets.PUBREL, PacketID: 9})
		b = packets.AppendUnsubscribe(b, v, &packets.Unsubscribe{PacketID: 3, Filters: []string{"a/#"}})
		b = packets.AppendPingreq(b)
		seeds = append(seeds, append([]byte(nil), b...))
		b = packets.AppendDisconnect(b, v, &packets.Disconnect{ReasonCode: packets.DisconnectWithWill,
			Properties: packets.Properties{SessionExpiry: u32(0)}})
		seeds = append(seeds, b)
	}
	seeds = append(seeds, []byte{0x10, 0xff, 0xff, 0xff, 0x7f}, []byte("\x10\x0c\x00\x04MQTT\x05\x02\x00\x00\x00\x00\x00"))
	return seeds
}

// FuzzServerInput feeds arbitrary client byte streams to a connection and
// checks that the server never panics and releases the connection.
func FuzzServerInput(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	s, err := New(Options{AllowAnonymous: true, Hook: nopHook{}, MaxPacketSize: 4096, ConnectTimeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		drained := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, client)
			close(drained)
		}()
		if !s.serveConn(server) {
			t.Fatal("server closed")
		}
		_ = client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = client.Write(data)
		_ = client.Close()
		<-drained
		eventually(t, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.conns) == 0
		}, "connection not released")
		if p := s.Stats().Panics; p != 0 {
			t.Fatalf("%d panics", p)
		}
	})
}
