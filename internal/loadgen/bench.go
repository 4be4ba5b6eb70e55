package loadgen

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// Scenario names a benchmark topology.
type Scenario string

// Benchmark scenarios.
const (
	// ScenarioP2P: P publishers, each on bench/p2p/{i} with one subscriber
	// of its own (P pairs).
	ScenarioP2P Scenario = "p2p"
	// ScenarioFanout: P publishers on bench/fanout/{i}; S subscriber
	// connections each subscribed to every publisher's topic.
	ScenarioFanout Scenario = "fanout"
	// ScenarioFanin: P publishers on bench/fanin/{i}; S subscribers on
	// bench/fanin/+.
	ScenarioFanin Scenario = "fanin"
	// ScenarioConn: open C connections (CONNECT + SUBSCRIBE to an own
	// topic), measure connects/s, then hold them idle.
	ScenarioConn Scenario = "conn"
	// ScenarioShared: P publishers on bench/shared/{i}; S subscribers in
	// one shared subscription $share/bench/bench/shared/+, so each message
	// goes to one of them. A target that refuses shared subscriptions is
	// measured with plain subscriptions instead (BenchResult.Note says so).
	ScenarioShared Scenario = "shared"
	// ScenarioSlow: "many slow devices": Conns connections, each
	// publishing one QoS 1 message every Interval on its own topic (phases
	// spread evenly), measuring PUBACK latency.
	ScenarioSlow Scenario = "slow"
)

// ErrBadOptions is returned (wrapped) for invalid benchmark or simulation
// options.
var ErrBadOptions = errors.New("invalid options")

// BenchOptions configures RunBench. The zero value (plus Addr) runs a 10 s
// point-to-point QoS 0 benchmark with MQTT 3.1.1 and 64-byte payloads.
type BenchOptions struct {
	Addr     string   // broker host:port (required)
	Scenario Scenario // default ScenarioP2P

	// Pubs and Subs size the topology; 0 picks the scenario default
	// (p2p: 2 pairs; fanout: 1 publisher, 8 subscribers; fanin: 8
	// publishers, 1 subscriber). Subs is ignored by p2p.
	Pubs, Subs int
	Size       int  // payload bytes, at least StampSize; default 64
	QoS        byte // 0 or 1
	Version    byte // 4 (MQTT 3.1.1, default) or 5

	Duration time.Duration // measured period; default 10 s
	Warmup   time.Duration // publishing before measuring; default 1 s, negative = none
	Drain    time.Duration // longest wait for in-flight messages after publishing stops; default 2 s

	// Rate is the total publish rate in messages/s over all publishers;
	// 0 publishes as fast as possible.
	Rate   float64
	Window int // QoS 1 messages in flight per publisher; default 128
	Batch  int // QoS 0 messages written per flush; default 64

	Username, Password string
	ClientIDPrefix     string // default "ewb-<random>-"
	// TopicPrefix starts every topic and filter the scenarios use
	// (default "bench/"); an authenticated device may only use its own
	// namespace, e.g. "devices/{name}/".
	TopicPrefix string

	// Conns, Hold and ConnectConcurrency drive ScenarioConn: Conns
	// connections (default 1000) opened ConnectConcurrency at a time
	// (default 100), then held idle for Hold (0 = release at once; the
	// context ends the hold early). OnHeld, if set, is called once all
	// connections are open, before the hold.
	Conns              int
	Hold               time.Duration
	ConnectConcurrency int
	OnHeld             func(held int)

	// Interval is how often each connection of ScenarioSlow publishes
	// (default 5 s).
	Interval time.Duration
	// PID, when set, is the target broker's process id on this machine: its
	// resident memory is read from /proc before connecting and once the
	// connections are established (ScenarioConn: at the end of the hold).
	PID int

	// Dial replaces net.Dialer.DialContext (tests, source address choice).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	Logger *slog.Logger // nil discards
}

