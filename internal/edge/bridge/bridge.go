// Package bridge connects the agent's local broker to the cloud. It owns
// the forwarding rules (which local topics go up, under which cloud topic),
// the sender that drains the spool over the uplink with QoS 1, and the
// routing of what the cloud sends down (commands to the local broker, the
// agent's rule set to a callback).
//
// # Outbound path
//
// Bridge is a broker.PublishHook. For every message a local client
// publishes (and every message a local rule republishes) whose topic
// matches a forward route, it appends the mapped message to the spool
// before returning, so the local QoS 1 PUBACK follows the spool append.
// Nothing is sent from the hook: a sender goroutine reads the spool and
// publishes with QoS 1 over the uplink, and a record leaves the spool only
// when the cloud's PUBACK arrives (or the cloud refused it for good, see
// Refusals).
//
// # Order and catch-up (live and backlog lanes)
//
// When the uplink (re)connects, the records queued before that moment are
// the backlog; records appended afterwards are live. The sender runs two
// lanes over the one spool:
//
//   - the live lane sends each new record at once, unless an older record
//     with the same cloud topic is still waiting in the backlog; then the
//     record is left to the backlog lane;
//   - the backlog lane walks the spool from the oldest unacknowledged
//     record in order, skips what the live lane already sent, and sends
//     backlog records at most CatchUpRate per second (live records it
//     meets are not rate limited).
//
// So messages with the same cloud topic (one device's telemetry) reach
// the cloud in the order they were queued, and the devices and topics
// without backlog are not delayed by a catch-up: their live data flows at
// once while the backlog drains at the configured rate. A device whose
// topic has backlog gets its live data after its backlog, necessarily.
// All lanes share the uplink's inflight window (MaxInflight).
//
// # Refusals
//
// A PUBACK with reason "not authorized" (0x87), "topic name invalid"
// (0x90), "packet too large" (0x95) or "payload format invalid" (0x99)
// cannot succeed on a resend: the record is removed, counted in
// Stats.Refused and the last refusal (topic and reason) is kept in Stats.
// This is what a cloud does today with child-device topics of a gateway
// whose identity may only publish in its own namespace. Any other failure
// reason makes the bridge reconnect after a pause and resend from the
// oldest unacknowledged record.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/broker/packets"
	"github.com/edgewise-iot/edgewise/internal/edge/spool"
	"github.com/edgewise-iot/edgewise/internal/edge/uplink"
)

// Publisher delivers a message to the local broker; *broker.Server
// satisfies it.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}

// Options configure a Bridge.
type Options struct {
	// Agent is the agent's thing name (${agent} in routes).
	Agent string
	// Uplink is the cloud connection (OnMessage is set by the bridge).
	Uplink uplink.Options
	Spool  *spool.Spool
	// Forward routes local topics to cloud topics.
	Forward []Route
	// Inbound routes cloud topics (subscribed with QoS 1) to local topics.
	Inbound []Route
	// Local receives inbound messages.
	Local Publisher
	// RulesTopic is the cloud topic carrying the agent's rule set (default
	// devices/{agent}/agent/rules); each message on it goes to OnRules.
	RulesTopic string
	OnRules    func(payload []byte)
	// StatusTopic is where Status is published, retained, after every
	// connect and on SetStatus (default devices/{agent}/agent/status).
	StatusTopic string
	// CatchUpRate bounds backlog records sent per second (0: unlimited).
	CatchUpRate float64
	// BackoffMin and BackoffMax bound reconnect delays (default 500ms, 30s).
	BackoffMin, BackoffMax time.Duration
	Logger                 *slog.Logger
}

// Refusal is the last record the cloud refused.
type Refusal struct {
	Topic  string    `json:"topic"`
	Reason string    `json:"reason"`
	Code   byte      `json:"code"`
	At     time.Time `json:"at"`
}

// Stats are the bridge's counters.
type Stats struct {
	Connected       bool       `json:"connected"`
	Broker          string     `json:"broker"`
	Connects        uint64     `json:"connects"`
	Reconnects      uint64     `json:"reconnects"` // connections lost or failed after the first
	LastError       string     `json:"last_error,omitempty"`
	ConnectedSince  *time.Time `json:"connected_since,omitempty"`
	Forwarded       uint64     `json:"forwarded"`     // records appended to the spool
	NotForwarded    uint64     `json:"not_forwarded"` // local messages no route matched
	Sent            uint64     `json:"sent"`          // publishes written to the uplink
	SentLive        uint64     `json:"sent_live"`
	SentBacklog     uint64     `json:"sent_backlog"`
	Acked           uint64     `json:"acked"`
	Refused         uint64     `json:"refused"`
	LastRefusal     *Refusal   `json:"last_refusal,omitempty"`
	Backlog         uint64     `json:"backlog"` // records of the backlog lane not yet sent
	CatchUpRate     float64    `json:"catch_up_rate"`
	Inbound         uint64     `json:"inbound"` // cloud messages routed to the local broker
	RuleUpdates     uint64     `json:"rule_updates"`
	SubscribeErrors []string   `json:"subscribe_errors,omitempty"`
}

