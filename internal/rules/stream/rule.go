package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules/sql"
)

// ErrLimit is wrapped when a windowed rule would exceed Options.MaxGroups
// or Options.MaxBuffered; the message is not taken into any window.
var ErrLimit = errors.New("stream: window limit reached")

// Default limits of windowed rules.
const (
	DefaultMaxGroups   = 1_000_000
	DefaultMaxBuffered = 1_000_000
)

// Rule is a compiled rule. It is not safe for concurrent use.
type Rule struct {
	name string
	src  string
	st   *sql.Statement
	win  *sql.Window
	opts Options
	ts   sql.Expr
	idle time.Duration

	env      sql.Env
	groups   map[string]*group
	stats    RuleStats
	buffered int // entries held by sliding, session and count windows
	// scratch for aggregate arguments of one message
	argv   []any
	argInc []bool
	aggv   []any
}

// Compile parses and checks a rule's SQL. SQL errors are *sql.Error (with
// Line and Column).
func Compile(name, src string, opts Options) (*Rule, error) {
	st, err := sql.Parse(src)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxGroups <= 0 {
		opts.MaxGroups = DefaultMaxGroups
	}
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = DefaultMaxBuffered
	}
	field := opts.TimestampField
	if field == "" {
		field = "timestamp"
	}
	ts, err := sql.ParseExpr(field)
	if err != nil {
		return nil, fmt.Errorf("stream: timestamp field %q: %w", field, err)
	}
	if _, ok := ts.(*sql.FieldRef); !ok {
		return nil, fmt.Errorf("stream: timestamp field %q is not a field path", field)
	}
	if opts.AllowedLateness < 0 {
		return nil, fmt.Errorf("stream: negative allowed lateness %v", opts.AllowedLateness)
	}
	r := &Rule{name: name, src: src, st: st, win: st.Window, opts: opts, ts: ts}
	if w := r.win; w != nil {
		r.groups = map[string]*group{}
		r.idle = opts.IdleTimeout
		if r.idle == 0 {
			switch w.Kind {
			case sql.Session:
				r.idle = w.Timeout
			case sql.Count:
				r.idle = -1 // count windows do not close on time
			default:
				r.idle = w.Size
			}
		}
		if w.Kind == sql.Tumbling {
			w.Hop = w.Size
		}
		n := len(st.Aggs)
		r.argv, r.argInc, r.aggv = make([]any, n), make([]bool, n), make([]any, n)
	}
	r.env.Lookup = opts.Lookup
	return r, nil
}

// Name returns the rule's name.
func (r *Rule) Name() string { return r.name }

// SQL returns the rule's source.
func (r *Rule) SQL() string { return r.src }

// Filter returns the FROM topic filter, for subscription matching.
func (r *Rule) Filter() string { return r.st.From }

// Windowed reports whether the rule has a window in GROUP BY.
func (r *Rule) Windowed() bool { return r.win != nil }

// Statement returns the parsed SQL.
func (r *Rule) Statement() *sql.Statement { return r.st }

// Stats returns the rule's counters.
func (r *Rule) Stats() RuleStats {
	s := r.stats
	s.Groups = len(r.groups)
	for _, g := range r.groups {
		s.WindowsOpen += len(g.open)
		if len(g.entries) > 0 {
			s.WindowsOpen++
		}
	}
	return s
}

func (r *Rule) now() time.Time { return r.opts.Now() }

// prepare points the scratch environment at m.
func (r *Rule) prepare(ctx context.Context, m *Message) *sql.Env {
	e := &r.env
	e.Reset()
	e.Index = m.idx
	e.Ctx, e.Payload, e.Topic, e.ClientID, e.Principal = ctx, m.Payload, m.Topic, m.ClientID, m.Principal
	e.Now = m.Received
	if e.Now.IsZero() {
		e.Now = r.now()
	}
	e.Aggs, e.WindowStart, e.WindowEnd = nil, time.Time{}, time.Time{}
	return e
}

// Process runs the rule on one message whose topic matched Filter. A
// per-message rule returns zero or one output; a windowed rule returns the
// windows this message's event time closed (in window-end order). An error
// (the payload is not JSON, a bad event timestamp in a windowed rule) is
// about this message only and belongs to the rule's error action.
func (r *Rule) Process(ctx context.Context, m *Message) ([]Output, error) {
	r.stats.Matched++
	env := r.prepare(ctx, m)
	ok, err := r.st.Matches(env)
	if err != nil {
		r.stats.Errors++
		return nil, fmt.Errorf("stream: rule %s: %w", r.name, err)
	}
	if !ok {
		return nil, nil
	}
	if r.win != nil {
		outs, err := r.processWindowed(env, m)
		if err != nil {
			r.stats.Errors++
			return nil, fmt.Errorf("stream: rule %s: %w", r.name, err)
		}
		return outs, nil
	}
	n := len(r.st.Fields)
	cols, vals, err := r.st.Select(env, make([]string, 0, n), make([]any, 0, n))
	if err != nil {
		r.stats.Errors++
		return nil, fmt.Errorf("stream: rule %s: %w", r.name, err)
	}
	r.stats.Passed++
	r.stats.Outputs++
	// The event time of a per-message output; an unreadable timestamp
	// falls back to the receive time (only windows depend on it).
	t := env.Now
	if ns, err := r.eventTime(env, m); err == nil {
		t = time.Unix(0, ns).UTC()
	}
	return []Output{{
		Rule: r.name, Row: Row{Columns: cols, Values: vals},
		Topic: m.Topic, ClientID: m.ClientID, Principal: m.Principal,
		EventTime: t, Source: m,
	}}, nil
}

