package broker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

const (
	// smallReadBuf is the read buffer of a quiet connection.
	smallReadBuf = 512
	// bigReadBuf is the pooled read buffer used while a connection is busy.
	bigReadBuf = 64 << 10
	// maxSpareOut is the largest output buffer kept for reuse while busy.
	maxSpareOut = 1 << 20
	// idleSpareOut is the largest output buffer kept by an idle connection.
	idleSpareOut = 1 << 10
	// maxHookBatch bounds the messages given to one PublishHook call (and
	// the decoded messages a connection holds).
	maxHookBatch = 128
	// flushTimeout bounds the final flush of a closing connection.
	flushTimeout = 3 * time.Second
)

// pendingAck is a PUBACK or PUBREC waiting for the end of a read pass.
type pendingAck struct {
	typ    byte // PUBACK or PUBREC
	fresh  bool // PUBREC of a packet id recorded by this read pass
	id     uint16
	reason byte
	why    string // v5 reason string, sent if the client asked for problem information
}

// conn is one network connection. The reader goroutine (run) decodes and
// handles packets; a writer goroutine (writeLoop) writes whatever other
// goroutines appended to out, one Write per accumulated batch.
type conn struct {
	srv *Server
	nc  net.Conn

	// Set while handling CONNECT, read-only once the connection is
	// attached to its session (published by session.conn).
	version   byte
	clientID  string
	principal *Principal
	sess      *session
	keepAlive time.Duration // 1.5 x the negotiated keep alive; 0 = none
	maxOut    int           // client's Maximum Packet Size; 0 = unlimited
	problems  bool          // v5 Request Problem Information (reason strings on acks)
	aliasMax  uint16        // client's Topic Alias Maximum (server to client aliases)
	will      *will

	// Reader goroutine state.
	rbuf            []byte // read buffer: small or a pooled big one
	small           []byte
	rend            int // bytes of rbuf in use
	armed           time.Time
	rearm           time.Duration
	disarmed        bool
	connected       bool
	cleanDisconnect bool // DISCONNECT received; will discarded unless keepWill
	keepWill        bool
	rt              *router
	pubs            []packets.Publish
	msgs            []Message
	batch           []*Message
	acks            []pendingAck
	now             time.Time
	inAliases       []string  // client to server topic aliases, by alias-1
	pendSeq         uint64    // store records the acks of this read pass wait for
	tokens          float64   // publish rate limit bucket
	tokensAt        time.Time // last refill of tokens
	noWait          bool      // the connection cannot wait without a buffer (waitReadable)

	// Output, appended by any goroutine, written by the writer.
	outMu      sync.Mutex
	out        []byte
	spare      []byte
	outClosed  bool          // no more appends; the writer flushes and closes
	started    bool          // attached: output may be written
	writing    bool          // a writer goroutine runs
	writerExit chan struct{} // closed when the writer exits, if set
	needSeq    uint64        // session store record out may be written after
	aliases    map[string]uint16
	aliasNext  uint16
	aliasVal   uint16 // the alias of the PUBLISH being encoded
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{srv: s, nc: nc}
}

// run is the reader goroutine. A quiet connection hands its reading over
// to a fresh goroutine after each read pass that handled packets (see
// readLoop): handling a packet grows the goroutine stack to 4 KiB or more,
// which the garbage collector does not shrink for a goroutine blocked in
// Read, while a fresh goroutine idles on the minimum 2 KiB stack.
func (c *conn) run() {
	s := c.srv
	defer s.wg.Done()
	handoff := false
	defer func() {
		if r := recover(); r != nil {
			s.stats.panics.Add(1)
			s.log.Error("broker: connection goroutine panicked", "client", c.clientID,
				"remote", c.nc.RemoteAddr().String(), "panic", r, "stack", string(debug.Stack()))
			c.cleanDisconnect = false
			handoff = false
		}
		if !handoff {
			s.putReadBuf(c.rbuf)
			c.finish()
		}
	}()
	if handoff = c.readLoop(); handoff {
		s.wg.Add(1)
		go c.run()
	}
}

