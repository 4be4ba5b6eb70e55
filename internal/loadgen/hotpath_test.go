package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// BenchmarkPublisherEncode measures the publisher's per-message work:
// stamp, encode, buffered write.
func BenchmarkPublisherEncode(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run("qos"+string('0'+qos), func(b *testing.B) {
			bw := bufio.NewWriterSize(io.Discard, 64<<10)
			payload := make([]byte, 64)
			msg := packets.Publish{Topic: "bench/p2p/0", QoS: qos, Payload: payload}
			var buf []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for i := 0; b.Loop(); i++ {
				PutStamp(payload, time.Now())
				msg.PacketID = uint16(i%128 + 1)
				buf = packets.AppendPublish(buf[:0], packets.V311, &msg)
				_, _ = bw.Write(buf)
			}
		})
	}
}

// BenchmarkSubscriberDecode measures the subscriber's per-message work:
// frame, decode, stamp, record.
func BenchmarkSubscriberDecode(b *testing.B) {
	var stream []byte
	payload := make([]byte, 64)
	PutStamp(payload, time.Now())
	for range 1024 {
		stream = packets.AppendPublish(stream, packets.V311, &packets.Publish{Topic: "bench/p2p/0", Payload: payload})
	}
	rd := bytes.NewReader(stream)
	c := &rawConn{br: bufio.NewReaderSize(rd, 64<<10), version: packets.V311}
	var p packets.Publish
	h := NewHistogram()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		hd, body, err := c.readPacket()
		if err == io.EOF {
			rd.Reset(stream)
			c.br.Reset(rd)
			hd, body, err = c.readPacket()
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := packets.DecodePublish(c.version, hd, body, &p); err != nil {
			b.Fatal(err)
		}
		if sent, ok := Stamp(p.Payload); ok {
			h.Record(time.Now().UnixNano() - sent)
		}
	}
}

func TestReadPacketFraming(t *testing.T) {
	big := make([]byte, 100_000) // larger than the read buffer
	var stream []byte
	stream = packets.AppendPublish(stream, packets.V311, &packets.Publish{Topic: "a", Payload: []byte("x")})
	stream = packets.AppendPublish(stream, packets.V311, &packets.Publish{Topic: "b", Payload: big})
	stream = packets.AppendPingresp(stream)
	stream = packets.AppendPublish(stream, packets.V311, &packets.Publish{Topic: "c", Payload: nil})
	c := &rawConn{br: bufio.NewReaderSize(iotestOneByte{bytes.NewReader(stream)}, 4096), version: packets.V311}
	want := []struct {
		typ   byte
		topic string
		n     int
	}{{packets.PUBLISH, "a", 1}, {packets.PUBLISH, "b", len(big)}, {packets.PINGRESP, "", 0}, {packets.PUBLISH, "c", 0}}
	for i, w := range want {
		h, body, err := c.readPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if h.Type != w.typ {
			t.Fatalf("packet %d: type %d, want %d", i, h.Type, w.typ)
		}
		if h.Type == packets.PUBLISH {
			var p packets.Publish
			if err := packets.DecodePublish(c.version, h, body, &p); err != nil || p.Topic != w.topic || len(p.Payload) != w.n {
				t.Fatalf("packet %d: %q %d %v", i, p.Topic, len(p.Payload), err)
			}
		}
	}
	if _, _, err := c.readPacket(); err != io.EOF {
		t.Fatalf("at end: %v, want EOF", err)
	}
	// A truncated packet is an unexpected EOF, not a clean end.
	c = &rawConn{br: bufio.NewReader(bytes.NewReader(stream[:5])), version: packets.V311}
	if _, _, err := c.readPacket(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated: %v, want ErrUnexpectedEOF", err)
	}
	// Packets above the limit are refused before their body is read.
	c = &rawConn{br: bufio.NewReader(bytes.NewReader(stream)), version: packets.V311, maxPacket: 1000}
	if _, _, err := c.readPacket(); err != nil {
		t.Fatalf("small packet: %v", err)
	}
	if _, _, err := c.readPacket(); !errors.Is(err, packets.ErrPacketTooLarge) {
		t.Fatalf("large packet: %v, want ErrPacketTooLarge", err)
	}
	// A remaining length longer than four bytes is malformed.
	c = &rawConn{br: bufio.NewReader(bytes.NewReader([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})), version: packets.V311}
	if _, _, err := c.readPacket(); err == nil {
		t.Fatal("5-byte remaining length accepted")
	}
}

// iotestOneByte returns one byte per Read, to exercise partial headers.
type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// FuzzReadPacket feeds arbitrary broker output to the client framing and
// the decoders the benchmark uses: errors are fine, panics and hangs are not.
func FuzzReadPacket(f *testing.F) {
	f.Add(packets.AppendPublish(nil, packets.V311, &packets.Publish{Topic: "a/b", QoS: 1, PacketID: 7, Payload: []byte("12345678")}))
	f.Add(packets.AppendAck(nil, packets.V311, &packets.Ack{Type: packets.PUBACK, PacketID: 3}))
	f.Add(packets.AppendConnack(nil, packets.V5, &packets.Connack{}))
	f.Add(packets.AppendSuback(nil, packets.V311, &packets.Suback{PacketID: 1, ReasonCodes: []byte{0}}))
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0xd0, 0x00, 0xe0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []byte{packets.V311, packets.V5} {
			c := &rawConn{br: bufio.NewReaderSize(bytes.NewReader(data), 16), version: v, maxPacket: 1 << 16}
			for range 64 {
				h, body, err := c.readPacket()
				if err != nil {
					break
				}
				if len(body) != h.Remaining {
					t.Fatalf("body %d bytes, header says %d", len(body), h.Remaining)
				}
				switch h.Type {
				case packets.PUBLISH:
					var p packets.Publish
					if packets.DecodePublish(v, h, body, &p) == nil {
						Stamp(p.Payload)
					}
				case packets.PUBACK:
					var a packets.Ack
					_ = packets.DecodeAck(v, h, body, &a)
				case packets.CONNACK:
					_, _ = packets.DecodeConnack(v, h, body)
				case packets.SUBACK:
					_, _ = packets.DecodeSuback(v, h, body)
				}
			}
		}
	})
}
