package packets

import (
	"encoding/hex"
	"strings"
	"testing"
)

// hx decodes byte-annotated hex: each line holds hex bytes (spaces allowed)
// followed by an optional "// comment". A quoted 'text' stands for its
// ASCII bytes.
func hx(tb testing.TB, lines ...string) []byte {
	tb.Helper()
	var out []byte
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "//") {
			continue
		}
		if i := strings.Index(l, " //"); i >= 0 {
			l = l[:i]
		}
		for len(l) > 0 {
			l = strings.TrimLeft(l, " \t")
			if l == "" {
				break
			}
			if l[0] == '\'' {
				end := strings.IndexByte(l[1:], '\'')
				if end < 0 {
					tb.Fatalf("unterminated quote in %q", l)
				}
				out = append(out, l[1:1+end]...)
				l = l[2+end:]
				continue
			}
			end := strings.IndexAny(l, " \t'")
			if end < 0 {
				end = len(l)
			}
			b, err := hex.DecodeString(l[:end])
			if err != nil {
				tb.Fatalf("bad hex %q: %v", l[:end], err)
			}
			out = append(out, b...)
			l = l[end:]
		}
	}
	return out
}

func u8p(v byte) *byte      { return &v }
func u16p(v uint16) *uint16 { return &v }
func u32p(v uint32) *uint32 { return &v }

// fixture is one packet on the wire and its decoded form.
type fixture struct {
	name    string
	version byte
	wire    []string
	want    any
	// nonCanonical marks wire forms the encoder writes differently
	// (decode must still give want).
	nonCanonical bool
}