// finish flushes and closes the connection and detaches the session.
func (c *conn) finish() {
	s := c.srv
	c.outMu.Lock()
	c.outClosed = true
	var pending []byte
	var exited chan struct{}
	switch {
	case c.writing:
		exited = make(chan struct{})
		c.writerExit = exited
	case !c.started:
		pending = c.out
		c.out = nil
	}
	c.outMu.Unlock()
	if exited != nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(flushTimeout))
		<-exited
	} else if len(pending) > 0 {
		// A CONNACK refusing the connection.
		_ = c.nc.SetWriteDeadline(time.Now().Add(flushTimeout))
		if n, err := c.nc.Write(pending); err == nil {
			s.stats.bytesOut.Add(int64(n))
		}
	}
	_ = c.nc.Close()
	if c.sess != nil {
		s.detach(c, !c.cleanDisconnect || c.keepWill)
		s.stats.connections.Add(-1)
		if o := s.opts.Observer; o != nil {
			o.OnDisconnect(c.info())
		}
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// disconnect closes the connection from another goroutine (session takeover,
// server shutdown), sending v5 clients a DISCONNECT with reason code.
func (c *conn) disconnect(reason byte) {
	c.outMu.Lock()
	if !c.outClosed {
		if c.started && c.version == packets.V5 {
			c.out = packets.AppendDisconnect(c.out, packets.V5, &packets.Disconnect{ReasonCode: reason})
		}
		c.outClosed = true
	}
	c.kickLocked()
	writing := c.writing
	c.outMu.Unlock()
	if writing {
		// The writer flushes, then closes the connection.
		_ = c.nc.SetWriteDeadline(time.Now().Add(flushTimeout))
	} else {
		_ = c.nc.Close()
	}
}

// grabLocked gives an empty output a pooled buffer, so busy connections
// reuse buffers instead of growing new ones. c.outMu must be held.
func (c *conn) grabLocked() {
	if c.out == nil {
		c.out = c.srv.getOutBuf()
	}
}

// getOutBuf returns a pooled output buffer (empty), or nil.
func (s *Server) getOutBuf() []byte {
	if p, ok := s.outBufs.Get().(*[]byte); ok {
		b := (*p)[:0]
		*p = nil
		s.boxes.Put(p)
		return b
	}
	return nil
}

func (s *Server) putOutBuf(b []byte) {
	if cap(b) > s.maxSpare() {
		return
	}
	s.outBufs.Put(s.box(b[:0]))
}

// kickLocked starts the writer when output is pending and none runs.
// c.outMu must be held.
func (c *conn) kickLocked() {
	if c.started && !c.writing && len(c.out) > 0 {
		c.writing = true
		c.srv.wg.Add(1)
		go c.writeLoop()
	}
}

// writeLoop writes the accumulated output, one Write per batch, and exits
// when there is nothing left, so idle connections have no writer goroutine.
// Once the output is closed it closes the connection after the last write.
func (c *conn) writeLoop() {
	s := c.srv
	defer s.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			s.stats.panics.Add(1)
			s.log.Error("broker: connection writer panicked", "client", c.clientID, "panic", r, "stack", string(debug.Stack()))
			c.writerFailed()
		}
	}()
	var spare []byte
	lingered := false
	for {
		c.outMu.Lock()
		if spare != nil && c.spare == nil {
			c.spare = spare
		}
		spare = nil
		if len(c.out) == 0 {
			if !lingered && !c.outClosed {
				// Give publishers a moment before exiting under load.
				lingered = true
				c.outMu.Unlock()
				runtime.Gosched()
				continue
			}
			// Idle: hand big buffers to the next busy connection.
			if cap(c.spare) > idleSpareOut {
				s.putOutBuf(c.spare)
				c.spare = nil
			}
			if cap(c.out) > idleSpareOut {
				s.putOutBuf(c.out)
				c.out = nil
			}
			c.writing = false
			closeConn := c.outClosed
			exited := c.writerExit
			c.outMu.Unlock()
			if closeConn {
				_ = c.nc.Close()
			}
			if exited != nil {
				close(exited)
			}
			return
		}
		lingered = false
		buf := c.out
		c.out = c.spare
		c.spare = nil
		need := c.needSeq
		c.needSeq = 0
		c.outMu.Unlock()
		if need > 0 && s.store.Durable() < need {
			// Acks and QoS 2 packets that depend on stored state leave
			// only once it is durable (group commit).
			if err := s.store.Sync(s.ctx, need); err != nil {
				s.log.Error("broker: session store sync failed; closing connection", "client", c.clientID, "err", err)
				c.writerFailed()
				return
			}
		}
		n, err := c.nc.Write(buf)
		s.stats.bytesOut.Add(int64(n))
		if err != nil {
			c.writerFailed()
			return
		}
		if cap(buf) <= s.maxSpare() {
			spare = buf[:0]
		}
	}
}

// maxSpare is the largest output buffer a busy writer keeps for reuse:
// output grows up to MaxOutboundBytes (and beyond with QoS 1/2), and a
// buffer dropped for being large would be grown again, copy by copy, on
// the next batch.
func (s *Server) maxSpare() int {
	return max(maxSpareOut, 2*s.opts.MaxOutboundBytes)
}

// writerFailed ends a writer whose Write failed: the output is closed and
// dropped and the connection closed.
func (c *conn) writerFailed() {
	c.outMu.Lock()
	c.outClosed = true
	c.out = nil
	c.writing = false
	exited := c.writerExit
	c.outMu.Unlock()
	_ = c.nc.Close()
	if exited != nil {
		close(exited)
	}
}

// appendQoS0 appends an encoded QoS 0 PUBLISH, dropping it when the client
// cannot take it (too large, or the output buffer is full).
func (c *conn) appendQoS0(b []byte) bool {
	s := c.srv
	if c.maxOut > 0 && len(b) > c.maxOut {
		s.stats.droppedTooLarge.Add(1)
		return false
	}
	c.outMu.Lock()
	if c.outClosed {
		c.outMu.Unlock()
		return false
	}
	n := len(c.out)
	if n > 0 && n+len(b) > s.opts.MaxOutboundBytes {
		c.outMu.Unlock()
		s.stats.droppedSlow.Add(1)
		return false
	}
	c.grabLocked()
	c.out = append(c.out, b...)
	c.kickLocked()
	c.outMu.Unlock()
	return true
}

// appendPublish encodes p into the output (QoS 1/2 deliveries; never
// dropped for buffer size: the inflight window bounds them). The output is
// written only once the store record seq (if not 0) is durable.
func (c *conn) appendPublish(p *packets.Publish, seq uint64) bool {
	c.outMu.Lock()
	if c.outClosed {
		c.outMu.Unlock()
		return false
	}
	c.grabLocked()
	c.aliasLocked(p)
	c.out = packets.AppendPublish(c.out, c.version, p)
	c.needSeq = max(c.needSeq, seq)
	c.kickLocked()
	c.outMu.Unlock()
	return true
}

// appendPublish0 encodes a QoS 0 p for this connection alone (topic
// aliases or subscription identifiers), dropping it like appendQoS0 when
// it does not fit.
func (c *conn) appendPublish0(p *packets.Publish) bool {
	s := c.srv
	size := packets.PublishSize(c.version, p)
	if c.maxOut > 0 && size+c.aliasSlack() > c.maxOut {
		s.stats.droppedTooLarge.Add(1)
		return false
	}
	c.outMu.Lock()
	if c.outClosed {
		c.outMu.Unlock()
		return false
	}
	if n := len(c.out); n > 0 && n+size > s.opts.MaxOutboundBytes {
		c.outMu.Unlock()
		s.stats.droppedSlow.Add(1)
		return false
	}
	c.grabLocked()
	topic := p.Topic
	c.aliasLocked(p)
	c.out = packets.AppendPublish(c.out, c.version, p)
	p.Topic, p.Properties.TopicAlias = topic, nil
	c.kickLocked()
	c.outMu.Unlock()
	return true
}

