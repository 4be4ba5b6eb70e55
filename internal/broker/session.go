package broker

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// sessionNeverExpires is the v5 Session Expiry Interval meaning "never".
const sessionNeverExpires = 0xFFFFFFFF

// Delivery states of an outMsg.
const (
	stQueued   = iota // waiting in the queue, no packet id yet
	stSent            // PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2)
	stReleased        // QoS 2: PUBREC received and PUBREL sent, waiting for PUBCOMP
)

// outMsg is a QoS 1 or 2 delivery waiting in a session queue or inflight.
type outMsg struct {
	msg    *message
	group  *shareGroup // shared subscription it came through; nil otherwise
	subIDs []int       // subscription identifiers sent with it
	seq    uint64      // delivery id in the session store; 0 when not stored
	id     uint16      // packet identifier once sent
	qos    byte
	retain bool
	state  uint8
}

// will is a will message armed by a CONNECT.
type will struct {
	msg       *message
	delay     uint32 // v5 Will Delay Interval, seconds
	clientID  string
	principal *Principal
}

// session is the state of one client id: subscriptions, QoS 1/2 messages
// in flight and queued, inbound QoS 2 packet ids awaiting PUBREL. It
// outlives connections when persistent, and restarts when durable (stored
// in Options.SessionStore).
type session struct {
	srv  *Server
	id   string
	uid  uint64
	conn atomic.Pointer[conn] // attached connection, nil while offline
	// nsubs is len(subs), readable without mu: a message can match a
	// session more than once only when it has several subscriptions.
	nsubs atomic.Int32

	mu          sync.Mutex // guards the fields below
	gone        bool       // destroyed: accepts nothing anymore
	durable     bool       // changes are appended to the session store
	subs        map[string]*subscription
	inflight    []outMsg // sent, unacknowledged, in send order
	queue       []outMsg // waiting, FIFO from qhead
	qhead       int
	inbound     map[uint16]struct{} // QoS 2 packet ids received, awaiting PUBREL
	nextID      uint16
	maxInflight int
	expiry      uint32 // Session Expiry Interval, seconds
	expireTimer *time.Timer
	pendingWill *will // delayed will waiting for willTimer
	willTimer   *time.Timer
	room        chan struct{} // closed when publishers waiting for queue room may go on
	stalled     bool          // a publisher waited in vain: no backpressure until the queue drains
}

func (s *Server) newSession(id string) *session {
	return &session{srv: s, id: id, uid: s.nextUID.Add(1), maxInflight: s.opts.MaxInflight}
}

func (ss *session) queueLen() int { return len(ss.queue) - ss.qhead }

// deliver sends m now if the session is online with room in its inflight
// window, and queues it otherwise. It returns the store sequence number of
// the records it appended (0 if none).
func (ss *session) deliver(m outMsg) uint64 {
	seq, _ := ss.offer(m, false)
	return seq
}

// offer is deliver for a message from a client's read loop. With bp set
// (backpressure on, see backpressure.go) a message that finds the queue of
// an online session full is queued beyond Options.MaxQueued instead of
// being dropped, and full reports that the publisher must wait for room.
func (ss *session) offer(m outMsg, bp bool) (seq uint64, full bool) {
	ss.mu.Lock()
	if !ss.gone {
		if ss.durable {
			s := ss.srv
			m.seq = s.nextSeq.Add(1)
			seq = s.store.Append(&Record{Op: OpEnqueue, ClientID: ss.id, Seq: m.seq, Msg: s.storedOf(m.msg),
				QoS: m.qos, Retain: m.retain, SubIDs: m.subIDs})
		}
		c := ss.conn.Load()
		switch {
		case c != nil && len(ss.inflight) < ss.maxInflight && ss.queueLen() == 0:
			seq = max(seq, ss.sendLocked(c, m, time.Now()))
		case bp && c != nil && !ss.stalled && ss.queueLen() >= ss.srv.opts.MaxQueued:
			ss.queue = append(ss.queue, m)
			full = true
		default:
			ss.enqueueLocked(m)
		}
	}
	ss.mu.Unlock()
	return seq, full
}

