package packets

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// decodeWire parses the fixed header of wire and decodes the body.
func decodeWire(version byte, wire []byte) (any, FixedHeader, error) {
	h, ok, err := ParseFixedHeader(wire, 0)
	if err != nil {
		return nil, h, err
	}
	if !ok {
		return nil, h, errors.New("incomplete fixed header")
	}
	if len(wire)-h.Len < h.Remaining {
		return nil, h, errors.New("incomplete body")
	}
	p, err := Decode(version, h, wire[h.Len:h.Len+h.Remaining])
	return p, h, err
}

func TestFixtures(t *testing.T) {
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			wire := hx(t, f.wire...)
			got, h, err := decodeWire(f.version, wire)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if h.Len+h.Remaining != len(wire) {
				t.Fatalf("header %+v does not cover %d bytes", h, len(wire))
			}
			if !reflect.DeepEqual(got, f.want) {
				t.Fatalf("decode:\n got %#v\nwant %#v", got, f.want)
			}
			enc := Append(nil, f.version, f.want)
			if !f.nonCanonical && !bytes.Equal(enc, wire) {
				t.Fatalf("encode:\n got % x\nwant % x", enc, wire)
			}
			if p, ok := f.want.(*Publish); ok {
				if n := PublishSize(f.version, p); n != len(enc) {
					t.Fatalf("PublishSize = %d, encoded %d", n, len(enc))
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		version byte
		wire    []string
		want    error
		msg     string // substring of the error text
	}{
		// fixed header
		{"reserved type 0", V5, []string{"00 00"}, ErrMalformed, "reserved packet type"},
		{"PUBLISH QoS 3", V311, []string{"36 03 00 01 't'"}, ErrMalformed, "QoS 3"},
		{"SUBSCRIBE flags 0", V311, []string{"80 06 00 01 00 01 'a' 00"}, ErrMalformed, "flags"},
		{"UNSUBSCRIBE flags 0", V311, []string{"a0 05 00 01 00 01 'a'"}, ErrMalformed, "flags"},
		{"PUBREL flags 0", V311, []string{"60 02 00 01"}, ErrMalformed, "flags"},
		{"PUBACK flags 2", V311, []string{"42 02 00 01"}, ErrMalformed, "flags"},
		{"PINGREQ flags", V311, []string{"c1 00"}, ErrMalformed, "flags"},
		{"varint 5 bytes", V311, []string{"30 ff ff ff ff 01"}, ErrMalformed, "longer than 4"},
		{"varint overlong", V311, []string{"30 80 00"}, ErrMalformed, "minimally"},
		// CONNECT
		{"CONNECT MQIsdp", V311, []string{"10 0f 00 06 'MQIsdp' 03 02 00 3c 00 01 'a'"}, ErrUnsupportedVersion, "MQIsdp"},
		{"CONNECT level 3", V311, []string{"10 0d 00 04 'MQTT' 03 02 00 3c 00 01 'a'"}, ErrUnsupportedVersion, "level 3"},
		{"CONNECT level 6", V311, []string{"10 0d 00 04 'MQTT' 06 02 00 3c 00 01 'a'"}, ErrUnsupportedVersion, "level 6"},
		{"CONNECT bad name", V311, []string{"10 0d 00 04 'MQTX' 04 02 00 3c 00 01 'a'"}, ErrProtocol, "protocol name"},
		{"CONNECT reserved flag", V311, []string{"10 0d 00 04 'MQTT' 04 03 00 3c 00 01 'a'"}, ErrMalformed, "reserved connect flag"},
		{"CONNECT will QoS without will", V311, []string{"10 0d 00 04 'MQTT' 04 0a 00 3c 00 01 'a'"}, ErrMalformed, "without will flag"},
		{"CONNECT will retain without will", V311, []string{"10 0d 00 04 'MQTT' 04 22 00 3c 00 01 'a'"}, ErrMalformed, "without will flag"},
		{"CONNECT will QoS 3", V311, []string{"10 0d 00 04 'MQTT' 04 1e 00 3c 00 01 'a'"}, ErrMalformed, "will QoS 3"},
		{"CONNECT 3.1.1 password without user", V311, []string{"10 10 00 04 'MQTT' 04 40 00 3c 00 01 'a' 00 01 'p'"}, ErrMalformed, "password flag"},
		{"CONNECT truncated client id", V311, []string{"10 0d 00 04 'MQTT' 04 02 00 3c 00 05 'a'"}, ErrMalformed, "client identifier"},
		{"CONNECT client id NUL", V311, []string{"10 0d 00 04 'MQTT' 04 02 00 3c 00 01 00"}, ErrMalformed, "UTF-8"},
		{"CONNECT client id bad UTF-8", V311, []string{"10 0d 00 04 'MQTT' 04 02 00 3c 00 01 ff"}, ErrMalformed, "UTF-8"},
		{"CONNECT client id surrogate", V311, []string{"10 0f 00 04 'MQTT' 04 02 00 3c 00 03 ed a0 80"}, ErrMalformed, "UTF-8"},
		{"CONNECT trailing bytes", V311, []string{"10 0e 00 04 'MQTT' 04 02 00 3c 00 01 'a' 00"}, ErrMalformed, "trailing"},
		{"CONNECT will topic wildcard", V311, []string{"10 12 00 04 'MQTT' 04 06 00 3c 00 01 'a' 00 01 '#' 00 00"}, ErrMalformed, "will topic"},
		{"CONNECT 5.0 property not allowed", V5, []string{"10 10 00 04 'MQTT' 05 02 00 3c 02 24 01 00 01 'a'"}, ErrProtocol, "not allowed"},
		{"CONNECT 5.0 duplicate property", V5, []string{"10 18 00 04 'MQTT' 05 02 00 3c 0a 11 00 00 00 01 11 00 00 00 02 00 01 'a'"}, ErrProtocol, "duplicate"},
		{"CONNECT 5.0 unknown property", V5, []string{"10 10 00 04 'MQTT' 05 02 00 3c 02 7f 01 00 01 'a'"}, ErrMalformed, "unknown property"},
		{"CONNECT 5.0 property length too long", V5, []string{"10 0e 00 04 'MQTT' 05 02 00 3c 09 00 01 'a'"}, ErrMalformed, "property length"},
		{"CONNECT 5.0 receive maximum 0", V5, []string{"10 11 00 04 'MQTT' 05 02 00 3c 03 21 00 00 00 01 'a'"}, ErrProtocol, "receive maximum 0"},
		{"CONNECT 5.0 request problem info 2", V5, []string{"10 10 00 04 'MQTT' 05 02 00 3c 02 17 02 00 01 'a'"}, ErrProtocol, "not 0 or 1"},
		{"CONNECT 5.0 will delay on connect", V5, []string{"10 13 00 04 'MQTT' 05 02 00 3c 05 18 00 00 00 01 00 01 'a'"}, ErrProtocol, "not allowed"},
		{"CONNECT 5.0 session expiry in will", V5, []string{"10 19 00 04 'MQTT' 05 06 00 3c 00 00 01 'a' 05 11 00 00 00 01 00 01 't' 00 00"}, ErrProtocol, "will properties"},
		{"CONNECT 5.0 auth data without method", V5, []string{"10 11 00 04 'MQTT' 05 02 00 3c 03 16 00 00 00 01 'a'"}, ErrProtocol, "authentication"},
		// CONNACK
		{"CONNACK reserved flags", V311, []string{"20 02 02 00"}, ErrMalformed, "reserved"},
		{"CONNACK 3.1.1 return code 6", V311, []string{"20 02 00 06"}, ErrMalformed, "return code"},
		{"CONNACK 3.1.1 long", V311, []string{"20 03 00 00 00"}, ErrMalformed, "trailing"},
		{"CONNACK 5.0 bad reason", V5, []string{"20 03 00 01 00"}, ErrProtocol, "reason code"},
		// PUBLISH
		{"PUBLISH topic wildcard +", V311, []string{"30 05 00 03 'a/+'"}, ErrMalformed, "topic name contains wildcard"},
		{"PUBLISH topic wildcard #", V311, []string{"30 03 00 01 '#'"}, ErrMalformed, "wildcard"},
		{"PUBLISH topic NUL", V311, []string{"30 03 00 01 00"}, ErrMalformed, "UTF-8"},
		{"PUBLISH topic bad UTF-8", V311, []string{"30 04 00 02 c3 28"}, ErrMalformed, "UTF-8"},
		{"PUBLISH topic surrogate", V311, []string{"30 05 00 03 ed bf bf"}, ErrMalformed, "UTF-8"},
		{"PUBLISH truncated topic", V311, []string{"30 03 00 05 'a'"}, ErrMalformed, "topic"},
		{"PUBLISH missing packet id", V311, []string{"32 03 00 01 't'"}, ErrMalformed, "packet identifier"},
		{"PUBLISH packet id 0", V311, []string{"32 05 00 01 't' 00 00"}, ErrProtocol, "packet identifier 0"},
		{"PUBLISH 3.1.1 empty topic", V311, []string{"30 03 00 00 'x'"}, ErrMalformed, "empty topic"},
		{"PUBLISH 5.0 empty topic without alias", V5, []string{"30 04 00 00 00 'x'"}, ErrProtocol, "topic alias"},
		{"PUBLISH 5.0 DUP QoS 0", V5, []string{"38 04 00 01 't' 00"}, ErrMalformed, "DUP"},
		{"PUBLISH 5.0 missing property length", V5, []string{"30 03 00 01 't'"}, ErrMalformed, "property length"},
		{"PUBLISH 5.0 session expiry not allowed", V5, []string{"30 09 00 01 't' 05 11 00 00 00 01"}, ErrProtocol, "not allowed"},
		{"PUBLISH 5.0 duplicate topic alias", V5, []string{"30 0a 00 01 't' 06 23 00 01 23 00 02"}, ErrProtocol, "duplicate"},
		{"PUBLISH 5.0 topic alias 0", V5, []string{"30 07 00 01 't' 03 23 00 00"}, ErrProtocol, "topic alias 0"},
		{"PUBLISH 5.0 subscription id 0", V5, []string{"30 06 00 01 't' 02 0b 00"}, ErrProtocol, "subscription identifier 0"},
		{"PUBLISH 5.0 payload format 2", V5, []string{"30 06 00 01 't' 02 01 02"}, ErrProtocol, "not 0 or 1"},
		{"PUBLISH 5.0 truncated property", V5, []string{"30 06 00 01 't' 02 02 00"}, ErrMalformed, "truncated"},
		{"PUBLISH 5.0 content type bad UTF-8", V5, []string{"30 08 00 01 't' 04 03 00 01 ff"}, ErrMalformed, "UTF-8"},
		{"PUBLISH 5.0 response topic wildcard", V5, []string{"30 08 00 01 't' 04 08 00 01 '+'"}, ErrProtocol, "response topic"},
		{"PUBLISH 5.0 user property truncated", V5, []string{"30 09 00 01 't' 05 26 00 01 'k' 00"}, ErrMalformed, "user property"},
		{"PUBLISH 5.0 property id varint", V5, []string{"30 07 00 01 't' 03 81 01 00"}, ErrMalformed, "unknown property"},
		// acks
		{"PUBACK 3.1.1 long", V311, []string{"40 03 00 01 00"}, ErrMalformed, "trailing"},
		{"PUBACK short", V311, []string{"40 01 00"}, ErrMalformed, "packet identifier"},
		{"PUBACK packet id 0", V311, []string{"40 02 00 00"}, ErrProtocol, "packet identifier 0"},
		{"PUBACK 5.0 bad reason", V5, []string{"40 03 00 01 92"}, ErrProtocol, "reason code"},
		{"PUBREL 5.0 bad reason", V5, []string{"62 03 00 01 10"}, ErrProtocol, "reason code"},
		{"PUBACK 5.0 topic alias not allowed", V5, []string{"40 07 00 01 00 03 23 00 01"}, ErrProtocol, "not allowed"},
		// SUBSCRIBE
		{"SUBSCRIBE no filters", V311, []string{"82 02 00 01"}, ErrProtocol, "no topic filters"},
		{"SUBSCRIBE 3.1.1 reserved option bits", V311, []string{"82 06 00 01 00 01 'a' 04"}, ErrMalformed, "reserved"},
		{"SUBSCRIBE QoS 3", V311, []string{"82 06 00 01 00 01 'a' 03"}, ErrMalformed, "QoS 3"},
		{"SUBSCRIBE bad filter", V311, []string{"82 08 00 01 00 03 'a#b' 00"}, ErrMalformed, "invalid topic filter"},
		{"SUBSCRIBE missing options", V311, []string{"82 05 00 01 00 01 'a'"}, ErrMalformed, "subscription options"},
		{"SUBSCRIBE 5.0 retain handling 3", V5, []string{"82 07 00 01 00 00 01 'a' 30"}, ErrProtocol, "retain handling"},
		{"SUBSCRIBE 5.0 reserved option bits", V5, []string{"82 07 00 01 00 00 01 'a' 40"}, ErrMalformed, "reserved"},
		{"SUBSCRIBE 5.0 two subscription ids", V5, []string{"82 0b 00 01 04 0b 01 0b 02 00 01 'a' 00"}, ErrProtocol, "duplicate"},
		{"SUBSCRIBE 5.0 shared empty group", V5, []string{"82 0f 00 01 00 00 09 '$share//a' 00"}, ErrMalformed, "invalid topic filter"},
		// SUBACK, UNSUBSCRIBE, UNSUBACK
		{"SUBACK 3.1.1 bad code", V311, []string{"90 03 00 01 03"}, ErrMalformed, "return code"},
		{"SUBACK 5.0 bad code", V5, []string{"90 04 00 01 00 03"}, ErrProtocol, "reason code"},
		{"SUBACK no codes", V311, []string{"90 02 00 01"}, ErrProtocol, "no reason codes"},
		{"UNSUBSCRIBE no filters", V5, []string{"a2 03 00 01 00"}, ErrProtocol, "no topic filters"},
		{"UNSUBSCRIBE bad filter", V311, []string{"a2 06 00 01 00 02 '#a'"}, ErrMalformed, "invalid topic filter"},
		{"UNSUBACK 3.1.1 long", V311, []string{"b0 03 00 01 00"}, ErrMalformed, "trailing"},
		{"UNSUBACK 5.0 no codes", V5, []string{"b0 03 00 01 00"}, ErrProtocol, "no reason codes"},
		// PING, DISCONNECT, AUTH
		{"PINGREQ with body", V311, []string{"c0 01 00"}, ErrMalformed, "remaining length"},
		{"DISCONNECT 3.1.1 with body", V311, []string{"e0 01 00"}, ErrMalformed, "trailing"},
		{"DISCONNECT 5.0 bad reason", V5, []string{"e0 01 01"}, ErrProtocol, "reason code"},
		{"DISCONNECT 5.0 will delay not allowed", V5, []string{"e0 07 00 05 18 00 00 00 01"}, ErrProtocol, "not allowed"},
		{"AUTH in 3.1.1", V311, []string{"f0 00"}, ErrMalformed, "reserved"},
		{"AUTH bad reason", V5, []string{"f0 01 01"}, ErrProtocol, "reason code"},
		{"AUTH session expiry not allowed", V5, []string{"f0 07 18 05 11 00 00 00 01"}, ErrProtocol, "not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeWire(tt.version, hx(t, tt.wire...))
			if err == nil {
				t.Fatal("decode succeeded, want error")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %q does not wrap %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not mention %q", err, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "packets: ") {
				t.Fatalf("error %q lacks package prefix", err)
			}
		})
	}
}

