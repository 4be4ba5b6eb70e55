package action

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules/spool"
	"github.com/edgewise-iot/edgewise/internal/rules/stream"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// Action renders a rule's outputs with its templates and delivers them
// asynchronously through a bounded queue.
type Action struct {
	spec   Spec
	r      *runner
	render func(*stream.Output) (*Item, error)
}

// field is a template, or a direct reference to a row column when the
// template is exactly ${column} (so typed values pass unchanged).
type field struct {
	tmpl   *stream.Template
	column string
	raw    string
}

var columnRef = regexp.MustCompile(`^\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}$`)

func parseField(name, s string) (field, error) {
	t, err := stream.ParseTemplate(s)
	if err != nil {
		return field{}, invalid("%s %q: %v", name, s, err)
	}
	f := field{tmpl: t, raw: s}
	if m := columnRef.FindStringSubmatch(s); m != nil {
		f.column = m[1]
	}
	return f, nil
}

// value returns the typed column value for ${column} templates, else the
// rendered string.
func (f field) value(o *stream.Output) (any, error) {
	if f.column != "" {
		if v, ok := o.Row.Get(f.column); ok {
			return v, nil
		}
	}
	return f.tmpl.Render(o)
}

func (f field) str(o *stream.Output) (string, error) {
	if f.tmpl == nil {
		return "", nil
	}
	return f.tmpl.Render(o)
}

type fieldMap struct {
	keys   []string
	fields []field
}

func parseFieldMap(what string, m map[string]string) (fieldMap, error) {
	var fm fieldMap
	for k := range m {
		fm.keys = append(fm.keys, k)
	}
	slices.Sort(fm.keys)
	for _, k := range fm.keys {
		if k == "" {
			return fm, invalid("%s: empty name", what)
		}
		f, err := parseField(what+"."+k, m[k])
		if err != nil {
			return fm, err
		}
		fm.fields = append(fm.fields, f)
	}
	return fm, nil
}

// body renders Spec.Body, or the row as a JSON object.
func bodyFunc(spec Spec) (func(*stream.Output) ([]byte, error), error) {
	if spec.Body == "" {
		return func(o *stream.Output) ([]byte, error) { return json.Marshal(o.Row) }, nil
	}
	f, err := parseField("body", spec.Body)
	if err != nil {
		return nil, err
	}
	return func(o *stream.Output) ([]byte, error) {
		s, err := f.str(o)
		return []byte(s), err
	}, nil
}

// New validates spec and starts the action. name identifies it in stats
// and failures (e.g. "webhook#0"); rule names archive objects. fail
// receives items that failed for good. The action connects to its sink
// lazily, so an unreachable sink does not fail New.
func New(name, rule string, spec Spec, opts Options, fail FailFunc) (*Action, error) {
	opts.defaults()
	s, render, err := build(rule, spec, &opts)
	if err != nil {
		return nil, err
	}
	if fail == nil {
		fail = func(*Item, Failure) {}
	}
	var sp *spool.Spool
	if opts.SpoolDir != "" && IsDurable(spec) {
		if opts.Spool.Logger == nil {
			opts.Spool.Logger = opts.Logger
		}
		if sp, err = spool.Open(opts.SpoolDir, opts.Spool); err != nil {
			_ = s.close(context.Background())
			return nil, fmt.Errorf("action %s: %w", name, err)
		}
	}
	return &Action{spec: spec, r: newRunner(name, spec.Type, s, spec, &opts, fail, sp), render: render}, nil
}

// Validate checks spec without starting anything or connecting to the
// sink; tsdb and republish specs are invalid when opts lacks Points or
// Republisher.
func Validate(spec Spec, opts Options) error {
	opts.defaults()
	s, _, err := build("validate", spec, &opts)
	if err == nil {
		_ = s.close(context.Background())
	}
	return err
}

type nopPoints struct{}

func (nopPoints) Write(context.Context, []tsdb.Point) error { return nil }

type nopRepublisher struct{}

func (nopRepublisher) Republish(context.Context, string, []byte, byte, bool, *Origin) error {
	return nil
}

// Do renders out and queues it without blocking. A render error is
// returned (the caller reports it); a full queue drops the item, reports it
// to the failure callback and returns ErrQueueFull.
func (a *Action) Do(out *stream.Output, origin *Origin) error {
	it, err := a.render(out)
	if err != nil {
		return fmt.Errorf("action %s: %w", a.r.name, err)
	}
	it.Origin = origin
	if it.Time.IsZero() {
		it.Time = out.EventTime
	}
	if a.spec.Type == "webhook" {
		it.ID = newID()
	}
	return a.r.enqueue(it)
}