// BenchResult is the outcome of RunBench. Counts cover the measured period
// only: messages stamped (sent) after the warm-up and before the end.
type BenchResult struct {
	Scenario Scenario `json:"scenario"`
	Addr     string   `json:"addr"`
	Version  byte     `json:"mqtt_version"`
	QoS      byte     `json:"qos"`
	Size     int      `json:"payload_bytes"`
	Pubs     int      `json:"pubs"`
	Subs     int      `json:"subs"`
	// Fanout is how many subscribers receive each message.
	Fanout     int           `json:"fanout"`
	TargetRate float64       `json:"target_rate"`
	Warmup     time.Duration `json:"warmup_ns"`
	Elapsed    time.Duration `json:"duration_ns"`

	Sent         uint64  `json:"sent"`
	Received     uint64  `json:"received"`
	Expected     uint64  `json:"expected"` // Sent * Fanout
	Lost         int64   `json:"lost"`     // Expected - Received (negative: duplicates)
	SentRate     float64 `json:"sent_per_sec"`
	ReceivedRate float64 `json:"received_per_sec"`
	// ArrivedRate counts deliveries by arrival time inside the measured
	// period, whenever they were sent: the broker's delivery capacity even
	// when backlog makes open-loop latency exceed the run (a broker that
	// pushes back on publishers may then have stamped nothing inside it).
	ArrivedRate float64 `json:"arrived_per_sec"`
	Acked       uint64  `json:"acked,omitempty"` // QoS 1 PUBACKs for measured messages

	Latency    Latency  `json:"latency"`               // publish to delivery
	AckLatency *Latency `json:"ack_latency,omitempty"` // QoS 1 publish to PUBACK

	Errors     uint64 `json:"errors"`
	FirstError string `json:"first_error,omitempty"`

	// ScenarioConn only.
	Conns          int           `json:"conns,omitempty"`
	Connected      int           `json:"connected,omitempty"`
	ConnectElapsed time.Duration `json:"connect_ns,omitempty"`
	ConnectRate    float64       `json:"connects_per_sec,omitempty"`
	ConnectLatency *Latency      `json:"connect_latency,omitempty"`
	Held           int           `json:"held,omitempty"`

	// With BenchOptions.PID: the target's resident memory before
	// connecting, with the connections established, and the difference
	// per connection.
	TargetRSSBefore int64   `json:"target_rss_before_bytes,omitempty"`
	TargetRSSAfter  int64   `json:"target_rss_after_bytes,omitempty"`
	RSSPerConn      float64 `json:"rss_per_conn_bytes,omitempty"`

	// Note explains a deviation from the scenario (a fallback).
	Note string `json:"note,omitempty"`
}

