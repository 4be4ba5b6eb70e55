package packets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxRemainingLength is the largest remaining length a variable byte
// integer can carry (268,435,455 bytes).
const MaxRemainingLength = 268435455

// MaxVarint is the largest value of a variable byte integer.
const MaxVarint = MaxRemainingLength

// FixedHeader is the decoded MQTT fixed header.
type FixedHeader struct {
	Type      byte // packet type (CONNECT..AUTH)
	Flags     byte // low nibble
	Remaining int  // remaining length
	Len       int  // bytes used by the fixed header itself (2..5)
}

// ParseFixedHeader parses a fixed header at the start of buf. It returns
// ok=false (and no error) when buf does not yet hold a complete header.
// It returns an error wrapping ErrMalformed for an invalid remaining length
// and ErrPacketTooLarge when Len+Remaining exceeds maxSize (0 = no limit).
//
// It also rejects, with ErrMalformed, the reserved packet type 0, fixed
// header flags that differ from the values the specification fixes for
// the packet type (0b0010 for PUBREL, SUBSCRIBE and UNSUBSCRIBE, 0 for the
// others) and PUBLISH with QoS 3. Checks that depend on the protocol
// version (AUTH in 3.1.1, DUP with QoS 0 in 5.0) are left to the Decode
// functions.
func ParseFixedHeader(buf []byte, maxSize int) (h FixedHeader, ok bool, err error) {
	if len(buf) == 0 {
		return h, false, nil
	}
	h.Type = buf[0] >> 4
	h.Flags = buf[0] & 0x0f
	if err := checkFlags(h.Type, h.Flags); err != nil {
		return FixedHeader{}, false, err
	}
	v, n, complete, verr := parseVarint(buf[1:])
	if verr != nil {
		return FixedHeader{}, false, errorf(typeName(h.Type), ErrMalformed, "remaining length: %v", verr)
	}
	if !complete {
		return FixedHeader{}, false, nil
	}
	h.Remaining = v
	h.Len = 1 + n
	if maxSize > 0 && h.Len+h.Remaining > maxSize {
		return FixedHeader{}, false, errorf(typeName(h.Type), ErrPacketTooLarge,
			"size %d exceeds maximum %d", h.Len+h.Remaining, maxSize)
	}
	return h, true, nil
}

// checkFlags validates the fixed header flags of packet type t.
func checkFlags(t, flags byte) error {
	switch t {
	case 0:
		return fmt.Errorf("packets: reserved packet type 0: %w", ErrMalformed)
	case PUBLISH:
		if flags&0x06 == 0x06 {
			return errorf("PUBLISH", ErrMalformed, "QoS 3")
		}
		return nil
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		if flags != 0x02 {
			return errorf(typeName(t), ErrMalformed, "fixed header flags 0x%X, want 0x2", flags)
		}
	default:
		if flags != 0 {
			return errorf(typeName(t), ErrMalformed, "fixed header flags 0x%X, want 0x0", flags)
		}
	}
	return nil
}

// TypeName returns the name of packet type t ("CONNECT", "PUBLISH", ...).
func TypeName(t byte) string { return typeName(t) }

func typeName(t byte) string {
	switch t {
	case CONNECT:
		return "CONNECT"
	case CONNACK:
		return "CONNACK"
	case PUBLISH:
		return "PUBLISH"
	case PUBACK:
		return "PUBACK"
	case PUBREC:
		return "PUBREC"
	case PUBREL:
		return "PUBREL"
	case PUBCOMP:
		return "PUBCOMP"
	case SUBSCRIBE:
		return "SUBSCRIBE"
	case SUBACK:
		return "SUBACK"
	case UNSUBSCRIBE:
		return "UNSUBSCRIBE"
	case UNSUBACK:
		return "UNSUBACK"
	case PINGREQ:
		return "PINGREQ"
	case PINGRESP:
		return "PINGRESP"
	case DISCONNECT:
		return "DISCONNECT"
	case AUTH:
		return "AUTH"
	}
	return fmt.Sprintf("type %d", t)
}

// errorf builds a decode error: "packets: PKT: message: sentinel".
func errorf(pkt string, kind error, format string, args ...any) error {
	return fmt.Errorf("packets: %s: %s: %w", pkt, fmt.Sprintf(format, args...), kind)
}

var (
	errVarintTooLong  = errors.New("variable byte integer longer than 4 bytes")
	errVarintOverlong = errors.New("variable byte integer not minimally encoded")
	errTruncated      = errors.New("truncated")
)

// parseVarint reads a variable byte integer. complete is false when b ends
// before the integer does.
func parseVarint(b []byte) (v, n int, complete bool, err error) {
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, false, nil
		}
		c := b[i]
		v |= int(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				return 0, 0, false, errVarintOverlong
			}
			return v, i + 1, true, nil
		}
	}
	return 0, 0, false, errVarintTooLong
}

// decodeVarint reads a complete variable byte integer from b.
func decodeVarint(b []byte) (v, n int, err error) {
	v, n, complete, err := parseVarint(b)
	if err != nil {
		return 0, 0, err
	}
	if !complete {
		return 0, 0, errTruncated
	}
	return v, n, nil
}

func varintLen(v int) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	default:
		return 4
	}
}

// appendVarint appends v (0..MaxVarint) as a variable byte integer.
func appendVarint(dst []byte, v int) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