// Bridge forwards local messages to the cloud and cloud messages to the
// edge.
type Bridge struct {
	opts    Options
	log     *slog.Logger
	forward *router
	inbound *router

	mu        sync.Mutex
	conn      *uplink.Conn
	status    []byte
	lastErr   string
	since     time.Time
	refusal   *Refusal
	subErrors []string
	backlog   uint64

	connects, reconnects, forwarded, notForwarded, sent, sentLive, sentBacklog atomic.Uint64
	acked, refused, inboundN, ruleUpdates                                      atomic.Uint64

	rules chan []byte // latest rule set, handed to OnRules off the reader goroutine
}

// New checks the routes and returns a bridge; Run connects it.
func New(opts Options) (*Bridge, error) {
	if opts.Agent == "" || opts.Spool == nil {
		return nil, errors.New("bridge: Agent and Spool are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RulesTopic == "" {
		opts.RulesTopic = "devices/" + opts.Agent + "/agent/rules"
	}
	if opts.StatusTopic == "" {
		opts.StatusTopic = "devices/" + opts.Agent + "/agent/status"
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 500 * time.Millisecond
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(30*time.Second, opts.BackoffMin)
	}
	b := &Bridge{opts: opts, log: opts.Logger, rules: make(chan []byte, 1)}
	var err error
	if b.forward, err = newRouter(opts.Agent, opts.Forward); err != nil {
		return nil, err
	}
	if b.inbound, err = newRouter(opts.Agent, opts.Inbound); err != nil {
		return nil, err
	}
	return b, nil
}

// OnPublish appends the local messages that match a forward route to the
// spool. An error (spool full with reject_new, disk error) fails the batch,
// so local QoS 1 publishers are not acknowledged and resend.
func (b *Bridge) OnPublish(_ context.Context, batch []*broker.Message) error {
	var recs []spool.Record
	for _, m := range batch {
		to, ok := b.forward.match(m.Topic)
		if !ok {
			b.notForwarded.Add(1)
			continue
		}
		recs = append(recs, spool.Record{Topic: to, Payload: append([]byte(nil), m.Payload...), QoS: 1, Retain: m.Retain})
	}
	if len(recs) == 0 {
		return nil
	}
	if err := b.opts.Spool.Append(recs); err != nil {
		return fmt.Errorf("bridge: queue for the cloud: %w", err)
	}
	b.forwarded.Add(uint64(len(recs)))
	return nil
}

// SetStatus sets the retained status message and publishes it now if the
// uplink is connected (otherwise at the next connect).
func (b *Bridge) SetStatus(payload []byte) {
	b.mu.Lock()
	b.status = append([]byte(nil), payload...)
	c := b.conn
	b.mu.Unlock()
	if c != nil {
		b.publishStatus(c)
	}
}

func (b *Bridge) publishStatus(c *uplink.Conn) {
	b.mu.Lock()
	st := b.status
	b.mu.Unlock()
	if st == nil {
		return
	}
	err := c.Publish(context.Background(), b.opts.StatusTopic, st, 1, true, func(rc byte, err error) {
		if err == nil && rc >= 0x80 {
			b.log.Warn("cloud refused the agent status", "topic", b.opts.StatusTopic, "reason", uplink.ReasonName(rc))
		}
	})
	if err != nil {
		b.log.Debug("status not published", "err", err)
	}
}

// Stats returns the counters.
func (b *Bridge) Stats() Stats {
	b.mu.Lock()
	st := Stats{Connected: b.conn != nil, Broker: b.opts.Uplink.Addr, LastError: b.lastErr, LastRefusal: b.refusal,
		SubscribeErrors: b.subErrors, Backlog: b.backlog, CatchUpRate: b.opts.CatchUpRate}
	if b.conn != nil {
		t := b.since
		st.ConnectedSince = &t
	}
	b.mu.Unlock()
	st.Connects, st.Reconnects = b.connects.Load(), b.reconnects.Load()
	st.Forwarded, st.NotForwarded = b.forwarded.Load(), b.notForwarded.Load()
	st.Sent, st.SentLive, st.SentBacklog = b.sent.Load(), b.sentLive.Load(), b.sentBacklog.Load()
	st.Acked, st.Refused = b.acked.Load(), b.refused.Load()
	st.Inbound, st.RuleUpdates = b.inboundN.Load(), b.ruleUpdates.Load()
	return st
}

// Run keeps the uplink connected and drains the spool until ctx ends.
func (b *Bridge) Run(ctx context.Context) error {
	go b.applyRules(ctx)
	backoff := b.opts.BackoffMin
	for ctx.Err() == nil {
		err := b.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		b.reconnects.Add(1)
		b.mu.Lock()
		if err != nil {
			b.lastErr = err.Error()
		}
		b.mu.Unlock()
		b.log.Warn("uplink down; retrying", "broker", b.opts.Uplink.Addr, "in", backoff.Round(time.Millisecond), "err", err)
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, b.opts.BackoffMax)
		if b.wasUpLong() {
			backoff = b.opts.BackoffMin
		}
	}
	return nil
}

