package packets

import (
	"bytes"
	"reflect"
	"testing"
)

// allProps returns properties with every field set.
func allProps() Properties {
	return Properties{
		PayloadFormat: u8p(1), MessageExpiry: u32p(3600), ContentType: "application/json",
		ResponseTopic: "reply/to", CorrelationData: []byte{1, 2, 3}, SubscriptionIDs: []int{1, 200, MaxVarint},
		SessionExpiry: u32p(0xffffffff), AssignedClientID: "auto-1", ServerKeepAlive: u16p(120),
		AuthMethod: "SCRAM-SHA-1", AuthData: []byte("nonce"), RequestProblemInfo: u8p(0), WillDelay: u32p(5),
		RequestResponseInfo: u8p(1), ResponseInfo: "resp/", ServerReference: "other:1883", ReasonString: "why",
		ReceiveMaximum: u16p(100), TopicAliasMaximum: u16p(10), TopicAlias: u16p(3), MaximumQoS: u8p(1),
		RetainAvailable: u8p(0), User: []UserProperty{{"a", "1"}, {"a", "2"}, {"", ""}, {"k\u00e9y", "v"}},
		MaximumPacketSize: u32p(1 << 20), WildcardSubAvailable: u8p(1), SubIDAvailable: u8p(0), SharedSubAvailable: u8p(1),
	}
}

// onlyAllowed returns the subset of p that is allowed on kind, which is
// what a decoder sees after the encoder dropped the rest.
func onlyAllowed(p Properties, kind int) Properties {
	var q Properties
	ok := func(id byte) bool { return allowed(id, kind) }
	if ok(PropPayloadFormat) {
		q.PayloadFormat = p.PayloadFormat
	}
	if ok(PropMessageExpiry) {
		q.MessageExpiry = p.MessageExpiry
	}
	if ok(PropContentType) {
		q.ContentType = p.ContentType
	}
	if ok(PropResponseTopic) {
		q.ResponseTopic = p.ResponseTopic
	}
	if ok(PropCorrelationData) {
		q.CorrelationData = p.CorrelationData
	}
	if ok(PropSubscriptionID) {
		q.SubscriptionIDs = p.SubscriptionIDs
		if kind == int(SUBSCRIBE) {
			q.SubscriptionIDs = p.SubscriptionIDs[:1]
		}
	}
	if ok(PropSessionExpiry) {
		q.SessionExpiry = p.SessionExpiry
	}
	if ok(PropAssignedClientID) {
		q.AssignedClientID = p.AssignedClientID
	}
	if ok(PropServerKeepAlive) {
		q.ServerKeepAlive = p.ServerKeepAlive
	}
	if ok(PropAuthMethod) {
		q.AuthMethod = p.AuthMethod
	}
	if ok(PropAuthData) {
		q.AuthData = p.AuthData
	}
	if ok(PropRequestProblemInfo) {
		q.RequestProblemInfo = p.RequestProblemInfo
	}
	if ok(PropWillDelay) {
		q.WillDelay = p.WillDelay
	}
	if ok(PropRequestResponseInfo) {
		q.RequestResponseInfo = p.RequestResponseInfo
	}
	if ok(PropResponseInfo) {
		q.ResponseInfo = p.ResponseInfo
	}
	if ok(PropServerReference) {
		q.ServerReference = p.ServerReference
	}
	if ok(PropReasonString) {
		q.ReasonString = p.ReasonString
	}
	if ok(PropReceiveMaximum) {
		q.ReceiveMaximum = p.ReceiveMaximum
	}
	if ok(PropTopicAliasMaximum) {
		q.TopicAliasMaximum = p.TopicAliasMaximum
	}
	if ok(PropTopicAlias) {
		q.TopicAlias = p.TopicAlias
	}
	if ok(PropMaximumQoS) {
		q.MaximumQoS = p.MaximumQoS
	}
	if ok(PropRetainAvailable) {
		q.RetainAvailable = p.RetainAvailable
	}
	q.User = p.User
	if ok(PropMaximumPacketSize) {
		q.MaximumPacketSize = p.MaximumPacketSize
	}
	if ok(PropWildcardSubAvailable) {
		q.WildcardSubAvailable = p.WildcardSubAvailable
	}
	if ok(PropSubIDAvailable) {
		q.SubIDAvailable = p.SubIDAvailable
	}
	if ok(PropSharedSubAvailable) {
		q.SharedSubAvailable = p.SharedSubAvailable
	}
	return q
}