// enqueueLocked queues m, applying Options.QueuePolicy when the queue is
// full.
func (ss *session) enqueueLocked(m outMsg) {
	s := ss.srv
	if ss.queueLen() >= s.opts.MaxQueued {
		s.stats.droppedQueue.Add(1)
		switch s.opts.QueuePolicy {
		case DropNewest:
			ss.doneLocked(&m)
			return
		case DropDisconnect:
			ss.doneLocked(&m)
			if c := ss.conn.Load(); c != nil {
				s.log.Info("broker: session queue full; disconnecting", "client", ss.id)
				c.disconnect(packets.QuotaExceeded)
			}
			return
		default:
			old := ss.popLocked()
			ss.doneLocked(&old)
		}
	}
	ss.queue = append(ss.queue, m)
}

// doneLocked records that a stored delivery ended (acknowledged, dropped or
// expired).
func (ss *session) doneLocked(m *outMsg) {
	if m.seq != 0 && ss.durable {
		ss.srv.store.Append(&Record{Op: OpDone, ClientID: ss.id, Seq: m.seq})
	}
}

func (ss *session) popLocked() outMsg {
	m := ss.queue[ss.qhead]
	ss.queue[ss.qhead] = outMsg{}
	ss.qhead++
	switch {
	case ss.qhead == len(ss.queue):
		ss.queue = ss.queue[:0]
		ss.qhead = 0
	case ss.qhead >= 64 && ss.qhead*2 >= len(ss.queue):
		n := copy(ss.queue, ss.queue[ss.qhead:])
		clear(ss.queue[n:])
		ss.queue = ss.queue[:n]
		ss.qhead = 0
	}
	return m
}

// nextIDLocked returns a packet identifier not in flight.
func (ss *session) nextIDLocked() uint16 {
	for {
		ss.nextID++
		if ss.nextID == 0 {
			ss.nextID = 1
		}
		free := true
		for i := range ss.inflight {
			if ss.inflight[i].id == ss.nextID {
				free = false
				break
			}
		}
		if free {
			return ss.nextID
		}
	}
}

// sendLocked sends a queued message for the first time: it assigns a
// packet id, records m as inflight and encodes it into c's output. For a
// durable QoS 2 delivery the packet id is stored first and c's writer waits
// until it is durable, so a restart resends the PUBLISH with the same id.
func (ss *session) sendLocked(c *conn, m outMsg, now time.Time) uint64 {
	s := ss.srv
	if !m.msg.expiry.IsZero() && !now.Before(m.msg.expiry) {
		s.stats.droppedExpired.Add(1)
		ss.doneLocked(&m)
		return 0
	}
	if !s.mayReceive(c.principal, m.msg.topic) {
		ss.doneLocked(&m)
		return 0
	}
	m.id = ss.nextIDLocked()
	m.state = stSent
	p := buildPublish(m.msg, m.qos, m.retain, m.id, now)
	p.Properties.SubscriptionIDs = m.subIDs
	if c.maxOut > 0 && packets.PublishSize(c.version, &p)+c.aliasSlack() > c.maxOut {
		s.stats.droppedTooLarge.Add(1)
		ss.doneLocked(&m)
		return 0
	}
	var seq uint64
	if m.qos == 2 && m.seq != 0 {
		seq = s.store.Append(&Record{Op: OpSent, ClientID: ss.id, Seq: m.seq, PacketID: m.id})
	}
	ss.inflight = append(ss.inflight, m)
	if c.appendPublish(&p, seq) {
		s.stats.messagesOut.Add(1)
	}
	return seq
}

// resendLocked resends what is in flight after c was attached (PUBLISH
// with DUP, or PUBREL for released QoS 2 messages) and fills the window
// from the queue.
func (ss *session) resendLocked(c *conn) {
	now := time.Now()
	for i := range ss.inflight {
		m := &ss.inflight[i]
		if m.state == stReleased {
			rel := packets.Ack{Type: packets.PUBREL, PacketID: m.id}
			c.appendControl(func(b []byte) []byte { return packets.AppendAck(b, c.version, &rel) })
			continue
		}
		p := buildPublish(m.msg, m.qos, m.retain, m.id, now)
		p.Properties.SubscriptionIDs = m.subIDs
		p.Dup = true
		if c.appendPublish(&p, 0) {
			ss.srv.stats.messagesOut.Add(1)
		}
	}
	ss.pumpLocked(now)
}

