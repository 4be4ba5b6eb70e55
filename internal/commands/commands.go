package commands

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// Status of a command.
type Status string

// Command statuses.
const (
	Queued    Status = "queued"
	Delivered Status = "delivered"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	TimedOut  Status = "timed_out"
	Expired   Status = "expired"
)

// Final reports whether s is a terminal status.
func (s Status) Final() bool { return s == Succeeded || s == Failed || s == TimedOut || s == Expired }

// Sentinel errors.
var (
	ErrNotFound = errors.New("commands: no such command")
	ErrInvalid  = errors.New("commands: invalid command")
	ErrClosed   = errors.New("commands: service closed")
)

// Defaults and limits.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultTTL           = time.Hour
	MaxTimeout           = 24 * time.Hour
	MaxTTL               = 30 * 24 * time.Hour
	DefaultFlushInterval = 100 * time.Millisecond
	DefaultSweepInterval = 250 * time.Millisecond
	DefaultRetention     = 7 * 24 * time.Hour
	// MaxPayloadBytes bounds the delivered JSON message.
	MaxPayloadBytes = 64 << 10
	// MaxResultBytes bounds a stored reply result.
	MaxResultBytes = 64 << 10
)

// Command is one tracked command.
type Command struct {
	ID      string         `json:"id"`
	Thing   string         `json:"thing"`
	Command string         `json:"command,omitempty"`
	Payload map[string]any `json:"payload"`
	Status  Status         `json:"status"`
	// Timeout is how long the device has to answer once delivered; TTL how
	// long the command may wait for delivery.
	Timeout     Duration   `json:"timeout"`
	TTL         Duration   `json:"ttl"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	// Result is the device's reply result, verbatim JSON.
	Result json.RawMessage `json:"result,omitempty"`
	// Error explains timed_out and expired, or carries the device's
	// "error" string.
	Error string `json:"error,omitempty"`
	// Deliveries counts publishes of the command.
	Deliveries int `json:"deliveries"`
}

// Duration is a time.Duration that reads and writes "30s" in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Request is a command to send.
type Request struct {
	Thing   string
	Command string
	Payload map[string]any
	Timeout time.Duration // 0: DefaultTimeout
	TTL     time.Duration // 0: DefaultTTL
}

// Publisher delivers server-originated messages (the broker).
type Publisher interface {
	PublishWithProperties(ctx context.Context, topic string, payload []byte, qos byte, retain bool, props packets.Properties) error
}

// Options configure a Service.
type Options struct {
	Logger        *slog.Logger
	FlushInterval time.Duration
	SweepInterval time.Duration
	Retention     time.Duration
	Now           func() time.Time
}

// Stats counts the service's work.
type Stats struct {
	Sent       uint64 `json:"sent"`
	Deliveries uint64 `json:"deliveries"`
	Replies    uint64 `json:"replies"`
	BadReplies uint64 `json:"bad_replies"`
	Pending    int    `json:"pending"`
}

// Service sends commands and tracks them. It is a broker.PublishHook (for
// replies) and a broker.Observer (for subscriptions).
type Service struct {
	db   *sql.DB
	pub  Publisher
	log  *slog.Logger
	opts Options
	now  func() time.Time

	mu      sync.Mutex
	mem     map[string]*entry          // pending commands and unflushed changes
	queued  map[string][]*entry        // thing -> queued commands, oldest first
	online  map[string]map[string]byte // thing -> client id -> protocol version
	waiters map[string][]chan struct{} // command id -> closed when final
	dirty   map[*entry]struct{}

	flushMu sync.Mutex
	kick    chan string
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	once    sync.Once

	sent, deliveries, replies, badReplies atomic.Uint64
}

type entry struct {
	c     Command
	dirty bool
}

// New migrates the commands schema in db, loads unfinished commands and
// starts the background worker. pub may be set later with SetPublisher.
func New(ctx context.Context, db *sql.DB, pub Publisher, opts Options) (*Service, error) {
	if db == nil {
		return nil, errors.New("commands: nil database")
	}
	if err := migrate(ctx, db); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{db: db, pub: pub, log: opts.Logger, opts: opts, now: opts.Now,
		mem: map[string]*entry{}, queued: map[string][]*entry{}, online: map[string]map[string]byte{},
		waiters: map[string][]chan struct{}{}, dirty: map[*entry]struct{}{},
		kick: make(chan string, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	open, err := loadOpen(ctx, db)
	if err != nil {
		return nil, err
	}
	for _, c := range open {
		e := &entry{c: c}
		s.mem[c.ID] = e
		if c.Status == Queued {
			s.queued[c.Thing] = append(s.queued[c.Thing], e)
		}
	}
	go s.run()
	return s, nil
}

// SetPublisher sets the publisher; call it before traffic flows.
func (s *Service) SetPublisher(p Publisher) { s.pub = p }

// Stats returns the counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	pending := 0
	for _, e := range s.mem {
		if !e.c.Status.Final() {
			pending++
		}
	}
	s.mu.Unlock()
	return Stats{Sent: s.sent.Load(), Deliveries: s.deliveries.Load(), Replies: s.replies.Load(),
		BadReplies: s.badReplies.Load(), Pending: pending}
}

// reserved are the delivered message's own members.
var reserved = []string{"command_id"}

// Send records a command durably and delivers it at once if its device is
// subscribed. The caller checks that the thing exists.
func (s *Service) Send(ctx context.Context, r Request) (Command, error) {
	if s.closed.Load() {
		return Command{}, ErrClosed
	}
	if r.Thing == "" || len(r.Thing) > 128 || strings.ContainsAny(r.Thing, "/+#") {
		return Command{}, fmt.Errorf("%w: bad thing name %q", ErrInvalid, r.Thing)
	}
	if r.Timeout == 0 {
		r.Timeout = DefaultTimeout
	}
	if r.TTL == 0 {
		r.TTL = DefaultTTL
	}
	if r.Timeout < time.Millisecond || r.Timeout > MaxTimeout {
		return Command{}, fmt.Errorf("%w: timeout %v must be between 1ms and %v", ErrInvalid, r.Timeout, MaxTimeout)
	}
	if r.TTL < time.Millisecond || r.TTL > MaxTTL {
		return Command{}, fmt.Errorf("%w: ttl %v must be between 1ms and %v", ErrInvalid, r.TTL, MaxTTL)
	}
	if len(r.Command) > 256 {
		return Command{}, fmt.Errorf("%w: command name longer than 256 bytes", ErrInvalid)
	}
	if r.Payload == nil {
		r.Payload = map[string]any{}
	}
	for _, k := range reserved {
		if _, ok := r.Payload[k]; ok {
			return Command{}, fmt.Errorf("%w: payload member %q is reserved", ErrInvalid, k)
		}
	}
	if _, ok := r.Payload["command"]; ok && r.Command != "" {
		return Command{}, fmt.Errorf("%w: payload member \"command\" conflicts with the command name; give one of them", ErrInvalid)
	}
	id, err := newID()
	if err != nil {
		return Command{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	c := Command{ID: id, Thing: r.Thing, Command: r.Command, Payload: r.Payload, Status: Queued,
		Timeout: Duration(r.Timeout), TTL: Duration(r.TTL), CreatedAt: now, ExpiresAt: now.Add(r.TTL)}
	msg, err := deliveryMessage(c)
	if err != nil {
		return Command{}, err
	}
	if len(msg) > MaxPayloadBytes {
		return Command{}, fmt.Errorf("%w: command message of %d bytes exceeds %d", ErrInvalid, len(msg), MaxPayloadBytes)
	}
	if err := insert(ctx, s.db, c); err != nil {
		return Command{}, err
	}
	s.sent.Add(1)
	e := &entry{c: c}
	s.mu.Lock()
	s.mem[id] = e
	s.queued[c.Thing] = append(s.queued[c.Thing], e)
	online := len(s.online[c.Thing]) > 0
	s.mu.Unlock()
	if online {
		s.deliverQueued(ctx, c.Thing)
	}
	return s.Get(ctx, id)
}

// deliveryMessage is the JSON published on devices/{id}/command.
func deliveryMessage(c Command) ([]byte, error) {
	m := make(map[string]any, len(c.Payload)+2)
	for k, v := range c.Payload {
		m[k] = v
	}
	m["command_id"] = c.ID
	if c.Command != "" {
		m["command"] = c.Command
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not JSON: %w", ErrInvalid, err)
	}
	return b, nil
}

// CommandTopic and ResponseTopic are a thing's command topics.
func CommandTopic(thing string) string  { return "devices/" + thing + "/command" }
func ResponseTopic(thing string) string { return "devices/" + thing + "/command/response" }

// deliverQueued publishes thing's queued commands, oldest first.
func (s *Service) deliverQueued(ctx context.Context, thing string) {
	for {
		s.mu.Lock()
		q := s.queued[thing]
		if len(q) == 0 || len(s.online[thing]) == 0 || s.pub == nil {
			s.mu.Unlock()
			return
		}
		e := q[0]
		s.queued[thing] = q[1:]
		if len(s.queued[thing]) == 0 {
			delete(s.queued, thing)
		}
		if e.c.Status != Queued {
			s.mu.Unlock()
			continue
		}
		now := s.now().UTC()
		if !now.Before(e.c.ExpiresAt) {
			s.finishLocked(e, Expired, now, nil, "not delivered within the ttl")
			s.mu.Unlock()
			continue
		}
		c := e.c
		s.mu.Unlock()
		msg, err := deliveryMessage(c)
		if err == nil {
			err = s.pub.PublishWithProperties(ctx, CommandTopic(thing), msg, 1, false, packets.Properties{
				ResponseTopic: ResponseTopic(thing), CorrelationData: []byte(c.ID)})
		}
		s.mu.Lock()
		if err != nil {
			s.log.Warn("commands: delivery failed; will retry", "thing", thing, "id", c.ID, "err", err)
			s.queued[thing] = append([]*entry{e}, s.queued[thing]...)
			s.mu.Unlock()
			return
		}
		s.deliveries.Add(1)
		if e.c.Status == Queued {
			t := s.now().UTC().Truncate(time.Millisecond)
			e.c.Status, e.c.DeliveredAt = Delivered, &t
			e.c.Deliveries++
			s.markLocked(e)
		}
		s.mu.Unlock()
	}
}

// finishLocked moves e to a final status. s.mu is held.
func (s *Service) finishLocked(e *entry, st Status, at time.Time, result json.RawMessage, msg string) {
	t := at.UTC().Truncate(time.Millisecond)
	e.c.Status, e.c.CompletedAt, e.c.Result, e.c.Error = st, &t, result, msg
	s.markLocked(e)
	for _, ch := range s.waiters[e.c.ID] {
		close(ch)
	}
	delete(s.waiters, e.c.ID)
}

func (s *Service) markLocked(e *entry) {
	if !e.dirty {
		e.dirty = true
		s.dirty[e] = struct{}{}
	}
}

// Get returns a command; ErrNotFound if unknown.
func (s *Service) Get(ctx context.Context, id string) (Command, error) {
	s.mu.Lock()
	if e, ok := s.mem[id]; ok {
		c := e.c
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	c, err := load(ctx, s.db, id)
	if err != nil {
		return Command{}, err
	}
	return c, nil
}

// Wait blocks until the command is final or ctx ends, and returns its
// latest state (with ctx's error if it ended first).
func (s *Service) Wait(ctx context.Context, id string) (Command, error) {
	s.mu.Lock()
	e, ok := s.mem[id]
	if !ok || e.c.Status.Final() {
		s.mu.Unlock()
		return s.Get(ctx, id)
	}
	ch := make(chan struct{})
	s.waiters[id] = append(s.waiters[id], ch)
	s.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		c, err := s.Get(context.WithoutCancel(ctx), id)
		if err != nil {
			return c, err
		}
		return c, ctx.Err()
	}
	return s.Get(ctx, id)
}

// ListOptions filter List.
type ListOptions struct {
	Status Status
	Limit  int    // 1..1000, default 100
	After  string // cursor: the id of the last command of the previous page
}

// List returns thing's commands, newest first, and the cursor of the next
// page ("" at the end).
func (s *Service) List(ctx context.Context, thing string, o ListOptions) ([]Command, string, error) {
	if o.Limit <= 0 {
		o.Limit = 100
	}
	if o.Limit > 1000 {
		o.Limit = 1000
	}
	if err := s.Flush(ctx); err != nil {
		return nil, "", err
	}
	cs, err := list(ctx, s.db, thing, o)
	if err != nil {
		return nil, "", err
	}
	// In-memory state is at least as new as the flushed one.
	s.mu.Lock()
	for i := range cs {
		if e, ok := s.mem[cs[i].ID]; ok {
			cs[i] = e.c
		}
	}
	s.mu.Unlock()
	next := ""
	if len(cs) == o.Limit {
		next = cs[len(cs)-1].ID
	}
	return cs, next, nil
}

// OnConnect implements broker.Observer.
func (s *Service) OnConnect(broker.ClientInfo) {}

// OnSubscribe implements broker.Observer: a thing's subscription to its
// command topic makes it online and triggers delivery of its queued
// commands.
func (s *Service) OnSubscribe(c broker.ClientInfo, filter string) {
	thing := subscriber(c)
	if thing == "" {
		return
	}
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, filter, _ = strings.Cut(rest, "/")
	}
	if !MatchTopic(filter, CommandTopic(thing)) {
		return
	}
	s.mu.Lock()
	m := s.online[thing]
	if m == nil {
		m = map[string]byte{}
		s.online[thing] = m
	}
	m[c.ClientID] = c.ProtocolVersion
	s.mu.Unlock()
	select {
	case s.kick <- thing:
	default: // the sweep delivers it
	}
}

// OnDisconnect implements broker.Observer.
func (s *Service) OnDisconnect(c broker.ClientInfo) {
	thing := subscriber(c)
	if thing == "" {
		return
	}
	s.mu.Lock()
	if m := s.online[thing]; m != nil {
		delete(m, c.ClientID)
		if len(m) == 0 {
			delete(s.online, thing)
		}
	}
	s.mu.Unlock()
}

// subscriber is the thing a client acts for: its principal's name, or its
// client id when anonymous.
func subscriber(c broker.ClientInfo) string {
	p := c.Principal
	switch {
	case p == nil || p.Admin:
		return ""
	case p.Anonymous || p.Name == "":
		return c.ClientID
	}
	return p.Name
}

// Online reports whether a client of thing is subscribed to its commands.
func (s *Service) Online(thing string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.online[thing]) > 0
}

// MatchTopic reports whether an MQTT filter matches a topic name.
func MatchTopic(filter, topic string) bool {
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		if f == "#" {
			return true
		}
		if i >= len(ts) || (f != "+" && f != ts[i]) {
			return false
		}
	}
	return len(fs) == len(ts)
}

// Reply is a device's answer.
type Reply struct {
	CommandID string          `json:"command_id"`
	Status    string          `json:"status"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// ParseReply decodes a reply payload; correlation is the v5 Correlation
// Data (nil for 3.1.1), used when command_id is missing.
func ParseReply(payload, correlation []byte) (Reply, error) {
	var r Reply
	if err := json.Unmarshal(payload, &r); err != nil {
		return Reply{}, fmt.Errorf("%w: reply is not a JSON object: %w", ErrInvalid, err)
	}
	if r.CommandID == "" {
		r.CommandID = string(correlation)
	}
	if r.CommandID == "" {
		return Reply{}, fmt.Errorf("%w: reply without command_id", ErrInvalid)
	}
	if r.Status != string(Succeeded) && r.Status != string(Failed) {
		return Reply{}, fmt.Errorf("%w: reply status %q must be \"succeeded\" or \"failed\"", ErrInvalid, r.Status)
	}
	if len(r.Result) > MaxResultBytes {
		return Reply{}, fmt.Errorf("%w: result larger than %d bytes", ErrInvalid, MaxResultBytes)
	}
	if len(r.Error) > 4096 {
		r.Error = r.Error[:4096]
	}
	return r, nil
}

// OnPublish implements broker.PublishHook: it takes replies from
// devices/{id}/command/response. It never fails the batch.
func (s *Service) OnPublish(_ context.Context, batch []*broker.Message) error {
	for _, m := range batch {
		rest, ok := strings.CutPrefix(m.Topic, "devices/")
		if !ok {
			continue
		}
		thing, ok := strings.CutSuffix(rest, "/command/response")
		if !ok || thing == "" || strings.Contains(thing, "/") {
			continue
		}
		var corr []byte
		if m.Properties != nil {
			corr = m.Properties.CorrelationData
		}
		r, err := ParseReply(m.Payload, corr)
		if err != nil {
			s.badReplies.Add(1)
			s.log.Warn("commands: bad reply", "thing", thing, "client", m.ClientID, "err", err)
			continue
		}
		s.complete(thing, r)
	}
	return nil
}

func (s *Service) complete(thing string, r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.mem[r.CommandID]
	if !ok || e.c.Thing != thing || e.c.Status.Final() {
		s.badReplies.Add(1)
		s.log.Debug("commands: reply for an unknown or finished command", "thing", thing, "id", r.CommandID)
		return
	}
	s.replies.Add(1)
	if e.c.Status == Queued { // answered a delivery from before a restart
		t := s.now().UTC().Truncate(time.Millisecond)
		e.c.DeliveredAt = &t
	}
	s.finishLocked(e, Status(r.Status), s.now(), append(json.RawMessage(nil), r.Result...), r.Error)
}

// run is the background worker: deliveries on subscription, expiry,
// timeouts, flushes and retention.
func (s *Service) run() {
	defer close(s.done)
	sweep := time.NewTicker(s.opts.SweepInterval)
	defer sweep.Stop()
	flush := time.NewTicker(s.opts.FlushInterval)
	defer flush.Stop()
	lastPurge := time.Time{}
	ctx := context.Background()
	for {
		select {
		case <-s.stop:
			return
		case thing := <-s.kick:
			s.deliverQueued(ctx, thing)
		case <-flush.C:
			if err := s.Flush(ctx); err != nil {
				s.log.Warn("commands: flush failed; retrying", "err", err)
			}
		case <-sweep.C:
			s.sweep(ctx)
			if now := s.now(); now.Sub(lastPurge) > time.Hour {
				lastPurge = now
				if err := purge(ctx, s.db, now.Add(-s.opts.Retention)); err != nil {
					s.log.Warn("commands: retention purge failed", "err", err)
				}
			}
		}
	}
}

// sweep expires and times out commands and delivers to online things.
func (s *Service) sweep(ctx context.Context) {
	now := s.now().UTC()
	var deliver []string
	s.mu.Lock()
	for _, e := range s.mem {
		switch e.c.Status {
		case Queued:
			if !now.Before(e.c.ExpiresAt) {
				s.finishLocked(e, Expired, now, nil, "not delivered within the ttl")
			}
		case Delivered:
			if e.c.DeliveredAt != nil && !now.Before(e.c.DeliveredAt.Add(time.Duration(e.c.Timeout))) {
				s.finishLocked(e, TimedOut, now, nil, "no reply within the timeout")
			}
		}
	}
	for thing, q := range s.queued {
		if len(s.online[thing]) > 0 && len(q) > 0 {
			deliver = append(deliver, thing)
		}
	}
	s.mu.Unlock()
	for _, t := range deliver {
		s.deliverQueued(ctx, t)
	}
}

// Flush writes changed commands to the database and forgets finished ones.
func (s *Service) Flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return nil
	}
	batch := make([]Command, 0, len(s.dirty))
	ents := make([]*entry, 0, len(s.dirty))
	for e := range s.dirty {
		e.dirty = false
		batch = append(batch, e.c)
		ents = append(ents, e)
	}
	clear(s.dirty)
	s.mu.Unlock()
	if err := save(ctx, s.db, batch); err != nil {
		s.mu.Lock()
		for _, e := range ents {
			s.markLocked(e)
		}
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	for i, e := range ents {
		if !e.dirty && e.c.Status.Final() && batch[i].Status == e.c.Status {
			delete(s.mem, e.c.ID)
		}
	}
	s.mu.Unlock()
	return nil
}

// Close stops the worker and flushes. Waiters are released.
func (s *Service) Close(ctx context.Context) error {
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.stop)
	})
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("commands: close: %w", ctx.Err())
	}
	return s.Flush(ctx)
}

// lastIDTime is the clock part of the newest command ID (see newID).
var lastIDTime atomic.Int64

// newID returns a command ID that sorts after every ID this process made
// before: 8 bytes of a strictly increasing nanosecond clock, then 4 random
// bytes. Lists order by created_at (milliseconds) and then by ID, so
// commands created within one millisecond still list in creation order.
func newID() (string, error) {
	t := time.Now().UnixNano()
	for {
		last := lastIDTime.Load()
		next := max(t, last+1)
		if lastIDTime.CompareAndSwap(last, next) {
			t = next
			break
		}
	}
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, uint64(t))
	if _, err := rand.Read(b[8:]); err != nil {
		return "", fmt.Errorf("commands: id: %w", err)
	}
	return hex.EncodeToString(b), nil
}