func (o BenchOptions) withDefaults() (BenchOptions, error) {
	if o.Addr == "" {
		return o, fmt.Errorf("bench: broker address required: %w", ErrBadOptions)
	}
	if o.Scenario == "" {
		o.Scenario = ScenarioP2P
	}
	switch o.Scenario {
	case ScenarioP2P:
		if o.Pubs == 0 {
			o.Pubs = 2
		}
		o.Subs = o.Pubs
	case ScenarioFanout:
		if o.Pubs == 0 {
			o.Pubs = 1
		}
		if o.Subs == 0 {
			o.Subs = 8
		}
	case ScenarioFanin:
		if o.Pubs == 0 {
			o.Pubs = 8
		}
		if o.Subs == 0 {
			o.Subs = 1
		}
	case ScenarioShared:
		if o.Pubs == 0 {
			o.Pubs = 4
		}
		if o.Subs == 0 {
			o.Subs = 4
		}
	case ScenarioConn, ScenarioSlow:
		if o.Conns == 0 {
			o.Conns = 1000
		}
		if o.Conns < 0 {
			return o, fmt.Errorf("bench: conns %d: %w", o.Conns, ErrBadOptions)
		}
		if o.Scenario == ScenarioSlow {
			o.QoS = 1
			if o.Interval == 0 {
				o.Interval = 5 * time.Second
			}
			if o.Interval < 0 {
				return o, fmt.Errorf("bench: negative interval: %w", ErrBadOptions)
			}
		}
	default:
		return o, fmt.Errorf("bench: unknown scenario %q (want p2p, fanout, fanin, shared, conn or slow): %w", o.Scenario, ErrBadOptions)
	}
	if o.Pubs < 0 || o.Subs < 0 {
		return o, fmt.Errorf("bench: negative pubs or subs: %w", ErrBadOptions)
	}
	if o.Size == 0 {
		o.Size = 64
	}
	if o.Size < StampSize {
		return o, fmt.Errorf("bench: payload size %d below the %d-byte timestamp: %w", o.Size, StampSize, ErrBadOptions)
	}
	if o.QoS > 1 {
		return o, fmt.Errorf("bench: QoS %d not supported (0 or 1): %w", o.QoS, ErrBadOptions)
	}
	switch o.Version {
	case 0:
		o.Version = packets.V311
	case packets.V311, packets.V5:
	default:
		return o, fmt.Errorf("bench: MQTT version %d (want 4 or 5): %w", o.Version, ErrBadOptions)
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Duration < 0 || o.Rate < 0 {
		return o, fmt.Errorf("bench: negative duration or rate: %w", ErrBadOptions)
	}
	if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.Drain <= 0 {
		o.Drain = 2 * time.Second
	}
	if o.Window <= 0 {
		o.Window = 128
	}
	if o.Window > 65535 {
		o.Window = 65535
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.ConnectConcurrency <= 0 {
		o.ConnectConcurrency = 100
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = "bench/"
	}
	if o.ClientIDPrefix == "" {
		var b [3]byte
		_, _ = rand.Read(b[:])
		o.ClientIDPrefix = "ewb-" + hex.EncodeToString(b[:]) + "-"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o, nil
}

// errorLog counts errors and keeps the first.
type errorLog struct {
	n     atomic.Uint64
	mu    sync.Mutex
	first error
}

func (e *errorLog) add(err error) {
	e.n.Add(1)
	e.mu.Lock()
	if e.first == nil {
		e.first = err
	}
	e.mu.Unlock()
}

func (e *errorLog) firstString() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.first == nil {
		return ""
	}
	return e.first.Error()
}

// window is the measured period in unix nanoseconds, shared by the
// publishers (which count what they stamp inside it) and the subscribers
// (which count what they receive stamped inside it).
type window struct {
	start, end atomic.Int64
}

func (w *window) contains(ns int64) bool {
	return ns >= w.start.Load() && ns < w.end.Load()
}

// RunBench runs one benchmark against opts.Addr and returns its result. All
// connections and subscriptions are established (SUBACK received) before
// any message is published. Cancelling ctx stops the run early; the result
// then covers what was measured so far.
func RunBench(ctx context.Context, opts BenchOptions) (*BenchResult, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	switch o.Scenario {
	case ScenarioConn:
		return runConnBench(ctx, o)
	case ScenarioSlow:
		return runSlowBench(ctx, o)
	}
	return runPubSubBench(ctx, o)
}

func (o *BenchOptions) connectConfig(clientID string) connectConfig {
	return connectConfig{
		addr:     o.Addr,
		clientID: clientID,
		username: o.Username,
		password: o.Password,
		version:  o.Version,
		dial:     o.Dial,
	}
}

// topology returns the publishers' topics and each subscriber's filters.
func (o *BenchOptions) topology() (pubTopics []string, subFilters [][]string, fanout int) {
	prefix := o.topicPrefix() + string(o.Scenario) + "/"
	for i := range o.Pubs {
		pubTopics = append(pubTopics, prefix+strconv.Itoa(i))
	}
	switch o.Scenario {
	case ScenarioP2P:
		for _, t := range pubTopics {
			subFilters = append(subFilters, []string{t})
		}
		return pubTopics, subFilters, 1
	case ScenarioFanout:
		for range o.Subs {
			subFilters = append(subFilters, pubTopics)
		}
	case ScenarioFanin:
		for range o.Subs {
			subFilters = append(subFilters, []string{prefix + "+"})
		}
	case ScenarioShared:
		for range o.Subs {
			subFilters = append(subFilters, []string{SharedGroupPrefix + prefix + "+"})
		}
		return pubTopics, subFilters, 1
	}
	return pubTopics, subFilters, o.Subs
}

// forEach runs fn(i) for i in [0, n) with at most limit running at once and
// returns the first error (after all started calls have returned).
func forEach(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, limit)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			if first == nil {
				first = ctx.Err()
			}
			return first
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	return first
}

// subscriber is one receiving connection of a pub/sub benchmark.
type subscriber struct {
	c        *rawConn
	received atomic.Uint64 // messages stamped inside the window
	arrived  atomic.Uint64 // messages arriving inside the window, whenever stamped
	hist     Histogram     // owned by the reader goroutine
}

func (s *subscriber) run(win *window, stopping *atomic.Bool, errs *errorLog) {
	var p packets.Publish
	var ack []byte
	c := s.c
	for {
		if c.br.Buffered() == 0 && c.bw.Buffered() > 0 {
			if err := c.bw.Flush(); err != nil {
				if !stopping.Load() {
					errs.add(fmt.Errorf("subscriber: write PUBACK: %w", err))
				}
				return
			}
		}
		h, body, err := c.readPacket()
		if err != nil {
			if !stopping.Load() {
				errs.add(fmt.Errorf("subscriber: read: %w", err))
			}
			return
		}
		if h.Type != packets.PUBLISH {
			if h.Type == packets.DISCONNECT {
				errs.add(fmt.Errorf("subscriber: disconnected by broker: %w", ErrRefused))
				return
			}
			continue
		}
		if err := packets.DecodePublish(c.version, h, body, &p); err != nil {
			errs.add(fmt.Errorf("subscriber: %w", err))
			return
		}
		now := time.Now().UnixNano()
		if win.contains(now) {
			s.arrived.Add(1)
		}
		if sent, ok := Stamp(p.Payload); ok && win.contains(sent) {
			s.received.Add(1)
			s.hist.Record(now - sent)
		}
		if p.QoS == 1 {
			ack = packets.AppendAck(ack[:0], c.version, &packets.Ack{Type: packets.PUBACK, PacketID: p.PacketID})
			_, _ = c.bw.Write(ack)
		}
	}
}

// publisher is one sending connection of a pub/sub benchmark.
type publisher struct {
	c     *rawConn
	topic string
	sent  uint64 // messages stamped inside the window; owned by run
	// QoS 1 only:
	free      chan uint16    // free packet ids; doubles as the window
	sentAt    []atomic.Int64 // send time per packet id
	acked     atomic.Uint64  // PUBACKs for messages inside the window
	ackHist   Histogram      // owned by the ack reader
	ackerDone chan struct{}
}

// runAcks reads a QoS 1 publisher's PUBACKs (and drains anything else the
// broker sends, such as PINGRESP).
func (p *publisher) runAcks(win *window, stopping *atomic.Bool, errs *errorLog) {
	defer close(p.ackerDone)
	var a packets.Ack
	for {
		h, body, err := p.c.readPacket()
		if err != nil {
			if !stopping.Load() {
				errs.add(fmt.Errorf("publisher: read: %w", err))
			}
			return
		}
		switch h.Type {
		case packets.PUBACK:
			if err := packets.DecodeAck(p.c.version, h, body, &a); err != nil {
				errs.add(fmt.Errorf("publisher: %w", err))
				return
			}
			if a.PacketID == 0 || int(a.PacketID) >= len(p.sentAt) {
				errs.add(fmt.Errorf("publisher: PUBACK for unknown packet id %d: %w", a.PacketID, packets.ErrProtocol))
				continue
			}
			if a.ReasonCode >= 0x80 {
				errs.add(fmt.Errorf("publisher: PUBACK reason 0x%02X: %w", a.ReasonCode, ErrRefused))
			}
			sent := p.sentAt[a.PacketID].Load()
			if win.contains(sent) {
				p.acked.Add(1)
				p.ackHist.Record(time.Now().UnixNano() - sent)
			}
			p.free <- a.PacketID
		case packets.DISCONNECT:
			errs.add(fmt.Errorf("publisher: disconnected by broker: %w", ErrRefused))
			return
		}
	}
}

// run publishes until the window ends, ctx is done or a write fails.
// perPubRate is messages/s for this publisher (0 = unpaced).
func (p *publisher) run(ctx context.Context, o *BenchOptions, win *window, begin time.Time, perPubRate float64, errs *errorLog) {
	c := p.c
	payload := make([]byte, o.Size)
	for i := StampSize; i < len(payload); i++ {
		payload[i] = byte('a' + i%26)
	}
	msg := packets.Publish{Topic: p.topic, QoS: o.QoS, Payload: payload}
	var buf []byte
	end := win.end.Load()
	var n uint64 // messages written
	inBatch := 0
	flush := func() bool {
		inBatch = 0
		if err := c.bw.Flush(); err != nil {
			errs.add(fmt.Errorf("publisher: write: %w", err))
			return false
		}
		return true
	}
	defer flush()
	for ctx.Err() == nil {
		if perPubRate > 0 {
			// Send what the schedule says is due; sleep until the next slot.
			due := uint64(time.Since(begin).Seconds()*perPubRate) + 1
			if n >= due {
				if !flush() {
					return
				}
				next := begin.Add(time.Duration(float64(n) / perPubRate * float64(time.Second)))
				if d := time.Until(next); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return
					}
				}
				continue
			}
		}
		if o.QoS == 1 {
			var id uint16
			select {
			case id = <-p.free:
			default:
				if !flush() {
					return
				}
				select {
				case id = <-p.free:
				case <-ctx.Done():
					return
				}
			}
			msg.PacketID = id
		}
		now := time.Now()
		ns := now.UnixNano()
		if ns >= end {
			return
		}
		PutStamp(payload, now)
		if o.QoS == 1 {
			p.sentAt[msg.PacketID].Store(ns)
		}
		buf = packets.AppendPublish(buf[:0], o.Version, &msg)
		if _, err := c.bw.Write(buf); err != nil {
			errs.add(fmt.Errorf("publisher: write: %w", err))
			return
		}
		n++
		if ns >= win.start.Load() {
			p.sent++
		}
		if inBatch++; inBatch >= o.Batch {
			if !flush() {
				return
			}
		}
	}
}