// aliasSlack is what a topic alias may add to a PUBLISH.
func (c *conn) aliasSlack() int {
	if c.aliasMax > 0 {
		return 3
	}
	return 0
}

// aliasLocked replaces p's topic by a topic alias when the client accepts
// aliases: a known topic is sent as its alias with an empty topic name, a
// new one gets the next free alias (sent with the topic) until the
// client's maximum is reached. c.outMu must be held: aliases are assigned
// in the order packets enter the output.
func (c *conn) aliasLocked(p *packets.Publish) {
	if c.aliasMax == 0 || p.Topic == "" {
		return
	}
	if a, ok := c.aliases[p.Topic]; ok {
		c.aliasVal = a
		p.Properties.TopicAlias = &c.aliasVal
		p.Topic = ""
		return
	}
	if c.aliasNext >= c.aliasMax {
		return
	}
	c.aliasNext++
	if c.aliases == nil {
		c.aliases = make(map[string]uint16)
	}
	c.aliases[strings.Clone(p.Topic)] = c.aliasNext
	c.aliasVal = c.aliasNext
	p.Properties.TopicAlias = &c.aliasVal
}

// appendAck appends a PUBREL/PUBCOMP-like ack, written once the store
// record seq (if not 0) is durable.
func (c *conn) appendAck(a *packets.Ack, seq uint64) {
	c.outMu.Lock()
	if !c.outClosed {
		c.out = packets.AppendAck(c.out, c.version, a)
		c.needSeq = max(c.needSeq, seq)
		c.kickLocked()
	}
	c.outMu.Unlock()
}

// appendControl appends a control packet produced by enc.
func (c *conn) appendControl(enc func([]byte) []byte) {
	c.outMu.Lock()
	if c.outClosed {
		c.outMu.Unlock()
		return
	}
	c.out = enc(c.out)
	c.kickLocked()
	c.outMu.Unlock()
}

// sendDisconnect queues a v5 DISCONNECT with an optional reason string
// (no-op for 3.1.1 or before CONNACK).
func (c *conn) sendDisconnect(reason byte, why string) {
	if c.version != packets.V5 || !c.connected {
		return
	}
	if !c.fits(why) {
		why = ""
	}
	d := packets.Disconnect{ReasonCode: reason, Properties: packets.Properties{ReasonString: why}}
	c.appendControl(func(b []byte) []byte { return packets.AppendDisconnect(b, packets.V5, &d) })
}

// fits reports whether a reason string keeps a small packet within the
// client's Maximum Packet Size.
func (c *conn) fits(why string) bool {
	return c.maxOut == 0 || len(why)+16 <= c.maxOut
}

// protocolError counts and logs a protocol violation and tells a v5 client
// why it is disconnected. The caller closes the connection.
func (c *conn) protocolError(reason byte, err error) {
	c.srv.stats.protocolErrors.Add(1)
	c.srv.log.Info("broker: protocol error; closing", "client", c.clientID,
		"remote", c.nc.RemoteAddr().String(), "reason", reason, "err", err)
	c.sendDisconnect(reason, err.Error())
}

// reasonFor maps a decode error to a v5 reason code.
func reasonFor(err error) byte {
	switch {
	case errors.Is(err, packets.ErrPacketTooLarge):
		return packets.PacketTooLarge
	case errors.Is(err, packets.ErrProtocol):
		return packets.ProtocolError
	}
	return packets.MalformedPacket
}

// readLoop reads into one buffer and handles every complete packet of a
// read pass before reading again. It keeps a small frame (state lives in
// the conn) so the stack of an idle connection, blocked in Read, stays
// small. It returns false when the connection must close, and true when a
// quiet connection (small read buffer) handled packets and should continue
// on a fresh goroutine.
func (c *conn) readLoop() bool {
	if c.small == nil {
		c.small = c.srv.getSmallBuf()
		c.rbuf = c.small
		_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.opts.ConnectTimeout))
	}
	for {
		c.arm()
		if c.rend == 0 && len(c.rbuf) == smallReadBuf && !c.noWait {
			// Idle: wait for input without a buffer; the small buffer
			// goes back to the pool meanwhile.
			c.srv.putSmallBuf(c.small)
			c.small, c.rbuf = nil, nil
			ok, err := waitReadable(c.nc)
			c.small = c.srv.getSmallBuf()
			c.rbuf = c.small
			if err != nil {
				return c.process(0, err)
			}
			c.noWait = !ok
		}
		n, err := c.nc.Read(c.rbuf[c.rend:])
		if !c.process(n, err) {
			return false
		}
		if n > 0 && len(c.rbuf) == smallReadBuf && !c.srv.closing.Load() {
			return true
		}
	}
}

// arm sets the read deadline for the next read: the keep alive once
// connected, re-armed at most every c.rearm so that the deadline lies
// between 1.5 x keep alive and that plus c.rearm after the last packet.
//
//go:noinline
func (c *conn) arm() {
	if !c.connected {
		return
	}
	if c.keepAlive > 0 {
		if c.rearm == 0 {
			c.rearm = min(c.keepAlive/8, time.Second)
		}
		if now := time.Now(); now.Sub(c.armed) >= c.rearm {
			c.armed = now
			_ = c.nc.SetReadDeadline(now.Add(c.keepAlive + c.rearm))
		}
	} else if !c.disarmed {
		// Keep alive 0: no timeout once connected.
		_ = c.nc.SetReadDeadline(time.Time{})
		c.disarmed = true
	}
}