// group is the window state of one GROUP BY key.
type group struct {
	key      string
	maxT     int64 // newest event time seen
	closed   int64 // end of the newest window emitted (math.MinInt64: none)
	lastSeen time.Time
	open     []*twin // tumbling/hopping windows, by start
	entries  []entry // sliding/session (by event time), count (by arrival)
	since    int     // count windows: arrivals since the last emission
}

type twin struct {
	start, end int64
	accs       []sql.Acc
	last       *Message
	lastT      int64
}

type entry struct {
	t       int64
	m       *Message
	emitted bool // sliding: this entry's window was emitted
}

func (r *Rule) groupKey(env *sql.Env) (string, error) {
	switch len(r.st.GroupBy) {
	case 0:
		return "", nil
	case 1:
		v, err := r.st.GroupBy[0].Eval(env)
		if err != nil {
			return "", err
		}
		if s, ok := v.(string); ok {
			return s, nil
		}
		return sql.ToString(v), nil
	}
	var b strings.Builder
	for i, g := range r.st.GroupBy {
		v, err := g.Eval(env)
		if err != nil {
			return "", err
		}
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(sql.ToString(v))
	}
	return b.String(), nil
}

func (r *Rule) eventTime(env *sql.Env, m *Message) (int64, error) {
	if r.opts.ProcessingTime {
		return env.Now.UnixNano(), nil
	}
	// Fast path: an ISO-8601 string read straight from the payload.
	if raw, ok, err := env.RawField(r.ts.(*sql.FieldRef)); err != nil {
		return 0, err
	} else if ok && len(raw) > 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		if ns, ok := parseISO(raw[1 : len(raw)-1]); ok {
			return ns, nil
		}
	}
	v, err := r.ts.Eval(env)
	if err != nil {
		return 0, err
	}
	if v == nil || sql.IsUndefined(v) {
		return env.Now.UnixNano(), nil
	}
	return eventTime(v)
}

// rawKey returns the group key as bytes of the payload when the only
// GROUP BY key is a string field without escapes (no allocation).
func (r *Rule) rawKey(env *sql.Env) ([]byte, bool) {
	if len(r.st.GroupBy) != 1 {
		return nil, false
	}
	f, ok := r.st.GroupBy[0].(*sql.FieldRef)
	if !ok {
		return nil, false
	}
	raw, ok, err := env.RawField(f)
	if err != nil || !ok || len(raw) < 2 || raw[0] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
		return nil, false
	}
	return raw[1 : len(raw)-1], true
}

func (r *Rule) processWindowed(env *sql.Env, m *Message) ([]Output, error) {
	t, err := r.eventTime(env, m)
	if err != nil {
		return nil, err
	}
	var g *group
	var key string
	kb, fast := r.rawKey(env)
	if fast {
		g = r.groups[string(kb)]
	} else {
		if key, err = r.groupKey(env); err != nil {
			return nil, err
		}
		g = r.groups[key]
	}
	if g == nil {
		if len(r.groups) >= r.opts.MaxGroups {
			return nil, fmt.Errorf("%w: %d groups", ErrLimit, r.opts.MaxGroups)
		}
		if fast {
			key = string(kb)
		}
		g = &group{key: key, maxT: math.MinInt64, closed: math.MinInt64}
		r.groups[key] = g
	}
	switch r.win.Kind {
	case sql.Sliding, sql.Session, sql.Count:
		if r.buffered >= r.opts.MaxBuffered && !(r.win.Kind == sql.Count && len(g.entries) == r.win.Count) {
			return nil, fmt.Errorf("%w: %d buffered messages", ErrLimit, r.opts.MaxBuffered)
		}
	}
	g.lastSeen = env.Now
	r.stats.Passed++
	if t > g.maxT {
		g.maxT = t
	}
	wm := g.maxT - int64(r.opts.AllowedLateness)
	switch r.win.Kind {
	case sql.Tumbling, sql.Hopping:
		if err := r.evalArgs(env); err != nil {
			return nil, err
		}
		r.addTimed(g, m, t, wm)
	case sql.Sliding:
		if t < wm || t <= g.closed {
			r.stats.Late++
			return nil, nil
		}
		g.insert(entry{t: t, m: m})
		r.buffered++
	case sql.Session:
		to := int64(r.win.Timeout)
		joins := len(g.entries) > 0 && t >= g.entries[0].t-to
		if t <= g.closed || (t+to <= wm && !joins) {
			r.stats.Late++
			return nil, nil
		}
		g.insert(entry{t: t, m: m})
		r.buffered++
	case sql.Count:
		return r.addCount(g, m, t), nil
	}
	return r.closeReady(g, wm, false), nil
}

