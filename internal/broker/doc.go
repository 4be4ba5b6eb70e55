// Package broker is the MQTT 3.1.1 and 5.0 server: it owns connections,
// sessions (clean and persistent), subscriptions (plain and shared),
// QoS 0/1/2 delivery with inflight windows and offline queues, retained
// messages, wills, keep alive, session takeover, topic aliases,
// subscription identifiers, the session store that makes persistent
// sessions and retained messages survive restarts (SessionStore, FileStore)
// and the limits that protect the process from misbehaving clients. Packet encoding lives in
// internal/broker/packets and the subscription index in
// internal/broker/topics; authentication, authorization and what happens to
// accepted messages (storage, rules) are injected through the
// Authenticator, Authorizer and PublishHook interfaces.
//
// # Connections and goroutines
//
// Each connection has a reader goroutine and, while output is pending, a
// writer goroutine. A quiet connection moves to a fresh reader goroutine
// after each read pass that handled packets, so it idles on a minimal
// stack. An idle TCP connection waits for input without a buffer
// (readwait_linux.go). The reader reads into one buffer (a pooled
// 512-byte buffer while the connection is quiet, a pooled 64 KiB buffer
// while it is busy) and handles every complete packet of a read pass
// before reading again; there is no goroutine or channel per packet.
// PUBLISH payloads are not copied on the QoS 0 path: the message is routed
// while it still lives in the read buffer. The writer
// goroutine exists only while there is output to write: the first append to
// an empty buffer starts it and it exits once the buffer stays empty, so an
// idle connection costs one goroutine.
//
// # Write batching
//
// Anything sent to a client (acks, routed messages from any publisher) is
// appended in encoded form to the connection's output buffer under a
// mutex; the writer swaps that buffer for a spare one and writes it with a
// single Write, so a busy subscriber gets many packets per system call. A
// QoS 0 message is encoded once per protocol version and retain flag and
// the bytes are copied to each subscriber. PUBACKs of a read pass are
// appended together after the PublishHook accepted the batch (at most 128
// messages per hook call). Output buffers of busy connections are reused
// and handed to a pool when the writer goes idle.
//
// # Limits
//
// Options.MaxOutboundBytes bounds a connection's buffered output: QoS 0
// messages beyond it are dropped and counted (Stats.DroppedSlow), so a slow
// consumer never blocks a publisher nor grows memory without bound. QoS 1/2
// deliveries are bounded by the inflight window (Options.MaxInflight and
// the client's Receive Maximum); beyond it, and while a persistent session
// is offline, they wait in the session queue of at most Options.MaxQueued
// messages, and Options.QueuePolicy says what goes when it is full
// (Stats.DroppedQueue). For an online subscriber a client's QoS 1/2
// message is queued beyond the limit instead, and that publisher's reader
// pauses until the queue drains, at most Options.BackpressureWait
// (backpressure.go): nothing acknowledged is dropped because a subscriber
// is briefly slower than its publisher. Messages larger than a v5 client's Maximum Packet
// Size are dropped (Stats.DroppedTooLarge) and queued messages whose Message
// Expiry Interval passed are dropped (Stats.DroppedExpired). Inbound packets
// above Options.MaxPacketSize end the connection (v5: DISCONNECT 0x95).
// Options.PublishRate pauses reading a client that publishes faster.
//
// # Persistence
//
// With Options.SessionStore set, every state change of a persistent session
// and of the retained messages is appended to the store; acknowledgements
// and QoS 2 packets that depend on such records are written only once the
// store reports them durable (group commit in FileStore). docs/broker.md
// describes the format and the guarantees.
//
// # Scope
//
// Enhanced authentication (AUTH) is not available. Wills are not published
// when the server itself shuts down.
package broker