// Sync makes the items queued so far durable (a no-op for in-memory
// actions): a rule calls it before its publish hook returns.
func (a *Action) Sync() error {
	if a.r.sp == nil {
		return nil
	}
	if err := a.r.sp.Commit(); err != nil {
		return fmt.Errorf("action %s: %w", a.r.name, err)
	}
	return nil
}

// Durable reports whether the action's queue is spooled on disk.
func (a *Action) Durable() bool { return a.r.sp != nil }

// Spec returns the action's specification.
func (a *Action) Spec() Spec { return a.spec }

// Stats returns the action's counters.
func (a *Action) Stats() Stats { return a.r.stats() }

// Close stops accepting items and delivers the queued ones, bounded by ctx
// (items still undelivered when ctx ends are reported as failed).
func (a *Action) Close(ctx context.Context) error { return a.r.close(ctx) }

func checkURL(what, raw string, schemes ...string) error {
	if raw == "" {
		return invalid("%s action needs url", what)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalid("%s url: %v", what, err)
	}
	if !slices.Contains(schemes, u.Scheme) {
		return invalid("%s url %q: scheme must be one of %s", what, redactURL(raw), strings.Join(schemes, ", "))
	}
	return nil
}

func build(rule string, spec Spec, opts *Options) (sink, func(*stream.Output) (*Item, error), error) {
	if spec.QoS > 1 {
		return nil, nil, invalid("qos %d: only 0 and 1 are supported", spec.QoS)
	}
	if spec.QueueSize < 0 || spec.BatchSize < 0 || spec.MaxRetries < -1 || spec.MaxBytes < 0 || spec.Timeout < 0 || spec.MaxAge < 0 {
		return nil, nil, invalid("queue_size, batch_size, max_bytes, timeout and max_age must not be negative, max_retries not below -1")
	}
	switch spec.Type {
	case "tsdb":
		if opts.Points == nil {
			return nil, nil, invalid("tsdb actions are not available on this server")
		}
		return buildTSDB(rule, spec, opts)
	case "republish", "amqp", "nats":
		return buildMessage(spec, opts)
	case "webhook":
		return buildWebhook(spec, opts)
	case "postgres":
		return buildPostgres(spec)
	case "archive":
		return buildArchive(rule, spec)
	case "":
		return nil, nil, invalid("action needs a type (one of %s)", typeList())
	default:
		return nil, nil, invalid("unknown action type %q (want one of %s)", spec.Type, typeList())
	}
}