// process handles the n bytes just read and sizes the buffer for the next
// read. It returns false when the connection must close.
//
//go:noinline
func (c *conn) process(n int, rerr error) bool {
	s := c.srv
	buf, end := c.rbuf, c.rend
	room := len(buf) - end
	if n > 0 {
		end += n
		s.stats.bytesIn.Add(int64(n))
		c.now = time.Now()
	}
	off, need := 0, 0
	for off < end {
		h, ok, err := packets.ParseFixedHeader(buf[off:end], s.opts.MaxPacketSize)
		if err != nil {
			c.flushBatch()
			c.protocolError(reasonFor(err), err)
			return false
		}
		if !ok {
			break
		}
		total := h.Len + h.Remaining
		if end-off < total {
			need = total
			break
		}
		if !c.handle(h, buf[off+h.Len:off+total]) {
			c.flushBatch()
			return false
		}
		off += total
	}
	if !c.flushBatch() {
		return false
	}
	if c.srv.opts.PublishRate > 0 && c.connected {
		c.throttle()
	}
	if off > 0 {
		end = copy(buf, buf[off:end])
	}
	c.rend = end
	if rerr != nil {
		c.readError(rerr)
		return false
	}
	// Size the buffer for what comes next.
	switch {
	case need > len(buf):
		var nb []byte
		if need <= bigReadBuf {
			nb = s.getReadBuf()
		} else {
			nb = make([]byte, need)
		}
		copy(nb, buf[:end])
		s.putReadBuf(buf)
		c.rbuf = nb
	case n == room && len(buf) < bigReadBuf:
		nb := s.getReadBuf()
		copy(nb, buf[:end])
		c.rbuf = nb
	case len(buf) > smallReadBuf && end <= smallReadBuf && n < smallReadBuf:
		// Quiet again: give the big buffer and batch space back.
		copy(c.small, buf[:end])
		s.putReadBuf(buf)
		c.rbuf = c.small
		c.pubs, c.msgs, c.batch, c.acks = nil, nil, nil, nil
		if c.rt != nil {
			c.rt.release()
		}
	}
	return true
}

// box wraps b for a sync.Pool in a reused *[]byte, so pooling a buffer
// does not allocate.
func (s *Server) box(b []byte) *[]byte {
	p, _ := s.boxes.Get().(*[]byte)
	if p == nil {
		p = new([]byte)
	}
	*p = b
	return p
}

// getSmallBuf returns a pooled small read buffer.
func (s *Server) getSmallBuf() []byte {
	if p, ok := s.smallBufs.Get().(*[]byte); ok {
		b := *p
		*p = nil
		s.boxes.Put(p)
		return b
	}
	return make([]byte, smallReadBuf)
}

func (s *Server) putSmallBuf(b []byte) {
	if cap(b) == smallReadBuf {
		s.smallBufs.Put(s.box(b[:smallReadBuf]))
	}
}

// getReadBuf returns a pooled big read buffer.
func (s *Server) getReadBuf() []byte {
	if p, ok := s.readBufs.Get().(*[]byte); ok {
		b := *p
		*p = nil
		s.boxes.Put(p)
		return b
	}
	return make([]byte, bigReadBuf)
}

// putReadBuf returns a big read buffer to the pool; other sizes are left to
// the garbage collector.
func (s *Server) putReadBuf(b []byte) {
	if cap(b) != bigReadBuf {
		return
	}
	s.readBufs.Put(s.box(b[:bigReadBuf]))
}

// readError reports why reading stopped.
func (c *conn) readError(err error) {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		if c.connected {
			c.srv.log.Info("broker: keep alive timeout", "client", c.clientID)
			c.sendDisconnect(packets.KeepAliveTimeout, "keep alive timeout")
		} else {
			c.srv.stats.protocolErrors.Add(1)
			c.srv.log.Info("broker: no CONNECT in time", "remote", c.nc.RemoteAddr().String())
		}
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.srv.log.Debug("broker: connection closed", "client", c.clientID)
	default:
		c.srv.log.Debug("broker: read failed", "client", c.clientID, "err", err)
	}
}

// handle handles one packet; false closes the connection.
func (c *conn) handle(h packets.FixedHeader, body []byte) bool {
	if !c.connected {
		if h.Type != packets.CONNECT {
			c.protocolError(packets.ProtocolError, errors.New("first packet is not CONNECT"))
			return false
		}
		return c.handleConnect(h, body)
	}
	if h.Type == packets.PUBLISH {
		return c.handlePublish(h, body)
	}
	if !c.flushBatch() {
		return false
	}
	s := c.srv
	switch h.Type {
	case packets.PUBACK:
		var a packets.Ack
		if err := packets.DecodeAck(c.version, h, body, &a); err != nil {
			c.protocolError(reasonFor(err), err)
			return false
		}
		if !c.sess.puback(a.PacketID) {
			s.log.Debug("broker: PUBACK for unknown packet id", "client", c.clientID, "id", a.PacketID)
		}
	case packets.PUBREC, packets.PUBCOMP, packets.PUBREL:
		var a packets.Ack
		if err := packets.DecodeAck(c.version, h, body, &a); err != nil {
			c.protocolError(reasonFor(err), err)
			return false
		}
		switch h.Type {
		case packets.PUBREC:
			c.sess.pubrec(c, a.PacketID, a.ReasonCode)
		case packets.PUBCOMP:
			if !c.sess.pubcomp(a.PacketID) {
				s.log.Debug("broker: PUBCOMP for unknown packet id", "client", c.clientID, "id", a.PacketID)
			}
		default:
			comp := packets.Ack{Type: packets.PUBCOMP, PacketID: a.PacketID}
			if !c.sess.releaseInbound(a.PacketID) && c.version == packets.V5 {
				comp.ReasonCode = packets.PacketIdentifierNotFound
			}
			c.appendAck(&comp, 0)
		}
	case packets.SUBSCRIBE:
		return c.handleSubscribe(h, body)
	case packets.UNSUBSCRIBE:
		return c.handleUnsubscribe(h, body)
	case packets.PINGREQ:
		if h.Remaining != 0 {
			c.protocolError(packets.MalformedPacket, errors.New("PINGREQ with payload"))
			return false
		}
		c.appendControl(packets.AppendPingresp)
	case packets.DISCONNECT:
		return c.handleDisconnect(h, body)
	case packets.CONNECT:
		c.protocolError(packets.ProtocolError, errors.New("second CONNECT"))
		return false
	case packets.AUTH:
		if c.version == packets.V5 {
			c.protocolError(packets.ProtocolError, errors.New("AUTH without authentication method"))
		} else {
			c.protocolError(packets.MalformedPacket, errors.New("AUTH in MQTT 3.1.1"))
		}
		return false
	default:
		c.protocolError(packets.ProtocolError, errors.New("unexpected packet type "+packets.TypeName(h.Type)))
		return false
	}
	return true
}

