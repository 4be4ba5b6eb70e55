package packets

import (
	"encoding/binary"
	"slices"
)

// The Append functions do not validate their input: strings and byte
// slices must be at most 65,535 bytes, QoS values 0..2, packet
// identifiers non-zero where required and the whole packet at most
// MaxRemainingLength bytes after the fixed header. Properties not allowed
// on a packet type are silently left out; properties are only encoded for
// version V5. Any version other than V5 encodes MQTT 3.1.1.

// header grows dst for a packet with remaining length rem and appends the
// fixed header.
func header(dst []byte, first byte, rem int) []byte {
	dst = slices.Grow(dst, 1+varintLen(rem)+rem)
	return appendVarint(append(dst, first), rem)
}

// AppendConnect encodes a CONNECT for p.ProtocolVersion (0 means V311;
// an empty ProtocolName means "MQTT"). The user name and password are
// written when their flag is set or they are non-empty; the will when
// WillFlag is set.
func AppendConnect(dst []byte, p *Connect) []byte {
	version := p.ProtocolVersion
	if version == 0 {
		version = V311
	}
	name := p.ProtocolName
	if name == "" {
		name = "MQTT"
	}
	v5 := version == V5
	userFlag := p.UsernameFlag || p.Username != ""
	passFlag := p.PasswordFlag || len(p.Password) > 0

	var flags byte
	if p.CleanStart {
		flags |= 0x02
	}
	rem := 2 + len(name) + 1 + 1 + 2 + 2 + len(p.ClientID)
	var pl, wpl int
	if v5 {
		pl = propsLen(&p.Properties, int(CONNECT))
		rem += varintLen(pl) + pl
	}
	if p.WillFlag {
		flags |= 0x04 | (p.WillQoS&0x03)<<3
		if p.WillRetain {
			flags |= 0x20
		}
		if v5 {
			wpl = propsLen(&p.WillProperties, propWill)
			rem += varintLen(wpl) + wpl
		}
		rem += 2 + len(p.WillTopic) + 2 + len(p.WillPayload)
	}
	if userFlag {
		flags |= 0x80
		rem += 2 + len(p.Username)
	}
	if passFlag {
		flags |= 0x40
		rem += 2 + len(p.Password)
	}
	dst = header(dst, CONNECT<<4, rem)
	dst = appendString(dst, name)
	dst = append(dst, version, flags)
	dst = binary.BigEndian.AppendUint16(dst, p.KeepAlive)
	if v5 {
		dst = appendProps(dst, &p.Properties, int(CONNECT), pl)
	}
	dst = appendString(dst, p.ClientID)
	if p.WillFlag {
		if v5 {
			dst = appendProps(dst, &p.WillProperties, propWill, wpl)
		}
		dst = appendString(dst, p.WillTopic)
		dst = appendBinary(dst, p.WillPayload)
	}
	if userFlag {
		dst = appendString(dst, p.Username)
	}
	if passFlag {
		dst = appendBinary(dst, p.Password)
	}
	return dst
}

// AppendConnack encodes a CONNACK. For 3.1.1 the reason code is mapped
// with ConnackCodeV3 and properties are dropped.
func AppendConnack(dst []byte, version byte, p *Connack) []byte {
	var flags byte
	if p.SessionPresent {
		flags = 1
	}
	if version != V5 {
		return append(dst, CONNACK<<4, 2, flags, ConnackCodeV3(p.ReasonCode))
	}
	pl := propsLen(&p.Properties, int(CONNACK))
	dst = header(dst, CONNACK<<4, 2+varintLen(pl)+pl)
	dst = append(dst, flags, p.ReasonCode)
	return appendProps(dst, &p.Properties, int(CONNACK), pl)
}

func publishRemaining(version byte, p *Publish) (rem, pl int) {
	rem = 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		rem += 2
	}
	if version == V5 {
		pl = propsLen(&p.Properties, int(PUBLISH))
		rem += varintLen(pl) + pl
	}
	return rem, pl
}

