package broker

import (
	"cmp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// message is an owned copy of an application message, shared read-only by
// the session queues it waits in and by the retained store.
type message struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
	props   *packets.Properties // forwardable properties; nil when none
	expiry  time.Time           // zero when no Message Expiry Interval
	stored  atomic.Pointer[StoredMessage]
}

// newMessage copies p (which may alias a read buffer) into a message.
func newMessage(p *packets.Publish, now time.Time) *message {
	// One allocation holds topic and payload; it is never written again.
	nt := len(p.Topic)
	buf := make([]byte, nt+len(p.Payload))
	copy(buf, p.Topic)
	copy(buf[nt:], p.Payload)
	m := &message{
		payload: buf[nt:len(buf):len(buf)],
		qos:     p.QoS,
		retain:  p.Retain,
		props:   forwardProps(&p.Properties, true),
	}
	if nt > 0 {
		m.topic = unsafe.String(&buf[0], nt)
	}
	if m.props != nil && m.props.MessageExpiry != nil {
		m.expiry = now.Add(time.Duration(*m.props.MessageExpiry) * time.Second)
	}
	return m
}

// forwardProps returns the properties of an inbound PUBLISH that are
// forwarded to subscribers unchanged, or nil when there are none. With
// deep set, slices and pointers are copied so the result owns its data.
func forwardProps(in *packets.Properties, deep bool) *packets.Properties {
	if in.PayloadFormat == nil && in.MessageExpiry == nil && in.ContentType == "" &&
		in.ResponseTopic == "" && in.CorrelationData == nil && len(in.User) == 0 {
		return nil
	}
	out := &packets.Properties{
		PayloadFormat:   in.PayloadFormat,
		MessageExpiry:   in.MessageExpiry,
		ContentType:     in.ContentType,
		ResponseTopic:   in.ResponseTopic,
		CorrelationData: in.CorrelationData,
		User:            in.User,
	}
	if deep {
		if in.PayloadFormat != nil {
			v := *in.PayloadFormat
			out.PayloadFormat = &v
		}
		if in.MessageExpiry != nil {
			v := *in.MessageExpiry
			out.MessageExpiry = &v
		}
		out.ContentType = strings.Clone(in.ContentType)
		out.ResponseTopic = strings.Clone(in.ResponseTopic)
		out.CorrelationData = slices.Clone(in.CorrelationData)
		if len(in.User) > 0 {
			out.User = make([]packets.UserProperty, len(in.User))
			for i, u := range in.User {
				out.User[i] = packets.UserProperty{Key: strings.Clone(u.Key), Value: strings.Clone(u.Value)}
			}
		}
	}
	return out
}

// Subscription option bits packed into subscription.opts; the
// subscription identifier is in the upper 32 bits.
const (
	optQoSMask = 0x3
	optNoLocal = 1 << 2
	optRAP     = 1 << 3
)

// subscription is one filter of one session, the value stored in the
// trie. A shared subscription's members are not in the trie: their group's
// holder (sess nil, share set) is.
type subscription struct {
	sess   *session
	filter string
	share  *shareGroup
	opts   atomic.Uint64 // QoS, option bits and id, updated in place on re-subscribe
}

func packOpts(qos byte, noLocal, rap bool, id uint32) uint64 {
	o := uint64(qos&optQoSMask) | uint64(id)<<32
	if noLocal {
		o |= optNoLocal
	}
	if rap {
		o |= optRAP
	}
	return o
}

// match is one session a message goes to.
type match struct {
	sess  *session
	group *shareGroup // set when it came through a shared subscription
	id    uint32      // subscription identifier, 0 when none
	qos   byte
	rap   bool
}

// extraID is a further subscription identifier of a session that matched
// through several subscriptions with identifiers.
type extraID struct {
	sess *session
	id   uint32
}