func runPubSubBench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	pubTopics, subFilters, fanout := o.topology()
	res := &BenchResult{
		Scenario: o.Scenario, Addr: o.Addr, Version: o.Version, QoS: o.QoS, Size: o.Size,
		Pubs: o.Pubs, Subs: len(subFilters), Fanout: fanout, TargetRate: o.Rate, Warmup: o.Warmup,
	}
	var (
		errs     errorLog
		win      window
		stopping atomic.Bool
		readers  sync.WaitGroup
	)
	// No message is in any window until the publishers start.
	win.start.Store(1<<63 - 1)
	win.end.Store(1<<63 - 1)

	subs := make([]*subscriber, len(subFilters))
	pubs := make([]*publisher, len(pubTopics))
	var closeOnce sync.Once
	closeAll := func() {
		closeOnce.Do(func() {
			stopping.Store(true)
			// Stop the readers first: subscriber readers also write PUBACKs.
			past := time.Unix(1, 0)
			for _, s := range subs {
				if s != nil {
					_ = s.c.nc.SetReadDeadline(past)
				}
			}
			for _, p := range pubs {
				if p != nil {
					_ = p.c.nc.SetReadDeadline(past)
				}
			}
			readers.Wait()
			for _, s := range subs {
				if s != nil {
					s.c.disconnect()
				}
			}
			for _, p := range pubs {
				if p != nil {
					p.c.disconnect()
				}
			}
		})
	}
	defer closeAll()

	o.Logger.Info("connecting subscribers", "count", len(subs))
	subscribe := func(ctx context.Context, i int) error {
		c, err := dialMQTT(ctx, o.connectConfig(o.ClientIDPrefix+"s"+strconv.Itoa(i)))
		if err != nil {
			return err
		}
		subs[i] = &subscriber{c: c}
		return c.subscribe(ctx, 1, o.QoS, subFilters[i]...)
	}
	var err error
	if o.Scenario == ScenarioShared && len(subs) > 0 {
		// The first subscriber finds out whether the target shares.
		if err = subscribe(ctx, 0); errors.Is(err, ErrRefused) {
			res.Note = fmt.Sprintf("the target refused the shared subscription (%v); measured %d plain subscriptions "+
				"instead, each receiving every message", err, len(subs))
			o.Logger.Warn(res.Note)
			plain := strings.TrimPrefix(subFilters[0][0], SharedGroupPrefix)
			for i := range subFilters {
				subFilters[i] = []string{plain}
			}
			fanout = len(subs)
			res.Fanout = fanout
			err = subs[0].c.subscribe(ctx, 2, o.QoS, plain)
		}
		if err == nil {
			err = forEach(ctx, len(subs)-1, o.ConnectConcurrency, func(ctx context.Context, i int) error { return subscribe(ctx, i+1) })
		}
	} else {
		err = forEach(ctx, len(subs), o.ConnectConcurrency, subscribe)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: subscriber: %w", err)
	}
	o.Logger.Info("connecting publishers", "count", len(pubs))
	err = forEach(ctx, len(pubs), o.ConnectConcurrency, func(ctx context.Context, i int) error {
		c, err := dialMQTT(ctx, o.connectConfig(o.ClientIDPrefix+"p"+strconv.Itoa(i)))
		if err != nil {
			return err
		}
		p := &publisher{c: c, topic: pubTopics[i], ackerDone: make(chan struct{})}
		if o.QoS == 1 {
			p.free = make(chan uint16, o.Window)
			p.sentAt = make([]atomic.Int64, o.Window+1)
			for id := 1; id <= o.Window; id++ {
				p.free <- uint16(id)
			}
		}
		pubs[i] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: publisher: %w", err)
	}
	for _, s := range subs {
		readers.Add(1)
		go func() { defer readers.Done(); s.run(&win, &stopping, &errs) }()
	}
	for _, p := range pubs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			if o.QoS == 1 {
				p.runAcks(&win, &stopping, &errs)
				return
			}
			// QoS 0 publishers receive nothing but must notice a close.
			defer close(p.ackerDone)
			_, _, err := p.c.readPacket()
			if err != nil && !stopping.Load() {
				errs.add(fmt.Errorf("publisher: read: %w", err))
			}
		}()
	}

	begin := time.Now()
	measureStart := begin.Add(o.Warmup)
	measureEnd := measureStart.Add(o.Duration)
	win.start.Store(measureStart.UnixNano())
	win.end.Store(measureEnd.UnixNano())
	o.Logger.Info("publishing", "warmup", o.Warmup, "duration", o.Duration)

	pubCtx, cancelPubs := context.WithDeadline(ctx, measureEnd)
	defer cancelPubs()
	perPub := 0.0
	if o.Rate > 0 {
		perPub = o.Rate / float64(len(pubs))
	}
	var pubWG sync.WaitGroup
	for i, p := range pubs {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			// Stagger paced publishers so the total stream is even.
			b := begin
			if perPub > 0 {
				b = begin.Add(time.Duration(float64(i) / float64(len(pubs)) / perPub * float64(time.Second)))
			}
			p.run(pubCtx, &o, &win, b, perPub, &errs)
		}()
	}
	pubWG.Wait()
	stoppedAt := time.Now()
	if ctx.Err() != nil && stoppedAt.Before(measureEnd) {
		// Interrupted: measure what was actually covered.
		win.end.Store(stoppedAt.UnixNano())
		measureEnd = stoppedAt
	}

	var sent uint64
	for _, p := range pubs {
		sent += p.sent
	}
	expected := sent * uint64(fanout)
	received := func() uint64 {
		var n uint64
		for _, s := range subs {
			n += s.received.Load()
		}
		return n
	}
	acksDone := func() bool {
		for _, p := range pubs {
			if o.QoS == 1 && len(p.free) < o.Window {
				return false
			}
		}
		return true
	}
	// Drain: wait for deliveries (and PUBACKs) of what was sent.
	drainCtx, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), o.Drain)
	defer cancelDrain()
	tick := time.NewTicker(5 * time.Millisecond)
	for received() < expected || !acksDone() {
		select {
		case <-tick.C:
			continue
		case <-drainCtx.Done():
		}
		break
	}
	tick.Stop()
	closeAll()

	lat := NewHistogram()
	for _, s := range subs {
		lat.Merge(&s.hist)
	}
	res.Elapsed = measureEnd.Sub(measureStart)
	if res.Elapsed < 0 {
		res.Elapsed = 0
	}
	res.Sent = sent
	res.Expected = expected
	res.Received = received()
	res.Lost = int64(expected) - int64(res.Received)
	if secs := res.Elapsed.Seconds(); secs > 0 {
		res.SentRate = float64(sent) / secs
		res.ReceivedRate = float64(res.Received) / secs
		var arrived uint64
		for _, s := range subs {
			arrived += s.arrived.Load()
		}
		res.ArrivedRate = float64(arrived) / secs
	}
	res.Latency = lat.Summary()
	if o.QoS == 1 {
		ack := NewHistogram()
		for _, p := range pubs {
			ack.Merge(&p.ackHist)
			res.Acked += p.acked.Load()
		}
		s := ack.Summary()
		res.AckLatency = &s
	}
	res.Errors = errs.n.Load()
	res.FirstError = errs.firstString()
	return res, nil
}

// topicPrefix is TopicPrefix or its default.
func (o *BenchOptions) topicPrefix() string { return cmp.Or(o.TopicPrefix, "bench/") }
