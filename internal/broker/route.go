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

// Subscription option bits packed into subscription.opts.
const (
	optQoSMask = 0x3
	optNoLocal = 1 << 2
	optRAP     = 1 << 3
)

// subscription is one filter of one session, the value stored in the trie.
type subscription struct {
	sess   *session
	filter string
	opts   atomic.Uint32 // QoS and option bits, updated in place on re-subscribe
}

func packOpts(qos byte, noLocal, rap bool) uint32 {
	o := uint32(qos & optQoSMask)
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
	sess *session
	qos  byte
	rap  bool
}

// router holds the scratch state of routing one message, reused across
// messages by one goroutine so the QoS 0 path does not allocate.
type router struct {
	matches []match
	from    *session
	collect func(filter string, sub *subscription) bool
	enc     [4][]byte // encoded QoS 0 PUBLISH by [v5][retain]
	encOK   [4]bool
	fwd     packets.Publish
	owned   *message
	now     time.Time
}

func newRouter() *router {
	r := &router{}
	r.collect = r.add
	return r
}

func (r *router) add(_ string, sub *subscription) bool {
	o := sub.opts.Load()
	if o&optNoLocal != 0 && sub.sess == r.from {
		return true
	}
	r.matches = append(r.matches, match{sess: sub.sess, qos: byte(o & optQoSMask), rap: o&optRAP != 0})
	return true
}

// reset forgets the message routed last.
func (r *router) reset() {
	r.encOK = [4]bool{}
	r.owned = nil
	r.from = nil
	clear(r.matches)
	r.matches = r.matches[:0]
	r.fwd = packets.Publish{}
	for i := range r.enc {
		if cap(r.enc[i]) > 64<<10 {
			r.enc[i] = nil
		}
	}
}

// message returns the owned copy of p, made on first use.
func (r *router) message(p *packets.Publish) *message {
	if r.owned == nil {
		r.owned = newMessage(p, r.now)
	}
	return r.owned
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
		r.fwd.Dup = false
		r.fwd.QoS = 0
		r.fwd.PacketID = 0
		r.fwd.Retain = retain
		r.fwd.Topic = p.Topic
		r.fwd.Payload = p.Payload
		r.fwd.Properties = packets.Properties{
			PayloadFormat:   p.Properties.PayloadFormat,
			MessageExpiry:   p.Properties.MessageExpiry,
			ContentType:     p.Properties.ContentType,
			ResponseTopic:   p.Properties.ResponseTopic,
			CorrelationData: p.Properties.CorrelationData,
			User:            p.Properties.User,
		}
		r.enc[i] = packets.AppendPublish(r.enc[i][:0], version, &r.fwd)
		r.encOK[i] = true
	}
	return r.enc[i]
}

// dedupe merges matches of the same session (overlapping subscriptions) into
// one delivery with the highest QoS.
func (r *router) dedupe() {
	m := r.matches
	if len(m) < 2 {
		return
	}
	if len(m) > 16 {
		slices.SortFunc(m, func(a, b match) int { return cmp.Compare(a.sess.uid, b.sess.uid) })
		out := m[:1]
		for _, x := range m[1:] {
			last := &out[len(out)-1]
			if x.sess == last.sess {
				last.qos = max(last.qos, x.qos)
				last.rap = last.rap || x.rap
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
				out[j].qos = max(out[j].qos, x.qos)
				out[j].rap = out[j].rap || x.rap
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
// session (for No Local), nil for server messages.
func (s *Server) route(r *router, from *session, p *packets.Publish, now time.Time) {
	r.now = now
	if p.Retain {
		if len(p.Payload) == 0 {
			s.retained.clear(p.Topic)
		} else {
			s.retained.set(r.message(p))
		}
	}
	r.from = from
	r.matches = r.matches[:0]
	s.subs.Match(p.Topic, r.collect)
	if len(r.matches) == 0 {
		return
	}
	r.dedupe()
	var out int64
	for _, m := range r.matches {
		qos := min(p.QoS, m.qos)
		retain := m.rap && p.Retain
		if qos == 0 {
			c := m.sess.conn.Load()
			if c == nil {
				continue
			}
			if c.appendQoS0(r.encoded(p, c.version, retain)) {
				out++
			}
			continue
		}
		m.sess.deliver(outMsg{msg: r.message(p), qos: qos, retain: retain})
	}
	if out > 0 {
		s.stats.messagesOut.Add(out)
	}
}