// roundTripCases returns, for version, packets to encode and the value
// the decoder must return for each.
func roundTripCases(version byte) []struct {
	name    string
	in, out any
} {
	v5 := version == V5
	props := func(kind int) Properties {
		if !v5 {
			return Properties{}
		}
		return onlyAllowed(allProps(), kind)
	}
	all := allProps()
	big := bytes.Repeat([]byte("x"), 70000) // four-byte remaining length

	conn := &Connect{ProtocolName: "MQTT", ProtocolVersion: version, CleanStart: true, KeepAlive: 65535,
		ClientID: "client-\u4e16", UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte{0, 1, 2},
		WillFlag: true, WillQoS: 2, WillRetain: true, WillTopic: "will/t", WillPayload: []byte("bye")}
	connOut := *conn
	if v5 {
		conn.Properties, conn.WillProperties = all, all
		connOut.Properties, connOut.WillProperties = props(int(CONNECT)), props(propWill)
	}
	suback := &Suback{PacketID: 9, Properties: all, ReasonCodes: []byte{0, 1, 2, 0x80}}
	unsuback := &Unsuback{PacketID: 10, Properties: all, ReasonCodes: []byte{0, 0x11}}
	unsubackOut := &Unsuback{PacketID: 10, Properties: props(int(UNSUBACK)), ReasonCodes: []byte{0, 0x11}}
	if !v5 {
		unsubackOut.ReasonCodes = nil
	}
	subs := []Subscription{{Filter: "a/+/c", QoS: 1}, {Filter: "#", QoS: 2}, {Filter: "$share/g/x/#"}}
	subsOut := subs
	if v5 {
		subs = []Subscription{{Filter: "a/+/c", QoS: 1, NoLocal: true}, {Filter: "#", QoS: 2, RetainAsPublished: true, RetainHandling: 2},
			{Filter: "$share/g/x/#", RetainHandling: 1}}
		subsOut = subs
	}
	cases := []struct {
		name    string
		in, out any
	}{
		{"connect", conn, &connOut},
		{"connect minimal", &Connect{ProtocolVersion: version}, &Connect{ProtocolName: "MQTT", ProtocolVersion: version}},
		{"connack", &Connack{SessionPresent: true, ReasonCode: NotAuthorized, Properties: all},
			&Connack{SessionPresent: true, ReasonCode: NotAuthorized, Properties: props(int(CONNACK))}},
		{"publish qos0", &Publish{Topic: "t/1", Payload: []byte("p"), Properties: all},
			&Publish{Topic: "t/1", Payload: []byte("p"), Properties: props(int(PUBLISH))}},
		{"publish qos2 dup retain big", &Publish{Dup: true, QoS: 2, Retain: true, Topic: "t/\u00e9", PacketID: 65535, Payload: big},
			&Publish{Dup: true, QoS: 2, Retain: true, Topic: "t/\u00e9", PacketID: 65535, Payload: big}},
		{"puback", &Ack{Type: PUBACK, PacketID: 1}, &Ack{Type: PUBACK, PacketID: 1}},
		{"pubrec", &Ack{Type: PUBREC, PacketID: 2}, &Ack{Type: PUBREC, PacketID: 2}},
		{"pubrel", &Ack{Type: PUBREL, PacketID: 3}, &Ack{Type: PUBREL, PacketID: 3}},
		{"pubcomp", &Ack{Type: PUBCOMP, PacketID: 4}, &Ack{Type: PUBCOMP, PacketID: 4}},
		{"subscribe", &Subscribe{PacketID: 5, Properties: all, Subscriptions: subs},
			&Subscribe{PacketID: 5, Properties: props(int(SUBSCRIBE)), Subscriptions: subsOut}},
		{"suback", suback, &Suback{PacketID: 9, Properties: props(int(SUBACK)), ReasonCodes: []byte{0, 1, 2, 0x80}}},
		{"unsubscribe", &Unsubscribe{PacketID: 6, Properties: all, Filters: []string{"a", "b/#", "$share/g/+"}},
			&Unsubscribe{PacketID: 6, Properties: props(int(UNSUBSCRIBE)), Filters: []string{"a", "b/#", "$share/g/+"}}},
		{"unsuback", unsuback, unsubackOut},
		{"pingreq", &Pingreq{}, &Pingreq{}},
		{"pingresp", &Pingresp{}, &Pingresp{}},
		{"disconnect", &Disconnect{}, &Disconnect{}},
	}
	if v5 {
		for _, typ := range []byte{PUBACK, PUBREC, PUBREL, PUBCOMP} {
			rc := UnspecifiedError
			if typ == PUBREL || typ == PUBCOMP {
				rc = PacketIdentifierNotFound
			}
			cases = append(cases,
				struct {
					name    string
					in, out any
				}{TypeName(typ) + " reason+props", &Ack{Type: typ, PacketID: 7, ReasonCode: rc, Properties: all},
					&Ack{Type: typ, PacketID: 7, ReasonCode: rc, Properties: props(int(typ))}},
				struct {
					name    string
					in, out any
				}{TypeName(typ) + " success+props", &Ack{Type: typ, PacketID: 7, Properties: all},
					&Ack{Type: typ, PacketID: 7, Properties: props(int(typ))}})
		}
		cases = append(cases, []struct {
			name    string
			in, out any
		}{
			{"publish alias only", &Publish{QoS: 1, PacketID: 3, Properties: Properties{TopicAlias: u16p(4)}},
				&Publish{QoS: 1, PacketID: 3, Payload: []byte{}, Properties: Properties{TopicAlias: u16p(4)}}},
			{"disconnect props", &Disconnect{ReasonCode: ServerShuttingDown, Properties: all},
				&Disconnect{ReasonCode: ServerShuttingDown, Properties: props(int(DISCONNECT))}},
			{"disconnect reason", &Disconnect{ReasonCode: KeepAliveTimeout}, &Disconnect{ReasonCode: KeepAliveTimeout}},
			{"auth", &Auth{ReasonCode: 0x19, Properties: all}, &Auth{ReasonCode: 0x19, Properties: props(int(AUTH))}},
			{"auth empty", &Auth{}, &Auth{}},
			{"connect password only", &Connect{ProtocolVersion: V5, Password: []byte("tok")},
				&Connect{ProtocolName: "MQTT", ProtocolVersion: V5, PasswordFlag: true, Password: []byte("tok")}},
		}...)
	}
	return cases
}

