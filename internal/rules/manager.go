package rules

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/broker/topics"
	"github.com/edgewise-iot/edgewise/internal/rules/action"
	"github.com/edgewise-iot/edgewise/internal/rules/spool"
	rsql "github.com/edgewise-iot/edgewise/internal/rules/sql"
	"github.com/edgewise-iot/edgewise/internal/rules/stream"
)

// Errors returned by the Manager; the API maps them to 404, 409 and 400.
var (
	ErrNotFound = errors.New("rules: rule not found")
	ErrExists   = errors.New("rules: rule already exists")
	ErrInvalid  = errors.New("rules: invalid rule")
	ErrClosed   = errors.New("rules: manager closed")
)

// SQLError is an error in a rule's SQL, with its position (1-based).
type SQLError struct {
	Line, Column int
	Err          error
}

func (e *SQLError) Error() string {
	var se *rsql.Error
	if errors.As(e.Err, &se) { // already says where
		return "rules: sql: " + e.Err.Error()
	}
	return fmt.Sprintf("rules: sql: line %d, column %d: %v", e.Line, e.Column, e.Err)
}
func (e *SQLError) Unwrap() error { return e.Err }

// Is makes SQL errors match ErrInvalid.
func (e *SQLError) Is(target error) bool { return target == ErrInvalid }

// Rule is a stored rule definition.
type Rule struct {
	Name        string        `json:"name" yaml:"name"`
	Description string        `json:"description,omitempty" yaml:"description,omitempty"`
	SQL         string        `json:"sql" yaml:"sql"`
	Actions     []action.Spec `json:"actions" yaml:"actions"`
	ErrorAction *action.Spec  `json:"error_action,omitempty" yaml:"error_action,omitempty"`
	Options     *RuleOptions  `json:"options,omitempty" yaml:"options,omitempty"`
	Enabled     bool          `json:"enabled" yaml:"enabled"`
	CreatedAt   time.Time     `json:"created_at" yaml:"-"`
	UpdatedAt   time.Time     `json:"updated_at" yaml:"-"`
}

// RuleOptions tune how the stream engine runs one rule.
type RuleOptions struct {
	// EventTime is "payload" (default: windows use the time in the
	// payload's TimestampField) or "processing" (windows use the time the
	// message arrived; no late data).
	EventTime string `json:"event_time,omitempty" yaml:"event_time,omitempty"`
	// TimestampField is the payload path of the event time (default
	// "timestamp").
	TimestampField string `json:"timestamp_field,omitempty" yaml:"timestamp_field,omitempty"`
	// AllowedLateness and IdleTimeout override the server's rules
	// settings for this rule ("30s"; a negative idle timeout never closes
	// idle windows).
	AllowedLateness *action.Duration `json:"allowed_lateness,omitempty" yaml:"allowed_lateness,omitempty"`
	IdleTimeout     *action.Duration `json:"idle_timeout,omitempty" yaml:"idle_timeout,omitempty"`
}

// Publisher routes a message to the broker's subscribers;
// *broker.Server satisfies it.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}