// AppendPublish encodes a PUBLISH. The packet identifier is written only
// when QoS > 0.
func AppendPublish(dst []byte, version byte, p *Publish) []byte {
	rem, pl := publishRemaining(version, p)
	first := PUBLISH<<4 | (p.QoS&0x03)<<1
	if p.Dup {
		first |= 0x08
	}
	if p.Retain {
		first |= 0x01
	}
	dst = header(dst, first, rem)
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
	}
	if version == V5 {
		dst = appendProps(dst, &p.Properties, int(PUBLISH), pl)
	}
	return append(dst, p.Payload...)
}

// PublishSize returns the encoded size of p for version, without encoding,
// so the server can enforce a client's Maximum Packet Size.
func PublishSize(version byte, p *Publish) int {
	rem, _ := publishRemaining(version, p)
	return 1 + varintLen(rem) + rem
}

// AppendAck encodes PUBACK/PUBREC/PUBREL/PUBCOMP as given by a.Type. In
// 5.0 the reason code and properties are omitted when the reason code is
// Success and there are no properties (remaining length 2).
func AppendAck(dst []byte, version byte, a *Ack) []byte {
	first := a.Type << 4
	if a.Type == PUBREL {
		first |= 0x02
	}
	if version != V5 {
		return binary.BigEndian.AppendUint16(append(dst, first, 2), a.PacketID)
	}
	pl := propsLen(&a.Properties, int(a.Type&0x0f))
	switch {
	case pl == 0 && a.ReasonCode == Success:
		return binary.BigEndian.AppendUint16(append(dst, first, 2), a.PacketID)
	case pl == 0:
		dst = binary.BigEndian.AppendUint16(append(dst, first, 3), a.PacketID)
		return append(dst, a.ReasonCode)
	}
	dst = header(dst, first, 3+varintLen(pl)+pl)
	dst = binary.BigEndian.AppendUint16(dst, a.PacketID)
	dst = append(dst, a.ReasonCode)
	return appendProps(dst, &a.Properties, int(a.Type&0x0f), pl)
}

// AppendSubscribe encodes a SUBSCRIBE. In 3.1.1 only the QoS of each
// subscription is encoded.
func AppendSubscribe(dst []byte, version byte, p *Subscribe) []byte {
	rem := 2
	pl := 0
	if version == V5 {
		pl = propsLen(&p.Properties, int(SUBSCRIBE))
		rem += varintLen(pl) + pl
	}
	for i := range p.Subscriptions {
		rem += 3 + len(p.Subscriptions[i].Filter)
	}
	dst = header(dst, SUBSCRIBE<<4|0x02, rem)
	dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
	if version == V5 {
		dst = appendProps(dst, &p.Properties, int(SUBSCRIBE), pl)
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		o := s.QoS & 0x03
		if version == V5 {
			if s.NoLocal {
				o |= 0x04
			}
			if s.RetainAsPublished {
				o |= 0x08
			}
			o |= (s.RetainHandling & 0x03) << 4
		}
		dst = append(appendString(dst, s.Filter), o)
	}
	return dst
}

// AppendSuback encodes a SUBACK. In 3.1.1 reason codes >= 0x80 are sent as
// 0x80 and properties are dropped.
func AppendSuback(dst []byte, version byte, p *Suback) []byte {
	rem := 2 + len(p.ReasonCodes)
	pl := 0
	if version == V5 {
		pl = propsLen(&p.Properties, int(SUBACK))
		rem += varintLen(pl) + pl
	}
	dst = header(dst, SUBACK<<4, rem)
	dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
	if version == V5 {
		dst = appendProps(dst, &p.Properties, int(SUBACK), pl)
		return append(dst, p.ReasonCodes...)
	}
	for _, c := range p.ReasonCodes {
		if c >= 0x80 {
			c = SubscriptionFailureV3
		}
		dst = append(dst, c)
	}
	return dst
}

