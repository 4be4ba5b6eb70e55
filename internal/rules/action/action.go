package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules/spool"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// Errors returned by the package.
var (
	// ErrInvalid is wrapped by every error about an action specification.
	ErrInvalid = errors.New("action: invalid specification")
	// ErrQueueFull is reported (to the failure callback) for an item that
	// did not fit the action's queue.
	ErrQueueFull = errors.New("action: queue full")
	// ErrClosed is returned by Enqueue after Close.
	ErrClosed = errors.New("action: closed")
)

// Duration is a time.Duration that reads and writes "10s"-style strings in
// JSON and YAML.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "10s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration %s: want a string like \"10s\"", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a string like \"500ms\" or \"10s\"", s)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalText lets YAML decoders read "10s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a string like \"500ms\" or \"10s\"", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Spec describes one action of a rule. Type selects the sink; the other
// fields apply to the types named in their comments. String fields marked
// "template" may contain ${expr} substitutions evaluated against the rule's
// output row.
type Spec struct {
	Type string `json:"type" yaml:"type"` // tsdb, republish, webhook, amqp, nats, postgres, archive

	// republish: Topic (template), QoS 0 or 1, Retain.
	// nats: Topic is accepted as an alias of Subject.
	Topic  string `json:"topic,omitempty" yaml:"topic,omitempty"`
	QoS    byte   `json:"qos,omitempty" yaml:"qos,omitempty"`
	Retain bool   `json:"retain,omitempty" yaml:"retain,omitempty"`

	// tsdb: Measurement (template, default "rules"), Tags and Fields
	// (name -> template; default fields: every numeric column, default
	// tags: none), Time (template giving RFC 3339 or unix ms/ns; default
	// the output's event time).
	Measurement string            `json:"measurement,omitempty" yaml:"measurement,omitempty"`
	Tags        map[string]string `json:"tags,omitempty" yaml:"tags,omitempty"`
	Fields      map[string]string `json:"fields,omitempty" yaml:"fields,omitempty"`
	Time        string            `json:"time,omitempty" yaml:"time,omitempty"`

	// URL is the webhook URL (template), the AMQP, NATS or PostgreSQL
	// server URL, or the archive bucket URL (file:///dir, s3://bucket?region=...).
	URL string `json:"url,omitempty" yaml:"url,omitempty"`

	// webhook: Method (default POST), Headers (templates), Body (template;
	// default the row as JSON), BearerToken or Username/Password.
	Method      string            `json:"method,omitempty" yaml:"method,omitempty"`
	Headers     map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	Body        string            `json:"body,omitempty" yaml:"body,omitempty"`
	BearerToken string            `json:"bearer_token,omitempty" yaml:"bearer_token,omitempty"`
	Username    string            `json:"username,omitempty" yaml:"username,omitempty"`
	Password    string            `json:"password,omitempty" yaml:"password,omitempty"`
	Timeout     Duration          `json:"timeout,omitempty" yaml:"timeout,omitempty"` // per attempt, default 10s

	// amqp: Exchange ("" is the default exchange), RoutingKey (template).
	Exchange   string `json:"exchange,omitempty" yaml:"exchange,omitempty"`
	RoutingKey string `json:"routing_key,omitempty" yaml:"routing_key,omitempty"`

	// nats: Subject (template); JetStream publishes and waits for the
	// stream's ack.
	Subject   string `json:"subject,omitempty" yaml:"subject,omitempty"`
	JetStream bool   `json:"jetstream,omitempty" yaml:"jetstream,omitempty"`

	// postgres: Table and Columns (column -> template; a template that is
	// exactly ${column} passes the row's typed value).
	Table   string            `json:"table,omitempty" yaml:"table,omitempty"`
	Columns map[string]string `json:"columns,omitempty" yaml:"columns,omitempty"`

	// archive: Prefix of object keys, MaxBytes (uncompressed bytes per
	// object, default 64 MiB) and MaxAge (default 5m) before an object is
	// written.
	Prefix   string   `json:"prefix,omitempty" yaml:"prefix,omitempty"`
	MaxBytes int      `json:"max_bytes,omitempty" yaml:"max_bytes,omitempty"`
	MaxAge   Duration `json:"max_age,omitempty" yaml:"max_age,omitempty"`

	// Delivery, for every type: QueueSize (default Options.QueueSize),
	// BatchSize (default 1 for webhook, 500 otherwise),
	// MaxRetries (default 5; -1 retries forever, holding the batch),
	// RetryBackoff (first wait, default 100ms, doubled per attempt up to
	// MaxBackoff, default 30s, with jitter).
	QueueSize    int      `json:"queue_size,omitempty" yaml:"queue_size,omitempty"`
	BatchSize    int      `json:"batch_size,omitempty" yaml:"batch_size,omitempty"`
	MaxRetries   int      `json:"max_retries,omitempty" yaml:"max_retries,omitempty"`
	RetryBackoff Duration `json:"retry_backoff,omitempty" yaml:"retry_backoff,omitempty"`
	MaxBackoff   Duration `json:"max_backoff,omitempty" yaml:"max_backoff,omitempty"`

	// Durable keeps the action's queue in an on-disk spool (when the
	// server gives actions a spool directory): items are on disk before
	// the rule's publish hook returns and leave only once the sink
	// acknowledged them. Default true for tsdb, webhook, amqp, postgres,
	// archive and nats with jetstream; false for republish and core nats.
	Durable *bool `json:"durable,omitempty" yaml:"durable,omitempty"`
}