func fixtures() []fixture {
	return []fixture{
		{name: "CONNECT 3.1.1 minimal", version: V311, wire: []string{
			"10 0f",        // CONNECT, remaining length 15
			"00 04 'MQTT'", // protocol name
			"04",           // protocol level 4 (3.1.1)
			"02",           // connect flags: clean session
			"00 3c",        // keep alive 60 s
			"00 03 'abc'",  // client identifier
		}, want: &Connect{ProtocolName: "MQTT", ProtocolVersion: V311, CleanStart: true, KeepAlive: 60, ClientID: "abc"}},
		{name: "CONNECT 3.1.1 empty client id, user+password", version: V311, wire: []string{
			"10 14",        // CONNECT, remaining length 20
			"00 04 'MQTT'", // protocol name
			"04",           // level 4
			"c2",           // flags: user name, password, clean session
			"00 00",        // keep alive 0
			"00 00",        // empty client identifier
			"00 02 'us'",   // user name
			"00 02 'pw'",   // password
		}, want: &Connect{ProtocolName: "MQTT", ProtocolVersion: V311, CleanStart: true, UsernameFlag: true, Username: "us", PasswordFlag: true, Password: []byte("pw")}},
		{name: "CONNECT 5.0 with will, user, password, properties", version: V5, wire: []string{
			"10 2a",             // CONNECT, remaining length 42
			"00 04 'MQTT'",      // protocol name
			"05",                // level 5
			"ee",                // flags: user, password, will retain, will QoS 1, will, clean start
			"00 1e",             // keep alive 30 s
			"05 11 00 00 00 3c", // properties (5 bytes): session expiry 60
			"00 02 'c1'",        // client identifier
			"05 18 00 00 00 0a", // will properties (5 bytes): will delay 10
			"00 03 'w/t'",       // will topic
			"00 02 'by'",        // will payload
			"00 01 'u'",         // user name
			"00 02 'pw'",        // password
		}, want: &Connect{
			ProtocolName: "MQTT", ProtocolVersion: V5, CleanStart: true, KeepAlive: 30, ClientID: "c1",
			UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw"),
			WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: "w/t", WillPayload: []byte("by"),
			WillProperties: Properties{WillDelay: u32p(10)},
			Properties:     Properties{SessionExpiry: u32p(60)},
		}},
		{name: "CONNECT 5.0 password without user name", version: V5, wire: []string{
			"10 12",        // remaining length 18
			"00 04 'MQTT'", // protocol name
			"05",           // level 5
			"40",           // flags: password only (allowed in 5.0)
			"00 0a",        // keep alive 10
			"00",           // no properties
			"00 00",        // empty client identifier
			"00 03 'key'",  // password
		}, want: &Connect{ProtocolName: "MQTT", ProtocolVersion: V5, KeepAlive: 10, PasswordFlag: true, Password: []byte("key")}},
		{name: "CONNACK 3.1.1 session present", version: V311, wire: []string{
			"20 02", // CONNACK, remaining length 2
			"01",    // session present
			"00",    // return code 0: accepted
		}, want: &Connack{SessionPresent: true}},
		{name: "CONNACK 3.1.1 not authorized", version: V311, wire: []string{
			"20 02", // CONNACK
			"00",    // no session
			"05",    // return code 5: not authorized
		}, want: &Connack{ReasonCode: NotAuthorized}},
		{name: "CONNACK 5.0 no properties", version: V5, wire: []string{
			"20 03", // CONNACK, remaining length 3
			"00",    // flags
			"00",    // success
			"00",    // property length 0
		}, want: &Connack{}},
		{name: "CONNACK 5.0 with properties", version: V5, wire: []string{
			"20 0a",    // CONNACK, remaining length 10
			"00",       // flags
			"00",       // success
			"07",       // property length 7
			"21 00 0a", // receive maximum 10
			"24 01",    // maximum QoS 1
			"25 00",    // retain not available
		}, want: &Connack{Properties: Properties{ReceiveMaximum: u16p(10), MaximumQoS: u8p(1), RetainAvailable: u8p(0)}}},
		{name: "CONNACK 5.0 without property length", version: V5, nonCanonical: true, wire: []string{
			"20 02", // CONNACK, remaining length 2 (property length omitted)
			"00 87", // not authorized
		}, want: &Connack{ReasonCode: NotAuthorized}},
		{name: "PUBLISH 3.1.1 QoS 0", version: V311, wire: []string{
			"30 0a",       // PUBLISH, QoS 0, remaining length 10
			"00 03 'a/b'", // topic name
			"'hello'",     // payload
		}, want: &Publish{Topic: "a/b", Payload: []byte("hello")}},
		{name: "PUBLISH 3.1.1 QoS 1 DUP retain", version: V311, wire: []string{
			"3b 06",     // PUBLISH, DUP, QoS 1, retain, remaining length 6
			"00 01 't'", // topic name
			"00 07",     // packet identifier 7
			"'x'",       // payload
		}, want: &Publish{Dup: true, QoS: 1, Retain: true, Topic: "t", PacketID: 7, Payload: []byte("x")}},
		{name: "PUBLISH 3.1.1 empty payload", version: V311, wire: []string{
			"30 03",     // PUBLISH, remaining length 3
			"00 01 't'", // topic name, no payload
		}, want: &Publish{Topic: "t", Payload: []byte{}}},
		{name: "PUBLISH 5.0 QoS 0 no properties", version: V5, wire: []string{
			"30 07",     // PUBLISH, remaining length 7
			"00 01 't'", // topic
			"00",        // property length 0
			"'abc'",     // payload
		}, want: &Publish{Topic: "t", Payload: []byte("abc")}},
		{name: "PUBLISH 5.0 QoS 2 with properties", version: V5, wire: []string{
			"34 22",                  // PUBLISH, QoS 2, remaining length 34
			"00 01 't'",              // topic
			"00 0a",                  // packet identifier 10
			"1a",                     // property length 26
			"01 01",                  // payload format: UTF-8
			"02 00 00 00 1e",         // message expiry 30
			"03 00 04 'json'",        // content type
			"0b 05",                  // subscription identifier 5
			"23 00 02",               // topic alias 2
			"26 00 01 'k' 00 01 'v'", // user property k=v
			"'{}'",                   // payload
		}, want: &Publish{QoS: 2, Topic: "t", PacketID: 10, Payload: []byte("{}"), Properties: Properties{
			PayloadFormat: u8p(1), MessageExpiry: u32p(30), ContentType: "json", SubscriptionIDs: []int{5},
			TopicAlias: u16p(2), User: []UserProperty{{"k", "v"}},
		}}},
		{name: "PUBLISH 5.0 empty topic with alias", version: V5, wire: []string{
			"30 07",    // PUBLISH, remaining length 7
			"00 00",    // empty topic name
			"03",       // property length 3
			"23 00 01", // topic alias 1
			"'x'",      // payload
		}, want: &Publish{Payload: []byte("x"), Properties: Properties{TopicAlias: u16p(1)}}},
		{name: "PUBLISH 5.0 two subscription identifiers", version: V5, wire: []string{
			"30 0a",     // PUBLISH, remaining length 10
			"00 01 'a'", // topic
			"05",        // property length 5
			"0b 01",     // subscription identifier 1
			"0b 80 01",  // subscription identifier 128 (two-byte varint)
			"'p'",       // payload
		}, want: &Publish{Topic: "a", Payload: []byte("p"), Properties: Properties{SubscriptionIDs: []int{1, 128}}}},
		{name: "PUBACK 3.1.1", version: V311, wire: []string{
			"40 02", // PUBACK, remaining length 2
			"00 01", // packet identifier 1
		}, want: &Ack{Type: PUBACK, PacketID: 1}},
		{name: "PUBACK 5.0 short form", version: V5, wire: []string{
			"40 02", // PUBACK, remaining length 2: reason Success, no properties
			"00 01", // packet identifier 1
		}, want: &Ack{Type: PUBACK, PacketID: 1}},
		{name: "PUBACK 5.0 reason only", version: V5, wire: []string{
			"40 03", // PUBACK, remaining length 3
			"00 01", // packet identifier
			"10",    // no matching subscribers
		}, want: &Ack{Type: PUBACK, PacketID: 1, ReasonCode: NoMatchingSubscribers}},
		{name: "PUBACK 5.0 explicit empty properties", version: V5, nonCanonical: true, wire: []string{
			"40 04", // PUBACK, remaining length 4
			"00 01", // packet identifier
			"00",    // success
			"00",    // property length 0
		}, want: &Ack{Type: PUBACK, PacketID: 1}},
		{name: "PUBREC 5.0 with reason string", version: V5, wire: []string{
			"50 08",        // PUBREC, remaining length 8
			"00 02",        // packet identifier 2
			"80",           // unspecified error
			"04",           // property length 4
			"1f 00 01 'x'", // reason string
		}, want: &Ack{Type: PUBREC, PacketID: 2, ReasonCode: UnspecifiedError, Properties: Properties{ReasonString: "x"}}},
		{name: "PUBREL 3.1.1", version: V311, wire: []string{
			"62 02", // PUBREL (flags 0b0010), remaining length 2
			"00 03", // packet identifier 3
		}, want: &Ack{Type: PUBREL, PacketID: 3}},
		{name: "PUBCOMP 5.0 not found", version: V5, wire: []string{
			"70 03", // PUBCOMP, remaining length 3
			"00 04", // packet identifier 4
			"92",    // packet identifier not found
		}, want: &Ack{Type: PUBCOMP, PacketID: 4, ReasonCode: PacketIdentifierNotFound}},
		{name: "SUBSCRIBE 3.1.1 two filters", version: V311, wire: []string{
			"82 0c",          // SUBSCRIBE (flags 0b0010), remaining length 12
			"00 01",          // packet identifier 1
			"00 03 'a/b' 01", // filter a/b, QoS 1
			"00 01 '#' 00",   // filter #, QoS 0
		}, want: &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}, {Filter: "#"}}}},
		{name: "SUBSCRIBE 5.0 options and shared", version: V5, wire: []string{
			"82 1a",                 // SUBSCRIBE, remaining length 26
			"00 02",                 // packet identifier 2
			"02 0b 07",              // property length 2: subscription identifier 7
			"00 05 'x/+/y' 1e",      // filter, options: QoS 2, no local, retain as published, retain handling 1
			"00 0a '$share/g/a' 01", // shared subscription, QoS 1
		}, want: &Subscribe{PacketID: 2, Properties: Properties{SubscriptionIDs: []int{7}}, Subscriptions: []Subscription{
			{Filter: "x/+/y", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 1},
			{Filter: "$share/g/a", QoS: 1},
		}}},
		{name: "SUBACK 3.1.1", version: V311, wire: []string{
			"90 04", // SUBACK, remaining length 4
			"00 01", // packet identifier
			"00 80", // granted QoS 0, failure
		}, want: &Suback{PacketID: 1, ReasonCodes: []byte{0, 0x80}}},
		{name: "SUBACK 5.0", version: V5, wire: []string{
			"90 05", // SUBACK, remaining length 5
			"00 01", // packet identifier
			"00",    // property length 0
			"01 8f", // granted QoS 1, topic filter invalid
		}, want: &Suback{PacketID: 1, ReasonCodes: []byte{1, TopicFilterInvalid}}},
		{name: "UNSUBSCRIBE 3.1.1", version: V311, wire: []string{
			"a2 05",     // UNSUBSCRIBE (flags 0b0010), remaining length 5
			"00 01",     // packet identifier
			"00 01 'a'", // filter
		}, want: &Unsubscribe{PacketID: 1, Filters: []string{"a"}}},
		{name: "UNSUBSCRIBE 5.0", version: V5, wire: []string{
			"a2 0b",       // UNSUBSCRIBE, remaining length 11
			"00 09",       // packet identifier 9
			"00",          // property length 0
			"00 01 'a'",   // filter a
			"00 03 'b/#'", // filter b/#
		}, want: &Unsubscribe{PacketID: 9, Filters: []string{"a", "b/#"}}},
		{name: "UNSUBACK 3.1.1", version: V311, wire: []string{
			"b0 02", // UNSUBACK, remaining length 2
			"00 01", // packet identifier
		}, want: &Unsuback{PacketID: 1}},
		{name: "UNSUBACK 5.0", version: V5, wire: []string{
			"b0 05", // UNSUBACK, remaining length 5
			"00 01", // packet identifier
			"00",    // property length 0
			"00 11", // success, no subscription existed
		}, want: &Unsuback{PacketID: 1, ReasonCodes: []byte{0, NoSubscriptionExisted}}},
		{name: "PINGREQ", version: V311, wire: []string{"c0 00"}, want: &Pingreq{}},
		{name: "PINGRESP", version: V5, wire: []string{"d0 00"}, want: &Pingresp{}},
		{name: "DISCONNECT 3.1.1", version: V311, wire: []string{"e0 00"}, want: &Disconnect{}},
		{name: "DISCONNECT 5.0 short", version: V5, wire: []string{"e0 00"}, want: &Disconnect{}},
		{name: "DISCONNECT 5.0 with will", version: V5, wire: []string{
			"e0 01", // DISCONNECT, remaining length 1
			"04",    // disconnect with will message
		}, want: &Disconnect{ReasonCode: DisconnectWithWill}},
		{name: "DISCONNECT 5.0 session expiry", version: V5, wire: []string{
			"e0 07",          // DISCONNECT, remaining length 7
			"00",             // normal disconnection
			"05",             // property length 5
			"11 00 00 00 00", // session expiry 0
		}, want: &Disconnect{Properties: Properties{SessionExpiry: u32p(0)}}},
		{name: "AUTH 5.0 short", version: V5, wire: []string{"f0 00"}, want: &Auth{}},
		{name: "AUTH 5.0 continue", version: V5, wire: []string{
			"f0 0a",            // AUTH, remaining length 10
			"18",               // continue authentication
			"08",               // property length 8
			"15 00 05 'SCRAM'", // authentication method
		}, want: &Auth{ReasonCode: 0x18, Properties: Properties{AuthMethod: "SCRAM"}}},
	}
}
