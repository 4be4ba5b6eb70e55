package influxql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// Errors returned in statement results.
var (
	// ErrBudget: the query would materialise more points than allowed.
	ErrBudget = errors.New("query exceeds the point budget")
	// ErrNoDatabase: a statement needs a database and none was given.
	ErrNoDatabase = errors.New("database name required")
)

// Options configure an Executor.
type Options struct {
	// Now returns the current time for now(); default time.Now.
	Now func() time.Time
	// MaxPoints caps the values (samples, windows, rows x columns)
	// materialised by one statement; 0 = unlimited.
	MaxPoints int
	Logger    *slog.Logger
}

// Executor runs parsed statements against a Storage.
type Executor struct {
	store Storage
	opts  Options
}

// NewExecutor returns an executor over store.
func NewExecutor(store Storage, opts Options) *Executor {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Executor{store: store, opts: opts}
}

// Row is one result series. Columns holds the column names; when Time is
// non-nil the first column is "time" and Time[i] is row i's timestamp
// (unix ns). Cols[c][i] is the value of the c-th non-time column in row i.
type Row struct {
	Name    string
	Tags    []tsdb.Tag
	Columns []string
	Time    []int64
	Cols    [][]tsdb.Value
	// Loc is the statement's tz() location: RFC3339 times are written
	// with its offset (nil = UTC).
	Loc *time.Location
}

// FormatTime renders the unix-ns time t as RFC3339 with nanoseconds in
// the row's location, as InfluxDB prints it (2020-03-29T00:00:00+01:00
// under tz('Europe/Paris'), a Z suffix in UTC).
func (r *Row) FormatTime(t int64) string {
	loc := r.Loc
	if loc == nil {
		loc = time.UTC
	}
	return time.Unix(0, t).In(loc).Format(time.RFC3339Nano)
}

// Len is the number of rows.
func (r *Row) Len() int {
	if len(r.Cols) == 0 {
		return len(r.Time)
	}
	return len(r.Cols[0])
}

// Result is one statement's outcome.
type Result struct {
	StatementID int
	Series      []*Row
	Err         error
}

// Execute runs the statements in order with db as the default database.
// Like InfluxDB it stops at the first failing statement.
func (e *Executor) Execute(ctx context.Context, stmts []Statement, db string) []Result {
	out := make([]Result, 0, len(stmts))
	for i, st := range stmts {
		rows, err := e.executeOne(ctx, st, db)
		out = append(out, Result{StatementID: i, Series: rows, Err: err})
		if err != nil {
			break
		}
	}
	return out
}

