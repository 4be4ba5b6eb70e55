// Package uplink is the agent's MQTT 5 client connection to the cloud: TCP
// or TLS (with a client certificate), CONNECT with username/password,
// pipelined QoS 1 publishes whose PUBACK reason codes are reported per
// message, subscriptions, keep alive and inbound messages. It uses the
// broker's packet codec (internal/broker/packets) and keeps one connection;
// reconnecting is the caller's job (internal/edge/bridge).
//
// Messages are written in the order Publish is called, so the server
// receives them in that order; an MQTT server handles the PUBLISH packets
// of one connection in order.
package uplink

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// ErrClosed is reported for publishes pending when the connection ends.
var ErrClosed = errors.New("uplink: connection closed")

// Options configure a connection.
type Options struct {
	Addr     string      // host:port
	TLS      *tls.Config // nil: plain TCP
	ClientID string
	Username string
	Password []byte
	// KeepAlive is the MQTT keep alive (default 30s).
	KeepAlive time.Duration
	// CleanStart discards the server's session for ClientID;
	// SessionExpiry keeps it after a disconnect (subscriptions and the
	// messages for them that arrive while the agent is away).
	CleanStart    bool
	SessionExpiry time.Duration
	// MaxInflight bounds unacknowledged QoS 1 publishes (default 64; the
	// server's Receive Maximum lowers it).
	MaxInflight int
	DialTimeout time.Duration // default 10s
	// Dial replaces net.Dialer (tests, proxies).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnMessage receives inbound PUBLISH packets on the reader goroutine;
	// the QoS 1 PUBACK is sent after it returns. It must not block for
	// long. topic and payload are copies.
	OnMessage func(topic string, payload []byte, retain bool)
	Logger    *slog.Logger
}

// AckFunc is told the PUBACK reason code of a QoS 1 publish, or err when the
// connection ended before the PUBACK.
type AckFunc func(reason byte, err error)

// Error is a refusal by the server: a CONNACK, SUBACK or DISCONNECT reason.
type Error struct {
	Op     string
	Reason byte
	Text   string // reason string property, if any
}