// Options configure the Manager.
type Options struct {
	Logger *slog.Logger
	// Publisher delivers republished and injected messages to MQTT
	// subscribers; nil disables republish actions and Inject routing.
	Publisher Publisher
	// Ingest receives injected and republished messages like a client's
	// publishes (storage, device state); nil skips that.
	Ingest broker.PublishHook
	// Points stores tsdb action output; nil disables tsdb actions.
	Points action.PointWriter
	// Lookup resolves get_thing_attr()-style functions.
	Lookup stream.Lookup
	// QueueSize bounds the messages waiting for one rule (default 10000);
	// beyond it messages are dropped and counted, never blocking the broker.
	QueueSize int
	// ActionQueueSize is the default queue length per action (default 10000).
	ActionQueueSize int
	// MaxHops bounds republish chains between rules (default 8): a message
	// republished MaxHops times is still routed to MQTT subscribers and
	// storage but no longer given to rules. A rule never receives the
	// messages its own republish actions produce.
	MaxHops int
	// TickInterval is how often idle windows are checked (default 1s).
	TickInterval time.Duration
	// AllowedLateness and IdleTimeout are passed to the stream engine.
	AllowedLateness, IdleTimeout time.Duration
	// CloseTimeout bounds how long Close waits for actions to drain
	// (default 10s; the caller's context may end it sooner).
	CloseTimeout time.Duration
	// SpoolDir, when set, gives durable actions (action.IsDurable) an
	// on-disk queue in SpoolDir/<rule>/<index>-<type> (error actions:
	// error-<type>): a QoS 1 message's outputs are on disk before
	// OnPublish returns, and they leave only once the sink acknowledged
	// them. Empty keeps every queue in memory. Spool configures the spools
	// (fsync policy, size limit per action).
	SpoolDir string
	Spool    spool.Options
	Now      func() time.Time
}