// writeRefusal queues a CONNACK refusing the connection (flushed by
// finish); why becomes the v5 reason string.
func (c *conn) writeRefusal(version byte, reason byte, why string) {
	c.out = packets.AppendConnack(c.out, version, &packets.Connack{ReasonCode: reason,
		Properties: packets.Properties{ReasonString: why}})
}

func newClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "ew-" + hex.EncodeToString(b[:])
}

func (c *conn) handleConnect(h packets.FixedHeader, body []byte) bool {
	s := c.srv
	cp, err := packets.DecodeConnect(h, body)
	if err != nil {
		s.stats.protocolErrors.Add(1)
		s.log.Info("broker: bad CONNECT", "remote", c.nc.RemoteAddr().String(), "err", err)
		var ve *packets.VersionError
		switch {
		case errors.As(err, &ve):
			if ve.Level == packets.V5 {
				c.writeRefusal(packets.V5, packets.UnsupportedProtocolVersion, "")
			} else {
				c.writeRefusal(packets.V311, packets.UnsupportedProtocolVersion, "")
			}
		case connectLevel(body) == packets.V5:
			c.writeRefusal(packets.V5, reasonFor(err), err.Error())
		}
		return false
	}
	c.version = cp.ProtocolVersion
	v5 := c.version == packets.V5
	refuse := func(reason byte, msg string) bool {
		s.stats.authFailures.Add(1)
		s.log.Info("broker: connection refused", "client", cp.ClientID, "remote", c.nc.RemoteAddr().String(),
			"reason", reason, "why", msg)
		c.writeRefusal(c.version, reason, msg)
		return false
	}
	if v5 && cp.Properties.AuthMethod != "" {
		return refuse(0x8C, "enhanced authentication not supported") // Bad authentication method
	}
	clientID := cp.ClientID
	assigned := false
	if clientID == "" {
		if !v5 && !cp.CleanStart {
			return refuse(packets.ClientIdentifierNotValid, "empty client id without clean session")
		}
		clientID = newClientID()
		assigned = v5
	}
	principal, reason, why := c.authenticate(cp, clientID)
	if reason != packets.Success {
		return refuse(reason, why)
	}
	if s.closing.Load() {
		return refuse(packets.ServerUnavailable, "server closing")
	}

	var props packets.Properties
	ka := cp.KeepAlive
	if v5 {
		if s.opts.MaxKeepAlive > 0 && (ka == 0 || ka > s.opts.MaxKeepAlive) {
			ka = s.opts.MaxKeepAlive
			props.ServerKeepAlive = &ka
		}
		if m := cp.Properties.MaximumPacketSize; m != nil {
			c.maxOut = int(*m)
		}
		c.problems = cp.Properties.RequestProblemInfo == nil || *cp.Properties.RequestProblemInfo != 0
		rm := s.opts.ReceiveMaximum
		mps := uint32(s.opts.MaxPacketSize)
		one := byte(1)
		props.ReceiveMaximum = &rm
		props.MaximumPacketSize = &mps
		if s.opts.TopicAliasMax > 0 {
			tam := uint16(s.opts.TopicAliasMax)
			props.TopicAliasMaximum = &tam
		}
		props.RetainAvailable = &one
		props.WildcardSubAvailable = &one
		props.SharedSubAvailable = &one
		props.SubIDAvailable = &one
		if m := cp.Properties.TopicAliasMaximum; m != nil {
			c.aliasMax = *m
		}
		if assigned {
			props.AssignedClientID = clientID
		}
	}
	c.keepAlive = time.Duration(ka) * 1500 * time.Millisecond
	recvMax := 65535
	if v5 && cp.Properties.ReceiveMaximum != nil && *cp.Properties.ReceiveMaximum > 0 {
		recvMax = int(*cp.Properties.ReceiveMaximum)
	}
	var expiry uint32
	switch {
	case v5 && cp.Properties.SessionExpiry != nil:
		expiry = *cp.Properties.SessionExpiry
	case !v5 && !cp.CleanStart:
		expiry = sessionNeverExpires
	}
	c.clientID = clientID
	c.principal = principal
	if cp.WillFlag {
		w := &will{
			msg: &message{topic: cp.WillTopic, payload: cp.WillPayload, qos: cp.WillQoS, retain: cp.WillRetain,
				props: forwardProps(&cp.WillProperties, false)},
			clientID:  clientID,
			principal: principal,
		}
		if w.msg.payload == nil {
			w.msg.payload = []byte{}
		}
		if v5 && cp.WillProperties.WillDelay != nil {
			w.delay = *cp.WillProperties.WillDelay
		}
		c.will = w
	}
	// Counted before the CONNACK leaves, so a client that saw its CONNACK
	// is in Stats.Connections until its session is detached.
	s.stats.connections.Add(1)
	if !s.attach(c, cp.CleanStart, expiry, min(recvMax, s.opts.MaxInflight), &props) {
		s.stats.connections.Add(-1)
		return refuse(packets.ServerUnavailable, "server closing")
	}
	c.connected = true
	s.stats.connectsTotal.Add(1)
	s.log.Debug("broker: client connected", "client", clientID, "remote", c.nc.RemoteAddr().String(),
		"version", c.version, "clean", cp.CleanStart)
	if o := s.opts.Observer; o != nil {
		o.OnConnect(c.info())
	}
	return true
}