func buildMessage(spec Spec, opts *Options) (sink, func(*stream.Output) (*Item, error), error) {
	body, err := bodyFunc(spec)
	if err != nil {
		return nil, nil, err
	}
	var key string
	var s sink
	switch spec.Type {
	case "republish":
		if opts.Republisher == nil {
			return nil, nil, invalid("republish actions are not available on this server")
		}
		if spec.Topic == "" {
			return nil, nil, invalid("republish action needs topic")
		}
		key, s = spec.Topic, &republishSink{r: opts.Republisher, qos: spec.QoS, retain: spec.Retain}
	case "amqp":
		if err := checkURL("amqp", spec.URL, "amqp", "amqps"); err != nil {
			return nil, nil, err
		}
		key, s = spec.RoutingKey, &amqpSink{url: spec.URL, exchange: spec.Exchange}
		if spec.Exchange == "" && key == "" {
			return nil, nil, invalid("amqp action needs exchange or routing_key")
		}
	case "nats":
		if err := checkURL("nats", spec.URL, "nats", "tls", "ws", "wss"); err != nil {
			return nil, nil, err
		}
		key = cmpOr(spec.Subject, spec.Topic)
		if key == "" {
			return nil, nil, invalid("nats action needs subject")
		}
		s = &natsSink{url: spec.URL, js: spec.JetStream}
	}
	kf, err := parseField("topic", key)
	if err != nil {
		return nil, nil, err
	}
	return s, func(o *stream.Output) (*Item, error) {
		k, err := kf.str(o)
		if err != nil {
			return nil, err
		}
		if spec.Type == "republish" && (k == "" || strings.ContainsAny(k, "+#")) {
			return nil, fmt.Errorf("topic %q rendered from %q is not a valid topic name", k, spec.Topic)
		}
		if spec.Type == "nats" && (k == "" || strings.ContainsAny(k, " \t*>")) {
			return nil, fmt.Errorf("subject %q rendered from %q is not a valid subject", k, key)
		}
		b, err := body(o)
		if err != nil {
			return nil, err
		}
		return &Item{Key: k, Body: b}, nil
	}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func buildWebhook(spec Spec, opts *Options) (sink, func(*stream.Output) (*Item, error), error) {
	if spec.URL == "" {
		return nil, nil, invalid("webhook action needs url")
	}
	if !strings.Contains(spec.URL, "${") {
		if err := checkURL("webhook", spec.URL, "http", "https"); err != nil {
			return nil, nil, err
		}
	} else if !strings.HasPrefix(spec.URL, "http://") && !strings.HasPrefix(spec.URL, "https://") {
		return nil, nil, invalid("webhook url %q must start with http:// or https://", redactURL(spec.URL))
	}
	method := strings.ToUpper(cmpOr(spec.Method, http.MethodPost))
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodGet, http.MethodDelete:
	default:
		return nil, nil, invalid("webhook method %q: want POST, PUT, PATCH, GET or DELETE", spec.Method)
	}
	if spec.BearerToken != "" && spec.Username != "" {
		return nil, nil, invalid("webhook: give bearer_token or username/password, not both")
	}
	uf, err := parseField("url", spec.URL)
	if err != nil {
		return nil, nil, err
	}
	hm, err := parseFieldMap("headers", spec.Headers)
	if err != nil {
		return nil, nil, err
	}
	body, err := bodyFunc(spec)
	if err != nil {
		return nil, nil, err
	}
	timeout := time.Duration(spec.Timeout)
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{}
	}
	s := &webhookSink{client: client, method: method, timeout: timeout, bearer: spec.BearerToken, user: spec.Username, pass: spec.Password}
	return s, func(o *stream.Output) (*Item, error) {
		u, err := uf.str(o)
		if err != nil {
			return nil, err
		}
		it := &Item{Key: u}
		if len(hm.keys) > 0 {
			it.Headers = make(map[string]string, len(hm.keys))
			for i, k := range hm.keys {
				if it.Headers[k], err = hm.fields[i].str(o); err != nil {
					return nil, err
				}
			}
		}
		if it.Body, err = body(o); err != nil {
			return nil, err
		}
		return it, nil
	}, nil
}

func buildPostgres(spec Spec) (sink, func(*stream.Output) (*Item, error), error) {
	if err := checkURL("postgres", spec.URL, "postgres", "postgresql"); err != nil {
		return nil, nil, err
	}
	if spec.Table == "" || len(spec.Columns) == 0 {
		return nil, nil, invalid("postgres action needs table and columns (column: template)")
	}
	cm, err := parseFieldMap("columns", spec.Columns)
	if err != nil {
		return nil, nil, err
	}
	s := &postgresSink{url: spec.URL, table: quoteTable(spec.Table), ident: tableIdent(spec.Table), columns: cm.keys}
	return s, func(o *stream.Output) (*Item, error) {
		vals := make([]any, len(cm.fields))
		for i, f := range cm.fields {
			v, err := f.value(o)
			if err != nil {
				return nil, err
			}
			vals[i] = pgValue(v)
		}
		return &Item{Values: vals}, nil
	}, nil
}

// pgValue passes scalars through and encodes objects and arrays as JSON
// text (for json/jsonb/text columns).
func pgValue(v any) any {
	switch v.(type) {
	case map[string]any, []any:
		b, err := json.Marshal(v)
		if err != nil {
			return nil
		}
		return string(b)
	}
	return v
}

func buildArchive(rule string, spec Spec) (sink, func(*stream.Output) (*Item, error), error) {
	if err := checkURL("archive", spec.URL, "file", "s3", "gs", "azblob", "mem"); err != nil {
		return nil, nil, err
	}
	body, err := bodyFunc(spec)
	if err != nil {
		return nil, nil, err
	}
	mb := spec.MaxBytes
	if mb <= 0 {
		mb = 64 << 20
	}
	age := time.Duration(spec.MaxAge)
	if age <= 0 {
		age = 5 * time.Minute
	}
	s := &archiveSink{url: spec.URL, prefix: strings.Trim(spec.Prefix, "/"), rule: rule, maxBytes: mb, maxAge: age, now: time.Now}
	return s, func(o *stream.Output) (*Item, error) {
		b, err := body(o)
		if err != nil {
			return nil, err
		}
		if len(b) > 0 && b[len(b)-1] == '\n' {
			b = b[:len(b)-1]
		}
		return &Item{Body: b}, nil
	}, nil
}