// Manager holds the rules: it persists them, gives each enabled rule the
// messages matching its FROM filter, and runs its actions. It implements
// broker.PublishHook without ever blocking the broker.
type Manager struct {
	opts  Options
	log   *slog.Logger
	store *ruleStore
	trie  *topics.Trie[*runner]
	ctx   context.Context
	stop  context.CancelFunc

	mu      sync.Mutex // guards rules, runners and closed
	rules   map[string]Rule
	runners map[string]*runner
	broken  map[string]string // rules that failed to start on load: name -> error
	closed  bool

	injected, loopsBroken atomic.Uint64
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// New migrates the rules schema in db, loads the stored rules and starts
// the enabled ones (restoring window state saved by a clean shutdown).
func New(ctx context.Context, db *sql.DB, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 10000
	}
	if opts.ActionQueueSize <= 0 {
		opts.ActionQueueSize = 10000
	}
	if opts.MaxHops <= 0 {
		opts.MaxHops = 8
	}
	if opts.TickInterval <= 0 {
		opts.TickInterval = time.Second
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	st, err := newRuleStore(ctx, db)
	if err != nil {
		return nil, err
	}
	mctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		opts: opts, log: opts.Logger, store: st, trie: topics.New[*runner](), ctx: mctx, stop: cancel,
		rules: map[string]Rule{}, runners: map[string]*runner{}, broken: map[string]string{},
	}
	stored, err := st.list(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	for _, r := range stored {
		m.rules[r.Name] = r
		if !r.Enabled {
			continue
		}
		if err := m.start(ctx, r, nil); err != nil {
			// Keep serving the other rules; the rule stays stored and its
			// stats say why it is not running.
			m.broken[r.Name] = err.Error()
			m.log.Error("rule not started", "rule", r.Name, "err", err)
		}
	}
	m.log.Info("rules loaded", "rules", len(stored), "running", len(m.runners))
	return m, nil
}

func (m *Manager) actionOptions() action.Options {
	o := action.Options{Logger: m.log, Points: m.opts.Points, QueueSize: m.opts.ActionQueueSize, Spool: m.opts.Spool}
	if m.opts.Publisher != nil {
		o.Republisher = m
	}
	return o
}

// compile checks a definition and compiles its SQL.
func (m *Manager) compile(r Rule) (*stream.Rule, error) {
	if !validName.MatchString(r.Name) {
		return nil, fmt.Errorf("%w: name %q must be 1-128 letters, digits, '_', '.' or '-' (not starting with '.' or '-')", ErrInvalid, r.Name)
	}
	if strings.TrimSpace(r.SQL) == "" {
		return nil, fmt.Errorf("%w: sql must not be empty", ErrInvalid)
	}
	if len(r.Actions) == 0 {
		return nil, fmt.Errorf("%w: a rule needs at least one action", ErrInvalid)
	}
	ao := m.actionOptions()
	for i, a := range r.Actions {
		if err := action.Validate(a, ao); err != nil {
			return nil, fmt.Errorf("%w: actions[%d]: %w", ErrInvalid, i, err)
		}
	}
	if r.ErrorAction != nil {
		if err := action.Validate(*r.ErrorAction, ao); err != nil {
			return nil, fmt.Errorf("%w: error_action: %w", ErrInvalid, err)
		}
	}
	so := stream.Options{
		Lookup: m.opts.Lookup, AllowedLateness: m.opts.AllowedLateness, IdleTimeout: m.opts.IdleTimeout, Now: m.opts.Now,
	}
	if o := r.Options; o != nil {
		switch o.EventTime {
		case "", "payload":
		case "processing":
			so.ProcessingTime = true
		default:
			return nil, fmt.Errorf("%w: options.event_time %q: want payload or processing", ErrInvalid, o.EventTime)
		}
		so.TimestampField = o.TimestampField
		if o.AllowedLateness != nil {
			if *o.AllowedLateness < 0 {
				return nil, fmt.Errorf("%w: options.allowed_lateness must not be negative", ErrInvalid)
			}
			so.AllowedLateness = time.Duration(*o.AllowedLateness)
		}
		if o.IdleTimeout != nil {
			so.IdleTimeout = time.Duration(*o.IdleTimeout)
		}
	}
	cr, err := stream.Compile(r.Name, r.SQL, so)
	if err != nil {
		if line, col, ok := sqlPosition(err); ok {
			return nil, &SQLError{Line: line, Column: col, Err: err}
		}
		return nil, fmt.Errorf("%w: sql: %w", ErrInvalid, err)
	}
	return cr, nil
}

// start compiles r and starts its runner; state, if given, is the window
// state of a previous runner with the same SQL. Without it, state saved by
// a clean shutdown is restored once. Caller holds m.mu (or is New).
func (m *Manager) start(ctx context.Context, r Rule, state []byte) error {
	cr, err := m.compile(r)
	if err != nil {
		return err
	}
	if state == nil && cr.Windowed() {
		saved, sqlText, err := m.store.takeState(ctx, r.Name)
		if err != nil {
			return err
		}
		if saved != nil && sqlText == r.SQL {
			state = saved
		}
	}
	if state != nil {
		if err := cr.Restore(state); err != nil {
			m.log.Warn("rule window state not restored; starting empty", "rule", r.Name, "err", err)
		}
	}
	rr, err := newRunner(m, r, cr)
	if err != nil {
		return err
	}
	m.runners[r.Name] = rr
	m.trie.Add(cr.Filter(), rr)
	delete(m.broken, r.Name)
	return nil
}

// halt stops a rule's runner: it processes what is queued, closes the
// actions (bounded by ctx) and returns the window state. Caller holds m.mu.
func (m *Manager) halt(ctx context.Context, name string) []byte {
	rr := m.runners[name]
	if rr == nil {
		return nil
	}
	m.trie.Remove(rr.rule.Filter(), rr)
	delete(m.runners, name)
	return rr.close(ctx)
}

func (m *Manager) closeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.opts.CloseTimeout)
}