// DefaultDurable reports whether spec's sink is durable by default.
func DefaultDurable(spec Spec) bool {
	switch spec.Type {
	case "tsdb", "webhook", "amqp", "postgres", "archive":
		return true
	case "nats":
		return spec.JetStream
	}
	return false
}

// IsDurable reports whether spec asks for a spooled queue.
func IsDurable(spec Spec) bool {
	if spec.Durable != nil {
		return *spec.Durable
	}
	return DefaultDurable(spec)
}

// Origin is the message an item derives from, kept for the error action.
type Origin struct {
	Rule      string
	Topic     string
	ClientID  string
	Principal string
	Payload   []byte
	// Hops counts how many republish actions produced the message (0 for
	// a device's own message); see Republisher.
	Hops int
}

// Item is one rendered delivery, independent of the rule engine: each sink
// reads the fields it needs.
type Item struct {
	Origin  *Origin
	Key     string            // topic, subject, routing key or URL
	Body    []byte            // message or request body, NDJSON line
	Headers map[string]string // webhook headers
	Values  []any             // postgres column values, in Spec column order
	Point   *tsdb.Point       // tsdb
	Time    time.Time         // event time (archive object keys)
	// ID identifies a webhook item across retries and restarts (its
	// Idempotency-Key header).
	ID string

	seq uint64 // spool sequence (durable actions)
}

// Failure describes an item that could not be delivered.
type Failure struct {
	Action   string `json:"action"`
	Error    string `json:"error"`
	Attempts int    `json:"attempts"`
}

// FailFunc receives items that failed for good (after retries, on a
// permanent error, or because the queue was full). It must not block.
type FailFunc func(it *Item, f Failure)

