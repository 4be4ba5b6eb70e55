package broker

import (
	"context"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// SessionStore persists what must survive a restart: persistent sessions
// (their expiry, subscriptions, queued and inflight QoS 1/2 deliveries and
// the inbound QoS 2 packet ids awaiting PUBREL) and retained messages.
//
// The Server appends one Record per state change of a persistent session
// (one whose Session Expiry Interval is not 0) and per retained message
// change, from many goroutines. Append must apply records in the order of
// the calls and must not wait for I/O; Sync makes every record up to a
// sequence number durable. The Server calls Sync (or waits for it in the
// connection writer) before it acknowledges a QoS 1/2 message that produced
// records and before it sends a QoS 2 PUBLISH or PUBREL whose state a crash
// must not lose. Records of clean sessions are never appended, so QoS 0
// traffic and clean sessions cost nothing.
type SessionStore interface {
	// Load returns the state a previous run left. New calls it once.
	Load() (*StoredState, error)
	// Append adds r and returns its sequence number (increasing). r and
	// what it points to are not modified afterwards and may be kept.
	Append(r *Record) uint64
	// Durable returns the highest sequence number known to be durable.
	Durable() uint64
	// Sync returns once every record up to seq is durable.
	Sync(ctx context.Context, seq uint64) error
}

// RecordOp says what a Record changes.
type RecordOp byte

// Record operations. The fields each one uses are listed.
const (
	OpSession     RecordOp = iota + 1 // ClientID, Expiry, OfflineAt (zero while connected)
	OpSessionGone                     // ClientID
	OpSubscribe                       // ClientID, Sub
	OpUnsubscribe                     // ClientID, Sub.Filter
	OpEnqueue                         // ClientID, Seq, Msg, QoS, Retain, SubIDs
	OpSent                            // ClientID, Seq, PacketID (QoS 2 PUBLISH sent)
	OpReleased                        // ClientID, Seq (QoS 2 PUBREC received, PUBREL sent)
	OpDone                            // ClientID, Seq (acknowledged, dropped or expired)
	OpInbound                         // ClientID, PacketID (QoS 2 received, awaiting PUBREL)
	OpInboundDone                     // ClientID, PacketID
	OpRetain                          // Msg
	OpRetainClear                     // Topic
)

// Record is one change of persistent state.
type Record struct {
	Op        RecordOp
	ClientID  string
	Expiry    uint32
	OfflineAt time.Time
	Sub       StoredSub
	Seq       uint64
	PacketID  uint16
	QoS       byte
	Retain    bool
	SubIDs    []int
	Msg       *StoredMessage
	Topic     string
}

// StoredMessage is an application message as persisted. Topic, Payload and
// Properties are shared read-only by everyone holding it.
type StoredMessage struct {
	ID         uint64 // unique per run and across restarts; 0 for retained records
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Properties *packets.Properties // forwarded properties; nil when none
	Expiry     time.Time           // zero when the message does not expire
}

// StoredSub is one persisted subscription.
type StoredSub struct {
	Filter            string // as subscribed, "$share/g/f" for shared ones
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	SubID             uint32
}

// StoredDelivery is a message queued for, or in flight to, a session.
type StoredDelivery struct {
	Seq      uint64
	Msg      *StoredMessage
	QoS      byte
	Retain   bool
	SubIDs   []int
	PacketID uint16 // QoS 2 only: set once the PUBLISH was sent
	Released bool   // QoS 2: PUBREC received, PUBREL sent
}

// StoredSession is a persisted session.
type StoredSession struct {
	ClientID   string
	Expiry     uint32
	OfflineAt  time.Time // zero when the session was connected at the crash
	Subs       []StoredSub
	Deliveries []StoredDelivery // in delivery order
	Inbound    []uint16         // QoS 2 packet ids awaiting PUBREL
}

// StoredState is everything a SessionStore holds.
type StoredState struct {
	Sessions []StoredSession
	Retained []*StoredMessage
}

// storedOf returns the persisted form of m, made once per message.
func (s *Server) storedOf(m *message) *StoredMessage {
	if sm := m.stored.Load(); sm != nil {
		return sm
	}
	sm := &StoredMessage{ID: s.nextSeq.Add(1), Topic: m.topic, Payload: m.payload, QoS: m.qos,
		Retain: m.retain, Properties: m.props, Expiry: m.expiry}
	if !m.stored.CompareAndSwap(nil, sm) {
		return m.stored.Load()
	}
	return sm
}

// messageOf makes the in-memory message of a stored one.
func messageOf(sm *StoredMessage) *message {
	m := &message{topic: sm.Topic, payload: sm.Payload, qos: sm.QoS, retain: sm.Retain,
		props: sm.Properties, expiry: sm.Expiry}
	if m.payload == nil {
		m.payload = []byte{}
	}
	if sm.ID != 0 {
		m.stored.Store(sm)
	}
	return m
}

// persist appends r when the server has a store, returning its sequence
// number (0 without a store).
func (s *Server) persist(r *Record) uint64 {
	if s.store == nil {
		return 0
	}
	return s.store.Append(r)
}

// restore rebuilds sessions and retained messages from the store. It runs
// in New, before any connection exists.
func (s *Server) restore() error {
	st, err := s.store.Load()
	if err != nil {
		return err
	}
	now := time.Now()
	var maxID uint64
	for _, sm := range st.Retained {
		if !sm.Expiry.IsZero() && !now.Before(sm.Expiry) {
			continue
		}
		s.retained.set(messageOf(&StoredMessage{Topic: sm.Topic, Payload: sm.Payload, QoS: sm.QoS,
			Retain: true, Properties: sm.Properties, Expiry: sm.Expiry}))
	}
	msgs := make(map[uint64]*message)
	for i := range st.Sessions {
		rs := &st.Sessions[i]
		if rs.Expiry == 0 {
			s.persist(&Record{Op: OpSessionGone, ClientID: rs.ClientID})
			continue
		}
		ss := s.newSession(rs.ClientID)
		ss.expiry = rs.Expiry
		s.sessions[rs.ClientID] = ss
		s.stats.sessions.Add(1)
		for _, sub := range rs.Subs {
			ss.subscribe(sub.Filter, sub.QoS, sub.NoLocal, sub.RetainAsPublished, sub.SubID)
		}
		ss.durable = true // after the subscriptions, which are stored already
		for _, d := range rs.Deliveries {
			maxID = max(maxID, d.Seq, d.Msg.ID)
			m := msgs[d.Msg.ID]
			if m == nil {
				m = messageOf(d.Msg)
				msgs[d.Msg.ID] = m
			}
			om := outMsg{msg: m, qos: d.QoS, retain: d.Retain, subIDs: d.SubIDs, seq: d.Seq}
			switch {
			case d.QoS == 2 && d.Released:
				om.id, om.state = d.PacketID, stReleased
				ss.inflight = append(ss.inflight, om)
			case d.QoS == 2 && d.PacketID != 0:
				om.id, om.state = d.PacketID, stSent
				ss.inflight = append(ss.inflight, om)
			default:
				ss.queue = append(ss.queue, om)
			}
		}
		if len(rs.Inbound) > 0 {
			ss.inbound = make(map[uint16]struct{}, len(rs.Inbound))
			for _, id := range rs.Inbound {
				ss.inbound[id] = struct{}{}
			}
		}
		// The session is offline now; it expires its interval after it
		// went offline (or after this start when it was connected).
		if rs.Expiry != sessionNeverExpires {
			since := now
			if !rs.OfflineAt.IsZero() {
				since = rs.OfflineAt
			}
			left := time.Until(since.Add(time.Duration(rs.Expiry) * time.Second))
			ss.expireTimer = time.AfterFunc(max(left, 0), func() { s.expire(ss) })
		}
	}
	if maxID > s.nextSeq.Load() {
		s.nextSeq.Store(maxID)
	}
	s.log.Info("broker: sessions restored", "sessions", len(s.sessions), "retained", s.retained.len())
	return nil
}