// Create stores and (when enabled) starts a new rule.
func (m *Manager) Create(ctx context.Context, r Rule) (Rule, error) {
	if _, err := m.compile(r); err != nil {
		return Rule{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Rule{}, ErrClosed
	}
	if _, ok := m.rules[r.Name]; ok {
		return Rule{}, fmt.Errorf("%w: %q", ErrExists, r.Name)
	}
	now := m.opts.Now().UTC()
	r.CreatedAt, r.UpdatedAt = now, now
	if err := m.store.insert(ctx, r); err != nil {
		return Rule{}, err
	}
	m.rules[r.Name] = r
	if r.Enabled {
		if err := m.start(ctx, r, nil); err != nil {
			return Rule{}, err
		}
	}
	m.log.Info("rule created", "rule", r.Name, "enabled", r.Enabled)
	return r, nil
}

// Update replaces a rule's definition. Window state carries over when the
// SQL is unchanged; otherwise the rule starts with empty windows.
//
// Secrets still in their redacted form (Redacted, as GET returns them)
// keep the stored values.
func (m *Manager) Update(ctx context.Context, r Rule) (Rule, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Rule{}, ErrClosed
	}
	old, ok := m.rules[r.Name]
	if !ok {
		return Rule{}, fmt.Errorf("%w: %q", ErrNotFound, r.Name)
	}
	r = unredact(r, old)
	if _, err := m.compile(r); err != nil {
		return Rule{}, err
	}
	r.CreatedAt, r.UpdatedAt = old.CreatedAt, m.opts.Now().UTC()
	if err := m.store.update(ctx, r); err != nil {
		return Rule{}, err
	}
	cctx, cancel := m.closeCtx(ctx)
	state := m.halt(cctx, r.Name)
	cancel()
	if old.SQL != r.SQL || !reflect.DeepEqual(old.Options, r.Options) {
		state = nil
	}
	m.rules[r.Name] = r
	if r.Enabled {
		if err := m.start(ctx, r, state); err != nil {
			return Rule{}, err
		}
	} else if state != nil {
		if err := m.store.saveState(ctx, r.Name, r.SQL, state); err != nil {
			return Rule{}, err
		}
	}
	m.log.Info("rule updated", "rule", r.Name, "enabled", r.Enabled)
	return r, nil
}

// Delete stops a rule (delivering what its actions hold) and removes it.
func (m *Manager) Delete(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rules[name]; !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	cctx, cancel := m.closeCtx(ctx)
	m.halt(cctx, name)
	cancel()
	if err := m.store.delete(ctx, name); err != nil {
		return err
	}
	if m.opts.SpoolDir != "" {
		// Undelivered items of a deleted rule are discarded.
		if err := os.RemoveAll(filepath.Join(m.opts.SpoolDir, name)); err != nil {
			m.log.Error("rule spool not removed", "rule", name, "err", err)
		}
	}
	delete(m.rules, name)
	delete(m.broken, name)
	m.log.Info("rule deleted", "rule", name)
	return nil
}

// SetEnabled enables or disables a rule. Disabling keeps its window state
// for the next enable.
func (m *Manager) SetEnabled(ctx context.Context, name string, enabled bool) (Rule, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Rule{}, ErrClosed
	}
	r, ok := m.rules[name]
	if !ok {
		return Rule{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if r.Enabled == enabled && (m.runners[name] != nil) == enabled {
		return r, nil
	}
	r.Enabled, r.UpdatedAt = enabled, m.opts.Now().UTC()
	if err := m.store.update(ctx, r); err != nil {
		return Rule{}, err
	}
	m.rules[name] = r
	if enabled {
		if err := m.start(ctx, r, nil); err != nil {
			m.broken[name] = err.Error()
			return Rule{}, err
		}
	} else {
		cctx, cancel := m.closeCtx(ctx)
		state := m.halt(cctx, name)
		cancel()
		if state != nil {
			if err := m.store.saveState(ctx, name, r.SQL, state); err != nil {
				return Rule{}, err
			}
		}
	}
	m.log.Info("rule enabled state changed", "rule", name, "enabled", enabled)
	return r, nil
}

// Get returns a rule.
func (m *Manager) Get(_ context.Context, name string) (Rule, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rules[name]
	if !ok {
		return Rule{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return r, nil
}

// List returns all rules ordered by name.
func (m *Manager) List(_ context.Context) []Rule {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Rule, 0, len(m.rules))
	for _, r := range m.rules {
		out = append(out, r)
	}
	sortRules(out)
	return out
}

func sortRules(rs []Rule) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].Name < rs[j-1].Name; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// RuleStats are one rule's counters.
type RuleStats struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Running bool   `json:"running"`
	// StartError says why an enabled rule is not running.
	StartError string `json:"start_error,omitempty"`
	// Matched counts messages whose topic matched the FROM filter, Passed
	// the output rows, Errors evaluation errors, Dropped messages lost to a
	// full rule queue, LoopsBroken republished messages not given to this
	// rule because of the loop guard.
	Matched      uint64            `json:"matched"`
	Passed       uint64            `json:"passed"`
	Errors       uint64            `json:"errors"`
	Dropped      uint64            `json:"dropped"`
	Queued       int64             `json:"queued"`
	ErrorReports uint64            `json:"error_reports"`
	LatencyP50   float64           `json:"latency_p50_ms"`
	LatencyP99   float64           `json:"latency_p99_ms"`
	LastError    string            `json:"last_error,omitempty"`
	Engine       *stream.RuleStats `json:"engine,omitempty"`
	Actions      []action.Stats    `json:"actions"`
	ErrorAction  *action.Stats     `json:"error_action,omitempty"`
}