func TestVersionError(t *testing.T) {
	_, _, err := decodeWire(V311, hx(t, "10 0f 00 06 'MQIsdp' 03 02 00 3c 00 01 'a'"))
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Name != "MQIsdp" || ve.Level != 3 {
		t.Fatalf("got %v, want *VersionError{MQIsdp 3}", err)
	}
}

// TestTruncated checks that every proper prefix of every fixture body is
// rejected with ErrMalformed (or, for bodies where a shorter form is
// valid, decodes without panicking).
func TestTruncated(t *testing.T) {
	for _, f := range fixtures() {
		wire := hx(t, f.wire...)
		h, ok, err := ParseFixedHeader(wire, 0)
		if err != nil || !ok {
			t.Fatalf("%s: header: %v %v", f.name, ok, err)
		}
		body := wire[h.Len:]
		for n := 0; n < len(body); n++ {
			hh := h
			hh.Remaining = n
			_, err := Decode(f.version, hh, body[:n])
			if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrProtocol) {
				t.Errorf("%s: prefix %d: unexpected error class %v", f.name, n, err)
			}
		}
		// A body shorter than the remaining length is always an error.
		if len(body) > 0 {
			if _, err := Decode(f.version, h, body[:len(body)-1]); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: short body: got %v, want ErrMalformed", f.name, err)
			}
		}
	}
}

