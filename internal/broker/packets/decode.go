package packets

import (
	"encoding/binary"
	"unsafe"
)

// body returns the h.Remaining bytes of body that make up the packet, or an
// error if body is shorter. Bytes beyond h.Remaining are ignored.
func packetBody(h FixedHeader, want byte, body []byte) ([]byte, error) {
	if h.Type != want {
		return nil, errorf(typeName(want), ErrMalformed, "fixed header has packet type %d", h.Type)
	}
	if err := checkFlags(h.Type, h.Flags); err != nil {
		return nil, err
	}
	if h.Remaining < 0 || len(body) < h.Remaining {
		return nil, errorf(typeName(want), ErrMalformed, "body has %d bytes, remaining length is %d", len(body), h.Remaining)
	}
	return body[:h.Remaining], nil
}

// rd is a bounds-checked reader over a packet body.
type rd struct {
	b   []byte
	pkt string
}

func (r *rd) u8(field string) (byte, error) {
	if len(r.b) < 1 {
		return 0, errorf(r.pkt, ErrMalformed, "%s: %v", field, errTruncated)
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

func (r *rd) u16(field string) (uint16, error) {
	if len(r.b) < 2 {
		return 0, errorf(r.pkt, ErrMalformed, "%s: %v", field, errTruncated)
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v, nil
}

// bin reads a length prefixed byte string; the result aliases the body.
func (r *rd) bin(field string) ([]byte, error) {
	s, n, err := decodeBinary(r.b)
	if err != nil {
		return nil, errorf(r.pkt, ErrMalformed, "%s: %v", field, err)
	}
	r.b = r.b[n:]
	return s, nil
}

// str reads a UTF-8 string and copies it.
func (r *rd) str(field string) (string, error) {
	s, err := r.bin(field)
	if err != nil {
		return "", err
	}
	if !validUTF8(s) {
		return "", errorf(r.pkt, ErrMalformed, "%s: invalid UTF-8 string", field)
	}
	return string(s), nil
}

func (r *rd) props(kind int, p *Properties) error {
	n, err := decodeProps(r.b, kind, r.pkt, p)
	if err != nil {
		return err
	}
	r.b = r.b[n:]
	return nil
}

func (r *rd) end() error {
	if len(r.b) != 0 {
		return errorf(r.pkt, ErrMalformed, "%d unexpected trailing bytes", len(r.b))
	}
	return nil
}

func (r *rd) packetID() (uint16, error) {
	id, err := r.u16("packet identifier")
	if err != nil {
		return 0, err
	}
	if id == 0 {
		return 0, errorf(r.pkt, ErrProtocol, "packet identifier 0")
	}
	return id, nil
}

// Decode decodes the body of a packet of any type for the given protocol
// version and returns a pointer to the packet struct: *Connect, *Connack,
// *Publish, *Ack, *Subscribe, *Suback, *Unsubscribe, *Unsuback, *Pingreq,
// *Pingresp, *Disconnect or *Auth. A *Publish aliases body (see
// DecodePublish). CONNECT is decoded regardless of version.
func Decode(version byte, h FixedHeader, body []byte) (any, error) {
	switch h.Type {
	case CONNECT:
		return DecodeConnect(h, body)
	case CONNACK:
		return DecodeConnack(version, h, body)
	case PUBLISH:
		p := new(Publish)
		if err := DecodePublish(version, h, body, p); err != nil {
			return nil, err
		}
		return p, nil
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		a := new(Ack)
		if err := DecodeAck(version, h, body, a); err != nil {
			return nil, err
		}
		return a, nil
	case SUBSCRIBE:
		return DecodeSubscribe(version, h, body)
	case SUBACK:
		return DecodeSuback(version, h, body)
	case UNSUBSCRIBE:
		return DecodeUnsubscribe(version, h, body)
	case UNSUBACK:
		return DecodeUnsuback(version, h, body)
	case PINGREQ, PINGRESP:
		if _, err := packetBody(h, h.Type, body); err != nil {
			return nil, err
		}
		if h.Remaining != 0 {
			return nil, errorf(typeName(h.Type), ErrMalformed, "remaining length %d, want 0", h.Remaining)
		}
		if h.Type == PINGREQ {
			return &Pingreq{}, nil
		}
		return &Pingresp{}, nil
	case DISCONNECT:
		return DecodeDisconnect(version, h, body)
	case AUTH:
		if version != V5 {
			return nil, errorf("AUTH", ErrMalformed, "reserved packet type 15 in MQTT 3.1.1")
		}
		return DecodeAuth(h, body)
	}
	return nil, errorf(typeName(h.Type), ErrMalformed, "reserved packet type")
}

// DecodeConnect decodes a CONNECT body (the bytes after the fixed header).
// All strings and byte slices of the result are copies. A protocol name
// other than "MQTT" is an error wrapping ErrProtocol, except "MQIsdp"
// (MQTT 3.1), which like any level other than 4 and 5 is reported as a
// *VersionError wrapping ErrUnsupportedVersion.
func DecodeConnect(h FixedHeader, body []byte) (*Connect, error) {
	b, err := packetBody(h, CONNECT, body)
	if err != nil {
		return nil, err
	}
	r := rd{b: b, pkt: "CONNECT"}
	name, err := r.bin("protocol name")
	if err != nil {
		return nil, err
	}
	level, err := r.u8("protocol level")
	if err != nil {
		if string(name) == "MQIsdp" {
			return nil, &VersionError{Name: "MQIsdp", Level: 0}
		}
		return nil, err
	}
	switch {
	case string(name) == "MQIsdp":
		return nil, &VersionError{Name: "MQIsdp", Level: level}
	case string(name) != "MQTT":
		return nil, errorf("CONNECT", ErrProtocol, "unknown protocol name %q", name)
	case level != V311 && level != V5:
		return nil, &VersionError{Name: "MQTT", Level: level}
	}
	v5 := level == V5
	c := &Connect{ProtocolName: "MQTT", ProtocolVersion: level}
	flags, err := r.u8("connect flags")
	if err != nil {
		return nil, err
	}
	if flags&0x01 != 0 {
		return nil, errorf("CONNECT", ErrMalformed, "reserved connect flag set")
	}
	c.CleanStart = flags&0x02 != 0
	c.WillFlag = flags&0x04 != 0
	c.WillQoS = flags >> 3 & 0x03
	c.WillRetain = flags&0x20 != 0
	c.PasswordFlag = flags&0x40 != 0
	c.UsernameFlag = flags&0x80 != 0
	if c.WillQoS == 3 {
		return nil, errorf("CONNECT", ErrMalformed, "will QoS 3")
	}
	if !c.WillFlag && (c.WillQoS != 0 || c.WillRetain) {
		return nil, errorf("CONNECT", ErrMalformed, "will QoS or retain set without will flag")
	}
	if !v5 && c.PasswordFlag && !c.UsernameFlag {
		return nil, errorf("CONNECT", ErrMalformed, "password flag without username flag")
	}
	if c.KeepAlive, err = r.u16("keep alive"); err != nil {
		return nil, err
	}
	if v5 {
		if err := r.props(int(CONNECT), &c.Properties); err != nil {
			return nil, err
		}
	}
	if c.ClientID, err = r.str("client identifier"); err != nil {
		return nil, err
	}
	if c.WillFlag {
		if v5 {
			if err := r.props(propWill, &c.WillProperties); err != nil {
				return nil, err
			}
		}
		topic, err := r.bin("will topic")
		if err != nil {
			return nil, err
		}
		if len(topic) == 0 || !validTopicNameBytes(topic) {
			return nil, errorf("CONNECT", ErrMalformed, "will topic is not a valid topic name")
		}
		c.WillTopic = string(topic)
		payload, err := r.bin("will payload")
		if err != nil {
			return nil, err
		}
		c.WillPayload = cloneBytes(payload)
	}
	if c.UsernameFlag {
		if c.Username, err = r.str("user name"); err != nil {
			return nil, err
		}
	}
	if c.PasswordFlag {
		pw, err := r.bin("password")
		if err != nil {
			return nil, err
		}
		c.Password = cloneBytes(pw)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return c, nil
}

// DecodeConnack decodes a CONNACK body. For 3.1.1 the return code is mapped
// to the MQTT 5 reason code with the same meaning (see ConnackCodeV5).
func DecodeConnack(version byte, h FixedHeader, body []byte) (*Connack, error) {
	b, err := packetBody(h, CONNACK, body)
	if err != nil {
		return nil, err
	}
	r := rd{b: b, pkt: "CONNACK"}
	flags, err := r.u8("acknowledge flags")
	if err != nil {
		return nil, err
	}
	if flags&0xfe != 0 {
		return nil, errorf("CONNACK", ErrMalformed, "reserved acknowledge flags set")
	}
	c := &Connack{SessionPresent: flags&1 != 0}
	rc, err := r.u8("reason code")
	if err != nil {
		return nil, err
	}
	if version != V5 {
		reason, ok := ConnackCodeV5(rc)
		if !ok {
			return nil, errorf("CONNACK", ErrMalformed, "reserved return code %d", rc)
		}
		c.ReasonCode = reason
	} else {
		if !validReason(CONNACK, rc) {
			return nil, errorf("CONNACK", ErrProtocol, "invalid reason code 0x%02X", rc)
		}
		c.ReasonCode = rc
		if len(r.b) > 0 {
			if err := r.props(int(CONNACK), &c.Properties); err != nil {
				return nil, err
			}
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return c, nil
}

// DecodePublish decodes a PUBLISH body into p. p.Topic and p.Payload alias
// body (no copy) so the QoS 0 hot path does not allocate: they are valid
// only as long as body is not modified or reused; use Publish.Detach or
// copy them before keeping p. Properties are copied. p is overwritten
// entirely.
//
// In 5.0 an empty topic name is accepted only together with a Topic Alias
// property; resolving the alias is up to the caller.
func DecodePublish(version byte, h FixedHeader, body []byte, p *Publish) error {
	b, err := packetBody(h, PUBLISH, body)
	if err != nil {
		return err
	}
	v5 := version == V5
	qos := h.Flags >> 1 & 0x03
	dup := h.Flags&0x08 != 0
	if v5 && dup && qos == 0 {
		return errorf("PUBLISH", ErrMalformed, "DUP flag set with QoS 0")
	}
	if len(b) < 2 {
		return errorf("PUBLISH", ErrMalformed, "topic name: %v", errTruncated)
	}
	tl := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < tl {
		return errorf("PUBLISH", ErrMalformed, "topic name: %v", errTruncated)
	}
	topic := b[2 : 2+tl]
	if !validTopicNameBytes(topic) {
		if !validUTF8(topic) {
			return errorf("PUBLISH", ErrMalformed, "topic name: invalid UTF-8 string")
		}
		return errorf("PUBLISH", ErrMalformed, "topic name contains wildcard")
	}
	off := 2 + tl
	*p = Publish{Dup: dup, QoS: qos, Retain: h.Flags&0x01 != 0}
	if qos > 0 {
		if len(b)-off < 2 {
			return errorf("PUBLISH", ErrMalformed, "packet identifier: %v", errTruncated)
		}
		p.PacketID = binary.BigEndian.Uint16(b[off:])
		if p.PacketID == 0 {
			return errorf("PUBLISH", ErrProtocol, "packet identifier 0")
		}
		off += 2
	}
	if v5 {
		if off < len(b) && b[off] == 0 {
			off++ // no properties: the common case
		} else {
			n, err := decodeProps(b[off:], int(PUBLISH), "PUBLISH", &p.Properties)
			if err != nil {
				return err
			}
			off += n
		}
	}
	if tl == 0 {
		if !v5 {
			return errorf("PUBLISH", ErrMalformed, "empty topic name")
		}
		if p.Properties.TopicAlias == nil {
			return errorf("PUBLISH", ErrProtocol, "empty topic name without topic alias")
		}
	} else {
		p.Topic = unsafe.String(&topic[0], tl)
	}
	p.Payload = b[off:]
	return nil
}

// Detach copies p.Topic and p.Payload so that p no longer aliases the
// buffer it was decoded from.
func (p *Publish) Detach() {
	if len(p.Topic) > 0 {
		p.Topic = string(append([]byte(nil), p.Topic...))
	}
	p.Payload = append([]byte(nil), p.Payload...)
}

// DecodeAck decodes PUBACK/PUBREC/PUBREL/PUBCOMP. a.Type is set from h.
// In 5.0 a remaining length of 2 means reason code Success without
// properties. a is overwritten entirely.
func DecodeAck(version byte, h FixedHeader, body []byte, a *Ack) error {
	if h.Type < PUBACK || h.Type > PUBCOMP {
		return errorf("PUBACK", ErrMalformed, "fixed header has packet type %d", h.Type)
	}
	b, err := packetBody(h, h.Type, body)
	if err != nil {
		return err
	}
	r := rd{b: b, pkt: typeName(h.Type)}
	*a = Ack{Type: h.Type}
	if a.PacketID, err = r.packetID(); err != nil {
		return err
	}
	if version == V5 && len(r.b) > 0 {
		a.ReasonCode = r.b[0]
		r.b = r.b[1:]
		if !validReason(h.Type, a.ReasonCode) {
			return errorf(r.pkt, ErrProtocol, "invalid reason code 0x%02X", a.ReasonCode)
		}
		if len(r.b) > 0 {
			if err := r.props(int(h.Type), &a.Properties); err != nil {
				return err
			}
		}
	}
	return r.end()
}

// DecodeSubscribe decodes a SUBSCRIBE body. Every topic filter must satisfy
// ValidTopicFilter (otherwise ErrMalformed) and there must be at least one
// (otherwise ErrProtocol).
func DecodeSubscribe(version byte, h FixedHeader, body []byte) (*Subscribe, error) {
	b, err := packetBody(h, SUBSCRIBE, body)
	if err != nil {
		return nil, err
	}
	v5 := version == V5
	r := rd{b: b, pkt: "SUBSCRIBE"}
	s := &Subscribe{}
	if s.PacketID, err = r.packetID(); err != nil {
		return nil, err
	}
	if v5 {
		if err := r.props(int(SUBSCRIBE), &s.Properties); err != nil {
			return nil, err
		}
	}
	if len(r.b) == 0 {
		return nil, errorf("SUBSCRIBE", ErrProtocol, "no topic filters")
	}
	for len(r.b) > 0 {
		f, err := r.str("topic filter")
		if err != nil {
			return nil, err
		}
		if !ValidTopicFilter(f) {
			return nil, errorf("SUBSCRIBE", ErrMalformed, "invalid topic filter %q", f)
		}
		o, err := r.u8("subscription options")
		if err != nil {
			return nil, err
		}
		sub := Subscription{Filter: f, QoS: o & 0x03}
		if sub.QoS == 3 {
			return nil, errorf("SUBSCRIBE", ErrMalformed, "QoS 3 for %q", f)
		}
		if v5 {
			if o&0xc0 != 0 {
				return nil, errorf("SUBSCRIBE", ErrMalformed, "reserved subscription option bits set")
			}
			sub.NoLocal = o&0x04 != 0
			sub.RetainAsPublished = o&0x08 != 0
			sub.RetainHandling = o >> 4 & 0x03
			if sub.RetainHandling == 3 {
				return nil, errorf("SUBSCRIBE", ErrProtocol, "retain handling 3")
			}
		} else if o&0xfc != 0 {
			return nil, errorf("SUBSCRIBE", ErrMalformed, "reserved subscription option bits set")
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	return s, nil
}

// DecodeUnsubscribe decodes an UNSUBSCRIBE body. Filters are validated as
// in DecodeSubscribe.
func DecodeUnsubscribe(version byte, h FixedHeader, body []byte) (*Unsubscribe, error) {
	b, err := packetBody(h, UNSUBSCRIBE, body)
	if err != nil {
		return nil, err
	}
	r := rd{b: b, pkt: "UNSUBSCRIBE"}
	u := &Unsubscribe{}
	if u.PacketID, err = r.packetID(); err != nil {
		return nil, err
	}
	if version == V5 {
		if err := r.props(int(UNSUBSCRIBE), &u.Properties); err != nil {
			return nil, err
		}
	}
	if len(r.b) == 0 {
		return nil, errorf("UNSUBSCRIBE", ErrProtocol, "no topic filters")
	}
	for len(r.b) > 0 {
		f, err := r.str("topic filter")
		if err != nil {
			return nil, err
		}
		if !ValidTopicFilter(f) {
			return nil, errorf("UNSUBSCRIBE", ErrMalformed, "invalid topic filter %q", f)
		}
		u.Filters = append(u.Filters, f)
	}
	return u, nil
}

// DecodeDisconnect decodes a DISCONNECT body. In 5.0 an empty body means
// reason code 0x00 (normal disconnection).
func DecodeDisconnect(version byte, h FixedHeader, body []byte) (*Disconnect, error) {
	b, err := packetBody(h, DISCONNECT, body)
	if err != nil {
		return nil, err
	}
	r := rd{b: b, pkt: "DISCONNECT"}
	d := &Disconnect{}
	if version == V5 && len(r.b) > 0 {
		d.ReasonCode = r.b[0]
		r.b = r.b[1:]
		if !validReason(DISCONNECT, d.ReasonCode) {
			return nil, errorf("DISCONNECT", ErrProtocol, "invalid reason code 0x%02X", d.ReasonCode)
		}
		if len(r.b) > 0 {
			if err := r.props(int(DISCONNECT), &d.Properties); err != nil {
				return nil, err
			}
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return d, nil
}

// DecodeAuth decodes an AUTH body (v5). An empty body means reason code
// 0x00 (Success).
func DecodeAuth(h FixedHeader, body []byte) (*Auth, error) {
	b, err := packetBody(h, AUTH, body)
	if err != nil {
		return nil, err
	}
	r := rd{b: b, pkt: "AUTH"}
	a := &Auth{}
	if len(r.b) > 0 {
		a.ReasonCode = r.b[0]
		r.b = r.b[1:]
		if !validReason(AUTH, a.ReasonCode) {
			return nil, errorf("AUTH", ErrProtocol, "invalid reason code 0x%02X", a.ReasonCode)
		}
		if len(r.b) > 0 {
			if err := r.props(int(AUTH), &a.Properties); err != nil {
				return nil, err
			}
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return a, nil
}

// DecodeSuback decodes a SUBACK body (client side, used by tests and the load generator).
// In 3.1.1 return codes other than 0, 1, 2 and 0x80 are malformed.
func DecodeSuback(version byte, h FixedHeader, body []byte) (*Suback, error) {
	b, err := packetBody(h, SUBACK, body)
	if err != nil {
		return nil, err
	}
	r := rd{b: b, pkt: "SUBACK"}
	s := &Suback{}
	if s.PacketID, err = r.packetID(); err != nil {
		return nil, err
	}
	if version == V5 {
		if err := r.props(int(SUBACK), &s.Properties); err != nil {
			return nil, err
		}
	}
	if len(r.b) == 0 {
		return nil, errorf("SUBACK", ErrProtocol, "no reason codes")
	}
	for _, c := range r.b {
		if version == V5 {
			if !validReason(SUBACK, c) {
				return nil, errorf("SUBACK", ErrProtocol, "invalid reason code 0x%02X", c)
			}
		} else if c > 2 && c != SubscriptionFailureV3 {
			return nil, errorf("SUBACK", ErrMalformed, "invalid return code 0x%02X", c)
		}
	}
	s.ReasonCodes = append([]byte(nil), r.b...)
	return s, nil
}

// DecodeUnsuback decodes an UNSUBACK body (client side, used by tests and the load generator).
func DecodeUnsuback(version byte, h FixedHeader, body []byte) (*Unsuback, error) {
	b, err := packetBody(h, UNSUBACK, body)
	if err != nil {
		return nil, err
	}
	r := rd{b: b, pkt: "UNSUBACK"}
	u := &Unsuback{}
	if u.PacketID, err = r.packetID(); err != nil {
		return nil, err
	}
	if version == V5 {
		if err := r.props(int(UNSUBACK), &u.Properties); err != nil {
			return nil, err
		}
		if len(r.b) == 0 {
			return nil, errorf("UNSUBACK", ErrProtocol, "no reason codes")
		}
		for _, c := range r.b {
			if !validReason(UNSUBACK, c) {
				return nil, errorf("UNSUBACK", ErrProtocol, "invalid reason code 0x%02X", c)
			}
		}
		u.ReasonCodes = append([]byte(nil), r.b...)
		return u, nil
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return u, nil
}

// validReason reports whether rc is a reason code the MQTT 5 specification
// allows on packet type t.
func validReason(t, rc byte) bool {
	switch t {
	case CONNACK:
		switch rc {
		case 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
			0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F:
			return true
		}
	case PUBACK, PUBREC:
		switch rc {
		case 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99:
			return true
		}
	case PUBREL, PUBCOMP:
		return rc == 0x00 || rc == 0x92
	case SUBACK:
		switch rc {
		case 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2:
			return true
		}
	case UNSUBACK:
		switch rc {
		case 0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91:
			return true
		}
	case DISCONNECT:
		switch rc {
		case 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90,
			0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2:
			return true
		}
	case AUTH:
		return rc == 0x00 || rc == 0x18 || rc == 0x19
	}
	return false
}