// buildPublish makes the PUBLISH for an owned message, with the Message
// Expiry Interval lowered by the time the message waited.
func buildPublish(m *message, qos byte, retain bool, id uint16, now time.Time) packets.Publish {
	p := packets.Publish{QoS: qos, Retain: retain, Topic: m.topic, Payload: m.payload}
	if qos > 0 {
		p.PacketID = id
	}
	if m.props != nil {
		p.Properties = *m.props
		if !m.expiry.IsZero() {
			left := uint32(0)
			if d := m.expiry.Sub(now); d > 0 {
				left = uint32((d + time.Second - 1) / time.Second)
			}
			p.Properties.MessageExpiry = &left
		}
	}
	return p
}

// findLocked returns the index of the inflight message with packet id id,
// or -1.
func (ss *session) findLocked(id uint16) int {
	for i := range ss.inflight {
		if ss.inflight[i].id == id {
			return i
		}
	}
	return -1
}

// removeLocked ends inflight message i and refills the window.
func (ss *session) removeLocked(i int) {
	ss.doneLocked(&ss.inflight[i])
	copy(ss.inflight[i:], ss.inflight[i+1:])
	ss.inflight[len(ss.inflight)-1] = outMsg{}
	ss.inflight = ss.inflight[:len(ss.inflight)-1]
	ss.pumpLocked(time.Now())
}

// puback completes a QoS 1 delivery and reports whether id was one.
func (ss *session) puback(id uint16) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	i := ss.findLocked(id)
	if i < 0 || ss.inflight[i].qos != 1 {
		return false
	}
	ss.removeLocked(i)
	return true
}

// pubrec handles the PUBREC of a QoS 2 delivery: an error reason ends the
// delivery, otherwise it is released and PUBREL is sent (v5: with 0x92
// when id is unknown). For a durable session the released state is
// stored before the PUBREL leaves.
func (ss *session) pubrec(c *conn, id uint16, reason byte) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	rel := packets.Ack{Type: packets.PUBREL, PacketID: id}
	var seq uint64
	i := ss.findLocked(id)
	switch {
	case i < 0 || ss.inflight[i].qos != 2:
		rel.ReasonCode = packets.PacketIdentifierNotFound
	case reason >= 0x80:
		ss.removeLocked(i)
		return
	case ss.inflight[i].state == stSent:
		m := &ss.inflight[i]
		m.state = stReleased
		if m.seq != 0 && ss.durable {
			seq = ss.srv.store.Append(&Record{Op: OpReleased, ClientID: ss.id, Seq: m.seq})
		}
	}
	c.appendAck(&rel, seq)
}

// pubcomp completes a released QoS 2 delivery and reports whether id was
// one.
func (ss *session) pubcomp(id uint16) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	i := ss.findLocked(id)
	if i < 0 || ss.inflight[i].state != stReleased {
		return false
	}
	ss.removeLocked(i)
	return true
}

// pumpLocked moves queued messages into the inflight window and wakes
// publishers waiting for room.
func (ss *session) pumpLocked(now time.Time) {
	if c := ss.conn.Load(); c != nil {
		for len(ss.inflight) < ss.maxInflight && ss.queueLen() > 0 {
			ss.sendLocked(c, ss.popLocked(), now)
		}
	}
	if ss.room != nil || ss.stalled {
		ss.roomLocked()
	}
}

// addInbound records the packet id of an inbound QoS 2 PUBLISH. dup is
// true when the id is already recorded (a resent PUBLISH, not to be routed
// again).
func (ss *session) addInbound(id uint16) (dup bool, seq uint64) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.inbound[id]; ok {
		return true, 0
	}
	if ss.inbound == nil {
		ss.inbound = make(map[uint16]struct{})
	}
	ss.inbound[id] = struct{}{}
	if ss.durable {
		seq = ss.srv.store.Append(&Record{Op: OpInbound, ClientID: ss.id, PacketID: id})
	}
	return false, seq
}

// releaseInbound forgets an inbound QoS 2 packet id (PUBREL, or a message
// the hook refused) and reports whether it was recorded.
func (ss *session) releaseInbound(id uint16) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.inbound[id]; !ok {
		return false
	}
	delete(ss.inbound, id)
	if ss.durable {
		ss.srv.store.Append(&Record{Op: OpInboundDone, ClientID: ss.id, PacketID: id})
	}
	return true
}