// router holds the scratch state of routing one message, reused across
// messages by one goroutine so the QoS 0 path does not allocate.
type router struct {
	matches []match
	extra   []extraID
	ids     []int
	from    *session
	collect func(filter string, sub *subscription) bool
	enc     [4][]byte // encoded QoS 0 PUBLISH by [v5][retain]
	encOK   [4]bool
	fwd     packets.Publish
	fwdSet  bool // fwd holds a message's fields (reset clears it)
	multi   bool // a match's session has several subscriptions: dedupe
	owned   *message
	now     time.Time
	seq     uint64 // highest store sequence number appended while routing
	// full lists the online sessions whose queue the message overfilled
	// (backpressure); the publisher's reader waits for them (waitRoom),
	// which also clears the list.
	full []*session
}

func newRouter() *router {
	r := &router{}
	r.collect = r.add
	return r
}

func (r *router) add(_ string, sub *subscription) bool {
	var g *shareGroup
	if sub.sess == nil {
		g = sub.share
		if sub = g.pick(nil); sub == nil {
			return true
		}
	}
	o := sub.opts.Load()
	if o&optNoLocal != 0 && sub.sess == r.from {
		return true
	}
	if g != nil || sub.sess.nsubs.Load() > 1 {
		r.multi = true
	}
	r.matches = append(r.matches, match{sess: sub.sess, group: g, id: uint32(o >> 32),
		qos: byte(o & optQoSMask), rap: o&optRAP != 0})
	return true
}

// reset forgets the message routed last. It does not clear the pointers
// left in matches and extra, nor fwd unless it was used: clearing
// pointer-holding memory runs the GC write barrier on every message while
// a collection is in progress. The stale pointers are overwritten by the
// next message; release drops them when the connection goes quiet.
func (r *router) reset() {
	r.encOK = [4]bool{}
	r.owned = nil
	r.from = nil
	r.seq = 0
	r.multi = false
	r.matches = r.matches[:0]
	r.extra = r.extra[:0]
	if r.fwdSet {
		r.fwd = packets.Publish{}
		r.fwdSet = false
	}
	for i := range r.enc {
		if cap(r.enc[i]) > 64<<10 {
			r.enc[i] = nil
		}
	}
}

// release drops everything the router refers to and its encoding
// buffers (the connection went quiet).
func (r *router) release() {
	r.reset()
	clear(r.matches[:cap(r.matches)])
	clear(r.extra[:cap(r.extra)])
	r.enc = [4][]byte{}
}

// message returns the owned copy of p, made on first use.
func (r *router) message(p *packets.Publish) *message {
	if r.owned == nil {
		r.owned = newMessage(p, r.now)
	}
	return r.owned
}

// forward sets r.fwd to the QoS 0 PUBLISH forwarding p: its forwardable
// properties, no alias, no subscription identifiers.
func (r *router) forward(p *packets.Publish, retain bool) *packets.Publish {
	r.fwdSet = true
	setForward(&r.fwd, p, retain)
	return &r.fwd
}

// setForward makes f the QoS 0 PUBLISH forwarding p.
func setForward(f *packets.Publish, p *packets.Publish, retain bool) {
	*f = packets.Publish{Retain: retain, Topic: p.Topic, Payload: p.Payload}
	f.Properties = packets.Properties{
		PayloadFormat:   p.Properties.PayloadFormat,
		MessageExpiry:   p.Properties.MessageExpiry,
		ContentType:     p.Properties.ContentType,
		ResponseTopic:   p.Properties.ResponseTopic,
		CorrelationData: p.Properties.CorrelationData,
		User:            p.Properties.User,
	}
}

// encoded returns p encoded as a QoS 0 PUBLISH for version with the given
// retain flag, encoding at most once per variant and message.
func (r *router) encoded(p *packets.Publish, version byte, retain bool) []byte {
	i := 0
	if version == packets.V5 {
		i = 2
	}
	if retain {
		i++
	}
	if !r.encOK[i] {
		// A PUBLISH on the stack: writing it needs no write barrier.
		var f packets.Publish
		setForward(&f, p, retain)
		r.enc[i] = packets.AppendPublish(r.enc[i][:0], version, &f)
		r.encOK[i] = true
	}
	return r.enc[i]
}