func (e *Error) Error() string {
	s := fmt.Sprintf("uplink: %s: reason %#02x (%s)", e.Op, e.Reason, ReasonName(e.Reason))
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// ReasonName names an MQTT 5 reason code.
func ReasonName(rc byte) string {
	switch rc {
	case 0x00:
		return "success"
	case 0x10:
		return "no matching subscribers"
	case 0x80:
		return "unspecified error"
	case 0x83:
		return "implementation specific error"
	case 0x86:
		return "bad user name or password"
	case 0x87:
		return "not authorized"
	case 0x88:
		return "server unavailable"
	case 0x89:
		return "server busy"
	case 0x8A:
		return "banned"
	case 0x8B:
		return "server shutting down"
	case 0x8E:
		return "session taken over"
	case 0x90:
		return "topic name invalid"
	case 0x95:
		return "packet too large"
	case 0x97:
		return "quota exceeded"
	case 0x99:
		return "payload format invalid"
	}
	return "reason"
}

// Conn is one MQTT 5 connection.
type Conn struct {
	opts      Options
	log       *slog.Logger
	nc        net.Conn
	keepAlive time.Duration
	window    chan struct{}
	maxPacket int

	mu       sync.Mutex
	out      []byte
	spare    []byte
	nextID   uint16
	inflight map[uint16]AckFunc
	subacks  map[uint16]chan *packets.Suback
	err      error
	wake     chan struct{}
	done     chan struct{}
	closing  bool
	wg       sync.WaitGroup
}

// Dial connects, sends CONNECT and waits for CONNACK.
func Dial(ctx context.Context, opts Options) (*Conn, error) {
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.MaxInflight <= 0 {
		opts.MaxInflight = 64
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	dial := opts.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	nc, err := dial(dctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("uplink: dial %s: %w", opts.Addr, err)
	}
	if opts.TLS != nil {
		tc := tls.Client(nc, opts.TLS)
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("uplink: TLS handshake with %s: %w", opts.Addr, err)
		}
		nc = tc
	}
	c := &Conn{opts: opts, log: opts.Logger, nc: nc, keepAlive: opts.KeepAlive, inflight: map[uint16]AckFunc{},
		subacks: map[uint16]chan *packets.Suback{}, wake: make(chan struct{}, 1), done: make(chan struct{}), maxPacket: 0}
	if dl, ok := dctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	ack, br, err := c.handshake()
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	window := opts.MaxInflight
	if rm := ack.Properties.ReceiveMaximum; rm != nil && int(*rm) < window {
		window = int(*rm)
	}
	c.window = make(chan struct{}, window)
	if ka := ack.Properties.ServerKeepAlive; ka != nil && *ka > 0 {
		c.keepAlive = time.Duration(*ka) * time.Second
	}
	if mp := ack.Properties.MaximumPacketSize; mp != nil {
		c.maxPacket = int(*mp)
	}
	c.wg.Add(3)
	go c.reader(br)
	go c.writer()
	go c.pinger()
	return c, nil
}

func (c *Conn) handshake() (*packets.Connack, *bufio.Reader, error) {
	ka := uint16(min(c.opts.KeepAlive/time.Second, 65535))
	p := packets.Connect{ProtocolName: "MQTT", ProtocolVersion: packets.V5, CleanStart: c.opts.CleanStart,
		KeepAlive: ka, ClientID: c.opts.ClientID}
	if c.opts.Username != "" {
		p.UsernameFlag, p.Username = true, c.opts.Username
	}
	if c.opts.Password != nil {
		p.PasswordFlag, p.Password = true, c.opts.Password
	}
	if c.opts.SessionExpiry > 0 {
		se := uint32(min(c.opts.SessionExpiry/time.Second, 1<<32-1))
		p.Properties.SessionExpiry = &se
	}
	rm := uint16(64)
	p.Properties.ReceiveMaximum = &rm
	if _, err := c.nc.Write(packets.AppendConnect(nil, &p)); err != nil {
		return nil, nil, fmt.Errorf("uplink: send CONNECT: %w", err)
	}
	br := bufio.NewReaderSize(c.nc, 16<<10)
	h, body, err := readPacket(br)
	if err != nil {
		return nil, nil, fmt.Errorf("uplink: read CONNACK: %w", err)
	}
	if h.Type != packets.CONNACK {
		return nil, nil, fmt.Errorf("uplink: expected CONNACK, got %s", packets.TypeName(h.Type))
	}
	ack, err := packets.DecodeConnack(packets.V5, h, body)
	if err != nil {
		return nil, nil, fmt.Errorf("uplink: CONNACK: %w", err)
	}
	if ack.ReasonCode >= 0x80 {
		return nil, nil, &Error{Op: "connect", Reason: ack.ReasonCode, Text: ack.Properties.ReasonString}
	}
	return ack, br, nil
}

// readPacket reads one whole packet.
func readPacket(br *bufio.Reader) (packets.FixedHeader, []byte, error) {
	var hdr [5]byte
	for n := 0; ; n++ {
		if n == len(hdr) {
			return packets.FixedHeader{}, nil, fmt.Errorf("uplink: %w", packets.ErrMalformed)
		}
		b, err := br.ReadByte()
		if err != nil {
			return packets.FixedHeader{}, nil, err
		}
		hdr[n] = b
		h, ok, err := packets.ParseFixedHeader(hdr[:n+1], 0)
		if err != nil {
			return h, nil, err
		}
		if ok {
			body := make([]byte, h.Remaining)
			if _, err := io.ReadFull(br, body); err != nil {
				return h, nil, err
			}
			return h, body, nil
		}
	}
}

// Done is closed when the connection has ended; Err says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it is up or after Close).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail ends the connection with err and reports pending publishes.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return
	default:
	}
	if !c.closing {
		c.err = err
	}
	pending := c.inflight
	c.inflight = map[uint16]AckFunc{}
	close(c.done)
	c.mu.Unlock()
	c.nc.Close()
	for _, f := range pending {
		f(0, ErrClosed)
	}
}

func (c *Conn) send(b []byte) error {
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return ErrClosed
	default:
	}
	c.out = append(c.out, b...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

func (c *Conn) writer() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		c.mu.Lock()
		buf := c.out
		c.out, c.spare = c.spare[:0], nil
		c.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		if _, err := c.nc.Write(buf); err != nil {
			c.fail(fmt.Errorf("uplink: write: %w", err))
			return
		}
		c.mu.Lock()
		if cap(buf) <= 1<<20 {
			c.spare = buf[:0]
		}
		c.mu.Unlock()
	}
}

func (c *Conn) pinger() {
	defer c.wg.Done()
	t := time.NewTicker(c.keepAlive * 3 / 4)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if c.send(packets.AppendPingreq(nil)) != nil {
				return
			}
		}
	}
}

