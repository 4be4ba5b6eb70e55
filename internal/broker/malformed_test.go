package broker

import (
	"bytes"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

func connectBytes(v byte, id string) []byte {
	return packets.AppendConnect(nil, &packets.Connect{ProtocolVersion: v, ClientID: id, CleanStart: true})
}

// TestMalformedInput sends bad input and checks the protocol-correct
// reaction: the packets the server sends before closing, and the reason
// code of a v5 DISCONNECT or CONNACK.
func TestMalformedInput(t *testing.T) {
	v5 := func(b ...[]byte) []byte {
		return bytes.Join(append([][]byte{connectBytes(packets.V5, "m")}, b...), nil)
	}
	v3 := func(b ...[]byte) []byte {
		return bytes.Join(append([][]byte{connectBytes(packets.V311, "m")}, b...), nil)
	}
	big := packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "big", Payload: make([]byte, 2048)})
	tests := []struct {
		name       string
		version    byte
		input      []byte
		wantTypes  []byte // packets received before the close
		wantReason byte   // reason code of the last packet (v5)
	}{
		{"garbage", packets.V5, []byte("GET / HTTP/1.1\r\n\r\n"), nil, 0},
		{"reserved type before connect", packets.V5, []byte{0x00, 0x00}, nil, 0},
		{"publish before connect", packets.V5, packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "a"}), nil, 0},
		{"unsupported version", packets.V311, packets.AppendConnect(nil, &packets.Connect{ProtocolVersion: 3, ClientID: "x"}), []byte{packets.CONNACK}, 0},
		{"mqtt 3.1 name", packets.V311, []byte{0x10, 0x10, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 60, 0, 2, 'i', 'd'}, []byte{packets.CONNACK}, 0},
		{"v5 malformed connect", packets.V5, []byte{0x10, 0x0B, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x01, 0, 60, 0, 0, 0}, []byte{packets.CONNACK}, packets.MalformedPacket},
		{"v5 second connect", packets.V5, v5(connectBytes(packets.V5, "m")), []byte{packets.CONNACK, packets.DISCONNECT}, packets.ProtocolError},
		{"v5 bad flags", packets.V5, v5([]byte{0xC1, 0x00}), []byte{packets.CONNACK, packets.DISCONNECT}, packets.MalformedPacket},
		{"v5 subscribe wrong flags", packets.V5, v5([]byte{0x80, 0x06, 0, 1, 0, 1, 'a', 0}), []byte{packets.CONNACK, packets.DISCONNECT}, packets.MalformedPacket},
		{"v5 oversize", packets.V5, v5(big), []byte{packets.CONNACK, packets.DISCONNECT}, packets.PacketTooLarge},
		{"v3 oversize", packets.V311, v3(packets.AppendPublish(nil, packets.V311, &packets.Publish{Topic: "big", Payload: make([]byte, 2048)})), []byte{packets.CONNACK}, 0},
		{"v5 topic alias above maximum", packets.V5, v5(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "a", Properties: packets.Properties{TopicAlias: u16(DefaultTopicAliasMax + 1)}})), []byte{packets.CONNACK, packets.DISCONNECT}, packets.TopicAliasInvalid},
		{"v5 topic alias 0", packets.V5, v5(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "a", Properties: packets.Properties{TopicAlias: u16(0)}})), []byte{packets.CONNACK, packets.DISCONNECT}, packets.ProtocolError},
		{"v5 topic alias unknown", packets.V5, v5(packets.AppendPublish(nil, packets.V5, &packets.Publish{Properties: packets.Properties{TopicAlias: u16(3)}})), []byte{packets.CONNACK, packets.DISCONNECT}, packets.ProtocolError},
		{"v5 qos2 then pubrel with bad flags", packets.V5, v5(append(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "a", QoS: 2, PacketID: 1}), 0x60, 2, 0, 1)), []byte{packets.CONNACK, packets.PUBREC, packets.DISCONNECT}, packets.MalformedPacket},
		{"v5 wildcard topic", packets.V5, v5([]byte{0x30, 0x04, 0, 1, '#', 0}), []byte{packets.CONNACK, packets.DISCONNECT}, packets.MalformedPacket},
		{"v3 auth packet", packets.V311, v3([]byte{0xF0, 0x00}), []byte{packets.CONNACK}, 0},
		{"v5 bad remaining length", packets.V5, v5([]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}), []byte{packets.CONNACK, packets.DISCONNECT}, packets.MalformedPacket},
		{"v5 truncated publish body", packets.V5, v5([]byte{0x30, 0x02, 0, 9}), []byte{packets.CONNACK, packets.DISCONNECT}, packets.MalformedPacket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, addr := startServer(t, Options{AllowAnonymous: true, MaxPacketSize: 1024})
			r := dialRaw(t, addr, tt.version)
			r.send(tt.input)
			var got []byte
			var last []byte
			for {
				h, body, err := r.read()
				if err != nil {
					break
				}
				got = append(got, h.Type)
				last = body
			}
			if !bytes.Equal(got, tt.wantTypes) {
				t.Fatalf("packets before close %v, want %v", got, tt.wantTypes)
			}
			if tt.wantReason != 0 {
				var reason byte
				if len(last) >= 2 && got[len(got)-1] == packets.CONNACK {
					reason = last[1]
				} else if len(last) >= 1 {
					reason = last[0]
				}
				if reason != tt.wantReason {
					t.Fatalf("reason %#x, want %#x", reason, tt.wantReason)
				}
			}
			eventually(t, func() bool { return s.Stats().ProtocolErrors > 0 }, "protocol error counted")
		})
	}
}