func TestParseFixedHeader(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		maxSize int
		want    FixedHeader
		ok      bool
		err     error
	}{
		{"empty", nil, 0, FixedHeader{}, false, nil},
		{"type only", []string{"30"}, 0, FixedHeader{}, false, nil},
		{"zero length", []string{"c0 00"}, 0, FixedHeader{Type: PINGREQ, Remaining: 0, Len: 2}, true, nil},
		{"one byte max", []string{"30 7f"}, 0, FixedHeader{Type: PUBLISH, Remaining: 127, Len: 2}, true, nil},
		{"two bytes min", []string{"30 80 01"}, 0, FixedHeader{Type: PUBLISH, Remaining: 128, Len: 3}, true, nil},
		{"two bytes max", []string{"30 ff 7f"}, 0, FixedHeader{Type: PUBLISH, Remaining: 16383, Len: 3}, true, nil},
		{"three bytes min", []string{"30 80 80 01"}, 0, FixedHeader{Type: PUBLISH, Remaining: 16384, Len: 4}, true, nil},
		{"four bytes max", []string{"30 ff ff ff 7f"}, 0, FixedHeader{Type: PUBLISH, Remaining: MaxRemainingLength, Len: 5}, true, nil},
		{"incomplete varint", []string{"30 ff ff"}, 0, FixedHeader{}, false, nil},
		{"five bytes", []string{"30 ff ff ff ff 7f"}, 0, FixedHeader{}, false, ErrMalformed},
		{"four continuation bytes", []string{"30 80 80 80 80"}, 0, FixedHeader{}, false, ErrMalformed},
		{"overlong", []string{"30 80 80 00"}, 0, FixedHeader{}, false, ErrMalformed},
		{"flags kept", []string{"3d 02"}, 0, FixedHeader{Type: PUBLISH, Flags: 0x0d, Remaining: 2, Len: 2}, true, nil},
		{"at limit", []string{"30 08"}, 10, FixedHeader{Type: PUBLISH, Remaining: 8, Len: 2}, true, nil},
		{"over limit", []string{"30 09"}, 10, FixedHeader{}, false, ErrPacketTooLarge},
		{"bad flags", []string{"82"}, 0, FixedHeader{}, false, nil},
		{"bad flags SUBSCRIBE", []string{"81"}, 0, FixedHeader{}, false, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok, err := ParseFixedHeader(hx(t, tt.in...), tt.maxSize)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || ok != tt.ok || h != tt.want {
				t.Fatalf("got %+v %v %v, want %+v %v", h, ok, err, tt.want, tt.ok)
			}
		})
	}
}

