package packets

import (
	"testing"
)

func benchPublish(version byte) *Publish {
	return &Publish{QoS: 1, Topic: "devices/device-00042/telemetry", PacketID: 42,
		Payload: []byte(`{"device_id":"device-00042","timestamp":1700000000,"data":{"temp":21.5,"hum":40}}`)}
}

func BenchmarkDecodePublish(b *testing.B) {
	for _, v := range []struct {
		name    string
		version byte
	}{{"v3", V311}, {"v5", V5}} {
		b.Run(v.name, func(b *testing.B) {
			wire := AppendPublish(nil, v.version, benchPublish(v.version))
			h, _, _ := ParseFixedHeader(wire, 0)
			body := wire[h.Len:]
			var p Publish
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				if err := DecodePublish(v.version, h, body, &p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendPublish(b *testing.B) {
	for _, v := range []struct {
		name    string
		version byte
	}{{"v3", V311}, {"v5", V5}} {
		b.Run(v.name, func(b *testing.B) {
			p := benchPublish(v.version)
			buf := make([]byte, 0, 512)
			b.SetBytes(int64(PublishSize(v.version, p)))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendPublish(buf[:0], v.version, p)
			}
		})
	}
}

func BenchmarkParseFixedHeader(b *testing.B) {
	wire := []byte{0x32, 0xff, 0x7f}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := ParseFixedHeader(wire, 1<<20); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkDecodeConnect(b *testing.B) {
	wire := AppendConnect(nil, &Connect{ProtocolVersion: V5, CleanStart: true, KeepAlive: 60, ClientID: "device-00042",
		Username: "device-00042", Password: []byte("secret"), Properties: Properties{SessionExpiry: u32p(3600)}})
	h, _, _ := ParseFixedHeader(wire, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeConnect(h, wire[h.Len:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidTopicFilter(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !ValidTopicFilter("$share/group/devices/+/telemetry/#") {
			b.Fatal("invalid")
		}
	}
}