// evalArgs evaluates the aggregate arguments for the current message.
func (r *Rule) evalArgs(env *sql.Env) error {
	for i, a := range r.st.Aggs {
		v, inc, err := a.AggArg(env)
		if err != nil {
			return err
		}
		r.argv[i], r.argInc[i] = v, inc
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func (r *Rule) addTimed(g *group, m *Message, t, wm int64) {
	size, hop := int64(r.win.Size), int64(r.win.Hop)
	late := false
	for s := floorDiv(t, hop) * hop; s > t-size; s -= hop {
		end := s + size
		if end <= wm || end <= g.closed {
			late = true
			continue
		}
		w := g.window(s, end, r.st.Aggs)
		for i := range w.accs {
			if r.argInc[i] {
				w.accs[i].Add(r.argv[i], t)
			}
		}
		if w.last == nil || t >= w.lastT {
			w.last, w.lastT = m, t
		}
	}
	if late {
		r.stats.Late++
	}
}

func (g *group) window(start, end int64, aggs []*sql.Call) *twin {
	i := sort.Search(len(g.open), func(i int) bool { return g.open[i].start >= start })
	if i < len(g.open) && g.open[i].start == start {
		return g.open[i]
	}
	w := &twin{start: start, end: end, accs: make([]sql.Acc, len(aggs))}
	for j, a := range aggs {
		w.accs[j] = sql.NewAcc(a)
	}
	g.open = append(g.open, nil)
	copy(g.open[i+1:], g.open[i:])
	g.open[i] = w
	return w
}

// insert adds e keeping entries ordered by event time (arrival order for
// equal times).
func (g *group) insert(e entry) {
	i := len(g.entries)
	for i > 0 && g.entries[i-1].t > e.t {
		i--
	}
	g.entries = append(g.entries, entry{})
	copy(g.entries[i+1:], g.entries[i:])
	g.entries[i] = e
}

func (r *Rule) addCount(g *group, m *Message, t int64) []Output {
	n, hop := r.win.Count, r.win.CountHop
	if len(g.entries) == n {
		copy(g.entries, g.entries[1:])
		g.entries = g.entries[:n-1]
		r.buffered--
	}
	g.entries = append(g.entries, entry{t: t, m: m})
	r.buffered++
	g.since++
	if len(g.entries) < n || g.since < hop {
		return nil
	}
	g.since = 0
	es := g.entries
	start, end := es[0].t, es[0].t
	for _, e := range es {
		start, end = min(start, e.t), max(end, e.t)
	}
	var outs []Output
	if o, ok := r.emitEntries(g, es, start, end, m); ok {
		outs = append(outs, o)
	}
	if hop == n {
		r.buffered -= len(g.entries)
		g.entries = g.entries[:0]
	}
	return outs
}

// closeReady emits the windows of g that the watermark wm has passed; all
// open windows when force (idle close).
func (r *Rule) closeReady(g *group, wm int64, force bool) []Output {
	var outs []Output
	switch r.win.Kind {
	case sql.Tumbling, sql.Hopping:
		n := 0
		for _, w := range g.open {
			if !force && w.end > wm {
				break
			}
			n++
			g.closed = max(g.closed, w.end)
			if o, ok := r.emitTimed(g, w); ok {
				outs = append(outs, o)
			}
		}
		if n > 0 {
			g.open = append(g.open[:0], g.open[n:]...)
		}
	case sql.Sliding:
		size := int64(r.win.Size)
		for i := range g.entries {
			e := &g.entries[i]
			if e.emitted {
				continue
			}
			if !force && e.t > wm {
				break
			}
			e.emitted = true
			lo := sort.Search(len(g.entries), func(j int) bool { return g.entries[j].t > e.t-size })
			hi := i + 1
			for hi < len(g.entries) && g.entries[hi].t == e.t {
				hi++
			}
			if o, ok := r.emitEntries(g, g.entries[lo:hi], e.t-size, e.t, e.m); ok {
				outs = append(outs, o)
			}
		}
		// Drop entries no future window can hold.
		cut := 0
		limit := wm - size
		if force {
			limit = math.MaxInt64
			g.closed = max(g.closed, g.maxT)
		}
		for cut < len(g.entries) && g.entries[cut].emitted && g.entries[cut].t <= limit {
			cut++
		}
		if cut > 0 {
			r.buffered -= cut
			g.entries = append(g.entries[:0], g.entries[cut:]...)
		}
	case sql.Session:
		to, maxd := int64(r.win.Timeout), int64(r.win.Size)
		for len(g.entries) > 0 {
			es := g.entries
			first := es[0].t
			bound := (floorDiv(first, maxd) + 1) * maxd
			k := 0
			for k+1 < len(es) && es[k+1].t-es[k].t <= to && es[k+1].t < bound {
				k++
			}
			end := min(es[k].t+to, bound)
			if !force && end > wm {
				break
			}
			if o, ok := r.emitEntries(g, es[:k+1], first, end, es[k].m); ok {
				outs = append(outs, o)
			}
			g.closed = max(g.closed, end)
			r.buffered -= k + 1
			g.entries = append(g.entries[:0], es[k+1:]...)
		}
	}
	return outs
}

func (r *Rule) emitTimed(g *group, w *twin) (Output, bool) {
	for i := range w.accs {
		r.aggv[i] = w.accs[i].Result()
	}
	return r.project(g, w.last, w.start, w.end)
}

// emitEntries aggregates a buffered window and projects it; last gives the
// non-aggregated columns.
func (r *Rule) emitEntries(g *group, es []entry, start, end int64, last *Message) (Output, bool) {
	accs := make([]sql.Acc, len(r.st.Aggs))
	for i, a := range r.st.Aggs {
		accs[i] = sql.NewAcc(a)
	}
	for _, e := range es {
		env := r.prepare(context.Background(), e.m)
		for i, a := range r.st.Aggs {
			v, inc, err := a.AggArg(env)
			if err == nil && inc {
				accs[i].Add(v, e.t)
			}
		}
	}
	for i := range accs {
		r.aggv[i] = accs[i].Result()
	}
	return r.project(g, last, start, end)
}

// project evaluates HAVING and the SELECT list of a closed window.
func (r *Rule) project(g *group, last *Message, start, end int64) (Output, bool) {
	env := r.prepare(context.Background(), last)
	env.Aggs = r.aggv
	env.WindowStart, env.WindowEnd = time.Unix(0, start).UTC(), time.Unix(0, end).UTC()
	if r.st.Having != nil {
		v, err := r.st.Having.Eval(env)
		if err != nil {
			r.stats.Errors++
			return Output{}, false
		}
		if !sql.Truthy(v) {
			return Output{}, false
		}
	}
	n := len(r.st.Fields)
	cols, vals, err := r.st.Select(env, make([]string, 0, n), make([]any, 0, n))
	if err != nil {
		r.stats.Errors++
		return Output{}, false
	}
	r.stats.Outputs++
	return Output{
		Rule: r.name, Row: Row{Columns: cols, Values: vals},
		Topic: last.Topic, ClientID: last.ClientID, Principal: last.Principal,
		EventTime: env.WindowEnd, WindowStart: env.WindowStart, WindowEnd: env.WindowEnd,
	}, true
}

// Tick closes the windows of groups that have been idle (no message) for
// the idle timeout at processing time now, and forgets groups idle for
// long. Outputs are ordered by window end, then group key.
func (r *Rule) Tick(now time.Time) []Output {
	if r.win == nil || r.idle < 0 {
		return nil
	}
	type keyed struct {
		o   Output
		key string
	}
	var ko []keyed
	forget := 2*r.idle + r.win.Size + r.win.Timeout + r.opts.AllowedLateness
	for k, g := range r.groups {
		idle := now.Sub(g.lastSeen)
		if idle < r.idle {
			continue
		}
		if r.win.Kind == sql.Count {
			// An explicit idle timeout drops a quiet group's partial
			// count window (never emitted) and the group.
			r.buffered -= len(g.entries)
			delete(r.groups, k)
			continue
		}
		if len(g.open) > 0 || len(g.entries) > 0 {
			for _, o := range r.closeReady(g, 0, true) {
				ko = append(ko, keyed{o, k})
			}
		}
		if idle >= forget && len(g.open) == 0 && len(g.entries) == 0 {
			delete(r.groups, k)
		}
	}
	sort.Slice(ko, func(i, j int) bool {
		a, b := ko[i], ko[j]
		if !a.o.WindowEnd.Equal(b.o.WindowEnd) {
			return a.o.WindowEnd.Before(b.o.WindowEnd)
		}
		if a.key != b.key {
			return a.key < b.key
		}
		return a.o.WindowStart.Before(b.o.WindowStart)
	})
	outs := make([]Output, len(ko))
	for i := range ko {
		outs[i] = ko[i].o
	}
	return outs
}