func TestVarintRoundTrip(t *testing.T) {
	for _, v := range []int{0, 1, 127, 128, 16383, 16384, 2097151, 2097152, MaxVarint} {
		b := appendVarint(nil, v)
		if len(b) != varintLen(v) {
			t.Fatalf("%d: len %d, varintLen %d", v, len(b), varintLen(v))
		}
		got, n, err := decodeVarint(b)
		if err != nil || got != v || n != len(b) {
			t.Fatalf("%d: got %d %d %v", v, got, n, err)
		}
	}
}

func TestTopicValidation(t *testing.T) {
	tests := []struct {
		s            string
		name, filter bool
	}{
		{"a", true, true},
		{"a/b/c", true, true},
		{"/", true, true},
		{"a//b", true, true},
		{"/a", true, true},
		{"a/", true, true},
		{"$SYS/x", true, true},
		{"caf\u00e9/\u4e16", true, true},
		{"", false, false},
		{"#", false, true},
		{"+", false, true},
		{"a/#", false, true},
		{"a/+/b", false, true},
		{"+/+", false, true},
		{"/+", false, true},
		{"+/", false, true},
		{"a/#/b", false, false},
		{"a#", false, false},
		{"a/b#", false, false},
		{"a+", false, false},
		{"a/+b", false, false},
		{"##", false, false},
		{"a\x00b", false, false},
		{"\xff", false, false},
		{"\xed\xa0\x80", false, false}, // surrogate U+D800
		{"$share/g/a/b", true, true},
		{"$share/g/#", false, true},
		{"$share/g/+/x", false, true},
		{"$share/g/", true, false},
		{"$share/g", true, false},
		{"$share//a", true, false},
		{"$share/g+/a", false, false},
		{"$share/g#/a", false, false},
		{"$share/g/a#", false, false},
		{"$shared/g/a", true, true},
		{strings.Repeat("a", 65535), true, true},
		{strings.Repeat("a", 65536), false, false},
	}
	for _, tt := range tests {
		if got := ValidTopicName(tt.s); got != tt.name {
			t.Errorf("ValidTopicName(%.20q) = %v, want %v", tt.s, got, tt.name)
		}
		if got := ValidTopicFilter(tt.s); got != tt.filter {
			t.Errorf("ValidTopicFilter(%.20q) = %v, want %v", tt.s, got, tt.filter)
		}
	}
}

