package packets

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// seedWires returns every fixture, round-trip and negative wire form with
// its version, as a fuzz seed corpus.
func seedWires(tb testing.TB) []struct {
	version byte
	wire    []byte
} {
	var out []struct {
		version byte
		wire    []byte
	}
	add := func(v byte, w []byte) {
		out = append(out, struct {
			version byte
			wire    []byte
		}{v, w})
	}
	for _, f := range fixtures() {
		add(f.version, hx(tb, f.wire...))
	}
	for _, v := range []byte{V311, V5} {
		for _, c := range roundTripCases(v) {
			if p, ok := c.in.(*Publish); ok && len(p.Payload) > 1000 {
				continue
			}
			add(v, Append(nil, v, c.in))
		}
	}
	return out
}

func FuzzParseFixedHeader(f *testing.F) {
	for _, s := range seedWires(f) {
		f.Add(s.wire, 0)
	}
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, 1000)
	f.Add([]byte{0x30, 0x80, 0x00}, 0)
	f.Fuzz(func(t *testing.T, buf []byte, maxSize int) {
		h, ok, err := ParseFixedHeader(buf, maxSize)
		if err != nil {
			if ok || !(errors.Is(err, ErrMalformed) || errors.Is(err, ErrPacketTooLarge)) {
				t.Fatalf("bad error %v (ok=%v)", err, ok)
			}
			return
		}
		if !ok {
			return
		}
		if h.Len < 2 || h.Len > 5 || h.Len > len(buf) || h.Remaining < 0 || h.Remaining > MaxRemainingLength {
			t.Fatalf("bad header %+v", h)
		}
		if maxSize > 0 && h.Len+h.Remaining > maxSize {
			t.Fatalf("header %+v exceeds max %d", h, maxSize)
		}
		// The remaining length is minimally encoded, so re-encoding it
		// gives the same bytes.
		enc := appendVarint([]byte{buf[0]}, h.Remaining)
		if !bytes.Equal(enc, buf[:h.Len]) {
			t.Fatalf("re-encoded header % x, input % x", enc, buf[:h.Len])
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range seedWires(f) {
		f.Add(s.version == V5, s.wire)
	}
	f.Fuzz(func(t *testing.T, v5 bool, wire []byte) {
		version := V311
		if v5 {
			version = V5
		}
		p1, err := decodeFuzz(version, wire)
		if err != nil || p1 == nil {
			return
		}
		enc1 := Append(nil, version, p1)
		p2, err := decodeFuzz(version, enc1)
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v\ninput % x\nre-encoded % x", p1, err, wire, enc1)
		}
		if !reflect.DeepEqual(p1, p2) {
			t.Fatalf("round trip changed packet:\n first %+v\nsecond %+v", p1, p2)
		}
		if enc2 := Append(nil, version, p2); !bytes.Equal(enc1, enc2) {
			t.Fatalf("encoding not stable:\n% x\n% x", enc1, enc2)
		}
		if p, ok := p1.(*Publish); ok && PublishSize(version, p) != len(enc1) {
			t.Fatalf("PublishSize %d, encoded %d", PublishSize(version, p), len(enc1))
		}
	})
}

// decodeFuzz decodes one packet from wire; it returns nil, nil when wire
// does not hold a complete packet, and checks the error classes.
func decodeFuzz(version byte, wire []byte) (any, error) {
	h, ok, err := ParseFixedHeader(wire, 1<<20)
	if err != nil || !ok || len(wire)-h.Len < h.Remaining {
		return nil, err
	}
	p, err := Decode(version, h, wire[h.Len:h.Len+h.Remaining])
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrUnsupportedVersion) {
			panic("decode error of unknown class: " + err.Error())
		}
		return nil, err
	}
	return p, nil
}
