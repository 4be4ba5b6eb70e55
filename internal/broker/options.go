package broker

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// Defaults applied to zero-valued Options fields.
const (
	DefaultMaxPacketSize    = 1 << 20
	DefaultReceiveMaximum   = 1024
	DefaultMaxInflight      = 64
	DefaultMaxQueued        = 1000
	DefaultMaxOutboundBytes = 1 << 20
	DefaultConnectTimeout   = 10 * time.Second
	DefaultTopicAliasMax    = 64
	DefaultBackpressureWait = 2 * time.Second
)

// DropPolicy says what happens when a session queue is full
// (Options.MaxQueued). Every drop is counted in Stats.DroppedQueue.
type DropPolicy int

const (
	// DropOldest discards the oldest queued message to make room.
	DropOldest DropPolicy = iota
	// DropNewest discards the message that does not fit.
	DropNewest
	// DropDisconnect discards the message that does not fit and
	// disconnects the client if it is connected (v5: DISCONNECT 0x97
	// Quota exceeded), so a consumer that cannot keep up notices.
	DropDisconnect
)

// ParseDropPolicy parses "drop_oldest", "drop_newest" or "disconnect".
func ParseDropPolicy(s string) (DropPolicy, error) {
	switch s {
	case "drop_oldest", "":
		return DropOldest, nil
	case "drop_newest":
		return DropNewest, nil
	case "disconnect":
		return DropDisconnect, nil
	}
	return 0, fmt.Errorf("broker: queue policy %q: want drop_oldest, drop_newest or disconnect", s)
}