func (b *Bridge) wasUpLong() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.since.IsZero() && time.Since(b.since) > 10*time.Second
}

// applyRules hands rule sets to OnRules one at a time, newest first.
func (b *Bridge) applyRules(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-b.rules:
			if b.opts.OnRules != nil {
				b.opts.OnRules(p)
			}
		}
	}
}

func (b *Bridge) onMessage(topic string, payload []byte, retain bool) {
	if topic == b.opts.RulesTopic {
		b.ruleUpdates.Add(1)
		select { // keep only the newest pending rule set
		case <-b.rules:
		default:
		}
		b.rules <- payload
		return
	}
	to, ok := b.inbound.match(topic)
	if !ok || b.opts.Local == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.opts.Local.Publish(ctx, to, payload, 1, retain); err != nil {
		b.log.Warn("inbound message not delivered locally", "topic", to, "err", err)
		return
	}
	b.inboundN.Add(1)
}

// session is one connection: connect, subscribe, send until it ends.
func (b *Bridge) session(ctx context.Context) error {
	uo := b.opts.Uplink
	uo.OnMessage = b.onMessage
	uo.Logger = b.log
	c, err := uplink.Dial(ctx, uo)
	if err != nil {
		return err
	}
	b.connects.Add(1)
	b.mu.Lock()
	b.conn, b.since, b.lastErr = c, time.Now(), ""
	b.mu.Unlock()
	b.log.Info("uplink connected", "broker", uo.Addr, "client_id", uo.ClientID)
	defer func() {
		b.mu.Lock()
		b.conn = nil
		b.mu.Unlock()
		c.Close()
	}()
	subs := []packets.Subscription{{Filter: b.opts.RulesTopic, QoS: 1}}
	for _, r := range b.inbound.routes {
		subs = append(subs, packets.Subscription{Filter: r.filter, QoS: 1})
	}
	codes, err := c.Subscribe(ctx, subs)
	if err != nil {
		return fmt.Errorf("bridge: subscribe: %w", err)
	}
	var subErrs []string
	for i, rc := range codes {
		if rc >= 0x80 && i < len(subs) {
			subErrs = append(subErrs, fmt.Sprintf("%s: %s", subs[i].Filter, uplink.ReasonName(rc)))
			b.log.Warn("cloud refused a subscription", "filter", subs[i].Filter, "reason", uplink.ReasonName(rc))
		}
	}
	b.mu.Lock()
	b.subErrors = subErrs
	b.mu.Unlock()
	b.publishStatus(c)
	return b.send(ctx, c)
}

// permanent reports whether a PUBACK reason means a resend cannot succeed.
func permanent(rc byte) bool {
	switch rc {
	case 0x87, 0x90, 0x95, 0x99:
		return true
	}
	return false
}

