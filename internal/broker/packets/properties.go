package packets

import (
	"encoding/binary"
)

// Property identifiers (MQTT 5, section 2.2.2.2).
const (
	PropPayloadFormat        byte = 0x01
	PropMessageExpiry        byte = 0x02
	PropContentType          byte = 0x03
	PropResponseTopic        byte = 0x08
	PropCorrelationData      byte = 0x09
	PropSubscriptionID       byte = 0x0B
	PropSessionExpiry        byte = 0x11
	PropAssignedClientID     byte = 0x12
	PropServerKeepAlive      byte = 0x13
	PropAuthMethod           byte = 0x15
	PropAuthData             byte = 0x16
	PropRequestProblemInfo   byte = 0x17
	PropWillDelay            byte = 0x18
	PropRequestResponseInfo  byte = 0x19
	PropResponseInfo         byte = 0x1A
	PropServerReference      byte = 0x1C
	PropReasonString         byte = 0x1F
	PropReceiveMaximum       byte = 0x21
	PropTopicAliasMaximum    byte = 0x22
	PropTopicAlias           byte = 0x23
	PropMaximumQoS           byte = 0x24
	PropRetainAvailable      byte = 0x25
	PropUser                 byte = 0x26
	PropMaximumPacketSize    byte = 0x27
	PropWildcardSubAvailable byte = 0x28
	PropSubIDAvailable       byte = 0x29
	PropSharedSubAvailable   byte = 0x2A
)

// propWill is the pseudo packet kind used for the Will Properties of a
// CONNECT; real kinds are the packet types 1..15.
const propWill = 16

// Property value types.
const (
	ptByte = iota + 1
	ptU16
	ptU32
	ptVarint
	ptString
	ptBinary
	ptPair
)

// Masks of packet kinds, one bit per packet type plus propWill.
const (
	kConnect     = 1 << CONNECT
	kConnack     = 1 << CONNACK
	kPublish     = 1 << PUBLISH
	kPuback      = 1 << PUBACK
	kPubrec      = 1 << PUBREC
	kPubrel      = 1 << PUBREL
	kPubcomp     = 1 << PUBCOMP
	kSubscribe   = 1 << SUBSCRIBE
	kSuback      = 1 << SUBACK
	kUnsubscribe = 1 << UNSUBSCRIBE
	kUnsuback    = 1 << UNSUBACK
	kDisconnect  = 1 << DISCONNECT
	kAuth        = 1 << AUTH
	kWill        = 1 << propWill

	kAcks = kPuback | kPubrec | kPubrel | kPubcomp
	kAll  = kConnect | kConnack | kPublish | kAcks | kSubscribe | kSuback |
		kUnsubscribe | kUnsuback | kDisconnect | kAuth | kWill
)

// propInfo returns the value type of property id and the packet kinds it
// may appear on; ok is false for unknown identifiers.
func propInfo(id byte) (typ int, kinds uint32, ok bool) {
	switch id {
	case PropPayloadFormat:
		return ptByte, kPublish | kWill, true
	case PropMessageExpiry:
		return ptU32, kPublish | kWill, true
	case PropContentType:
		return ptString, kPublish | kWill, true
	case PropResponseTopic:
		return ptString, kPublish | kWill, true
	case PropCorrelationData:
		return ptBinary, kPublish | kWill, true
	case PropSubscriptionID:
		return ptVarint, kPublish | kSubscribe, true
	case PropSessionExpiry:
		return ptU32, kConnect | kConnack | kDisconnect, true
	case PropAssignedClientID:
		return ptString, kConnack, true
	case PropServerKeepAlive:
		return ptU16, kConnack, true
	case PropAuthMethod:
		return ptString, kConnect | kConnack | kAuth, true
	case PropAuthData:
		return ptBinary, kConnect | kConnack | kAuth, true
	case PropRequestProblemInfo:
		return ptByte, kConnect, true
	case PropWillDelay:
		return ptU32, kWill, true
	case PropRequestResponseInfo:
		return ptByte, kConnect, true
	case PropResponseInfo:
		return ptString, kConnack, true
	case PropServerReference:
		return ptString, kConnack | kDisconnect, true
	case PropReasonString:
		return ptString, kConnack | kAcks | kSuback | kUnsuback | kDisconnect | kAuth, true
	case PropReceiveMaximum:
		return ptU16, kConnect | kConnack, true
	case PropTopicAliasMaximum:
		return ptU16, kConnect | kConnack, true
	case PropTopicAlias:
		return ptU16, kPublish, true
	case PropMaximumQoS:
		return ptByte, kConnack, true
	case PropRetainAvailable:
		return ptByte, kConnack, true
	case PropUser:
		return ptPair, kAll, true
	case PropMaximumPacketSize:
		return ptU32, kConnect | kConnack, true
	case PropWildcardSubAvailable:
		return ptByte, kConnack, true
	case PropSubIDAvailable:
		return ptByte, kConnack, true
	case PropSharedSubAvailable:
		return ptByte, kConnack, true
	}
	return 0, 0, false
}