func TestSplitShared(t *testing.T) {
	tests := []struct {
		in            string
		group, filter string
		ok            bool
	}{
		{"$share/g/a/b", "g", "a/b", true},
		{"$share/g/#", "g", "#", true},
		{"$share/g", "", "", false},
		{"a/b", "", "", false},
	}
	for _, tt := range tests {
		g, f, ok := SplitShared(tt.in)
		if g != tt.group || f != tt.filter || ok != tt.ok {
			t.Errorf("SplitShared(%q) = %q %q %v", tt.in, g, f, ok)
		}
	}
}

func TestConnackCodeV3(t *testing.T) {
	tests := []struct{ in, want byte }{
		{Success, 0},
		{UnsupportedProtocolVersion, 1},
		{ClientIdentifierNotValid, 2},
		{ServerUnavailable, 3},
		{ServerBusy, 3},
		{BadUsernameOrPassword, 4},
		{0x8C, 4},
		{NotAuthorized, 5},
		{Banned, 5},
		{UnspecifiedError, 3},
		{MalformedPacket, 3},
		{QuotaExceeded, 3},
	}
	for _, tt := range tests {
		if got := ConnackCodeV3(tt.in); got != tt.want {
			t.Errorf("ConnackCodeV3(0x%02X) = %d, want %d", tt.in, got, tt.want)
		}
		enc := AppendConnack(nil, V311, &Connack{ReasonCode: tt.in})
		if !bytes.Equal(enc, []byte{0x20, 2, 0, tt.want}) {
			t.Errorf("AppendConnack 3.1.1 0x%02X = % x", tt.in, enc)
		}
	}
}