// connectLevel extracts the protocol level of a CONNECT body, 0 if unknown.
func connectLevel(body []byte) byte {
	if len(body) < 2 {
		return 0
	}
	n := int(body[0])<<8 | int(body[1])
	if len(body) < 2+n+1 {
		return 0
	}
	return body[2+n]
}

// authenticate returns the principal or a CONNACK reason code with the
// reason string sent to v5 clients: the Authenticator's error text, which
// names why (for example a revoked certificate).
func (c *conn) authenticate(cp *packets.Connect, clientID string) (*Principal, byte, string) {
	s := c.srv
	if s.opts.Authenticator == nil {
		if s.opts.AllowAnonymous {
			return &Principal{Anonymous: true}, packets.Success, ""
		}
		return nil, packets.NotAuthorized, "authentication failed"
	}
	info := &ConnectInfo{
		ClientID: clientID, Username: cp.Username, HasUsername: cp.UsernameFlag,
		Password: cp.Password, HasPassword: cp.PasswordFlag,
		RemoteAddr: c.nc.RemoteAddr(), ProtocolVersion: cp.ProtocolVersion,
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		// The handshake completed before the CONNECT could be read.
		info.PeerCertificates = tc.ConnectionState().PeerCertificates
	} else if pc, ok := c.nc.(peerCertificates); ok {
		info.PeerCertificates = pc.PeerCertificates()
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.ConnectTimeout)
	p, err := s.opts.Authenticator.Authenticate(ctx, info)
	cancel()
	switch {
	case err == nil && p != nil:
		return p, packets.Success, ""
	case err == nil:
		s.log.Warn("broker: authenticator returned no principal", "client", clientID)
		return nil, packets.ServerUnavailable, "authentication failed"
	case errors.Is(err, ErrNoCredentials):
		if s.opts.AllowAnonymous {
			return &Principal{Anonymous: true}, packets.Success, ""
		}
		return nil, packets.NotAuthorized, "authentication failed"
	case errors.Is(err, ErrBadCredentials):
		return nil, packets.BadUsernameOrPassword, err.Error()
	case errors.Is(err, ErrNotAuthorized):
		return nil, packets.NotAuthorized, err.Error()
	}
	s.log.Warn("broker: authenticator failed", "client", clientID, "err", err)
	return nil, packets.ServerUnavailable, "authentication failed"
}

// attach binds c to its session (new, resumed or taken over), queues the
// CONNACK and the messages the session owes, and starts the writer.
func (s *Server) attach(c *conn, clean bool, expiry uint32, maxInflight int, props *packets.Properties) bool {
	var ended *will
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return false
	}
	ss := s.sessions[c.clientID]
	present := false
	if ss != nil {
		if oc := ss.conn.Load(); oc != nil {
			s.log.Info("broker: session taken over", "client", c.clientID)
			oc.disconnect(packets.SessionTakenOver)
		}
		// A session with expiry 0 ends with its connection even if that
		// connection has not finished closing yet.
		if clean || ss.getExpiry() == 0 {
			ended = s.destroyLocked(ss)
			ss = nil
		} else {
			present = true
		}
	}
	if ss == nil {
		ss = s.newSession(c.clientID)
		s.sessions[c.clientID] = ss
		s.stats.sessions.Add(1)
	}
	ss.mu.Lock()
	ss.stopTimersLocked()
	ss.pendingWill = nil // resumed before the will delay passed
	ss.expiry = expiry
	if s.store != nil && (ss.durable || expiry > 0) {
		ss.durable = true
		s.store.Append(&Record{Op: OpSession, ClientID: ss.id, Expiry: expiry})
	}
	ss.maxInflight = max(maxInflight, 1)
	c.sess = ss
	connack := packets.Connack{SessionPresent: present, Properties: *props}
	c.outMu.Lock()
	c.out = packets.AppendConnack(c.out, c.version, &connack)
	c.started = true
	c.kickLocked()
	c.outMu.Unlock()
	ss.conn.Store(c)
	ss.resendLocked(c)
	ss.mu.Unlock()
	s.mu.Unlock()
	if ended != nil {
		s.publishWill(ended)
	}
	return true
}