// Options configures a Server. The zero value is usable: no anonymous access
// (so an Authenticator or AllowAnonymous is needed to accept clients) and the
// Default* limits.
type Options struct {
	// Logger receives connection and protocol events; nil discards them.
	Logger *slog.Logger
	// Authenticator decides who a connecting client is. nil means every
	// client is anonymous, which is accepted only when AllowAnonymous is set.
	Authenticator Authenticator
	// Authorizer confines what a principal may publish and subscribe to.
	// nil allows everything except publishing to topics starting with '$'.
	Authorizer Authorizer
	// Hook sees every accepted client PUBLISH; nil means none. Use
	// ChainHooks to give several consumers the same batches.
	Hook PublishHook
	// Observer is told when clients connect, subscribe and disconnect; nil
	// means nobody is.
	Observer Observer
	// AllowAnonymous accepts clients when the Authenticator is nil or
	// returns ErrNoCredentials.
	AllowAnonymous bool
	// MaxPacketSize bounds inbound packets (default 1 MiB). Larger packets
	// get a v5 DISCONNECT 0x95 or, for 3.1.1, a closed connection.
	MaxPacketSize int
	// ReceiveMaximum is the inbound QoS 1 inflight window advertised to v5
	// clients (default 1024).
	ReceiveMaximum uint16
	// MaxInflight bounds outbound unacknowledged QoS 1 messages per session
	// (default 64; the client's Receive Maximum lowers it).
	MaxInflight int
	// MaxQueued bounds the messages a session queues while offline or while
	// its inflight window is full (default 1000); QueuePolicy says which
	// message goes when it is full.
	MaxQueued int
	// QueuePolicy applies when a session queue is full (default
	// DropOldest); for online sessions only after BackpressureWait.
	QueuePolicy DropPolicy
	// BackpressureWait is how long a client's reader may pause when its
	// QoS 1/2 message found an online subscriber's queue full, waiting
	// for the subscriber to catch up before QueuePolicy drops (default
	// 2s; negative: no backpressure, drop at once). See backpressure.go.
	BackpressureWait time.Duration
	// PublishRate limits the PUBLISH packets a connection may send per
	// second (0: unlimited). A client above it is not disconnected: its
	// connection is not read until it is back under the rate, so TCP flow
	// control slows it down (Stats.Throttled counts the pauses).
	PublishRate int
	// PublishBurst is the number of PUBLISH packets a connection may send
	// at once above PublishRate (default: PublishRate, at least 1).
	PublishBurst int
	// TopicAliasMax is the Topic Alias Maximum advertised to v5
	// clients for client to server aliases (default 64; negative: none).
	TopicAliasMax int
	// SessionStore makes persistent sessions and retained messages
	// survive a restart; nil keeps them in memory only. New loads it.
	SessionStore SessionStore
	// MaxOutboundBytes bounds the encoded output buffered per connection
	// (default 1 MiB). QoS 0 messages beyond it are dropped and counted.
	MaxOutboundBytes int
	// MaxKeepAlive caps the keep alive of v5 clients through the Server Keep
	// Alive property; 0 accepts the client's value.
	MaxKeepAlive uint16
	// ConnectTimeout is the time allowed between accept and a complete
	// CONNECT (default 10s).
	ConnectTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxPacketSize <= 0 {
		o.MaxPacketSize = DefaultMaxPacketSize
	}
	if o.ReceiveMaximum == 0 {
		o.ReceiveMaximum = DefaultReceiveMaximum
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.MaxInflight > 65535 {
		o.MaxInflight = 65535
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = DefaultMaxQueued
	}
	if o.MaxOutboundBytes <= 0 {
		o.MaxOutboundBytes = DefaultMaxOutboundBytes
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	switch {
	case o.BackpressureWait == 0:
		o.BackpressureWait = DefaultBackpressureWait
	case o.BackpressureWait < 0:
		o.BackpressureWait = 0
	}
	if o.PublishBurst <= 0 {
		o.PublishBurst = max(o.PublishRate, 1)
	}
	switch {
	case o.TopicAliasMax == 0:
		o.TopicAliasMax = DefaultTopicAliasMax
	case o.TopicAliasMax < 0:
		o.TopicAliasMax = 0
	case o.TopicAliasMax > 65535:
		o.TopicAliasMax = 65535
	}
	return o
}

// ConnectInfo is what a client presented in its CONNECT, given to the
// Authenticator.
type ConnectInfo struct {
	ClientID        string
	Username        string
	HasUsername     bool
	Password        []byte
	HasPassword     bool
	RemoteAddr      net.Addr
	ProtocolVersion byte
	// PeerCertificates is the verified client certificate chain when the
	// client connected over TLS and presented one (leaf first); nil
	// otherwise.
	PeerCertificates []*x509.Certificate
}

// ClientInfo identifies a connected client to an Observer.
type ClientInfo struct {
	ClientID        string
	Principal       *Principal
	RemoteAddr      net.Addr
	ProtocolVersion byte
}

// Observer is told about client lifecycle events. The calls are made from
// the client's connection goroutine and must not block; they may call
// Server.Publish. OnConnect follows the CONNACK and the messages the session
// owed; OnSubscribe follows the SUBACK (and the retained messages) of each
// granted filter; OnDisconnect is called once per connection that was
// accepted, after its session was detached.
type Observer interface {
	OnConnect(c ClientInfo)
	OnSubscribe(c ClientInfo, filter string)
	OnDisconnect(c ClientInfo)
}

// Principal is who a connection authenticated as.
type Principal struct {
	Name      string // thing name (or "admin"); empty for anonymous
	Admin     bool
	Anonymous bool
	// CertificateID identifies the client certificate the connection
	// authenticated with; empty otherwise.
	CertificateID string
	// CheckReceive asks the Authorizer's Receiver before each delivery to
	// this principal (see Receiver).
	CheckReceive bool
	// Authz is the Authenticator's and Authorizer's own per-connection
	// state (a compiled policy); the broker never looks at it.
	Authz any
}

// Errors an Authenticator returns to select the CONNACK reason.
var (
	// ErrBadCredentials rejects the connection with CONNACK 0x86 (3.1.1: 4).
	ErrBadCredentials = errors.New("bad username or password")
	// ErrNotAuthorized rejects the connection with CONNACK 0x87 (3.1.1: 5).
	ErrNotAuthorized = errors.New("not authorized")
	// ErrNoCredentials makes the client anonymous if AllowAnonymous is set,
	// otherwise it is rejected with CONNACK 0x87.
	ErrNoCredentials = errors.New("no credentials")
)

// Errors returned by Server methods.
var (
	// ErrServerClosed is returned by Publish and Serve once Close was called.
	ErrServerClosed = errors.New("broker: server closed")
	// ErrInvalidTopic is returned by Publish for an invalid topic name.
	ErrInvalidTopic = errors.New("broker: invalid topic name")
	// ErrInvalidQoS is returned by Publish for a QoS above 2.
	ErrInvalidQoS = errors.New("broker: unsupported QoS")
)

// Authenticator decides who a connecting client is. Any error other than the
// sentinel errors above rejects the client with CONNACK 0x88 (server
// unavailable).
type Authenticator interface {
	Authenticate(ctx context.Context, c *ConnectInfo) (*Principal, error)
}

// Authorizer confines principals. A denied PUBLISH is answered with a v5
// PUBACK 0x87 for QoS 1 (QoS 0 is dropped); for 3.1.1 it is dropped silently
// (a QoS 1 PUBACK is still sent). A denied subscription gets a SUBACK failure
// code (v5 0x87, 3.1.1 0x80). Topics starting with '$' are publishable only
// when an Authorizer exists and allows them.
type Authorizer interface {
	CanPublish(p *Principal, topic string) bool
	CanSubscribe(p *Principal, filter string) bool
}

// Message is an accepted application message given to the Hook. Fields alias
// connection buffers and are valid only during the OnPublish call; copy what
// you keep.
type Message struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	ClientID   string
	Principal  *Principal
	Received   time.Time
	Properties *packets.Properties // may be nil (3.1.1)
}

// PublishHook sees every PUBLISH accepted from a client (after
// authorization), and every will message published for a client. It is
// called from the client's read loop with all publishes decoded in one read
// pass, after they were routed to subscribers. QoS 1 PUBACKs for the batch
// are sent only after OnPublish returns nil. On error, v5 clients get PUBACK
// 0x80 for the QoS 1 messages of the batch and 3.1.1 clients are
// disconnected (they resend). A slow hook slows down only that connection.
type PublishHook interface {
	OnPublish(ctx context.Context, batch []*Message) error
}

// ChainHooks returns a hook that gives each batch to hooks in order and
// stops at the first error. nil hooks are skipped; with none left it
// returns nil.
func ChainHooks(hooks ...PublishHook) PublishHook {
	var hs chain
	for _, h := range hooks {
		if h != nil {
			hs = append(hs, h)
		}
	}
	switch len(hs) {
	case 0:
		return nil
	case 1:
		return hs[0]
	}
	return hs
}

type chain []PublishHook

func (hs chain) OnPublish(ctx context.Context, batch []*Message) error {
	for _, h := range hs {
		if err := h.OnPublish(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// Stats are cumulative counters and current gauges of a Server.
type Stats struct {
	Connections     int64 `json:"connections"`    // currently connected clients
	ConnectsTotal   int64 `json:"connects_total"` // accepted CONNECTs since start
	Sessions        int64 `json:"sessions"`       // sessions held, online and offline
	Subscriptions   int64 `json:"subscriptions"`  // subscriptions held
	Retained        int64 `json:"retained"`       // retained messages held
	MessagesIn      int64 `json:"messages_in"`    // PUBLISH accepted from clients and Publish calls
	MessagesOut     int64 `json:"messages_out"`   // PUBLISH handed to connections
	BytesIn         int64 `json:"bytes_in"`
	BytesOut        int64 `json:"bytes_out"`
	Dropped         int64 `json:"dropped"`           // sum of the Dropped* counters
	DroppedSlow     int64 `json:"dropped_slow"`      // QoS 0 dropped because a connection's output was full
	DroppedQueue    int64 `json:"dropped_queue"`     // queued messages dropped because a session queue was full
	DroppedTooLarge int64 `json:"dropped_too_large"` // messages bigger than the client's Maximum Packet Size
	DroppedExpired  int64 `json:"dropped_expired"`   // queued messages whose Message Expiry Interval passed
	Denied          int64 `json:"denied"`            // publishes, subscriptions and deliveries refused by the Authorizer
	AuthFailures    int64 `json:"auth_failures"`     // rejected CONNECTs
	ProtocolErrors  int64 `json:"protocol_errors"`   // connections closed for malformed or illegal input
	Panics          int64 `json:"panics"`            // connection goroutines recovered from a panic
	Throttled       int64 `json:"throttled"`         // read pauses of clients above Options.PublishRate
	// Backpressured counts read pauses of publishers whose QoS 1/2
	// message found an online subscriber's queue full;
	// BackpressureTimeouts the subscribers that did not drain within
	// Options.BackpressureWait (their excess went by the queue policy).
	Backpressured        int64 `json:"backpressured"`
	BackpressureTimeouts int64 `json:"backpressure_timeouts"`
}