func TestSubackV3Mapping(t *testing.T) {
	enc := AppendSuback(nil, V311, &Suback{PacketID: 1, ReasonCodes: []byte{0, 1, 2, 0x80, 0x87, 0x8F, 0xA2}})
	want := hx(t, "90 09 00 01 00 01 02 80 80 80 80")
	if !bytes.Equal(enc, want) {
		t.Fatalf("got % x, want % x", enc, want)
	}
}

func TestPropertyAllowed(t *testing.T) {
	tests := []struct {
		id, typ byte
		will    bool
		want    bool
	}{
		{PropTopicAlias, PUBLISH, false, true},
		{PropTopicAlias, CONNECT, false, false},
		{PropWillDelay, CONNECT, true, true},
		{PropWillDelay, CONNECT, false, false},
		{PropSessionExpiry, DISCONNECT, false, true},
		{PropReasonString, PUBREL, false, true},
		{PropReasonString, PUBLISH, false, false},
		{PropUser, AUTH, false, true},
		{PropSubscriptionID, SUBSCRIBE, false, true},
		{PropSubscriptionID, UNSUBSCRIBE, false, false},
		{0x7f, PUBLISH, false, false},
	}
	for _, tt := range tests {
		if got := PropertyAllowed(tt.id, tt.typ, tt.will); got != tt.want {
			t.Errorf("PropertyAllowed(0x%02X, %s, %v) = %v", tt.id, TypeName(tt.typ), tt.will, got)
		}
	}
}