func (c *conn) handlePublish(h packets.FixedHeader, body []byte) bool {
	s := c.srv
	hook := s.opts.Hook != nil
	i := 0
	if hook {
		i = len(c.batch)
	}
	if i == len(c.pubs) {
		c.pubs = append(c.pubs, packets.Publish{})
	}
	p := &c.pubs[i]
	if err := packets.DecodePublish(c.version, h, body, p); err != nil {
		c.protocolError(reasonFor(err), err)
		return false
	}
	v5 := c.version == packets.V5
	if p.QoS > 0 && v5 && len(c.acks)+c.sess.inboundLen() >= int(s.opts.ReceiveMaximum) {
		c.protocolError(packets.ReceiveMaximumExceeded, errors.New("more unacknowledged QoS 1 and 2 PUBLISH than Receive Maximum"))
		return false
	}
	if v5 {
		if p.Properties.TopicAlias != nil && !c.resolveAlias(p) {
			return false
		}
		if len(p.Properties.SubscriptionIDs) > 0 {
			c.protocolError(packets.ProtocolError, errors.New("subscription identifier in PUBLISH"))
			return false
		}
	}
	if s.opts.PublishRate > 0 {
		c.tokens--
	}
	if !s.canPublish(c.principal, p.Topic) {
		s.stats.denied.Add(1)
		s.log.Warn("broker: publish denied", "client", c.clientID, "principal", c.principal.Name, "topic", p.Topic)
		if p.QoS > 0 {
			a := pendingAck{typ: packets.PUBACK, id: p.PacketID}
			if p.QoS == 2 {
				a.typ = packets.PUBREC
			}
			if v5 {
				a.reason, a.why = packets.NotAuthorized, "publish not authorized"
			}
			c.acks = append(c.acks, a)
		}
		return true
	}
	if p.QoS == 2 {
		dup, seq := c.sess.addInbound(p.PacketID)
		c.acks = append(c.acks, pendingAck{typ: packets.PUBREC, id: p.PacketID, fresh: !dup})
		if dup {
			// Already accepted: the sender missed our PUBREC. Exactly
			// once means it is not routed again.
			return true
		}
		c.pendSeq = max(c.pendSeq, seq)
	}
	s.stats.messagesIn.Add(1)
	if c.rt == nil {
		c.rt = newRouter()
	}
	s.route(c.rt, c.sess, p, c.now)
	c.pendSeq = max(c.pendSeq, c.rt.seq)
	c.rt.reset()
	if p.QoS == 1 {
		c.acks = append(c.acks, pendingAck{typ: packets.PUBACK, id: p.PacketID})
	}
	if hook {
		if i == len(c.msgs) {
			c.msgs = append(c.msgs, Message{})
		}
		m := &c.msgs[i]
		*m = Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain,
			ClientID: c.clientID, Principal: c.principal, Received: c.now}
		if v5 {
			m.Properties = &p.Properties
		}
		c.batch = append(c.batch, m)
		if len(c.batch) >= maxHookBatch && !c.flushBatch() {
			return false
		}
	}
	if len(c.rt.full) > 0 {
		return c.waitRoom(c.rt)
	}
	return true
}

// resolveAlias applies a client to server Topic Alias: a PUBLISH with a
// topic sets the alias, one without uses it. It returns false (after a
// DISCONNECT) for an alias out of range or unknown.
func (c *conn) resolveAlias(p *packets.Publish) bool {
	a := int(*p.Properties.TopicAlias)
	limit := max(c.srv.opts.TopicAliasMax, 0)
	if a == 0 || a > limit {
		c.protocolError(packets.TopicAliasInvalid, fmt.Errorf("topic alias %d outside 1..%d", a, limit))
		return false
	}
	if p.Topic == "" {
		if a > len(c.inAliases) || c.inAliases[a-1] == "" {
			c.protocolError(packets.ProtocolError, fmt.Errorf("topic alias %d not set", a))
			return false
		}
		p.Topic = c.inAliases[a-1]
	} else {
		if a > len(c.inAliases) {
			c.inAliases = append(c.inAliases, make([]string, a-len(c.inAliases))...)
		}
		if c.inAliases[a-1] != p.Topic {
			c.inAliases[a-1] = strings.Clone(p.Topic)
		}
	}
	p.Properties.TopicAlias = nil
	return true
}

// throttle enforces Options.PublishRate with a token bucket refilled at
// the rate: when a read pass used more than the bucket held, the reader
// stops reading for as long as the debt takes to repay, so the client is
// slowed down by TCP flow control instead of being disconnected.
func (c *conn) throttle() {
	s := c.srv
	rate := float64(s.opts.PublishRate)
	burst := float64(s.opts.PublishBurst)
	now := time.Now()
	if c.tokensAt.IsZero() {
		c.tokens += burst
	} else {
		c.tokens += now.Sub(c.tokensAt).Seconds() * rate
	}
	c.tokensAt = now
	c.tokens = min(c.tokens, burst)
	if c.tokens >= 0 {
		return
	}
	s.stats.throttled.Add(1)
	wait := time.Duration(-c.tokens / rate * float64(time.Second))
	deadline := now.Add(wait)
	for d := wait; d > 0; d = time.Until(deadline) {
		time.Sleep(min(d, 100*time.Millisecond))
		c.outMu.Lock()
		closed := c.outClosed
		c.outMu.Unlock()
		if closed {
			return
		}
	}
	c.tokens = 0
	c.tokensAt = time.Now()
}

// flushBatch hands the read pass's publishes to the Hook and sends the
// PUBACKs and PUBRECs, which the writer holds back until the session
// store records they depend on are durable. It returns false when the
// connection must close.
func (c *conn) flushBatch() bool {
	s := c.srv
	ok := true
	if len(c.batch) > 0 {
		err := s.opts.Hook.OnPublish(s.ctx, c.batch)
		clear(c.batch)
		c.batch = c.batch[:0]
		for i := range c.msgs {
			c.msgs[i] = Message{}
		}
		if err != nil {
			s.log.Warn("broker: publish hook failed", "client", c.clientID, "err", err)
			// QoS 2 messages of the batch were not accepted: their
			// packet ids are free again, so a resend is routed anew.
			for _, a := range c.acks {
				if a.fresh {
					c.sess.releaseInbound(a.id)
				}
			}
			if c.version != packets.V5 {
				c.acks = c.acks[:0]
				return false
			}
			for i := range c.acks {
				if c.acks[i].reason < 0x80 {
					c.acks[i].reason = packets.UnspecifiedError
					c.acks[i].why = "message not stored"
				}
			}
		}
	}
	if len(c.acks) > 0 {
		c.outMu.Lock()
		if !c.outClosed {
			c.grabLocked()
			for _, a := range c.acks {
				ack := packets.Ack{Type: a.typ, PacketID: a.id, ReasonCode: a.reason}
				if c.problems && c.fits(a.why) {
					ack.Properties.ReasonString = a.why
				}
				c.out = packets.AppendAck(c.out, c.version, &ack)
			}
			c.needSeq = max(c.needSeq, c.pendSeq)
			c.kickLocked()
		}
		c.outMu.Unlock()
		c.acks = c.acks[:0]
		c.pendSeq = 0
	}
	return ok
}