func TestConnectTimeout(t *testing.T) {
	s, addr := startServer(t, Options{AllowAnonymous: true, ConnectTimeout: 200 * time.Millisecond})
	r := dialRaw(t, addr, packets.V5)
	r.send([]byte{0x10}) // a partial CONNECT, then silence
	if got := r.expectClosed(); len(got) != 0 {
		t.Fatalf("got packets %v", got)
	}
	eventually(t, func() bool { return s.Stats().ProtocolErrors == 1 }, "timeout counted")
}

// TestPipelinedPackets sends CONNECT, SUBSCRIBE and PUBLISH in one write.
func TestPipelinedPackets(t *testing.T) {
	_, addr := startServer(t, anon())
	r := dialRaw(t, addr, packets.V5)
	var b []byte
	b = append(b, connectBytes(packets.V5, "pipe")...)
	b = packets.AppendSubscribe(b, packets.V5, &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "p", QoS: 1}}})
	for i := range 100 {
		b = packets.AppendPublish(b, packets.V5, &packets.Publish{Topic: "p", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{byte(i)}})
	}
	r.send(b)
	r.expect(packets.CONNACK)
	r.expect(packets.SUBACK)
	acks, pubs := 0, 0
	for acks < 100 || pubs < 100 {
		h, body, err := r.read()
		if err != nil {
			t.Fatal(err)
		}
		switch h.Type {
		case packets.PUBACK:
			acks++
		case packets.PUBLISH:
			var p packets.Publish
			if err := packets.DecodePublish(packets.V5, h, body, &p); err != nil {
				t.Fatal(err)
			}
			if int(p.Payload[0]) != pubs {
				t.Fatalf("out of order: got %d, want %d", p.Payload[0], pubs)
			}
			pubs++
			r.puback(p.PacketID)
		default:
			t.Fatalf("unexpected %s", packets.TypeName(h.Type))
		}
	}
}

// TestLargePacketAcrossReads sends a packet bigger than the small read
// buffer in pieces.
func TestLargePacketAcrossReads(t *testing.T) {
	_, addr := startServer(t, anon())
	sub := dialRaw(t, addr, packets.V311)
	sub.connect(&packets.Connect{ClientID: "s", CleanStart: true})
	sub.subscribe(1, packets.Subscription{Filter: "big"})
	pub := dialRaw(t, addr, packets.V311)
	pub.connect(&packets.Connect{ClientID: "p", CleanStart: true})
	for _, size := range []int{100, 600, 70_000, 200_000, 10} {
		payload := bytes.Repeat([]byte{'x'}, size)
		b := packets.AppendPublish(nil, packets.V311, &packets.Publish{Topic: "big", Payload: payload})
		for len(b) > 0 {
			n := min(len(b), 333)
			pub.send(b[:n])
			b = b[n:]
		}
		if p := sub.expectPublish(); len(p.Payload) != size {
			t.Fatalf("got %d bytes, want %d", len(p.Payload), size)
		}
	}
}