func (ss *session) inboundLen() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.inbound)
}

// takeSharedLocked removes the deliveries that came through shared
// subscriptions and were not completed (queued, or QoS 1/2 sent without
// acknowledgement) so another member of the group can have them.
func (ss *session) takeSharedLocked() []outMsg {
	var out []outMsg
	keep := ss.inflight[:0]
	for _, m := range ss.inflight {
		if m.group != nil && m.state == stSent {
			ss.doneLocked(&m)
			m.id, m.state, m.seq = 0, stQueued, 0
			out = append(out, m)
			continue
		}
		keep = append(keep, m)
	}
	clear(ss.inflight[len(keep):])
	ss.inflight = keep
	q := ss.queue[:ss.qhead]
	for _, m := range ss.queue[ss.qhead:] {
		if m.group != nil {
			ss.doneLocked(&m)
			m.seq = 0
			out = append(out, m)
			continue
		}
		q = append(q, m)
	}
	clear(ss.queue[len(q):])
	ss.queue = q
	return out
}

// subscribe adds or updates the subscription to filter (a shared one when
// it starts with "$share/"). isNew reports whether it did not exist; ok is
// false when the session is gone.
func (ss *session) subscribe(filter string, qos byte, noLocal, rap bool, subID uint32) (isNew, ok bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.gone {
		return false, false
	}
	s := ss.srv
	o := packOpts(qos, noLocal, rap, subID)
	if ss.durable {
		s.store.Append(&Record{Op: OpSubscribe, ClientID: ss.id, Sub: StoredSub{Filter: filter, QoS: qos,
			NoLocal: noLocal, RetainAsPublished: rap, SubID: subID}})
	}
	if sub, exists := ss.subs[filter]; exists {
		sub.opts.Store(o)
		return false, true
	}
	sub := &subscription{sess: ss, filter: filter}
	sub.opts.Store(o)
	if ss.subs == nil {
		ss.subs = make(map[string]*subscription)
	}
	ss.subs[filter] = sub
	ss.nsubs.Store(int32(len(ss.subs)))
	if group, inner, shared := packets.SplitShared(filter); shared {
		s.joinShare(sub, group, inner)
	} else {
		s.subs.Add(filter, sub)
	}
	s.stats.subscriptions.Add(1)
	return true, true
}

// removeSubLocked takes sub out of the trie or its share group.
func (s *Server) removeSubLocked(sub *subscription) {
	if sub.share != nil {
		s.leaveShare(sub)
		return
	}
	s.subs.Remove(sub.filter, sub)
}

// unsubscribe removes the subscription to filter and reports whether it
// existed.
func (ss *session) unsubscribe(filter string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sub, ok := ss.subs[filter]
	if !ok {
		return false
	}
	delete(ss.subs, filter)
	ss.nsubs.Store(int32(len(ss.subs)))
	ss.srv.removeSubLocked(sub)
	ss.srv.stats.subscriptions.Add(-1)
	if ss.durable {
		ss.srv.store.Append(&Record{Op: OpUnsubscribe, ClientID: ss.id, Sub: StoredSub{Filter: filter}})
	}
	return true
}

// setExpiry changes the Session Expiry Interval.
func (ss *session) setExpiry(v uint32) {
	ss.mu.Lock()
	ss.expiry = v
	ss.mu.Unlock()
}

func (ss *session) getExpiry() uint32 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.expiry
}

// stopTimers cancels the expiry and will timers (server shutdown).
func (ss *session) stopTimers() {
	ss.mu.Lock()
	ss.stopTimersLocked()
	ss.mu.Unlock()
}

func (ss *session) stopTimersLocked() {
	if ss.expireTimer != nil {
		ss.expireTimer.Stop()
		ss.expireTimer = nil
	}
	if ss.willTimer != nil {
		ss.willTimer.Stop()
		ss.willTimer = nil
	}
}