func (c *conn) handleSubscribe(h packets.FixedHeader, body []byte) bool {
	s := c.srv
	sp, err := packets.DecodeSubscribe(c.version, h, body)
	if err != nil {
		c.protocolError(reasonFor(err), err)
		return false
	}
	v5 := c.version == packets.V5
	var subID uint32
	if v5 && len(sp.Properties.SubscriptionIDs) > 0 {
		if len(sp.Properties.SubscriptionIDs) > 1 || sp.Properties.SubscriptionIDs[0] == 0 {
			c.protocolError(packets.ProtocolError, errors.New("SUBSCRIBE needs at most one subscription identifier, not 0"))
			return false
		}
		subID = uint32(sp.Properties.SubscriptionIDs[0])
	}
	fail := func(v5code byte) byte {
		if v5 {
			return v5code
		}
		return packets.SubscriptionFailureV3
	}
	codes := make([]byte, len(sp.Subscriptions))
	type retainReq struct {
		filter string
		qos    byte
	}
	var retained []retainReq
	for i, sub := range sp.Subscriptions {
		f := sub.Filter
		_, _, shared := packets.SplitShared(f)
		if shared && v5 && sub.NoLocal {
			c.protocolError(packets.ProtocolError, errors.New("No Local on a shared subscription"))
			return false
		}
		switch {
		case !packets.ValidTopicFilter(f):
			codes[i] = fail(packets.TopicFilterInvalid)
		case !s.canSubscribe(c.principal, f):
			s.stats.denied.Add(1)
			s.log.Warn("broker: subscribe denied", "client", c.clientID, "principal", c.principal.Name, "filter", f)
			codes[i] = fail(packets.NotAuthorized)
		default:
			qos := min(sub.QoS, 2)
			isNew, ok := c.sess.subscribe(strings.Clone(f), qos, v5 && sub.NoLocal, v5 && sub.RetainAsPublished, subID)
			if !ok {
				codes[i] = fail(packets.UnspecifiedError)
				continue
			}
			codes[i] = qos
			rh := byte(0)
			if v5 {
				rh = sub.RetainHandling
			}
			// Shared subscriptions get no retained messages.
			if !shared && (rh == 0 || (rh == 1 && isNew)) {
				retained = append(retained, retainReq{f, qos})
			}
		}
	}
	ack := packets.Suback{PacketID: sp.PacketID, ReasonCodes: codes}
	c.appendControl(func(b []byte) []byte { return packets.AppendSuback(b, c.version, &ack) })
	var msgs []*message
	var scratch []byte
	var ids []int
	if subID != 0 {
		ids = []int{int(subID)}
	}
	now := time.Now()
	for _, rr := range retained {
		msgs = s.retained.match(rr.filter, msgs[:0])
		for _, m := range msgs {
			if !m.expiry.IsZero() && !now.Before(m.expiry) {
				s.retained.drop(m)
				continue
			}
			qos := min(m.qos, rr.qos)
			if qos == 0 && !s.mayReceive(c.principal, m.topic) {
				continue
			}
			if qos == 0 {
				// Bounded like live QoS 0 traffic, so a wide filter over
				// many retained topics cannot grow the output without end.
				p := buildPublish(m, 0, true, 0, now)
				p.Properties.SubscriptionIDs = ids
				var ok bool
				if c.aliasMax > 0 || ids != nil {
					ok = c.appendPublish0(&p)
				} else {
					scratch = packets.AppendPublish(scratch[:0], c.version, &p)
					ok = c.appendQoS0(scratch)
				}
				if ok {
					s.stats.messagesOut.Add(1)
				}
				continue
			}
			c.sess.deliver(outMsg{msg: m, qos: qos, retain: true, subIDs: ids})
		}
	}
	if o := s.opts.Observer; o != nil {
		info := c.info()
		for i, sub := range sp.Subscriptions {
			if codes[i] < 0x80 {
				o.OnSubscribe(info, sub.Filter)
			}
		}
	}
	return true
}

// info describes the connected client to the Observer.
func (c *conn) info() ClientInfo {
	return ClientInfo{ClientID: c.clientID, Principal: c.principal, RemoteAddr: c.nc.RemoteAddr(), ProtocolVersion: c.version}
}

func (c *conn) handleUnsubscribe(h packets.FixedHeader, body []byte) bool {
	up, err := packets.DecodeUnsubscribe(c.version, h, body)
	if err != nil {
		c.protocolError(reasonFor(err), err)
		return false
	}
	ack := packets.Unsuback{PacketID: up.PacketID}
	if c.version == packets.V5 {
		ack.ReasonCodes = make([]byte, len(up.Filters))
	}
	for i, f := range up.Filters {
		found := c.sess.unsubscribe(f)
		if ack.ReasonCodes != nil && !found {
			ack.ReasonCodes[i] = packets.NoSubscriptionExisted
		}
	}
	c.appendControl(func(b []byte) []byte { return packets.AppendUnsuback(b, c.version, &ack) })
	return true
}

func (c *conn) handleDisconnect(h packets.FixedHeader, body []byte) bool {
	d, err := packets.DecodeDisconnect(c.version, h, body)
	if err != nil {
		c.protocolError(reasonFor(err), err)
		return false
	}
	if c.version == packets.V5 {
		if se := d.Properties.SessionExpiry; se != nil {
			if c.sess.getExpiry() == 0 && *se != 0 {
				c.protocolError(packets.ProtocolError, errors.New("session expiry set on DISCONNECT after 0 on CONNECT"))
				return false
			}
			c.sess.setExpiry(*se)
		}
		c.keepWill = d.ReasonCode == packets.DisconnectWithWill
	}
	c.cleanDisconnect = true
	c.srv.log.Debug("broker: client disconnected", "client", c.clientID, "reason", d.ReasonCode)
	return false
}
