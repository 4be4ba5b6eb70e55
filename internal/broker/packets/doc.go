// Package packets owns the MQTT wire format: it decodes and encodes every
// MQTT 3.1.1 and 5.0 control packet, including the variable byte integer
// remaining length, UTF-8 string validation, fixed header and CONNECT flag
// validation and the complete MQTT 5 property table (which property is
// allowed on which packet, single-valued versus repeatable properties).
//
// The package does no I/O and keeps no state. A server reads a fixed
// header with ParseFixedHeader, reads Remaining more bytes, and passes them
// to the Decode function for the packet type (or to Decode, which
// dispatches). Encoders append to a caller-supplied buffer.
//
// Decode errors wrap exactly one of ErrMalformed, ErrProtocol,
// ErrPacketTooLarge or ErrUnsupportedVersion, so the caller can pick the
// MQTT 5 reason code (0x81, 0x82, 0x95, 0x84) or the 3.1.1 reaction, and
// their text says what was wrong, e.g.
// "packets: PUBLISH: topic name contains wildcard: malformed packet".
//
// Aliasing: DecodePublish does not copy; Publish.Topic and Publish.Payload
// point into the body passed in, which keeps the QoS 0 path free of
// allocations. All other decoders, and the properties of a PUBLISH, copy
// what they keep.
//
// Topic names and filters are checked with ValidTopicName and
// ValidTopicFilter; matching subscriptions against topics is the job of
// package topics.
package packets