func (c *Conn) reader(br *bufio.Reader) {
	defer c.wg.Done()
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.keepAlive * 3 / 2))
		h, body, err := readPacket(br)
		if err != nil {
			c.fail(fmt.Errorf("uplink: read: %w", err))
			return
		}
		if err := c.handle(h, body); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *Conn) handle(h packets.FixedHeader, body []byte) error {
	switch h.Type {
	case packets.PUBACK:
		var a packets.Ack
		if err := packets.DecodeAck(packets.V5, h, body, &a); err != nil {
			return fmt.Errorf("uplink: PUBACK: %w", err)
		}
		c.mu.Lock()
		f := c.inflight[a.PacketID]
		delete(c.inflight, a.PacketID)
		c.mu.Unlock()
		if f == nil {
			return nil
		}
		<-c.window
		f(a.ReasonCode, nil)
	case packets.PUBLISH:
		var p packets.Publish
		if err := packets.DecodePublish(packets.V5, h, body, &p); err != nil {
			return fmt.Errorf("uplink: PUBLISH: %w", err)
		}
		if c.opts.OnMessage != nil {
			c.opts.OnMessage(p.Topic, append([]byte(nil), p.Payload...), p.Retain)
		}
		switch p.QoS {
		case 1:
			return c.send(packets.AppendAck(nil, packets.V5, &packets.Ack{Type: packets.PUBACK, PacketID: p.PacketID}))
		case 2:
			return c.send(packets.AppendAck(nil, packets.V5, &packets.Ack{Type: packets.PUBREC, PacketID: p.PacketID}))
		}
	case packets.PUBREL:
		var a packets.Ack
		if err := packets.DecodeAck(packets.V5, h, body, &a); err != nil {
			return fmt.Errorf("uplink: PUBREL: %w", err)
		}
		return c.send(packets.AppendAck(nil, packets.V5, &packets.Ack{Type: packets.PUBCOMP, PacketID: a.PacketID}))
	case packets.SUBACK:
		sa, err := packets.DecodeSuback(packets.V5, h, body)
		if err != nil {
			return fmt.Errorf("uplink: SUBACK: %w", err)
		}
		c.mu.Lock()
		ch := c.subacks[sa.PacketID]
		delete(c.subacks, sa.PacketID)
		c.mu.Unlock()
		if ch != nil {
			ch <- sa
		}
	case packets.PINGRESP:
	case packets.DISCONNECT:
		d, err := packets.DecodeDisconnect(packets.V5, h, body)
		if err != nil {
			return fmt.Errorf("uplink: DISCONNECT: %w", err)
		}
		return &Error{Op: "server disconnected", Reason: d.ReasonCode, Text: d.Properties.ReasonString}
	default:
		return fmt.Errorf("uplink: unexpected %s from the server", packets.TypeName(h.Type))
	}
	return nil
}

// id allocates a free packet identifier; c.mu is held.
func (c *Conn) idLocked(used func(uint16) bool) uint16 {
	for {
		c.nextID++
		if c.nextID != 0 && !used(c.nextID) {
			return c.nextID
		}
	}
}

// Publish sends a message. For QoS 1 it first waits for a free inflight
// slot (the call blocks while the window is full) and onAck is called
// once with the PUBACK reason code or with an error. Messages are written
// in call order.
func (c *Conn) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool, onAck AckFunc) error {
	p := packets.Publish{QoS: qos, Retain: retain, Topic: topic, Payload: payload}
	if c.maxPacket > 0 && packets.PublishSize(packets.V5, &p) > c.maxPacket {
		return &Error{Op: "publish " + topic, Reason: 0x95, Text: fmt.Sprintf("larger than the server's maximum packet size %d", c.maxPacket)}
	}
	if qos == 0 {
		return c.send(packets.AppendPublish(nil, packets.V5, &p))
	}
	select {
	case c.window <- struct{}{}:
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		<-c.window
		return ErrClosed
	default:
	}
	p.QoS = 1
	p.PacketID = c.idLocked(func(id uint16) bool { _, a := c.inflight[id]; _, b := c.subacks[id]; return a || b })
	c.inflight[p.PacketID] = onAck
	c.out = packets.AppendPublish(c.out, packets.V5, &p)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// Subscribe subscribes and returns the SUBACK reason codes (granted QoS or
// failure codes >= 0x80, one per subscription).
func (c *Conn) Subscribe(ctx context.Context, subs []packets.Subscription) ([]byte, error) {
	ch := make(chan *packets.Suback, 1)
	c.mu.Lock()
	id := c.idLocked(func(id uint16) bool { _, a := c.inflight[id]; _, b := c.subacks[id]; return a || b })
	c.subacks[id] = ch
	c.mu.Unlock()
	if err := c.send(packets.AppendSubscribe(nil, packets.V5, &packets.Subscribe{PacketID: id, Subscriptions: subs})); err != nil {
		return nil, err
	}
	select {
	case sa := <-ch:
		return sa.ReasonCodes, nil
	case <-c.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close sends DISCONNECT (normal) and closes the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	_ = c.send(packets.AppendDisconnect(nil, packets.V5, &packets.Disconnect{}))
	// Give the writer a moment to flush the DISCONNECT.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		empty := len(c.out) == 0
		c.mu.Unlock()
		if empty {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.fail(nil)
	c.wg.Wait()
	return nil
}