// destroyLocked ends a session: its subscriptions leave the trie and its
// messages are dropped. It returns a delayed will that is now due. s.mu must
// be held.
func (s *Server) destroyLocked(ss *session) *will {
	ss.mu.Lock()
	if ss.gone {
		ss.mu.Unlock()
		return nil
	}
	ss.gone = true
	for _, sub := range ss.subs {
		s.removeSubLocked(sub)
	}
	if ss.durable {
		s.store.Append(&Record{Op: OpSessionGone, ClientID: ss.id})
	}
	ss.inbound = nil
	s.stats.subscriptions.Add(-int64(len(ss.subs)))
	ss.subs = nil
	ss.nsubs.Store(0)
	ss.inflight = nil
	ss.queue = nil
	ss.qhead = 0
	ss.roomLocked()
	ss.stopTimersLocked()
	w := ss.pendingWill
	ss.pendingWill = nil
	ss.conn.Store(nil)
	ss.mu.Unlock()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
		s.stats.sessions.Add(-1)
	}
	return w
}

// expire ends an offline session whose expiry interval has passed.
func (s *Server) expire(ss *session) {
	s.mu.Lock()
	var w *will
	if s.sessions[ss.id] == ss && ss.conn.Load() == nil {
		w = s.destroyLocked(ss)
	}
	s.mu.Unlock()
	if w != nil {
		s.publishWill(w)
	}
}

// fireWill publishes a delayed will unless the session was resumed.
func (s *Server) fireWill(ss *session) {
	ss.mu.Lock()
	w := ss.pendingWill
	ss.pendingWill = nil
	ss.willTimer = nil
	ss.mu.Unlock()
	if w != nil {
		s.publishWill(w)
	}
}

// detach separates c from its session when the connection ends, starting
// the session expiry and the will (delayed or not). takeover-closed
// connections are no longer attached and only deal with their will.
func (s *Server) detach(c *conn, publishWill bool) {
	ss := c.sess
	w := c.will
	if !publishWill || s.closing.Load() {
		w = nil
	}
	var due *will
	var moved []outMsg
	s.mu.Lock()
	ss.mu.Lock()
	if ss.conn.Load() == c {
		ss.conn.Store(nil)
		if !s.closing.Load() {
			moved = ss.takeSharedLocked()
		}
		// Offline sessions keep the bounded queue: what backpressure
		// queued beyond it goes by the queue policy.
		ss.trimLocked()
		ss.roomLocked()
		expiry := ss.expiry
		if expiry != 0 && ss.durable {
			s.store.Append(&Record{Op: OpSession, ClientID: ss.id, Expiry: expiry, OfflineAt: time.Now()})
		}
		ss.mu.Unlock()
		if expiry == 0 {
			due = s.destroyLocked(ss)
			if w != nil {
				due = w
			}
		} else {
			ss.mu.Lock()
			if w != nil {
				if w.delay == 0 {
					due = w
				} else {
					ss.pendingWill = w
					d := min(w.delay, expiry)
					ss.willTimer = time.AfterFunc(time.Duration(d)*time.Second, func() { s.fireWill(ss) })
				}
			}
			if expiry != sessionNeverExpires {
				ss.expireTimer = time.AfterFunc(time.Duration(expiry)*time.Second, func() { s.expire(ss) })
			}
			ss.mu.Unlock()
		}
	} else {
		// Taken over: a resumed session cancels a delayed will.
		if w != nil && (w.delay == 0 || ss.gone) {
			due = w
		}
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	if len(moved) > 0 {
		s.redistribute(moved, ss)
	}
	if due != nil {
		s.publishWill(due)
	}
}

// publishWill publishes a will message for its (gone) client.
func (s *Server) publishWill(w *will) {
	if !s.canPublish(w.principal, w.msg.topic) {
		s.stats.denied.Add(1)
		s.log.Warn("broker: will denied", "client", w.clientID, "principal", w.principal.Name, "topic", w.msg.topic)
		return
	}
	now := time.Now()
	p := packets.Publish{QoS: w.msg.qos, Retain: w.msg.retain, Topic: w.msg.topic, Payload: w.msg.payload}
	if w.msg.props != nil {
		p.Properties = *w.msg.props
	}
	s.stats.messagesIn.Add(1)
	r := s.routers.Get().(*router)
	s.route(r, nil, &p, now)
	r.reset()
	s.routers.Put(r)
	if s.opts.Hook != nil {
		m := &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain,
			ClientID: w.clientID, Principal: w.principal, Received: now, Properties: w.msg.props}
		if err := s.opts.Hook.OnPublish(s.ctx, []*Message{m}); err != nil {
			s.log.Warn("broker: publish hook failed for will", "client", w.clientID, "err", err)
		}
	}
}