// idsFor returns the subscription identifiers of m in r.ids (scratch), or
// nil.
func (r *router) idsFor(m *match) []int {
	if m.id == 0 {
		return nil
	}
	r.ids = append(r.ids[:0], int(m.id))
	for _, e := range r.extra {
		if e.sess == m.sess {
			r.ids = append(r.ids, int(e.id))
		}
	}
	return r.ids
}

// merge folds x into the delivery y of the same session.
func (r *router) merge(y *match, x match) {
	y.qos = max(y.qos, x.qos)
	y.rap = y.rap || x.rap
	if y.group != x.group {
		y.group = nil
	}
	switch {
	case x.id == 0 || x.id == y.id:
	case y.id == 0:
		y.id = x.id
	default:
		r.extra = append(r.extra, extraID{x.sess, x.id})
	}
}

// dedupe merges matches of the same session (overlapping subscriptions) into
// one delivery with the highest QoS and all subscription identifiers.
func (r *router) dedupe() {
	m := r.matches
	if len(m) < 2 {
		return
	}
	if len(m) > 16 {
		slices.SortFunc(m, func(a, b match) int { return cmp.Compare(a.sess.uid, b.sess.uid) })
		out := m[:1]
		for _, x := range m[1:] {
			if last := &out[len(out)-1]; x.sess == last.sess {
				r.merge(last, x)
				continue
			}
			out = append(out, x)
		}
		clear(m[len(out):])
		r.matches = out
		return
	}
	out := m[:0]
outer:
	for _, x := range m {
		for j := range out {
			if out[j].sess == x.sess {
				r.merge(&out[j], x)
				continue outer
			}
		}
		out = append(out, x)
	}
	clear(m[len(out):])
	r.matches = out
}

// route delivers p (which may alias a read buffer) to the matching
// subscriptions and updates the retained store. from is the publishing
// session (for No Local), nil for server messages. r.seq is the last
// session store record it appended (0 if none).
func (s *Server) route(r *router, from *session, p *packets.Publish, now time.Time) {
	r.now = now
	if p.Retain {
		if len(p.Payload) == 0 {
			if s.retained.clear(p.Topic) && s.store != nil {
				r.seq = s.store.Append(&Record{Op: OpRetainClear, Topic: strings.Clone(p.Topic)})
			}
		} else {
			m := r.message(p)
			s.retained.set(m)
			if s.store != nil {
				r.seq = s.store.Append(&Record{Op: OpRetain, Msg: s.storedOf(m)})
			}
		}
	}
	r.from = from
	r.matches = r.matches[:0]
	r.multi = false
	s.subs.Match(p.Topic, r.collect)
	if len(r.matches) == 0 {
		return
	}
	if r.multi {
		r.dedupe()
	}
	var out int64
	for i := range r.matches {
		m := &r.matches[i]
		qos := min(p.QoS, m.qos)
		retain := m.rap && p.Retain
		if qos == 0 {
			c := m.sess.conn.Load()
			if c == nil || c.principal != nil && c.principal.CheckReceive && !s.mayReceive(c.principal, p.Topic) {
				continue
			}
			var ok bool
			if m.id == 0 && c.aliasMax == 0 {
				ok = c.appendQoS0(r.encoded(p, c.version, retain))
			} else {
				fp := r.forward(p, retain)
				fp.Properties.SubscriptionIDs = r.idsFor(m)
				ok = c.appendPublish0(fp)
			}
			if ok {
				out++
			}
			continue
		}
		om := outMsg{msg: r.message(p), qos: qos, retain: retain, group: m.group}
		if ids := r.idsFor(m); ids != nil {
			om.subIDs = slices.Clone(ids)
		}
		seq, full := m.sess.offer(om, r.from != nil && r.from != m.sess && s.opts.BackpressureWait > 0)
		r.seq = max(r.seq, seq)
		if full {
			r.full = append(r.full, m.sess)
		}
	}
	if out > 0 {
		s.stats.messagesOut.Add(out)
	}
}
