package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// ErrRefused is returned (wrapped) when the broker answers CONNECT or
// SUBSCRIBE with a failure reason code.
var ErrRefused = errors.New("refused by broker")

// rawConn is a minimal MQTT client connection built on the project codec:
// no goroutines of its own, explicit buffering, so the benchmark's hot loops
// decide when to flush.
type rawConn struct {
	nc      net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	version byte
	scratch []byte // encode buffer
	big     []byte // body buffer for packets larger than the read buffer
	// serverKeepAlive is the MQTT 5 Server Keep Alive from CONNACK, if any.
	serverKeepAlive uint16
	// maxPacket bounds accepted packets; 0 means defaultMaxPacket.
	maxPacket int
}

// defaultMaxPacket bounds the packets the load generator accepts, so a
// broker cannot make it allocate arbitrarily much.
const defaultMaxPacket = 16 << 20

// connectConfig describes one connection to open.
type connectConfig struct {
	addr      string
	clientID  string
	username  string
	password  string
	version   byte
	keepAlive uint16
	bufSize   int
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
}

// dialMQTT opens a TCP connection and completes CONNECT/CONNACK.
func dialMQTT(ctx context.Context, cfg connectConfig) (*rawConn, error) {
	dial := cfg.dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	size := cfg.bufSize
	if size <= 0 {
		size = 64 << 10
	}
	c := &rawConn{
		nc:      nc,
		br:      bufio.NewReaderSize(nc, size),
		bw:      bufio.NewWriterSize(nc, size),
		version: cfg.version,
	}
	if c.version == 0 {
		c.version = packets.V311
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := c.handshake(cfg); err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect %s: %w", cfg.clientID, ctx.Err())
		}
		return nil, fmt.Errorf("connect %s: %w", cfg.clientID, err)
	}
	return c, nil
}

func (c *rawConn) handshake(cfg connectConfig) error {
	p := &packets.Connect{
		ProtocolName:    "MQTT",
		ProtocolVersion: c.version,
		CleanStart:      true,
		KeepAlive:       cfg.keepAlive,
		ClientID:        cfg.clientID,
	}
	if cfg.username != "" {
		p.UsernameFlag, p.Username = true, cfg.username
	}
	if cfg.password != "" {
		p.PasswordFlag, p.Password = true, []byte(cfg.password)
	}
	if c.version == packets.V5 {
		rm := uint16(65535)
		p.Properties.ReceiveMaximum = &rm
	}
	c.scratch = packets.AppendConnect(c.scratch[:0], p)
	if err := c.write(c.scratch); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	h, body, err := c.readPacket()
	if err != nil {
		return fmt.Errorf("read CONNACK: %w", err)
	}
	if h.Type != packets.CONNACK {
		return fmt.Errorf("expected CONNACK, got packet type %d: %w", h.Type, packets.ErrProtocol)
	}
	ack, err := packets.DecodeConnack(c.version, h, body)
	if err != nil {
		return fmt.Errorf("decode CONNACK: %w", err)
	}
	if ack.ReasonCode != packets.Success {
		return fmt.Errorf("CONNACK reason 0x%02X: %w", ack.ReasonCode, ErrRefused)
	}
	if ack.Properties.ServerKeepAlive != nil {
		c.serverKeepAlive = *ack.Properties.ServerKeepAlive
	}
	return nil
}

// subscribe sends one SUBSCRIBE with the filters and waits for its SUBACK.
// It must be called before the connection is handed to a reader loop.
func (c *rawConn) subscribe(ctx context.Context, id uint16, qos byte, filters ...string) error {
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	s := &packets.Subscribe{PacketID: id}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, packets.Subscription{Filter: f, QoS: qos})
	}
	c.scratch = packets.AppendSubscribe(c.scratch[:0], c.version, s)
	if err := c.write(c.scratch); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for {
		h, body, err := c.readPacket()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("subscribe: %w", ctx.Err())
			}
			return fmt.Errorf("subscribe: read SUBACK: %w", err)
		}
		if h.Type != packets.SUBACK {
			continue // e.g. a retained message; ignored
		}
		ack, err := packets.DecodeSuback(c.version, h, body)
		if err != nil {
			return fmt.Errorf("subscribe: decode SUBACK: %w", err)
		}
		if ack.PacketID != id {
			continue
		}
		for i, rc := range ack.ReasonCodes {
			if rc >= 0x80 {
				return fmt.Errorf("subscribe %q: reason 0x%02X: %w", filters[min(i, len(filters)-1)], rc, ErrRefused)
			}
		}
		return nil
	}
}

// write buffers b.
func (c *rawConn) write(b []byte) error {
	_, err := c.bw.Write(b)
	return err
}

// readPacket returns the next packet's header and body. The body aliases an
// internal buffer and is valid until the next call.
func (c *rawConn) readPacket() (packets.FixedHeader, []byte, error) {
	var h packets.FixedHeader
	for n := 2; ; n++ {
		b, err := c.br.Peek(n)
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return h, nil, err
		}
		var ok bool
		limit := c.maxPacket
		if limit == 0 {
			limit = defaultMaxPacket
		}
		h, ok, err = packets.ParseFixedHeader(b, limit)
		if err != nil {
			return h, nil, err
		}
		if ok {
			break
		}
		if n >= 5 {
			return h, nil, fmt.Errorf("remaining length: %w", packets.ErrMalformed)
		}
	}
	if _, err := c.br.Discard(h.Len); err != nil {
		return h, nil, err
	}
	if h.Remaining <= c.br.Size() {
		body, err := c.br.Peek(h.Remaining)
		if err != nil {
			return h, nil, unexpectedEOF(err)
		}
		_, _ = c.br.Discard(h.Remaining) // the peeked bytes stay valid until the next read
		return h, body, nil
	}
	if cap(c.big) < h.Remaining {
		c.big = make([]byte, h.Remaining)
	}
	body := c.big[:h.Remaining]
	if _, err := io.ReadFull(c.br, body); err != nil {
		return h, nil, unexpectedEOF(err)
	}
	return h, body, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// disconnect sends DISCONNECT (best effort) and closes the connection.
func (c *rawConn) disconnect() {
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.scratch = packets.AppendDisconnect(c.scratch[:0], c.version, &packets.Disconnect{})
	_, _ = c.bw.Write(c.scratch)
	_ = c.bw.Flush()
	_ = c.nc.Close()
}
