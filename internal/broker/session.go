package broker

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// sessionNeverExpires is the v5 Session Expiry Interval meaning "never".
const sessionNeverExpires = 0xFFFFFFFF

// outMsg is a QoS 1 delivery waiting in a session queue or inflight.
type outMsg struct {
	msg    *message
	qos    byte
	retain bool
	id     uint16
}

// will is a will message armed by a CONNECT.
type will struct {
	msg       *message
	delay     uint32 // v5 Will Delay Interval, seconds
	clientID  string
	principal *Principal
}

// session is the state of one client id: subscriptions, QoS 1 messages in
// flight and queued. It outlives connections when persistent.
type session struct {
	srv  *Server
	id   string
	uid  uint64
	conn atomic.Pointer[conn] // attached connection, nil while offline

	mu          sync.Mutex // guards the fields below
	gone        bool       // destroyed: accepts nothing anymore
	subs        map[string]*subscription
	inflight    []outMsg // sent, unacknowledged, in send order
	queue       []outMsg // waiting, FIFO from qhead
	qhead       int
	nextID      uint16
	maxInflight int
	expiry      uint32 // Session Expiry Interval, seconds
	expireTimer *time.Timer
	pendingWill *will // delayed will waiting for willTimer
	willTimer   *time.Timer
}

func (s *Server) newSession(id string) *session {
	return &session{srv: s, id: id, uid: s.nextUID.Add(1), maxInflight: s.opts.MaxInflight}
}

func (ss *session) queueLen() int { return len(ss.queue) - ss.qhead }

// deliver sends m now if the session is online with room in its inflight
// window, and queues it otherwise.
func (ss *session) deliver(m outMsg) {
	ss.mu.Lock()
	if !ss.gone {
		c := ss.conn.Load()
		if c != nil && len(ss.inflight) < ss.maxInflight && ss.queueLen() == 0 {
			ss.sendLocked(c, m, false, time.Now())
		} else {
			ss.enqueueLocked(m)
		}
	}
	ss.mu.Unlock()
}

func (ss *session) enqueueLocked(m outMsg) {
	if ss.queueLen() >= ss.srv.opts.MaxQueued {
		ss.popLocked()
		ss.srv.stats.droppedQueue.Add(1)
	}
	ss.queue = append(ss.queue, m)
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

// sendLocked encodes m into c's output; a first send assigns a packet id and
// records m as inflight, dup resends an inflight message.
func (ss *session) sendLocked(c *conn, m outMsg, dup bool, now time.Time) {
	s := ss.srv
	if !dup && !m.msg.expiry.IsZero() && !now.Before(m.msg.expiry) {
		s.stats.droppedExpired.Add(1)
		return
	}
	if !dup {
		m.id = ss.nextIDLocked()
	}
	p := buildPublish(m.msg, m.qos, m.retain, m.id, now)
	p.Dup = dup
	if c.maxOut > 0 && packets.PublishSize(c.version, &p) > c.maxOut {
		s.stats.droppedTooLarge.Add(1)
		return
	}
	if !dup {
		ss.inflight = append(ss.inflight, m)
	}
	if c.appendPublish(&p) {
		s.stats.messagesOut.Add(1)
	}
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

// ack removes an acknowledged message from the inflight window and fills
// the window from the queue. It reports whether id was in flight.
func (ss *session) ack(id uint16) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for i := range ss.inflight {
		if ss.inflight[i].id == id {
			copy(ss.inflight[i:], ss.inflight[i+1:])
			ss.inflight[len(ss.inflight)-1] = outMsg{}
			ss.inflight = ss.inflight[:len(ss.inflight)-1]
			ss.pumpLocked(time.Now())
			return true
		}
	}
	return false
}

// pumpLocked moves queued messages into the inflight window.
func (ss *session) pumpLocked(now time.Time) {
	c := ss.conn.Load()
	if c == nil {
		return
	}
	for len(ss.inflight) < ss.maxInflight && ss.queueLen() > 0 {
		ss.sendLocked(c, ss.popLocked(), false, now)
	}
}

// resendLocked resends the inflight messages with DUP set and fills the
// window from the queue, after c was attached.
func (ss *session) resendLocked(c *conn) {
	now := time.Now()
	for _, m := range ss.inflight {
		ss.sendLocked(c, m, true, now)
	}
	ss.pumpLocked(now)
}

// subscribe adds or updates the subscription to filter. isNew reports
// whether it did not exist; ok is false when the session is gone.
func (ss *session) subscribe(filter string, qos byte, noLocal, rap bool) (isNew, ok bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.gone {
		return false, false
	}
	o := packOpts(qos, noLocal, rap)
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
	ss.srv.subs.Add(filter, sub)
	ss.srv.stats.subscriptions.Add(1)
	return true, true
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
	ss.srv.subs.Remove(filter, sub)
	ss.srv.stats.subscriptions.Add(-1)
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
	for f, sub := range ss.subs {
		s.subs.Remove(f, sub)
	}
	s.stats.subscriptions.Add(-int64(len(ss.subs)))
	ss.subs = nil
	ss.inflight = nil
	ss.queue = nil
	ss.qhead = 0
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
	s.mu.Lock()
	ss.mu.Lock()
	if ss.conn.Load() == c {
		ss.conn.Store(nil)
		expiry := ss.expiry
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