// Stats returns a rule's counters.
func (m *Manager) Stats(_ context.Context, name string) (RuleStats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rules[name]
	if !ok {
		return RuleStats{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	st := RuleStats{Name: name, Enabled: r.Enabled, StartError: m.broken[name], Actions: []action.Stats{}}
	if rr := m.runners[name]; rr != nil {
		rr.fill(&st)
	}
	return st, nil
}

// Summary is the rules part of GET /api/v1/stats.
type Summary struct {
	Rules       int    `json:"rules"`
	Running     int    `json:"running"`
	Matched     uint64 `json:"matched"`
	Passed      uint64 `json:"passed"`
	Errors      uint64 `json:"errors"`
	Dropped     uint64 `json:"dropped"`
	Injected    uint64 `json:"injected"`
	LoopsBroken uint64 `json:"loops_broken"`
}

// Summary totals the counters of all rules.
func (m *Manager) Summary() Summary {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Summary{Rules: len(m.rules), Running: len(m.runners), Injected: m.injected.Load(), LoopsBroken: m.loopsBroken.Load()}
	for _, rr := range m.runners {
		s.Matched += rr.matched.Load()
		s.Passed += rr.passed.Load()
		s.Errors += rr.errors.Load()
		s.Dropped += rr.dropped.Load()
	}
	return s
}

// Close stops every rule: queued messages are processed, window state is
// saved for the next start, and actions deliver what they hold (bounded by
// ctx and Options.CloseTimeout).
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	cctx, cancel := m.closeCtx(ctx)
	defer cancel()
	type saved struct {
		name, sql string
		state     []byte
	}
	var states []saved
	var wg sync.WaitGroup
	var smu sync.Mutex
	for name, rr := range m.runners {
		m.trie.Remove(rr.rule.Filter(), rr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st := rr.close(cctx); st != nil {
				smu.Lock()
				states = append(states, saved{name, rr.def.SQL, st})
				smu.Unlock()
			}
		}()
	}
	wg.Wait()
	clear(m.runners)
	m.stop()
	var errs []error
	for _, s := range states {
		if err := m.store.saveState(context.WithoutCancel(ctx), s.name, s.sql, s.state); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// inMsg is a message waiting for a rule.
type inMsg struct {
	m        *stream.Message
	hops     int
	fromRule string  // the rule whose republish action produced it
	ack      *waiter // set when the publisher waits for durable actions
}

// OnPublish gives each message to the rules whose FROM filter matches its
// topic. It copies what it keeps. A rule whose queue is full drops the
// message and counts it, except that QoS 1 and 2 messages for rules with
// durable actions are always taken, and OnPublish returns only once those
// rules processed them and their outputs are in the actions' spools (so
// the PUBACK means they are on disk).
func (m *Manager) OnPublish(ctx context.Context, batch []*broker.Message) error {
	// Usually a batch matches few rules: group by a linear search rather
	// than a map.
	var groups []ruleGroup
	var w *waiter
	for _, bm := range batch {
		var sm *stream.Message
		m.trie.Match(bm.Topic, func(_ string, rr *runner) bool {
			if sm == nil {
				sm = &stream.Message{
					Topic: strings.Clone(bm.Topic), Payload: append([]byte(nil), bm.Payload...),
					ClientID: strings.Clone(bm.ClientID), QoS: bm.QoS, Received: bm.Received,
				}
				if bm.Principal != nil {
					sm.Principal = strings.Clone(bm.Principal.Name)
				}
				if sm.Received.IsZero() {
					sm.Received = m.opts.Now()
				}
				// Index the payload here, on the publisher's connection
				// goroutine, once for every rule it fans out to.
				sm.Prepare()
			}
			im := inMsg{m: sm}
			if bm.QoS > 0 && len(rr.durable) > 0 {
				if w == nil {
					w = newWaiter()
				}
				w.add()
				im.ack = w
			}
			for i := range groups {
				if groups[i].rr == rr {
					groups[i].msgs = append(groups[i].msgs, im)
					return true
				}
			}
			groups = append(groups, ruleGroup{rr, []inMsg{im}})
			return true
		})
	}
	for _, g := range groups {
		g.rr.offer(g.msgs)
	}
	if w != nil {
		return w.wait(ctx)
	}
	return nil
}

type ruleGroup struct {
	rr   *runner
	msgs []inMsg
}

// dispatch gives one message to the matching rules, except fromRule; for
// QoS 1 it waits like OnPublish.
func (m *Manager) dispatch(ctx context.Context, sm *stream.Message, hops int, fromRule string) error {
	w := newWaiter()
	w.add() // held until every target was offered
	m.offerAll(sm, hops, fromRule, w)
	w.done(nil)
	return w.wait(ctx)
}

// offerAll offers one message to the matching rules except fromRule; w
// (held open by the caller) tracks the durable rules' processing of QoS 1
// messages.
func (m *Manager) offerAll(sm *stream.Message, hops int, fromRule string, w *waiter) {
	var targets []*runner
	m.trie.Match(sm.Topic, func(_ string, rr *runner) bool {
		if rr.def.Name == fromRule {
			m.loopsBroken.Add(1)
			return true
		}
		targets = append(targets, rr)
		return true
	})
	for _, rr := range targets {
		im := inMsg{m: sm, hops: hops, fromRule: fromRule}
		if sm.QoS > 0 && len(rr.durable) > 0 {
			w.add()
			im.ack = w
		}
		rr.offer([]inMsg{im})
	}
}

// Inject publishes a message that did not come from an MQTT client (an
// AMQP source, a gateway) as if a client had published it: to MQTT
// subscribers, to storage through Options.Ingest, and to the rules. An
// error means the message was not stored and should be redelivered.
func (m *Manager) Inject(ctx context.Context, topic string, payload []byte, qos byte, clientID string) error {
	return m.publish(ctx, topic, payload, qos, false, clientID, 0, "")
}

// InjectBatch is Inject for several messages with one storage write (one
// WAL sync instead of one per message): every message goes to MQTT
// subscribers, then all to storage at once, then to the rules. An error
// means the batch should be redelivered (some messages may have reached
// subscribers: at least once).
func (m *Manager) InjectBatch(ctx context.Context, topics []string, payloads [][]byte, qos byte, clientID string) error {
	if len(topics) != len(payloads) {
		return fmt.Errorf("rules: inject: %d topics for %d payloads", len(topics), len(payloads))
	}
	if m.opts.Publisher != nil {
		for i, topic := range topics {
			if err := m.opts.Publisher.Publish(ctx, topic, payloads[i], qos, false); err != nil {
				return fmt.Errorf("rules: publish %q: %w", topic, err)
			}
		}
	}
	now := m.opts.Now()
	if m.opts.Ingest != nil {
		bms := make([]*broker.Message, len(topics))
		for i, topic := range topics {
			bms[i] = &broker.Message{Topic: topic, Payload: payloads[i], QoS: qos, ClientID: clientID, Received: now}
		}
		if err := m.opts.Ingest.OnPublish(ctx, bms); err != nil {
			return fmt.Errorf("rules: store %d messages: %w", len(bms), err)
		}
	}
	m.injected.Add(uint64(len(topics)))
	// One wait for the whole batch: durable rules spool its rows with a
	// shared commit.
	w := newWaiter()
	w.add()
	for i, topic := range topics {
		sm := &stream.Message{Topic: topic, Payload: payloads[i], ClientID: clientID, QoS: qos, Received: now}
		sm.Prepare()
		m.offerAll(sm, 0, "", w)
	}
	w.done(nil)
	return w.wait(ctx)
}

// Republish implements action.Republisher for republish actions: like
// Inject, with the loop guard (see Options.MaxHops).
func (m *Manager) Republish(ctx context.Context, topic string, payload []byte, qos byte, retain bool, origin *action.Origin) error {
	hops, rule := 1, ""
	if origin != nil {
		hops, rule = origin.Hops+1, origin.Rule
	}
	return m.publish(ctx, topic, payload, qos, retain, "rule:"+rule, hops, rule)
}

func (m *Manager) publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool, clientID string, hops int, fromRule string) error {
	if m.opts.Publisher != nil {
		if err := m.opts.Publisher.Publish(ctx, topic, payload, qos, retain); err != nil {
			err = fmt.Errorf("rules: publish %q: %w", topic, err)
			if errors.Is(err, broker.ErrServerClosed) || errors.Is(err, broker.ErrInvalidTopic) || errors.Is(err, broker.ErrInvalidQoS) {
				return action.Permanent(err) // retrying cannot help
			}
			return err
		}
	}
	now := m.opts.Now()
	if m.opts.Ingest != nil {
		bm := &broker.Message{Topic: topic, Payload: payload, QoS: qos, Retain: retain, ClientID: clientID, Received: now}
		if err := m.opts.Ingest.OnPublish(ctx, []*broker.Message{bm}); err != nil {
			return fmt.Errorf("rules: store %q: %w", topic, err)
		}
	}
	if fromRule == "" {
		m.injected.Add(1)
	}
	if hops > m.opts.MaxHops {
		m.loopsBroken.Add(1)
		return nil
	}
	sm := &stream.Message{Topic: topic, Payload: payload, ClientID: clientID, QoS: qos, Received: now}
	sm.Prepare()
	return m.dispatch(ctx, sm, hops, fromRule)
}

// errorPayload builds the documented error action row.
func errorRow(rule string, o *action.Origin, evalErr string, failures []action.Failure, at time.Time) stream.Row {
	row := stream.Row{Columns: []string{"rule", "topic", "client_id", "principal", "payload"}}
	var topic, client, principal, payload string
	if o != nil {
		topic, client, principal = o.Topic, o.ClientID, o.Principal
		payload = base64.StdEncoding.EncodeToString(o.Payload)
	}
	row.Values = []any{rule, topic, client, principal, payload}
	if evalErr != "" {
		row.Columns = append(row.Columns, "error")
		row.Values = append(row.Values, evalErr)
	}
	if failures != nil {
		fs := make([]any, len(failures))
		for i, f := range failures {
			fs[i] = map[string]any{"action": f.Action, "error": f.Error, "attempts": f.Attempts}
		}
		row.Columns = append(row.Columns, "failures")
		row.Values = append(row.Values, fs)
	}
	row.Columns = append(row.Columns, "timestamp")
	row.Values = append(row.Values, at.UTC().Format(time.RFC3339Nano))
	return row
}

// sqlPosition extracts the line and column of a SQL compile error.
func sqlPosition(err error) (line, col int, ok bool) {
	var se *rsql.Error
	if errors.As(err, &se) {
		return se.Line, se.Column, true
	}
	return 0, 0, false
}