func (e *Executor) executeOne(ctx context.Context, st Statement, defaultDB string) ([]*Row, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pick := func(db string) (Database, error) {
		if db == "" {
			db = defaultDB
		}
		if db == "" {
			return nil, ErrNoDatabase
		}
		d, err := e.store.Database(ctx, db)
		if err != nil {
			if errors.Is(err, ErrDatabaseNotFound) {
				return nil, fmt.Errorf("database not found: %s", db)
			}
			return nil, err
		}
		return d, nil
	}
	switch st := st.(type) {
	case *SelectStatement:
		return e.selectTop(ctx, st, pick)
	case *ShowDatabases:
		names, err := e.store.Databases(ctx)
		if err != nil {
			return nil, err
		}
		slices.Sort(names)
		return []*Row{stringRow("databases", nil, []string{"name"}, names)}, nil
	case *ShowRetentionPolicies:
		if _, err := pick(st.Database); err != nil {
			return nil, err
		}
		return []*Row{{Columns: []string{"name", "duration", "shardGroupDuration", "replicaN", "default"},
			Cols: [][]tsdb.Value{{tsdb.StringValue("autogen")}, {tsdb.StringValue("0s")}, {tsdb.StringValue("168h0m0s")},
				{tsdb.IntValue(1)}, {tsdb.BoolValue(true)}}}}, nil
	case *CreateDatabase:
		return nil, e.store.CreateDatabase(ctx, st.Name, st.Duration)
	case *Delete:
		db, err := pick("")
		if err != nil {
			return nil, err
		}
		return nil, e.delete(ctx, db, st)
	case *DropDatabase:
		err := e.store.DropDatabase(ctx, st.Name)
		if errors.Is(err, ErrDatabaseNotFound) {
			return nil, nil // InfluxDB: dropping a missing database is not an error
		}
		return nil, err
	case *ShowMeasurements:
		db, err := pick(st.Database)
		if err != nil {
			return nil, err
		}
		ms, err := e.measurements(ctx, db, st.Source)
		if err != nil {
			return nil, err
		}
		if st.Condition != nil {
			var kept []string
			for _, m := range ms {
				tags, err := e.matchingSeries(ctx, db, m, st.Condition)
				if err != nil {
					return nil, err
				}
				if len(tags) > 0 {
					kept = append(kept, m)
				}
			}
			ms = kept
		}
		ms = page(ms, st.Limit, st.Offset)
		if len(ms) == 0 {
			return nil, nil
		}
		return []*Row{stringRow("measurements", nil, []string{"name"}, ms)}, nil
	case *ShowTagKeys:
		db, err := pick(st.Database)
		if err != nil {
			return nil, err
		}
		ms, err := e.sourceMeasurements(ctx, db, st.Sources)
		if err != nil {
			return nil, err
		}
		var rows []*Row
		for _, m := range ms {
			var keys []string
			if st.Condition == nil {
				if keys, err = db.TagKeys(ctx, m); err != nil {
					return nil, err
				}
			} else {
				series, err := e.matchingSeries(ctx, db, m, st.Condition)
				if err != nil {
					return nil, err
				}
				set := map[string]bool{}
				for _, s := range series {
					for _, t := range s {
						set[t.Key] = true
					}
				}
				for k := range set {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			if keys = page(keys, st.Limit, st.Offset); len(keys) > 0 {
				rows = append(rows, stringRow(m, nil, []string{"tagKey"}, keys))
			}
		}
		return rows, nil
	case *ShowTagValues:
		db, err := pick(st.Database)
		if err != nil {
			return nil, err
		}
		return e.showTagValues(ctx, db, st)
	case *ShowFieldKeys:
		db, err := pick(st.Database)
		if err != nil {
			return nil, err
		}
		ms, err := e.sourceMeasurements(ctx, db, st.Sources)
		if err != nil {
			return nil, err
		}
		var rows []*Row
		for _, m := range ms {
			fks, err := db.FieldKeys(ctx, m)
			if err != nil {
				return nil, err
			}
			slices.SortFunc(fks, func(a, b FieldKey) int { return strings.Compare(a.Key, b.Key) })
			fks = page(fks, st.Limit, st.Offset)
			if len(fks) == 0 {
				continue
			}
			r := &Row{Name: m, Columns: []string{"fieldKey", "fieldType"}, Cols: make([][]tsdb.Value, 2)}
			for _, fk := range fks {
				r.Cols[0] = append(r.Cols[0], tsdb.StringValue(fk.Key))
				r.Cols[1] = append(r.Cols[1], tsdb.StringValue(fk.Type.String()))
			}
			rows = append(rows, r)
		}
		return rows, nil
	case *ShowSeries:
		db, err := pick(st.Database)
		if err != nil {
			return nil, err
		}
		ms, err := e.sourceMeasurements(ctx, db, st.Sources)
		if err != nil {
			return nil, err
		}
		var keys []string
		for _, m := range ms {
			series, err := e.matchingSeries(ctx, db, m, st.Condition)
			if err != nil {
				return nil, err
			}
			for _, s := range series {
				keys = append(keys, SeriesKey(m, s))
			}
		}
		slices.Sort(keys)
		if keys = page(keys, st.Limit, st.Offset); len(keys) == 0 {
			return nil, nil
		}
		return []*Row{stringRow("", nil, []string{"key"}, keys)}, nil
	}
	return nil, fmt.Errorf("unsupported statement %T", st)
}

func (e *Executor) showTagValues(ctx context.Context, db Database, st *ShowTagValues) ([]*Row, error) {
	ms, err := e.sourceMeasurements(ctx, db, st.Sources)
	if err != nil {
		return nil, err
	}
	keyOK := func(k string) bool {
		switch st.KeyOp {
		case "=", "IN":
			return slices.Contains(st.Keys, k)
		case "!=":
			return !slices.Contains(st.Keys, k)
		case "=~":
			return st.KeyRegex.MatchString(k)
		default:
			return !st.KeyRegex.MatchString(k)
		}
	}
	var rows []*Row
	for _, m := range ms {
		series, err := e.matchingSeries(ctx, db, m, st.Condition)
		if err != nil {
			return nil, err
		}
		type kv struct{ k, v string }
		set := map[kv]bool{}
		for _, s := range series {
			for _, t := range s {
				if keyOK(t.Key) {
					set[kv{t.Key, t.Value}] = true
				}
			}
		}
		pairs := make([]kv, 0, len(set))
		for p := range set {
			pairs = append(pairs, p)
		}
		slices.SortFunc(pairs, func(a, b kv) int {
			if c := strings.Compare(a.k, b.k); c != 0 {
				return c
			}
			return strings.Compare(a.v, b.v)
		})
		pairs = page(pairs, st.Limit, st.Offset)
		if len(pairs) == 0 {
			continue
		}
		r := &Row{Name: m, Columns: []string{"key", "value"}, Cols: make([][]tsdb.Value, 2)}
		for _, p := range pairs {
			r.Cols[0] = append(r.Cols[0], tsdb.StringValue(p.k))
			r.Cols[1] = append(r.Cols[1], tsdb.StringValue(p.v))
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// matchingSeries lists a measurement's series whose tags satisfy cond
// (tags only; time conditions are ignored, as metadata has no time).
func (e *Executor) matchingSeries(ctx context.Context, db Database, m string, cond Expr) ([][]tsdb.Tag, error) {
	cond, _, err := extractTime(cond, e.opts.Now())
	if err != nil {
		return nil, err
	}
	matchers, rest := pushdownMatchers(cond, nil)
	series, err := db.Series(ctx, m, matchers)
	if err != nil {
		return nil, err
	}
	if rest == nil {
		return series, nil
	}
	c, err := compileCond(rest, nil)
	if err != nil {
		return nil, err
	}
	out := series[:0]
	for _, s := range series {
		f := &frame{tags: s}
		if truthy(c(&evalCtx{f: f})) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (e *Executor) measurements(ctx context.Context, db Database, src *Measurement) ([]string, error) {
	all, err := db.Measurements(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(all)
	if src == nil {
		return all, nil
	}
	var out []string
	for _, m := range all {
		if (src.Regex != nil && src.Regex.MatchString(m)) || (src.Regex == nil && src.Name == m) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (e *Executor) sourceMeasurements(ctx context.Context, db Database, srcs []Source) ([]string, error) {
	if len(srcs) == 0 {
		return e.measurements(ctx, db, nil)
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range srcs {
		m, ok := s.(*Measurement)
		if !ok {
			return nil, errors.New("subqueries are not allowed here")
		}
		ms, err := e.measurements(ctx, db, m)
		if err != nil {
			return nil, err
		}
		for _, x := range ms {
			if !seen[x] {
				seen[x] = true
				out = append(out, x)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

func page[T any](s []T, limit, offset int) []T {
	if offset >= len(s) {
		return nil
	}
	s = s[offset:]
	if limit > 0 && limit < len(s) {
		s = s[:limit]
	}
	return s
}

func stringRow(name string, tags []tsdb.Tag, cols []string, vals []string) *Row {
	r := &Row{Name: name, Tags: tags, Columns: cols, Cols: [][]tsdb.Value{make([]tsdb.Value, len(vals))}}
	for i, v := range vals {
		r.Cols[0][i] = tsdb.StringValue(v)
	}
	return r
}

// SeriesKey renders measurement and tags as a line-protocol series key.
func SeriesKey(m string, tags []tsdb.Tag) string {
	var b strings.Builder
	b.WriteString(escapeKey(m, false))
	for _, t := range tags {
		b.WriteByte(',')
		b.WriteString(escapeKey(t.Key, true))
		b.WriteByte('=')
		b.WriteString(escapeKey(t.Value, true))
	}
	return b.String()
}

func escapeKey(s string, tag bool) string {
	if !strings.ContainsAny(s, ", =") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == ',' || r == ' ' || (tag && r == '=') {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// delete runs DELETE and DROP SERIES: tag conditions become matchers and
// the time conditions of DELETE its range; anything else (fields, OR
// across tags that matchers cannot express) is refused as InfluxDB does.
func (e *Executor) delete(ctx context.Context, db Database, st *Delete) error {
	d, ok := db.(Deleter)
	if !ok {
		return errors.New("this store does not support deletes")
	}
	cond, tr, err := extractTime(st.Condition, e.opts.Now())
	if err != nil {
		return err
	}
	if st.Drop && tr != fullRange {
		return errors.New("DROP SERIES doesn't support time in WHERE clause")
	}
	matchers, rest := pushdownMatchers(cond, nil)
	if rest != nil {
		return errors.New("fields not supported in WHERE clause during deletion (only tag comparisons joined by AND, and time)")
	}
	ms, err := e.sourceMeasurements(ctx, db, st.Sources)
	if err != nil {
		return err
	}
	start, end := tr.start, tr.end
	if start == math.MinInt64 {
		start = math.MinInt64 + 1
	}
	if end == math.MaxInt64 {
		end = 0
	}
	if end != 0 && end <= start {
		return nil // an empty range deletes nothing
	}
	for _, m := range ms {
		if err := d.Delete(ctx, m, matchers, start, end); err != nil {
			return err
		}
	}
	return nil
}