// AppendUnsubscribe encodes an UNSUBSCRIBE.
func AppendUnsubscribe(dst []byte, version byte, p *Unsubscribe) []byte {
	rem := 2
	pl := 0
	if version == V5 {
		pl = propsLen(&p.Properties, int(UNSUBSCRIBE))
		rem += varintLen(pl) + pl
	}
	for _, f := range p.Filters {
		rem += 2 + len(f)
	}
	dst = header(dst, UNSUBSCRIBE<<4|0x02, rem)
	dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
	if version == V5 {
		dst = appendProps(dst, &p.Properties, int(UNSUBSCRIBE), pl)
	}
	for _, f := range p.Filters {
		dst = appendString(dst, f)
	}
	return dst
}

// AppendUnsuback encodes an UNSUBACK (reason codes and properties in 5.0
// only).
func AppendUnsuback(dst []byte, version byte, p *Unsuback) []byte {
	if version != V5 {
		return binary.BigEndian.AppendUint16(append(dst, UNSUBACK<<4, 2), p.PacketID)
	}
	pl := propsLen(&p.Properties, int(UNSUBACK))
	dst = header(dst, UNSUBACK<<4, 2+varintLen(pl)+pl+len(p.ReasonCodes))
	dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
	dst = appendProps(dst, &p.Properties, int(UNSUBACK), pl)
	return append(dst, p.ReasonCodes...)
}

// AppendPingreq encodes a PINGREQ.
func AppendPingreq(dst []byte) []byte { return append(dst, PINGREQ<<4, 0) }

// AppendPingresp encodes a PINGRESP.
func AppendPingresp(dst []byte) []byte { return append(dst, PINGRESP<<4, 0) }

// AppendDisconnect encodes a DISCONNECT. In 5.0 the reason code and
// properties are omitted when the reason code is 0x00 and there are no
// properties; in 3.1.1 they are never sent.
func AppendDisconnect(dst []byte, version byte, p *Disconnect) []byte {
	if version != V5 {
		return append(dst, DISCONNECT<<4, 0)
	}
	return appendReasonOnly(dst, DISCONNECT, p.ReasonCode, &p.Properties)
}

// AppendAuth encodes an AUTH packet (5.0 only), omitting reason code and
// properties when the reason code is Success and there are no properties.
func AppendAuth(dst []byte, p *Auth) []byte {
	return appendReasonOnly(dst, AUTH, p.ReasonCode, &p.Properties)
}

func appendReasonOnly(dst []byte, t, rc byte, props *Properties) []byte {
	pl := propsLen(props, int(t))
	switch {
	case pl == 0 && rc == 0:
		return append(dst, t<<4, 0)
	case pl == 0:
		return append(dst, t<<4, 1, rc)
	}
	dst = header(dst, t<<4, 1+varintLen(pl)+pl)
	dst = append(dst, rc)
	return appendProps(dst, props, int(t), pl)
}

// Append encodes any packet struct accepted from Decode (*Connect,
// *Connack, *Publish, *Ack, *Subscribe, *Suback, *Unsubscribe, *Unsuback,
// *Pingreq, *Pingresp, *Disconnect, *Auth) for version. Other values are
// ignored and dst is returned unchanged.
func Append(dst []byte, version byte, pkt any) []byte {
	switch p := pkt.(type) {
	case *Connect:
		return AppendConnect(dst, p)
	case *Connack:
		return AppendConnack(dst, version, p)
	case *Publish:
		return AppendPublish(dst, version, p)
	case *Ack:
		return AppendAck(dst, version, p)
	case *Subscribe:
		return AppendSubscribe(dst, version, p)
	case *Suback:
		return AppendSuback(dst, version, p)
	case *Unsubscribe:
		return AppendUnsubscribe(dst, version, p)
	case *Unsuback:
		return AppendUnsuback(dst, version, p)
	case *Pingreq:
		return AppendPingreq(dst)
	case *Pingresp:
		return AppendPingresp(dst)
	case *Disconnect:
		return AppendDisconnect(dst, version, p)
	case *Auth:
		return AppendAuth(dst, p)
	}
	return dst
}