func TestRoundTrip(t *testing.T) {
	for _, version := range []byte{V311, V5} {
		for _, c := range roundTripCases(version) {
			t.Run(c.name+"/v"+string('0'+version), func(t *testing.T) {
				enc := Append([]byte("prefix"), version, c.in)
				if !bytes.HasPrefix(enc, []byte("prefix")) {
					t.Fatal("Append clobbered dst")
				}
				wire := enc[len("prefix"):]
				got, h, err := decodeWire(version, wire)
				if err != nil {
					t.Fatalf("decode % x: %v", wire[:min(len(wire), 64)], err)
				}
				if h.Len+h.Remaining != len(wire) {
					t.Fatalf("header %+v, wire %d bytes", h, len(wire))
				}
				if !reflect.DeepEqual(got, c.out) {
					t.Fatalf("round trip:\n got %+v\nwant %+v", got, c.out)
				}
				if p, ok := c.in.(*Publish); ok {
					if n := PublishSize(version, p); n != len(wire) {
						t.Fatalf("PublishSize %d, encoded %d", n, len(wire))
					}
				}
			})
		}
	}
}

func TestAckShortForm(t *testing.T) {
	for _, typ := range []byte{PUBACK, PUBREC, PUBREL, PUBCOMP} {
		enc := AppendAck(nil, V5, &Ack{Type: typ, PacketID: 0x1234})
		if len(enc) != 4 || enc[1] != 2 {
			t.Errorf("%s success without properties: % x, want remaining length 2", TypeName(typ), enc)
		}
	}
	if enc := AppendDisconnect(nil, V5, &Disconnect{}); !bytes.Equal(enc, []byte{0xe0, 0}) {
		t.Errorf("DISCONNECT normal: % x", enc)
	}
	if enc := AppendDisconnect(nil, V311, &Disconnect{ReasonCode: 0x8B}); !bytes.Equal(enc, []byte{0xe0, 0}) {
		t.Errorf("DISCONNECT 3.1.1 with reason: % x", enc)
	}
}