// sink delivers batches; an error wrapped with Permanent is not retried.
type sink interface {
	deliver(ctx context.Context, batch []*Item) error
	close(ctx context.Context) error
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so it is not retried.
func Permanent(err error) error { return &permanentError{err} }

// IsPermanent reports whether err was wrapped with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// itemsFailed is returned by a sink when some items of a batch failed for
// good and every other item was delivered.
type itemsFailed struct {
	idx  []int
	errs []error
}

func (e *itemsFailed) add(i int, err error) {
	e.idx = append(e.idx, i)
	e.errs = append(e.errs, err)
}

func (e *itemsFailed) Error() string {
	return fmt.Sprintf("%d items failed, first: %v", len(e.idx), e.errs[0])
}

// progressError is returned by a sink that delivered the first done items
// of a batch before err: only the rest is retried.
type progressError struct {
	done int
	err  error
}

func (e *progressError) Error() string { return e.err.Error() }
func (e *progressError) Unwrap() error { return e.err }

// Stats are an action's counters.
type Stats struct {
	Type        string     `json:"type"`
	Name        string     `json:"name"`
	Queued      int64      `json:"queued"`
	Delivered   uint64     `json:"delivered"`
	Failed      uint64     `json:"failed"`
	Retried     uint64     `json:"retried"`
	Dropped     uint64     `json:"dropped"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// Durable actions: Queued counts the items in the spool, SpoolBytes
	// its files, Recovered the items found there at start (replayed), and
	// SpoolLost items lost to damaged spool files.
	Durable    bool   `json:"durable"`
	SpoolBytes int64  `json:"spool_bytes,omitempty"`
	Recovered  uint64 `json:"recovered,omitempty"`
	SpoolLost  uint64 `json:"spool_lost,omitempty"`
}

// runner owns an action's queue and its delivery goroutine.
type runner struct {
	name       string // e.g. "webhook#0"
	typ        string
	sink       sink
	log        *slog.Logger
	fail       FailFunc
	queue      chan *Item
	batch      int
	retries    int
	backoff    time.Duration
	maxWait    time.Duration
	flushEvery time.Duration // periodic flush tick for sinks that buffer (archive)

	// Durable actions: the spool is the queue; cache keeps up to cacheMax
	// items appended in this process so they need not be decoded again.
	sp        *spool.Spool
	cacheMu   sync.Mutex
	cache     map[uint64]*Item
	cacheMax  int
	stopping  chan struct{}
	recovered uint64

	mu                                  sync.Mutex // guards closed and sends on queue
	closed                              bool
	ctx                                 context.Context // cancelled when Close gives up waiting
	cancel                              context.CancelFunc
	done                                chan struct{}
	queued                              atomic.Int64
	delivered, failed, retried, dropped atomic.Uint64
	lastErr                             atomic.Pointer[lastError]
}

type lastError struct {
	msg string
	at  time.Time
}

func newRunner(name, typ string, s sink, spec Spec, opts *Options, fail FailFunc, sp *spool.Spool) *runner {
	q := spec.QueueSize
	if q <= 0 {
		q = opts.QueueSize
	}
	b := spec.BatchSize
	if b <= 0 {
		b = 500
		if typ == "webhook" {
			b = 1
		}
	}
	retries := spec.MaxRetries
	if retries == 0 {
		retries = 5
	}
	bo := time.Duration(spec.RetryBackoff)
	if bo <= 0 {
		bo = 100 * time.Millisecond
	}
	mw := time.Duration(spec.MaxBackoff)
	if mw <= 0 {
		mw = 30 * time.Second
	}
	r := &runner{
		name: name, typ: typ, sink: s, log: opts.Logger.With("action", name), fail: fail,
		queue: make(chan *Item, q), batch: b, retries: retries, backoff: bo, maxWait: mw,
		done: make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if f, ok := s.(interface{ flushInterval() time.Duration }); ok {
		r.flushEvery = f.flushInterval()
	}
	if sp != nil {
		r.sp, r.cache, r.cacheMax, r.stopping = sp, map[uint64]*Item{}, q, make(chan struct{})
		r.queue = nil
		r.recovered = sp.Stats().Pending
		go r.runDurable()
		return r
	}
	go r.run()
	return r
}

// enqueue adds it without blocking; a full queue drops it and reports it.
func (r *runner) enqueue(it *Item) error {
	if r.sp != nil {
		return r.enqueueDurable(it)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	select {
	case r.queue <- it:
		r.queued.Add(1)
		r.mu.Unlock()
		return nil
	default:
	}
	r.mu.Unlock()
	r.dropped.Add(1)
	r.setErr(ErrQueueFull)
	r.fail(it, Failure{Action: r.name, Error: ErrQueueFull.Error()})
	return ErrQueueFull
}

func (r *runner) run() {
	defer close(r.done)
	var tick <-chan time.Time
	if r.flushEvery > 0 {
		t := time.NewTicker(r.flushEvery)
		defer t.Stop()
		tick = t.C
	}
	batch := make([]*Item, 0, r.batch)
	for {
		select {
		case it, ok := <-r.queue:
			if !ok {
				r.flush(true)
				return
			}
			batch = append(batch[:0], it)
		fill:
			for len(batch) < r.batch {
				select {
				case it, ok := <-r.queue:
					if !ok {
						break fill
					}
					batch = append(batch, it)
				default:
					break fill
				}
			}
			r.send(batch)
			r.queued.Add(-int64(len(batch)))
			clear(batch)
		case <-tick:
			r.flush(false)
		}
	}
}

// enqueueDurable appends it to the spool (made durable by Sync); a full
// spool drops it, counts it and reports it.
func (r *runner) enqueueDurable(it *Item) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	rec := encodeItem(nil, it)
	r.cacheMu.Lock()
	seq, err := r.sp.Append(rec)
	if err == nil && len(r.cache) < r.cacheMax {
		it.seq = seq
		r.cache[seq] = it
	}
	r.cacheMu.Unlock()
	if err != nil {
		if errors.Is(err, spool.ErrFull) {
			err = ErrQueueFull
		}
		r.dropped.Add(1)
		r.setErr(err)
		r.fail(it, Failure{Action: r.name, Error: err.Error()})
		return err
	}
	return nil
}

// runDurable delivers the spool's records in order and acknowledges them
// once the sink did (or once they were reported as failed).
func (r *runner) runDurable() {
	defer close(r.done)
	var tick <-chan time.Time
	if r.flushEvery > 0 {
		t := time.NewTicker(r.flushEvery)
		defer t.Stop()
		tick = t.C
	}
	_, buffering := r.sink.(settler)
	batch := make([]*Item, 0, r.batch)
	for {
		recs, err := r.sp.Read(r.batch)
		if err != nil && !errors.Is(err, spool.ErrClosed) {
			r.setErr(err)
			r.log.Error("action spool read failed; retrying", "err", err)
			select {
			case <-time.After(time.Second):
			case <-r.stopping:
				r.flush(true)
				return
			}
			r.sp.Rewind()
			continue
		}
		if len(recs) == 0 {
			select {
			case <-r.stopping:
				r.flush(true)
				return
			default:
			}
			select {
			case <-r.sp.Notify():
			case <-tick:
				r.flush(false)
			case <-r.stopping:
			}
			continue
		}
		batch = batch[:0]
		r.cacheMu.Lock()
		for _, rec := range recs {
			it := r.cache[rec.Seq]
			delete(r.cache, rec.Seq)
			if it == nil {
				if it, err = decodeItem(rec.Data); err != nil {
					r.failed.Add(1)
					r.setErr(err)
					r.log.Error("action: spooled item unreadable; dropped", "seq", rec.Seq, "err", err)
					continue
				}
				it.seq = rec.Seq
			}
			batch = append(batch, it)
		}
		r.cacheMu.Unlock()
		last := recs[len(recs)-1].Seq
		if len(batch) > 0 && !r.send(batch) {
			// Stopped while retrying: the batch stays in the spool.
			r.flush(true)
			return
		}
		if !buffering {
			r.ack(last)
		} // a buffering sink's items are acknowledged by settle once written
		clear(batch)
	}
}

func (r *runner) ack(seq uint64) {
	if err := r.sp.Ack(seq); err != nil {
		r.setErr(err)
		r.log.Error("action spool ack failed", "err", err)
	}
}

// settler is implemented by sinks that buffer items across batches
// (archive): settled returns how many items reached the sink's storage
// since the last call and the highest spool sequence among them.
type settler interface {
	settled() (n int, lastSeq uint64)
}

// settle counts what a buffering sink wrote and acknowledges it.
func (r *runner) settle() {
	st, ok := r.sink.(settler)
	if !ok {
		return
	}
	n, last := st.settled()
	r.delivered.Add(uint64(n))
	if r.sp != nil && last > 0 {
		r.ack(last)
	}
}

// flusher is implemented by sinks that buffer across batches.
type flusher interface {
	flush(ctx context.Context, final bool) error
}

func (r *runner) flush(final bool) {
	f, ok := r.sink.(flusher)
	if !ok {
		return
	}
	if err := f.flush(r.ctx, final); err != nil {
		r.setErr(err)
		r.log.Error("action flush failed", "err", err)
	}
	r.settle()
}

// send delivers one batch with retries; the batch leaves the queue only
// after the sink acknowledged it or the retries are exhausted. It returns
// false when a durable action is stopping and the batch must stay spooled.
func (r *runner) send(batch []*Item) bool {
	ctx := r.ctx
	wait := r.backoff
	_, buffering := r.sink.(settler)
	for attempt := 1; ; attempt++ {
		err := r.sink.deliver(ctx, batch)
		if err == nil {
			if buffering {
				r.settle()
			} else {
				r.delivered.Add(uint64(len(batch)))
			}
			return true
		}
		var pe *progressError
		if errors.As(err, &pe) && pe.done > 0 {
			// Never resend what the sink already took.
			r.delivered.Add(uint64(pe.done))
			batch = batch[pe.done:]
		}
		r.setErr(err)
		var partial *itemsFailed
		if errors.As(err, &partial) {
			r.delivered.Add(uint64(len(batch) - len(partial.idx)))
			r.failed.Add(uint64(len(partial.idx)))
			r.log.Warn("action: items rejected by the sink", "items", len(partial.idx), "of", len(batch), "err", partial.errs[0])
			for k, i := range partial.idx {
				r.fail(batch[i], Failure{Action: r.name, Error: partial.errs[k].Error(), Attempts: attempt})
			}
			return true
		}
		if r.sp != nil && !IsPermanent(err) && r.isStopping() {
			return false
		}
		giveUp := IsPermanent(err) || ctx.Err() != nil || (r.retries >= 0 && attempt > r.retries)
		if giveUp {
			r.failed.Add(uint64(len(batch)))
			r.log.Warn("action failed", "items", len(batch), "attempts", attempt, "err", err)
			for _, it := range batch {
				r.fail(it, Failure{Action: r.name, Error: err.Error(), Attempts: attempt})
			}
			return true
		}
		r.retried.Add(1)
		// Full jitter on the upper half: wait in [wait/2, wait).
		d := wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		select {
		case <-time.After(d):
		case <-ctx.Done():
		case <-r.stopping: // nil for in-memory actions
		}
		wait = min(wait*2, r.maxWait)
	}
}

func (r *runner) isStopping() bool {
	select {
	case <-r.stopping:
		return true
	default:
		return false
	}
}

func (r *runner) setErr(err error) {
	r.lastErr.Store(&lastError{msg: err.Error(), at: time.Now()})
}

// close stops accepting, delivers what is queued and waits, bounded by ctx;
// when ctx ends first, pending retries give up (and report their items).
//
// A durable action instead delivers what the sink accepts, stops at the
// first failure and leaves the rest in its spool for the next start.
func (r *runner) close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		if r.sp != nil {
			close(r.stopping)
		} else {
			close(r.queue)
		}
	}
	r.mu.Unlock()
	var err error
	select {
	case <-r.done:
	case <-ctx.Done():
		r.cancel()
		<-r.done
		err = fmt.Errorf("action %s: close: %d items not delivered: %w", r.name, r.queued.Load(), ctx.Err())
	}
	r.cancel()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = errors.Join(err, r.sink.close(cctx))
	if r.sp != nil {
		err = errors.Join(err, r.sp.Close())
	}
	return err
}

func (r *runner) stats() Stats {
	s := Stats{
		Type: r.typ, Name: r.name, Queued: r.queued.Load(), Delivered: r.delivered.Load(),
		Failed: r.failed.Load(), Retried: r.retried.Load(), Dropped: r.dropped.Load(),
	}
	if r.sp != nil {
		ss := r.sp.Stats()
		s.Durable, s.Queued, s.SpoolBytes, s.Recovered, s.SpoolLost = true, int64(ss.Pending), ss.Bytes, r.recovered, ss.Lost
	}
	if le := r.lastErr.Load(); le != nil {
		s.LastError = le.msg
		at := le.at.UTC()
		s.LastErrorAt = &at
	}
	return s
}

// Options carry what actions need from the rest of the server.
type Options struct {
	Logger *slog.Logger
	// Points stores tsdb action output; nil makes tsdb actions invalid.
	Points PointWriter
	// Republisher publishes republish action output; nil makes republish
	// actions invalid.
	Republisher Republisher
	// QueueSize is the default queue length per action (default 10000).
	QueueSize int
	// HTTPClient sends webhooks (default: a client with no overall timeout;
	// the per-attempt Spec.Timeout applies).
	HTTPClient HTTPDoer
	// SpoolDir, when set, is the directory of this action's spool: a
	// durable action (IsDurable) keeps its queue there, and items found
	// there at New are delivered first. Spool configures it.
	SpoolDir string
	Spool    spool.Options
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 10000
	}
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Types lists the action types.
var types = []string{"tsdb", "republish", "webhook", "amqp", "nats", "postgres", "archive"}

// Types returns the supported action type names.
func Types() []string { return append([]string(nil), types...) }

func knownType(t string) bool {
	for _, k := range types {
		if k == t {
			return true
		}
	}
	return false
}

func typeList() string { return strings.Join(types, ", ") }