func buildTSDB(rule string, spec Spec, opts *Options) (sink, func(*stream.Output) (*Item, error), error) {
	mf, err := parseField("measurement", cmpOr(spec.Measurement, rule))
	if err != nil {
		return nil, nil, err
	}
	tags, err := parseFieldMap("tags", spec.Tags)
	if err != nil {
		return nil, nil, err
	}
	fields, err := parseFieldMap("fields", spec.Fields)
	if err != nil {
		return nil, nil, err
	}
	var tf field
	if spec.Time != "" {
		if tf, err = parseField("time", spec.Time); err != nil {
			return nil, nil, err
		}
	}
	return &tsdbSink{w: opts.Points}, func(o *stream.Output) (*Item, error) {
		m, err := mf.str(o)
		if err != nil {
			return nil, err
		}
		if m == "" {
			return nil, fmt.Errorf("measurement %q rendered empty", spec.Measurement)
		}
		p := &tsdb.Point{Measurement: m}
		for i, k := range tags.keys {
			v, err := tags.fields[i].str(o)
			if err != nil {
				return nil, err
			}
			if v != "" {
				p.Tags = append(p.Tags, tsdb.Tag{Key: k, Value: v})
			}
		}
		if len(fields.keys) == 0 {
			for i, c := range o.Row.Columns {
				if fv, ok := tsdbValue(o.Row.Values[i], false); ok {
					p.Fields = append(p.Fields, tsdb.Field{Key: c, Value: fv})
				}
			}
		} else {
			for i, k := range fields.keys {
				v, err := fields.fields[i].value(o)
				if err != nil {
					return nil, err
				}
				if fv, ok := tsdbValue(v, true); ok {
					p.Fields = append(p.Fields, tsdb.Field{Key: k, Value: fv})
				}
			}
		}
		if len(p.Fields) == 0 {
			return nil, fmt.Errorf("tsdb: the row has no numeric or boolean fields to store")
		}
		at := o.EventTime
		if tf.tmpl != nil {
			s, err := tf.str(o)
			if err != nil {
				return nil, err
			}
			if at, err = parseTime(s); err != nil {
				return nil, err
			}
		}
		if at.IsZero() {
			at = time.Now()
		}
		p.Time = at.UnixNano()
		return &Item{Point: p, Time: at}, nil
	}, nil
}

// tsdbValue converts a row value to a stored value; strings are stored
// only when asked for explicitly (after trying to read them as numbers).
func tsdbValue(v any, strings bool) (tsdb.Value, bool) {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return tsdb.Value{}, false
		}
		return tsdb.FloatValue(x), true
	case float32:
		return tsdb.FloatValue(float64(x)), true
	case int:
		return tsdb.IntValue(int64(x)), true
	case int64:
		return tsdb.IntValue(x), true
	case uint64:
		return tsdb.UintValue(x), true
	case bool:
		return tsdb.BoolValue(x), true
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return tsdb.IntValue(i), true
		}
		if f, err := x.Float64(); err == nil {
			return tsdb.FloatValue(f), true
		}
	case string:
		if !strings {
			return tsdb.Value{}, false
		}
		if i, err := strconv.ParseInt(x, 10, 64); err == nil {
			return tsdb.IntValue(i), true
		}
		if f, err := strconv.ParseFloat(x, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return tsdb.FloatValue(f), true
		}
		if b, err := strconv.ParseBool(x); err == nil {
			return tsdb.BoolValue(b), true
		}
		if x != "" {
			return tsdb.StringValue(x), true
		}
	}
	return tsdb.Value{}, false
}

// parseTime reads RFC 3339 or a unix timestamp in s, ms or ns (by size).
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n < 1e11:
			return time.Unix(n, 0), nil
		case n < 1e14:
			return time.UnixMilli(n), nil
		default:
			return time.Unix(0, n), nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f < 1e11 {
		return time.Unix(0, int64(f*1e9)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is neither RFC 3339 nor a unix timestamp", s)
	}
	return t, nil
}

// newID returns a random UUID (version 4).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