// send runs the live and backlog lanes until the connection ends.
func (b *Bridge) send(ctx context.Context, c *uplink.Conn) error {
	sp := b.opts.Spool
	epoch := sp.Next()
	head := sp.Head()
	// pending counts, per cloud topic, the records between the backlog
	// reader and the live reader that are not sent yet.
	pending := map[string]int{}
	scan := sp.NewReader(head)
	for scan.Pos() < epoch {
		recs, err := scan.Next(256, 0)
		if err != nil {
			scan.Close()
			return err
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Seq < epoch && !sp.IsAcked(r.Seq) {
				pending[r.Topic]++
			}
		}
	}
	scan.Close()
	back := sp.NewReader(head)
	defer back.Close()
	live := sp.NewReader(epoch)
	defer live.Close()
	sentLive := map[uint64]struct{}{}
	var held *spool.Record // a backlog record waiting for a token
	fail := make(chan error, 1)

	tokens, last := 0.0, time.Now()
	burst := max(1, b.opts.CatchUpRate/10)
	take := func() (bool, time.Duration) {
		if b.opts.CatchUpRate <= 0 {
			return true, 0
		}
		now := time.Now()
		tokens = min(burst, tokens+now.Sub(last).Seconds()*b.opts.CatchUpRate)
		last = now
		if tokens >= 1 {
			tokens--
			return true, 0
		}
		return false, time.Duration((1 - tokens) / b.opts.CatchUpRate * float64(time.Second))
	}
	publish := func(r spool.Record) error {
		seq, topic := r.Seq, r.Topic
		err := c.Publish(ctx, r.Topic, r.Payload, 1, r.Retain, func(rc byte, err error) {
			switch {
			case err != nil:
				// Connection lost: resent after the reconnect.
			case rc < 0x80:
				sp.Ack(seq)
				b.acked.Add(1)
			case permanent(rc):
				sp.Ack(seq)
				b.refused.Add(1)
				b.mu.Lock()
				first := b.refusal == nil || b.refusal.Topic != topic || b.refusal.Code != rc
				b.refusal = &Refusal{Topic: topic, Reason: uplink.ReasonName(rc), Code: rc, At: time.Now()}
				b.mu.Unlock()
				if first {
					b.log.Warn("cloud refused a forwarded message; dropped", "topic", topic, "reason", uplink.ReasonName(rc))
				}
			default:
				select {
				case fail <- fmt.Errorf("bridge: cloud failed a publish on %s: %s", topic, uplink.ReasonName(rc)):
				default:
				}
			}
		})
		if err == nil {
			b.sent.Add(1)
		}
		return err
	}
	setBacklog := func() {
		var n uint64
		for _, v := range pending {
			n += uint64(v)
		}
		b.mu.Lock()
		b.backlog = n
		b.mu.Unlock()
	}
	setBacklog()
	defer func() {
		b.mu.Lock()
		b.backlog = 0
		b.mu.Unlock()
	}()
	for {
		notify := sp.Notify()
		progressed := false
		// Live lane.
		recs, err := live.Next(64, 1<<20)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if pending[r.Topic] > 0 {
				pending[r.Topic]++
				continue
			}
			if held == nil && back.Pos() >= live.Pos() {
				// No backlog left: one lane.
				back.Seek(r.Seq + 1)
			} else {
				sentLive[r.Seq] = struct{}{}
			}
			if err := publish(r); err != nil {
				return err
			}
			b.sentLive.Add(1)
			progressed = true
		}
		// Backlog lane: in spool order up to the live reader.
		var wait time.Duration
		for n := 0; n < 64 && (held != nil || back.Pos() < live.Pos()); n++ {
			r := held
			held = nil
			if r == nil {
				recs, err := back.Next(1, 0)
				if err != nil {
					return err
				}
				if len(recs) == 0 {
					break
				}
				r = &recs[0]
			}
			if _, ok := sentLive[r.Seq]; ok {
				delete(sentLive, r.Seq)
				continue
			}
			if r.Seq < epoch && sp.IsAcked(r.Seq) {
				continue // acknowledged before this connection; never counted
			}
			if r.Seq < epoch {
				ok, d := take()
				if !ok {
					held, wait = r, d // retry this record when a token is due
					break
				}
			}
			if err := publish(*r); err != nil {
				return err
			}
			if pending[r.Topic]--; pending[r.Topic] <= 0 {
				delete(pending, r.Topic)
			}
			b.sentBacklog.Add(1)
			progressed = true
		}
		if held == nil && back.Pos() >= live.Pos() && len(pending) > 0 {
			clear(pending) // records dropped by the spool's limits meanwhile
		}
		setBacklog()
		if progressed {
			select {
			case err := <-fail:
				return err
			case <-c.Done():
				return c.Err()
			default:
			}
			continue
		}
		var timer <-chan time.Time
		if wait > 0 {
			timer = time.After(wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.Done():
			if err := c.Err(); err != nil {
				return err
			}
			return uplink.ErrClosed
		case err := <-fail:
			return err
		case <-notify:
		case <-timer:
		}
	}
}