// decodeBinary reads a two-byte length prefixed byte string; the result
// aliases b.
func decodeBinary(b []byte) (s []byte, n int, err error) {
	if len(b) < 2 {
		return nil, 0, errTruncated
	}
	l := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < l {
		return nil, 0, errTruncated
	}
	return b[2 : 2+l], 2 + l, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// validUTF8 reports whether b is a valid MQTT UTF-8 string body: well
// formed UTF-8 (which excludes encoded surrogates) without U+0000.
func validUTF8(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			return utf8.Valid(b[i:]) && bytes.IndexByte(b[i:], 0) < 0
		}
	}
	return true
}

func validUTF8String(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			return utf8.ValidString(s[i:]) && indexByteString(s[i:], 0) < 0
		}
	}
	return true
}

func indexByteString(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// validTopicNameBytes reports whether b is valid UTF-8 without NUL and
// without wildcards. Emptiness is checked by the caller.
func validTopicNameBytes(b []byte) bool {
	if len(b) > 65535 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0 || c == '+' || c == '#' {
			return false
		}
		if c >= utf8.RuneSelf {
			rest := b[i:]
			return utf8.Valid(rest) && bytes.IndexByte(rest, 0) < 0 &&
				bytes.IndexByte(rest, '+') < 0 && bytes.IndexByte(rest, '#') < 0
		}
	}
	return true
}

// ValidTopicName reports whether s is a valid topic name for PUBLISH
// (non-empty, valid UTF-8, no wildcards, no NUL).
func ValidTopicName(s string) bool {
	if len(s) == 0 || len(s) > 65535 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 || c == '+' || c == '#' {
			return false
		}
	}
	return utf8.ValidString(s)
}

// SharePrefix starts a shared subscription filter: "$share/{group}/{filter}".
const SharePrefix = "$share/"

// ValidTopicFilter reports whether s is a valid subscription filter
// (wildcards only as whole levels, '#' last; "$share/{group}/{filter}" allowed).
// The group of a shared subscription must be non-empty and free of
// wildcards, and its filter must itself be valid.
func ValidTopicFilter(s string) bool {
	if len(s) == 0 || len(s) > 65535 || !validUTF8String(s) {
		return false
	}
	if len(s) >= len(SharePrefix) && s[:len(SharePrefix)] == SharePrefix {
		rest := s[len(SharePrefix):]
		slash := indexByteString(rest, '/')
		if slash <= 0 {
			return false
		}
		group := rest[:slash]
		if indexByteString(group, '+') >= 0 || indexByteString(group, '#') >= 0 {
			return false
		}
		s = rest[slash+1:]
		if len(s) == 0 {
			return false
		}
	}
	return validFilterLevels(s)
}

// SplitShared splits a shared subscription filter "$share/{group}/{filter}"
// into group and filter; ok is false when s is not a shared subscription.
// It does not validate the parts (see ValidTopicFilter).
func SplitShared(s string) (group, filter string, ok bool) {
	if len(s) < len(SharePrefix) || s[:len(SharePrefix)] != SharePrefix {
		return "", "", false
	}
	rest := s[len(SharePrefix):]
	slash := indexByteString(rest, '/')
	if slash < 0 {
		return "", "", false
	}
	return rest[:slash], rest[slash+1:], true
}

func validFilterLevels(s string) bool {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '/' {
			continue
		}
		level := s[start:i]
		switch {
		case level == "#":
			if i != len(s) {
				return false
			}
		case level == "+":
		default:
			for j := 0; j < len(level); j++ {
				if level[j] == '+' || level[j] == '#' {
					return false
				}
			}
		}
		start = i + 1
	}
	return true
}

// ConnackCodeV3 maps an MQTT 5 CONNACK reason code to the nearest MQTT
// 3.1.1 CONNACK return code (0..5).
func ConnackCodeV3(reason byte) byte {
	switch reason {
	case Success:
		return 0
	case UnsupportedProtocolVersion:
		return 1
	case ClientIdentifierNotValid:
		return 2
	case ServerUnavailable, ServerBusy:
		return 3
	case BadUsernameOrPassword, 0x8C: // 0x8C: bad authentication method
		return 4
	case NotAuthorized, Banned:
		return 5
	}
	return 3
}

// ConnackCodeV5 maps an MQTT 3.1.1 CONNACK return code to the MQTT 5
// reason code with the same meaning; ok is false for reserved codes (> 5).
func ConnackCodeV5(code byte) (reason byte, ok bool) {
	switch code {
	case 0:
		return Success, true
	case 1:
		return UnsupportedProtocolVersion, true
	case 2:
		return ClientIdentifierNotValid, true
	case 3:
		return ServerUnavailable, true
	case 4:
		return BadUsernameOrPassword, true
	case 5:
		return NotAuthorized, true
	}
	return 0, false
}

// VersionError is returned by DecodeConnect for a protocol name or level
// this package does not implement (MQTT 3.1 "MQIsdp", or a level other
// than 4 and 5). It wraps ErrUnsupportedVersion; the server answers with
// CONNACK 0x01 (3.1.1 format) or 0x84 and closes the connection.
type VersionError struct {
	Name  string // protocol name as sent
	Level byte   // protocol level as sent
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("packets: CONNECT: protocol %q level %d: %v", e.Name, e.Level, ErrUnsupportedVersion)
}

// Unwrap returns ErrUnsupportedVersion.
func (e *VersionError) Unwrap() error { return ErrUnsupportedVersion }