// PropertyAllowed reports whether the property identifier id may appear on
// packet type pktType (CONNECT..AUTH). will selects the Will Properties of
// a CONNECT instead of the packet's own properties.
func PropertyAllowed(id, pktType byte, will bool) bool {
	_, kinds, ok := propInfo(id)
	if !ok {
		return false
	}
	k := uint32(1) << (pktType & 0x0f)
	if will {
		k = kWill
	}
	return kinds&k != 0
}

func kindName(kind int) string {
	if kind == propWill {
		return "will properties"
	}
	return typeName(byte(kind))
}

// decodeProps decodes the property block at the start of b (property
// length varint followed by the properties) for packet kind and returns the
// number of bytes consumed. Strings and binary values are copied.
func decodeProps(b []byte, kind int, pkt string, p *Properties) (int, error) {
	plen, n, err := decodeVarint(b)
	if err != nil {
		return 0, errorf(pkt, ErrMalformed, "property length: %v", err)
	}
	if plen > len(b)-n {
		return 0, errorf(pkt, ErrMalformed, "property length %d exceeds packet", plen)
	}
	if plen == 0 {
		return n, nil
	}
	if err := parseProps(b[n:n+plen], kind, pkt, p); err != nil {
		return 0, err
	}
	return n + plen, nil
}