func TestDecodePublishAliases(t *testing.T) {
	wire := hx(t, "30 0a 00 03 'a/b' 'hello'")
	var p Publish
	if err := DecodePublish(V311, FixedHeader{Type: PUBLISH, Remaining: 10, Len: 2}, wire[2:], &p); err != nil {
		t.Fatal(err)
	}
	wire[4], wire[7] = 'X', 'Y'
	if p.Topic != "X/b" || string(p.Payload) != "Yello" {
		t.Fatalf("decoded publish does not alias body: %q %q", p.Topic, p.Payload)
	}
	p.Detach()
	wire[4], wire[7] = 'a', 'h'
	if p.Topic != "X/b" || string(p.Payload) != "Yello" {
		t.Fatalf("Detach did not copy: %q %q", p.Topic, p.Payload)
	}
}

func TestNoAllocs(t *testing.T) {
	v3 := hx(t, "32 0e 00 07 'sensors' 00 01 'hello'")
	v5 := hx(t, "32 0f 00 07 'sensors' 00 01 00 'hello'")
	h := FixedHeader{Type: PUBLISH, Flags: 2, Remaining: len(v3) - 2, Len: 2}
	h5 := FixedHeader{Type: PUBLISH, Flags: 2, Remaining: len(v5) - 2, Len: 2}
	var p Publish
	var ack Ack
	ackBody := []byte{0, 1, 0x10}
	buf := make([]byte, 0, 256)
	pub := &Publish{QoS: 1, Topic: "sensors/1/temp", PacketID: 7, Payload: []byte("21.5"),
		Properties: Properties{MessageExpiry: u32p(5), User: []UserProperty{{"k", "v"}}}}
	tests := []struct {
		name string
		fn   func()
	}{
		{"ParseFixedHeader", func() { ParseFixedHeader(v3, 1024) }},
		{"DecodePublish v3", func() { DecodePublish(V311, h, v3[2:], &p) }},
		{"DecodePublish v5", func() { DecodePublish(V5, h5, v5[2:], &p) }},
		{"DecodeAck v5", func() { DecodeAck(V5, FixedHeader{Type: PUBACK, Remaining: 3}, ackBody, &ack) }},
		{"AppendPublish v3", func() { buf = AppendPublish(buf[:0], V311, pub) }},
		{"AppendPublish v5", func() { buf = AppendPublish(buf[:0], V5, pub) }},
		{"AppendAck v5", func() { buf = AppendAck(buf[:0], V5, &Ack{Type: PUBACK, PacketID: 1, ReasonCode: 0x10}) }},
		{"PublishSize", func() { PublishSize(V5, pub) }},
		{"ValidTopicName", func() { ValidTopicName("a/b/c") }},
		{"ValidTopicFilter", func() { ValidTopicFilter("$share/g/a/+/#") }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %.1f allocs/op, want 0", tt.name, n)
		}
	}
}
