package packets

import "errors"

// Protocol versions as carried in the CONNECT protocol level byte.
const (
	V311 byte = 4
	V5   byte = 5
)

// Packet types (high nibble of the fixed header).
const (
	CONNECT     byte = 1
	CONNACK     byte = 2
	PUBLISH     byte = 3
	PUBACK      byte = 4
	PUBREC      byte = 5
	PUBREL      byte = 6
	PUBCOMP     byte = 7
	SUBSCRIBE   byte = 8
	SUBACK      byte = 9
	UNSUBSCRIBE byte = 10
	UNSUBACK    byte = 11
	PINGREQ     byte = 12
	PINGRESP    byte = 13
	DISCONNECT  byte = 14
	AUTH        byte = 15
)

// Reason codes (MQTT 5). MQTT 3.1.1 CONNACK return codes are mapped from
// these by the encoder (see ConnackCodeV3).
const (
	Success                    byte = 0x00
	GrantedQoS1                byte = 0x01
	GrantedQoS2                byte = 0x02
	DisconnectWithWill         byte = 0x04
	NoMatchingSubscribers      byte = 0x10
	NoSubscriptionExisted      byte = 0x11
	UnspecifiedError           byte = 0x80
	MalformedPacket            byte = 0x81
	ProtocolError              byte = 0x82
	ImplementationSpecific     byte = 0x83
	UnsupportedProtocolVersion byte = 0x84
	ClientIdentifierNotValid   byte = 0x85
	BadUsernameOrPassword      byte = 0x86
	NotAuthorized              byte = 0x87
	ServerUnavailable          byte = 0x88
	ServerBusy                 byte = 0x89
	Banned                     byte = 0x8A
	ServerShuttingDown         byte = 0x8B
	KeepAliveTimeout           byte = 0x8D
	SessionTakenOver           byte = 0x8E
	TopicFilterInvalid         byte = 0x8F
	TopicNameInvalid           byte = 0x90
	PacketIdentifierInUse      byte = 0x91
	PacketIdentifierNotFound   byte = 0x92
	ReceiveMaximumExceeded     byte = 0x93
	TopicAliasInvalid          byte = 0x94
	PacketTooLarge             byte = 0x95
	MessageRateTooHigh         byte = 0x96
	QuotaExceeded              byte = 0x97
	PayloadFormatInvalid       byte = 0x99
	RetainNotSupported         byte = 0x9A
	QoSNotSupported            byte = 0x9B
	SharedSubsNotSupported     byte = 0x9E
	ConnectionRateExceeded     byte = 0x9F
	SubIDsNotSupported         byte = 0xA1
	WildcardSubsNotSupported   byte = 0xA2
	SubscriptionFailureV3      byte = 0x80 // SUBACK failure return code in 3.1.1
)

// Sentinel errors returned by the decoder. Decode errors wrap one of these.
var (
	ErrMalformed          = errors.New("malformed packet")
	ErrProtocol           = errors.New("protocol error")
	ErrPacketTooLarge     = errors.New("packet too large")
	ErrUnsupportedVersion = errors.New("unsupported protocol version")
)

// UserProperty is an MQTT 5 user property (name/value pair, order preserved).
type UserProperty struct {
	Key, Value string
}

// Properties holds MQTT 5 properties. Pointer or "Has" fields distinguish
// absent from zero where the spec needs it. Only properties valid for the
// packet type are encoded; the decoder rejects properties not allowed on
// the packet type with ErrProtocol.
type Properties struct {
	PayloadFormat        *byte   // 0x01
	MessageExpiry        *uint32 // 0x02
	ContentType          string  // 0x03
	ResponseTopic        string  // 0x08
	CorrelationData      []byte  // 0x09
	SubscriptionIDs      []int   // 0x0B (varint; may repeat on PUBLISH)
	SessionExpiry        *uint32 // 0x11
	AssignedClientID     string  // 0x12
	ServerKeepAlive      *uint16 // 0x13
	AuthMethod           string  // 0x15
	AuthData             []byte  // 0x16
	RequestProblemInfo   *byte   // 0x17
	WillDelay            *uint32 // 0x18
	RequestResponseInfo  *byte   // 0x19
	ResponseInfo         string  // 0x1A
	ServerReference      string  // 0x1C
	ReasonString         string  // 0x1F
	ReceiveMaximum       *uint16 // 0x21
	TopicAliasMaximum    *uint16 // 0x22
	TopicAlias           *uint16 // 0x23
	MaximumQoS           *byte   // 0x24
	RetainAvailable      *byte   // 0x25
	User                 []UserProperty
	MaximumPacketSize    *uint32 // 0x27
	WildcardSubAvailable *byte   // 0x28
	SubIDAvailable       *byte   // 0x29
	SharedSubAvailable   *byte   // 0x2A
}

// Connect is a CONNECT packet.
type Connect struct {
	ProtocolName    string // "MQTT" (or "MQIsdp" for 3.1, which is rejected)
	ProtocolVersion byte   // V311 or V5
	CleanStart      bool   // Clean Session in 3.1.1
	KeepAlive       uint16
	ClientID        string
	UsernameFlag    bool
	Username        string
	PasswordFlag    bool
	Password        []byte
	WillFlag        bool
	WillQoS         byte
	WillRetain      bool
	WillTopic       string
	WillPayload     []byte
	WillProperties  Properties // v5 only
	Properties      Properties // v5 only
}

// Connack is a CONNACK packet. ReasonCode is the MQTT 5 reason code; for
// 3.1.1 the encoder maps it to the nearest 3.1.1 return code.
type Connack struct {
	SessionPresent bool
	ReasonCode     byte
	Properties     Properties
}

// Publish is a PUBLISH packet. Payload and Topic may alias the decoder's
// input buffer (see Decode); copy them before keeping them.
type Publish struct {
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      string
	PacketID   uint16 // only when QoS > 0
	Properties Properties
	Payload    []byte
}

// Ack is PUBACK, PUBREC, PUBREL or PUBCOMP (Type says which).
type Ack struct {
	Type       byte
	PacketID   uint16
	ReasonCode byte
	Properties Properties
}

// Subscription is one topic filter with its options.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool // v5
	RetainAsPublished bool // v5
	RetainHandling    byte // v5: 0, 1 or 2
}

// Subscribe is a SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties
	Subscriptions []Subscription
}

// Suback is a SUBACK packet; ReasonCodes hold granted QoS or failure codes
// (0x80 in 3.1.1).
type Suback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []byte
}

// Unsubscribe is an UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties
	Filters    []string
}

// Unsuback is an UNSUBACK packet (ReasonCodes only in v5).
type Unsuback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []byte
}

// Disconnect is a DISCONNECT packet (reason code and properties in v5 only).
type Disconnect struct {
	ReasonCode byte
	Properties Properties
}

// Auth is an MQTT 5 AUTH packet.
type Auth struct {
	ReasonCode byte
	Properties Properties
}

// Pingreq and Pingresp carry no data.
type Pingreq struct{}
type Pingresp struct{}