func parseProps(b []byte, kind int, pkt string, p *Properties) error {
	var seen uint64
	k := uint32(1) << kind
	for len(b) > 0 {
		idv, n, err := decodeVarint(b)
		if err != nil {
			return errorf(pkt, ErrMalformed, "property identifier: %v", err)
		}
		b = b[n:]
		if idv > 0x7f {
			return errorf(pkt, ErrMalformed, "unknown property identifier 0x%X", idv)
		}
		id := byte(idv)
		typ, kinds, ok := propInfo(id)
		if !ok {
			return errorf(pkt, ErrMalformed, "unknown property identifier 0x%02X", id)
		}
		if kinds&k == 0 {
			return errorf(pkt, ErrProtocol, "property 0x%02X not allowed on %s", id, kindName(kind))
		}
		multi := id == PropUser || (id == PropSubscriptionID && kind == int(PUBLISH))
		if !multi {
			if seen&(1<<id) != 0 {
				return errorf(pkt, ErrProtocol, "duplicate property 0x%02X", id)
			}
			seen |= 1 << id
		}
		var (
			vb   byte
			v16  uint16
			v32  uint32
			vi   int
			s1   []byte
			s2   []byte
			used int
		)
		switch typ {
		case ptByte:
			if len(b) < 1 {
				return errorf(pkt, ErrMalformed, "property 0x%02X truncated", id)
			}
			vb, used = b[0], 1
			if vb > 1 {
				return errorf(pkt, ErrProtocol, "property 0x%02X value %d not 0 or 1", id, vb)
			}
		case ptU16:
			if len(b) < 2 {
				return errorf(pkt, ErrMalformed, "property 0x%02X truncated", id)
			}
			v16, used = binary.BigEndian.Uint16(b), 2
		case ptU32:
			if len(b) < 4 {
				return errorf(pkt, ErrMalformed, "property 0x%02X truncated", id)
			}
			v32, used = binary.BigEndian.Uint32(b), 4
		case ptVarint:
			vi, used, err = decodeVarint(b)
			if err != nil {
				return errorf(pkt, ErrMalformed, "property 0x%02X: %v", id, err)
			}
		case ptString, ptBinary:
			s1, used, err = decodeBinary(b)
			if err != nil {
				return errorf(pkt, ErrMalformed, "property 0x%02X: %v", id, err)
			}
			if typ == ptString && !validUTF8(s1) {
				return errorf(pkt, ErrMalformed, "property 0x%02X: invalid UTF-8 string", id)
			}
		case ptPair:
			var u1, u2 int
			s1, u1, err = decodeBinary(b)
			if err == nil {
				s2, u2, err = decodeBinary(b[u1:])
			}
			if err != nil {
				return errorf(pkt, ErrMalformed, "user property: %v", err)
			}
			if !validUTF8(s1) || !validUTF8(s2) {
				return errorf(pkt, ErrMalformed, "user property: invalid UTF-8 string")
			}
			used = u1 + u2
		}
		b = b[used:]

		switch id {
		case PropPayloadFormat:
			p.PayloadFormat = ptr(vb)
		case PropMessageExpiry:
			p.MessageExpiry = ptr(v32)
		case PropContentType:
			p.ContentType = string(s1)
		case PropResponseTopic:
			if len(s1) == 0 || !validTopicNameBytes(s1) {
				return errorf(pkt, ErrProtocol, "response topic is not a valid topic name")
			}
			p.ResponseTopic = string(s1)
		case PropCorrelationData:
			p.CorrelationData = cloneBytes(s1)
		case PropSubscriptionID:
			if vi == 0 {
				return errorf(pkt, ErrProtocol, "subscription identifier 0")
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, vi)
		case PropSessionExpiry:
			p.SessionExpiry = ptr(v32)
		case PropAssignedClientID:
			p.AssignedClientID = string(s1)
		case PropServerKeepAlive:
			p.ServerKeepAlive = ptr(v16)
		case PropAuthMethod:
			p.AuthMethod = string(s1)
		case PropAuthData:
			p.AuthData = cloneBytes(s1)
		case PropRequestProblemInfo:
			p.RequestProblemInfo = ptr(vb)
		case PropWillDelay:
			p.WillDelay = ptr(v32)
		case PropRequestResponseInfo:
			p.RequestResponseInfo = ptr(vb)
		case PropResponseInfo:
			p.ResponseInfo = string(s1)
		case PropServerReference:
			p.ServerReference = string(s1)
		case PropReasonString:
			p.ReasonString = string(s1)
		case PropReceiveMaximum:
			if v16 == 0 {
				return errorf(pkt, ErrProtocol, "receive maximum 0")
			}
			p.ReceiveMaximum = ptr(v16)
		case PropTopicAliasMaximum:
			p.TopicAliasMaximum = ptr(v16)
		case PropTopicAlias:
			if v16 == 0 {
				return errorf(pkt, ErrProtocol, "topic alias 0")
			}
			p.TopicAlias = ptr(v16)
		case PropMaximumQoS:
			p.MaximumQoS = ptr(vb)
		case PropRetainAvailable:
			p.RetainAvailable = ptr(vb)
		case PropUser:
			p.User = append(p.User, UserProperty{Key: string(s1), Value: string(s2)})
		case PropMaximumPacketSize:
			if v32 == 0 {
				return errorf(pkt, ErrProtocol, "maximum packet size 0")
			}
			p.MaximumPacketSize = ptr(v32)
		case PropWildcardSubAvailable:
			p.WildcardSubAvailable = ptr(vb)
		case PropSubIDAvailable:
			p.SubIDAvailable = ptr(vb)
		case PropSharedSubAvailable:
			p.SharedSubAvailable = ptr(vb)
		}
	}
	if seen&(1<<PropAuthData) != 0 && p.AuthMethod == "" {
		return errorf(pkt, ErrProtocol, "authentication data without authentication method")
	}
	return nil
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// allowed reports whether property id is encoded for kind.
func allowed(id byte, kind int) bool {
	_, kinds, _ := propInfo(id)
	return kinds&(1<<kind) != 0
}

// propsLen returns the length of the encoded properties of p for kind,
// without the property length varint itself.
func propsLen(p *Properties, kind int) int {
	n := 0
	if p.PayloadFormat != nil && allowed(PropPayloadFormat, kind) {
		n += 2
	}
	if p.MessageExpiry != nil && allowed(PropMessageExpiry, kind) {
		n += 5
	}
	if p.ContentType != "" && allowed(PropContentType, kind) {
		n += 3 + len(p.ContentType)
	}
	if p.ResponseTopic != "" && allowed(PropResponseTopic, kind) {
		n += 3 + len(p.ResponseTopic)
	}
	if len(p.CorrelationData) > 0 && allowed(PropCorrelationData, kind) {
		n += 3 + len(p.CorrelationData)
	}
	if len(p.SubscriptionIDs) > 0 && allowed(PropSubscriptionID, kind) {
		ids := p.SubscriptionIDs
		if kind == int(SUBSCRIBE) {
			ids = ids[:1]
		}
		for _, id := range ids {
			n += 1 + varintLen(id)
		}
	}
	if p.SessionExpiry != nil && allowed(PropSessionExpiry, kind) {
		n += 5
	}
	if p.AssignedClientID != "" && allowed(PropAssignedClientID, kind) {
		n += 3 + len(p.AssignedClientID)
	}
	if p.ServerKeepAlive != nil && allowed(PropServerKeepAlive, kind) {
		n += 3
	}
	if p.AuthMethod != "" && allowed(PropAuthMethod, kind) {
		n += 3 + len(p.AuthMethod)
	}
	if len(p.AuthData) > 0 && allowed(PropAuthData, kind) {
		n += 3 + len(p.AuthData)
	}
	if p.RequestProblemInfo != nil && allowed(PropRequestProblemInfo, kind) {
		n += 2
	}
	if p.WillDelay != nil && allowed(PropWillDelay, kind) {
		n += 5
	}
	if p.RequestResponseInfo != nil && allowed(PropRequestResponseInfo, kind) {
		n += 2
	}
	if p.ResponseInfo != "" && allowed(PropResponseInfo, kind) {
		n += 3 + len(p.ResponseInfo)
	}
	if p.ServerReference != "" && allowed(PropServerReference, kind) {
		n += 3 + len(p.ServerReference)
	}
	if p.ReasonString != "" && allowed(PropReasonString, kind) {
		n += 3 + len(p.ReasonString)
	}
	if p.ReceiveMaximum != nil && allowed(PropReceiveMaximum, kind) {
		n += 3
	}
	if p.TopicAliasMaximum != nil && allowed(PropTopicAliasMaximum, kind) {
		n += 3
	}
	if p.TopicAlias != nil && allowed(PropTopicAlias, kind) {
		n += 3
	}
	if p.MaximumQoS != nil && allowed(PropMaximumQoS, kind) {
		n += 2
	}
	if p.RetainAvailable != nil && allowed(PropRetainAvailable, kind) {
		n += 2
	}
	for _, u := range p.User {
		n += 5 + len(u.Key) + len(u.Value)
	}
	if p.MaximumPacketSize != nil && allowed(PropMaximumPacketSize, kind) {
		n += 5
	}
	if p.WildcardSubAvailable != nil && allowed(PropWildcardSubAvailable, kind) {
		n += 2
	}
	if p.SubIDAvailable != nil && allowed(PropSubIDAvailable, kind) {
		n += 2
	}
	if p.SharedSubAvailable != nil && allowed(PropSharedSubAvailable, kind) {
		n += 2
	}
	return n
}

// appendProps appends the property length varint (n, as computed by
// propsLen) and the properties of p allowed on kind.
func appendProps(dst []byte, p *Properties, kind, n int) []byte {
	dst = appendVarint(dst, n)
	if n == 0 {
		return dst
	}
	if p.PayloadFormat != nil && allowed(PropPayloadFormat, kind) {
		dst = append(dst, PropPayloadFormat, *p.PayloadFormat)
	}
	if p.MessageExpiry != nil && allowed(PropMessageExpiry, kind) {
		dst = binary.BigEndian.AppendUint32(append(dst, PropMessageExpiry), *p.MessageExpiry)
	}
	if p.ContentType != "" && allowed(PropContentType, kind) {
		dst = appendString(append(dst, PropContentType), p.ContentType)
	}
	if p.ResponseTopic != "" && allowed(PropResponseTopic, kind) {
		dst = appendString(append(dst, PropResponseTopic), p.ResponseTopic)
	}
	if len(p.CorrelationData) > 0 && allowed(PropCorrelationData, kind) {
		dst = appendBinary(append(dst, PropCorrelationData), p.CorrelationData)
	}
	if len(p.SubscriptionIDs) > 0 && allowed(PropSubscriptionID, kind) {
		ids := p.SubscriptionIDs
		if kind == int(SUBSCRIBE) {
			ids = ids[:1]
		}
		for _, id := range ids {
			dst = appendVarint(append(dst, PropSubscriptionID), id)
		}
	}
	if p.SessionExpiry != nil && allowed(PropSessionExpiry, kind) {
		dst = binary.BigEndian.AppendUint32(append(dst, PropSessionExpiry), *p.SessionExpiry)
	}
	if p.AssignedClientID != "" && allowed(PropAssignedClientID, kind) {
		dst = appendString(append(dst, PropAssignedClientID), p.AssignedClientID)
	}
	if p.ServerKeepAlive != nil && allowed(PropServerKeepAlive, kind) {
		dst = binary.BigEndian.AppendUint16(append(dst, PropServerKeepAlive), *p.ServerKeepAlive)
	}
	if p.AuthMethod != "" && allowed(PropAuthMethod, kind) {
		dst = appendString(append(dst, PropAuthMethod), p.AuthMethod)
	}
	if len(p.AuthData) > 0 && allowed(PropAuthData, kind) {
		dst = appendBinary(append(dst, PropAuthData), p.AuthData)
	}
	if p.RequestProblemInfo != nil && allowed(PropRequestProblemInfo, kind) {
		dst = append(dst, PropRequestProblemInfo, *p.RequestProblemInfo)
	}
	if p.WillDelay != nil && allowed(PropWillDelay, kind) {
		dst = binary.BigEndian.AppendUint32(append(dst, PropWillDelay), *p.WillDelay)
	}
	if p.RequestResponseInfo != nil && allowed(PropRequestResponseInfo, kind) {
		dst = append(dst, PropRequestResponseInfo, *p.RequestResponseInfo)
	}
	if p.ResponseInfo != "" && allowed(PropResponseInfo, kind) {
		dst = appendString(append(dst, PropResponseInfo), p.ResponseInfo)
	}
	if p.ServerReference != "" && allowed(PropServerReference, kind) {
		dst = appendString(append(dst, PropServerReference), p.ServerReference)
	}
	if p.ReasonString != "" && allowed(PropReasonString, kind) {
		dst = appendString(append(dst, PropReasonString), p.ReasonString)
	}
	if p.ReceiveMaximum != nil && allowed(PropReceiveMaximum, kind) {
		dst = binary.BigEndian.AppendUint16(append(dst, PropReceiveMaximum), *p.ReceiveMaximum)
	}
	if p.TopicAliasMaximum != nil && allowed(PropTopicAliasMaximum, kind) {
		dst = binary.BigEndian.AppendUint16(append(dst, PropTopicAliasMaximum), *p.TopicAliasMaximum)
	}
	if p.TopicAlias != nil && allowed(PropTopicAlias, kind) {
		dst = binary.BigEndian.AppendUint16(append(dst, PropTopicAlias), *p.TopicAlias)
	}
	if p.MaximumQoS != nil && allowed(PropMaximumQoS, kind) {
		dst = append(dst, PropMaximumQoS, *p.MaximumQoS)
	}
	if p.RetainAvailable != nil && allowed(PropRetainAvailable, kind) {
		dst = append(dst, PropRetainAvailable, *p.RetainAvailable)
	}
	for _, u := range p.User {
		dst = appendString(appendString(append(dst, PropUser), u.Key), u.Value)
	}
	if p.MaximumPacketSize != nil && allowed(PropMaximumPacketSize, kind) {
		dst = binary.BigEndian.AppendUint32(append(dst, PropMaximumPacketSize), *p.MaximumPacketSize)
	}
	if p.WildcardSubAvailable != nil && allowed(PropWildcardSubAvailable, kind) {
		dst = append(dst, PropWildcardSubAvailable, *p.WildcardSubAvailable)
	}
	if p.SubIDAvailable != nil && allowed(PropSubIDAvailable, kind) {
		dst = append(dst, PropSubIDAvailable, *p.SubIDAvailable)
	}
	if p.SharedSubAvailable != nil && allowed(PropSharedSubAvailable, kind) {
		dst = append(dst, PropSharedSubAvailable, *p.SharedSubAvailable)
	}
	return dst
}

func ptr[T any](v T) *T { return &v }
