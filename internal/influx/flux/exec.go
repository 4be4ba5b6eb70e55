package flux

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

// Errors.
var (
	// ErrBucketNotFound: from() names an unknown bucket.
	ErrBucketNotFound = errors.New("bucket not found")
	// ErrBudget: the query would materialise more values than allowed.
	ErrBudget = errors.New("query exceeds the point budget")
	// ErrInvalid marks errors in the query (as opposed to the store).
	ErrInvalid = errors.New("invalid flux query")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// DB is what the executor needs from one bucket; *tsdb.DB implements it.
type DB interface {
	Query(ctx context.Context, q tsdb.Query) ([]tsdb.Series, error)
	Measurements(ctx context.Context) ([]string, error)
}

// Storage resolves buckets ("db" or "db/rp") to databases.
type Storage interface {
	Bucket(ctx context.Context, name string) (DB, error)
}

// Options configure an Executor.
type Options struct {
	Now       func() time.Time
	MaxPoints int // values materialised per query; 0 = unlimited
	Logger    *slog.Logger
}

// Executor runs Flux programs.
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

// Column describes one table column.
type Column struct {
	Label string
	Type  Kind
	Key   bool // part of the group key
}

// Table is one Flux table: a schema and rows.
type Table struct {
	Cols []Column
	Rows [][]Value
	// empty holds the group key values (aligned with Cols) of a table
	// without rows, such as the empty windows of window(createEmpty: true).
	empty []Value
}

// keyRow returns a row carrying the table's group key values: the first
// row, or the key of an empty table (nil when unknown).
func (t *Table) keyRow() []Value {
	if len(t.Rows) > 0 {
		return t.Rows[0]
	}
	return t.empty
}

func (t *Table) idx(label string) int {
	for i, c := range t.Cols {
		if c.Label == label {
			return i
		}
	}
	return -1
}

// Result is one yielded result.
type Result struct {
	Name   string
	Tables []*Table
}

// source is a pending read: from + range + pushed-down filters.
type source struct {
	db          DB
	bucket      string
	start, stop int64
	hasRange    bool
	meas        []string // nil = all
	measPreds   []func(string) bool
	fields      []string // nil = all
	fieldPreds  []func(string) bool
	matchers    []tsdb.Matcher
	rowFilters  []*function
}

type stream struct {
	src    *source // non-nil until materialised
	tables []*Table
	// bounds are the time bounds of range() that the tables descend from
	// (window() clips to them); bounded is false when unknown.
	start, stop int64
	bounded     bool
}

// bounds returns the stream's range() bounds.
func (s *stream) bounds() (start, stop int64, ok bool) {
	if s.src != nil {
		return s.src.start, s.src.stop, s.src.hasRange
	}
	return s.start, s.stop, s.bounded
}

type function struct {
	name    string
	arrow   *Arrow
	env     *env
	builtin func(x *run, args *record, pipe *stream) (Value, error)
	// params lists a builtin's arguments; others are refused (nil: any).
	params []string
}

type env struct {
	parent *env
	vars   map[string]Value
}

func (e *env) lookup(n string) (Value, bool) {
	for s := e; s != nil; s = s.parent {
		if v, ok := s.vars[n]; ok {
			return v, true
		}
	}
	return Value{}, false
}

// run is one execution: context, clock and budget.
type run struct {
	ctx     context.Context
	ex      *Executor
	now     int64
	used    int
	results []Result
}

func (x *run) take(n int) error {
	x.used += n
	if x.ex.opts.MaxPoints > 0 && x.used > x.ex.opts.MaxPoints {
		return fmt.Errorf("%w: more than %d values materialised (narrow the range or the filter)", ErrBudget, x.ex.opts.MaxPoints)
	}
	return nil
}

// Execute parses and runs a program; now overrides the clock when non-zero.
func (e *Executor) Execute(ctx context.Context, src string, now time.Time) ([]Result, error) {
	prog, err := Parse(src)
	if err != nil {
		return nil, err
	}
	if now.IsZero() {
		now = e.opts.Now()
	}
	x := &run{ctx: ctx, ex: e, now: now.UnixNano()}
	root := &env{vars: builtins()}
	top := &env{parent: root, vars: map[string]Value{}}
	for _, st := range prog {
		switch st := st.(type) {
		case *Assign:
			v, err := x.eval(st.Value, top)
			if err != nil {
				return nil, err
			}
			top.vars[st.Name] = v
		case *ExprStmt:
			v, err := x.eval(st.X, top)
			if err != nil {
				return nil, err
			}
			if v.Kind == KStream && !isYielded(st.X) {
				if err := x.yield(v.x.st, "_result"); err != nil {
					return nil, err
				}
			}
		}
	}
	return x.results, nil
}

func isYielded(n Node) bool {
	p, ok := n.(*Pipe)
	if !ok {
		return false
	}
	id, ok := p.Call.Callee.(*Ident)
	return ok && id.Name == "yield"
}

func (x *run) yield(s *stream, name string) error {
	tables, err := x.materialize(s)
	if err != nil {
		return err
	}
	for i := range x.results {
		if x.results[i].Name == name {
			return invalidf("duplicate yield name %q", name)
		}
	}
	x.results = append(x.results, Result{Name: name, Tables: tables})
	return nil
}

// ---- expression evaluation ----

// rowEnv binds the row parameter of a per-row function without building a record.
type rowEnv struct {
	param string
	t     *Table
	row   []Value
}

func (x *run) eval(n Node, e *env) (Value, error) { return x.evalRow(n, e, nil) }

func (x *run) evalRow(n Node, e *env, re *rowEnv) (Value, error) {
	switch n := n.(type) {
	case *Lit:
		return n.V, nil
	case *RegexLit:
		return regexValue(n.Re), nil
	case *Ident:
		if re != nil && n.Name == re.param {
			r := newRecord()
			for i, c := range re.t.Cols {
				r.set(c.Label, re.row[i])
			}
			return recordValue(r), nil
		}
		if v, ok := e.lookup(n.Name); ok {
			return v, nil
		}
		return Value{}, invalidf("undefined identifier %s", n.Name)
	case *Member:
		if id, ok := n.Obj.(*Ident); ok && re != nil && id.Name == re.param {
			if i := re.t.idx(n.Prop); i >= 0 {
				return re.row[i], nil
			}
			return Value{}, nil
		}
		obj, err := x.evalRow(n.Obj, e, re)
		if err != nil {
			return Value{}, err
		}
		if obj.Kind != KRecord {
			return Value{}, invalidf("cannot access property %s of a %s", n.Prop, obj.Kind)
		}
		v, _ := obj.x.rec.get(n.Prop)
		return v, nil
	case *Index:
		obj, err := x.evalRow(n.Obj, e, re)
		if err != nil {
			return Value{}, err
		}
		idx, err := x.evalRow(n.Idx, e, re)
		if err != nil {
			return Value{}, err
		}
		if obj.Kind == KRecord && idx.Kind == KString {
			v, _ := obj.x.rec.get(idx.S)
			return v, nil
		}
		if obj.Kind != KArray || idx.Kind != KInt {
			return Value{}, invalidf("cannot index a %s with a %s", obj.Kind, idx.Kind)
		}
		if idx.I < 0 || idx.I >= int64(len(obj.x.arr)) {
			return Value{}, invalidf("index %d out of range", idx.I)
		}
		return obj.x.arr[idx.I], nil
	case *Array:
		out := make([]Value, len(n.Elems))
		for i, el := range n.Elems {
			v, err := x.evalRow(el, e, re)
			if err != nil {
				return Value{}, err
			}
			out[i] = v
		}
		return arrayValue(out), nil
	case *Record:
		r := newRecord()
		if n.With != nil {
			base, err := x.evalRow(n.With, e, re)
			if err != nil {
				return Value{}, err
			}
			if base.Kind != KRecord {
				return Value{}, invalidf("with needs a record")
			}
			for _, k := range base.x.rec.keys {
				r.set(k, base.x.rec.vals[k])
			}
		}
		for _, p := range n.Props {
			var v Value
			var err error
			if p.Value == nil {
				v, err = x.evalRow(&Ident{P: n.P, Name: p.Key}, e, re)
			} else {
				v, err = x.evalRow(p.Value, e, re)
			}
			if err != nil {
				return Value{}, err
			}
			r.set(p.Key, v)
		}
		return recordValue(r), nil
	case *Arrow:
		return Value{Kind: KFunc, x: &ext{fn: &function{arrow: n, env: e}}}, nil
	case *Unary:
		v, err := x.evalRow(n.X, e, re)
		if err != nil {
			return Value{}, err
		}
		switch n.Op {
		case "not":
			if v.Kind == KNull {
				return Value{}, nil
			}
			if v.Kind != KBool {
				return Value{}, invalidf("not needs a bool, got %s", v.Kind)
			}
			return Bool(v.I == 0), nil
		case "exists":
			return Bool(v.Kind != KNull), nil
		case "-":
			if v.Kind == KNull {
				return v, nil
			}
			if neg, ok := v.negate(); ok {
				return neg, nil
			}
			return Value{}, invalidf("cannot negate a %s", v.Kind)
		}
	case *Cond:
		c, err := x.evalRow(n.Test, e, re)
		if err != nil {
			return Value{}, err
		}
		if c.truthy() {
			return x.evalRow(n.Then, e, re)
		}
		return x.evalRow(n.Else, e, re)
	case *Binary:
		return x.binary(n, e, re)
	case *Call:
		return x.call(n, e, re, nil)
	case *Pipe:
		arg, err := x.evalRow(n.Arg, e, re)
		if err != nil {
			return Value{}, err
		}
		if arg.Kind != KStream {
			return Value{}, invalidf("the left side of |> must be a table stream, got %s", arg.Kind)
		}
		return x.call(n.Call, e, re, arg.x.st)
	}
	return Value{}, invalidf("unsupported expression %T", n)
}

func (x *run) binary(n *Binary, e *env, re *rowEnv) (Value, error) {
	l, err := x.evalRow(n.L, e, re)
	if err != nil {
		return Value{}, err
	}
	switch n.Op {
	case "and":
		if l.Kind == KBool && l.I == 0 {
			return Bool(false), nil
		}
	case "or":
		if l.truthy() {
			return Bool(true), nil
		}
	}
	r, err := x.evalRow(n.R, e, re)
	if err != nil {
		return Value{}, err
	}
	switch n.Op {
	case "and", "or":
		if (l.Kind != KBool && l.Kind != KNull) || (r.Kind != KBool && r.Kind != KNull) {
			return Value{}, invalidf("%s needs bool operands, got %s and %s", n.Op, l.Kind, r.Kind)
		}
		if n.Op == "and" {
			return Bool(l.truthy() && r.truthy()), nil
		}
		return Bool(l.truthy() || r.truthy()), nil
	case "=~", "!~":
		if r.Kind != KRegex {
			return Value{}, invalidf("%s needs a regex on its right", n.Op)
		}
		if l.Kind != KString {
			return Bool(false), nil
		}
		return Bool(r.x.re.MatchString(l.S) == (n.Op == "=~")), nil
	case "==", "!=", "<", "<=", ">", ">=":
		c, ok := compare(l, r)
		if !ok {
			return Bool(false), nil
		}
		switch n.Op {
		case "==":
			return Bool(c == 0), nil
		case "!=":
			return Bool(c != 0), nil
		case "<":
			return Bool(c < 0), nil
		case "<=":
			return Bool(c <= 0), nil
		case ">":
			return Bool(c > 0), nil
		}
		return Bool(c >= 0), nil
	}
	v, ok := arith(n.Op, l, r)
	if !ok {
		return Value{}, invalidf("cannot apply %s to %s and %s", n.Op, l.Kind, r.Kind)
	}
	return v, nil
}

func (x *run) call(c *Call, e *env, re *rowEnv, pipe *stream) (Value, error) {
	fv, err := x.evalRow(c.Callee, e, re)
	if err != nil {
		return Value{}, err
	}
	if fv.Kind != KFunc {
		return Value{}, invalidf("%s is not a function", describe(c.Callee))
	}
	args := newRecord()
	for _, a := range c.Args {
		var v Value
		if a.Value == nil {
			v, err = x.evalRow(&Ident{Name: a.Key}, e, re)
		} else {
			v, err = x.evalRow(a.Value, e, re)
		}
		if err != nil {
			return Value{}, err
		}
		args.set(a.Key, v)
	}
	return x.apply(fv.x.fn, args, pipe)
}

func describe(n Node) string {
	switch n := n.(type) {
	case *Ident:
		return n.Name
	case *Member:
		return describe(n.Obj) + "." + n.Prop
	}
	return "expression"
}

func (x *run) apply(f *function, args *record, pipe *stream) (Value, error) {
	if err := x.ctx.Err(); err != nil {
		return Value{}, err
	}
	if f.builtin != nil {
		if f.params != nil {
			if t, ok := args.get("tables"); ok && t.Kind == KStream && pipe == nil && !slices.Contains(f.params, "tables") {
				pipe = t.x.st // f(tables: s) is s |> f()
				args = without(args, "tables")
			}
			for _, k := range args.keys {
				if !slices.Contains(f.params, k) {
					return Value{}, invalidf("%s(): unknown argument %s (arguments: %s)", f.name, k, strings.Join(f.params, ", "))
				}
			}
		}
		v, err := f.builtin(x, args, pipe)
		if err != nil && f.name != "" && errors.Is(err, ErrInvalid) && !strings.Contains(err.Error(), f.name) {
			return Value{}, fmt.Errorf("%s(): %w", f.name, err)
		}
		if err == nil && v.Kind == KStream && pipe != nil && v.x.st != pipe {
			inheritBounds(v.x.st, pipe)
		}
		return v, err
	}
	for _, k := range args.keys {
		if !slices.ContainsFunc(f.arrow.Params, func(p Property) bool { return p.Key == k }) {
			return Value{}, invalidf("unknown argument %s for a function of (%s)", k, paramNames(f.arrow.Params))
		}
	}
	local := &env{parent: f.env, vars: map[string]Value{}}
	for _, p := range f.arrow.Params {
		if v, ok := args.get(p.Key); ok {
			local.vars[p.Key] = v
		} else if p.Key == "tables" && pipe != nil {
			local.vars[p.Key] = Value{Kind: KStream, x: &ext{st: pipe}}
		} else if p.Value != nil {
			v, err := x.eval(p.Value, f.env)
			if err != nil {
				return Value{}, err
			}
			local.vars[p.Key] = v
		} else {
			return Value{}, invalidf("missing required argument %s", p.Key)
		}
	}
	return x.eval(f.arrow.Body, local)
}

func paramNames(ps []Property) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Key
	}
	return strings.Join(names, ", ")
}

// without returns a copy of r without key k.
func without(r *record, k string) *record {
	out := newRecord()
	for _, key := range r.keys {
		if key != k {
			out.set(key, r.vals[key])
		}
	}
	return out
}

// inheritBounds gives out the range bounds of in when it has none.
func inheritBounds(out, in *stream) {
	if _, _, ok := out.bounds(); ok {
		return
	}
	if start, stop, ok := in.bounds(); ok {
		out.start, out.stop, out.bounded = start, stop, true
	}
}

// rowFn compiles a one-parameter arrow for per-row evaluation.
func rowFn(v Value, what string) (*function, string, error) {
	if v.Kind != KFunc || v.x.fn.arrow == nil || len(v.x.fn.arrow.Params) != 1 {
		return nil, "", invalidf("%s must be a function of one row, like (r) => ...", what)
	}
	return v.x.fn, v.x.fn.arrow.Params[0].Key, nil
}

func (x *run) evalOnRow(f *function, param string, t *Table, row []Value) (Value, error) {
	return x.evalRow(f.arrow.Body, f.env, &rowEnv{param: param, t: t, row: row})
}

// ---- materialisation ----

var measurementCol = "_measurement"

func valueKind(t tsdb.ValueType) Kind {
	switch t {
	case tsdb.Float:
		return KFloat
	case tsdb.Integer:
		return KInt
	case tsdb.Unsigned:
		return KUint
	case tsdb.Boolean:
		return KBool
	case tsdb.String:
		return KString
	}
	return KNull
}

func fromTSDB(v tsdb.Value) Value {
	switch v.Type() {
	case tsdb.Float:
		f, _ := v.Float()
		return Float(f)
	case tsdb.Integer:
		i, _ := v.Int()
		return Int(i)
	case tsdb.Unsigned:
		u, _ := v.Uint()
		return Uint(u)
	case tsdb.Boolean:
		b, _ := v.Bool()
		return Bool(b)
	case tsdb.String:
		s, _ := v.Str()
		return Str(s)
	}
	return Value{}
}

func (x *run) measurements(src *source) ([]string, error) {
	ms := src.meas
	if ms == nil {
		all, err := src.db.Measurements(x.ctx)
		if err != nil {
			return nil, err
		}
		ms = all
	}
	var out []string
	for _, m := range ms {
		ok := true
		for _, p := range src.measPreds {
			ok = ok && p(m)
		}
		if ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// read materialises a source, raw or (every > 0) through the store's
// windowed aggregates.
func (x *run) read(src *source, every time.Duration, fn tsdb.Aggregate) ([]*Table, error) {
	if !src.hasRange {
		return nil, invalidf("from() must be followed by range() before other operations")
	}
	ms, err := x.measurements(src)
	if err != nil {
		return nil, err
	}
	var tables []*Table
	for _, m := range ms {
		q := tsdb.Query{Measurement: m, Matchers: src.matchers, Fields: src.fields, Start: src.start, End: src.stop,
			Every: every, Fn: fn, MaxSamples: x.ex.opts.MaxPoints}
		if src.fields != nil && len(src.fields) == 0 {
			continue
		}
		series, err := src.db.Query(x.ctx, q)
		if err != nil {
			return nil, err
		}
		for _, s := range series {
			ok := true
			for _, p := range src.fieldPreds {
				ok = ok && p(s.Field)
			}
			if !ok || len(s.Samples) == 0 {
				continue
			}
			if err := x.take(len(s.Samples)); err != nil {
				return nil, err
			}
			vt := s.Samples[0].Value.Type()
			t := &Table{Cols: []Column{{"_start", KTime, true}, {"_stop", KTime, true}, {"_time", KTime, false},
				{"_value", valueKind(vt), false}, {"_field", KString, true}, {measurementCol, KString, true}}}
			for _, tag := range s.Tags {
				t.Cols = append(t.Cols, Column{tag.Key, KString, true})
			}
			fixed := make([]Value, len(t.Cols))
			fixed[0], fixed[1], fixed[4], fixed[5] = Time(src.start), Time(src.stop), Str(s.Field), Str(m)
			for i, tag := range s.Tags {
				fixed[6+i] = Str(tag.Value)
			}
			t.Rows = make([][]Value, len(s.Samples))
			cells := make([]Value, len(s.Samples)*len(fixed))
			for i, smp := range s.Samples {
				row := cells[i*len(fixed) : (i+1)*len(fixed) : (i+1)*len(fixed)]
				copy(row, fixed)
				row[2], row[3] = Time(smp.Time), fromTSDB(smp.Value)
				t.Rows[i] = row
			}
			tables = append(tables, t)
		}
	}
	return x.applyRowFilters(src, tables)
}

func (x *run) applyRowFilters(src *source, tables []*Table) ([]*Table, error) {
	if len(src.rowFilters) == 0 {
		return tables, nil
	}
	out := tables[:0]
	for _, t := range tables {
		rows := t.Rows[:0]
		for _, row := range t.Rows {
			keep := true
			for _, f := range src.rowFilters {
				v, err := x.evalOnRow(f, f.arrow.Params[0].Key, t, row)
				if err != nil {
					return nil, err
				}
				if !v.truthy() {
					keep = false
					break
				}
			}
			if keep {
				rows = append(rows, row)
			}
		}
		t.Rows = rows
		if len(rows) > 0 {
			out = append(out, t)
		}
	}
	return out, nil
}

func (x *run) materialize(s *stream) ([]*Table, error) {
	if s.src == nil {
		return s.tables, nil
	}
	return x.read(s.src, 0, "")
}

func streamValue(s *stream) Value { return Value{Kind: KStream, x: &ext{st: s}} }

func cloneSource(s *source) *source {
	c := *s
	c.meas = slices.Clone(s.meas)
	c.measPreds = slices.Clone(s.measPreds)
	c.fields = slices.Clone(s.fields)
	c.fieldPreds = slices.Clone(s.fieldPreds)
	c.matchers = slices.Clone(s.matchers)
	c.rowFilters = slices.Clone(s.rowFilters)
	return &c
}

// ---- filter pushdown ----

func conjuncts(n Node) []Node {
	if b, ok := n.(*Binary); ok && b.Op == "and" {
		return append(conjuncts(b.L), conjuncts(b.R)...)
	}
	return []Node{n}
}

// rowColumn returns the column a node reads from the row parameter.
func rowColumn(n Node, param string) (string, bool) {
	m, ok := n.(*Member)
	if !ok {
		return "", false
	}
	id, ok := m.Obj.(*Ident)
	return m.Prop, ok && id.Name == param
}

type colPred struct {
	col string
	op  string
	val string
	re  Value
}

// simplePred matches r.col OP "literal" or r.col =~ /re/ (or the mirror).
func (x *run) simplePred(n Node, param string, e *env) (colPred, bool) {
	b, ok := n.(*Binary)
	if !ok {
		return colPred{}, false
	}
	switch b.Op {
	case "==", "!=", "=~", "!~":
	default:
		return colPred{}, false
	}
	col, ok := rowColumn(b.L, param)
	other := b.R
	if !ok {
		if b.Op == "=~" || b.Op == "!~" {
			return colPred{}, false
		}
		if col, ok = rowColumn(b.R, param); !ok {
			return colPred{}, false
		}
		other = b.L
	}
	if col == "_value" || col == "_time" || col == "_start" || col == "_stop" {
		return colPred{}, false
	}
	if refsParam(other, param) {
		return colPred{}, false
	}
	v, err := x.eval(other, e)
	if err != nil {
		return colPred{}, false
	}
	if b.Op == "=~" || b.Op == "!~" {
		if v.Kind != KRegex {
			return colPred{}, false
		}
		return colPred{col: col, op: b.Op, re: v}, true
	}
	if v.Kind != KString {
		return colPred{}, false
	}
	return colPred{col: col, op: b.Op, val: v.S}, true
}

func refsParam(n Node, param string) bool {
	found := false
	var walk func(Node)
	walk = func(n Node) {
		switch n := n.(type) {
		case *Ident:
			found = found || n.Name == param
		case *Member:
			walk(n.Obj)
		case *Binary:
			walk(n.L)
			walk(n.R)
		case *Unary:
			walk(n.X)
		case *Call:
			walk(n.Callee)
			for _, a := range n.Args {
				if a.Value != nil {
					walk(a.Value)
				}
			}
		case *Index:
			walk(n.Obj)
			walk(n.Idx)
		case *Array:
			for _, el := range n.Elems {
				walk(el)
			}
		case *Record, *Arrow, *Cond, *Pipe:
			found = true // conservative
		}
	}
	walk(n)
	return found
}

// orEqualities recognises r.c == "a" or r.c == "b" ... on one column.
func (x *run) orEqualities(n Node, param string, e *env) (string, []string, bool) {
	var col string
	var vals []string
	var visit func(Node) bool
	visit = func(n Node) bool {
		if b, ok := n.(*Binary); ok && b.Op == "or" {
			return visit(b.L) && visit(b.R)
		}
		p, ok := x.simplePred(n, param, e)
		if !ok || p.op != "==" || (col != "" && p.col != col) {
			return false
		}
		col = p.col
		vals = append(vals, p.val)
		return true
	}
	if b, ok := n.(*Binary); !ok || b.Op != "or" {
		return "", nil, false
	}
	ok := visit(n)
	return col, vals, ok && col != ""
}

// pushFilter folds what it can of a filter predicate into the source and
// keeps the rest as a row filter.
func (x *run) pushFilter(src *source, f *function) error {
	param := f.arrow.Params[0].Key
	var rest []Node
	for _, c := range conjuncts(f.arrow.Body) {
		if len(src.rowFilters) > 0 {
			rest = append(rest, c)
			continue
		}
		if col, vals, ok := x.orEqualities(c, param, f.env); ok {
			switch col {
			case measurementCol:
				src.meas = intersect(src.meas, vals)
			case "_field":
				src.fields = intersect(src.fields, vals)
			default:
				quoted := make([]string, len(vals))
				for i, v := range vals {
					quoted[i] = regexpQuote(v)
				}
				m, err := tsdb.NewMatcher(col, tsdb.MatchRegexp, "^(?:"+strings.Join(quoted, "|")+")$")
				if err != nil {
					return err
				}
				src.matchers = append(src.matchers, m)
			}
			continue
		}
		p, ok := x.simplePred(c, param, f.env)
		if !ok {
			rest = append(rest, c)
			continue
		}
		var test func(string) bool
		switch p.op {
		case "==":
			test = func(s string) bool { return s == p.val }
		case "!=":
			test = func(s string) bool { return s != p.val }
		case "=~":
			test = p.re.x.re.MatchString
		default:
			test = func(s string) bool { return !p.re.x.re.MatchString(s) }
		}
		switch {
		case p.col == measurementCol && p.op == "==":
			src.meas = intersect(src.meas, []string{p.val})
		case p.col == measurementCol:
			src.measPreds = append(src.measPreds, test)
		case p.col == "_field" && p.op == "==":
			src.fields = intersect(src.fields, []string{p.val})
		case p.col == "_field":
			src.fieldPreds = append(src.fieldPreds, test)
		case p.op == "==" && p.val != "":
			m, err := tsdb.NewMatcher(p.col, tsdb.MatchEqual, p.val)
			if err != nil {
				return err
			}
			src.matchers = append(src.matchers, m)
		case p.op == "=~" || p.op == "!~":
			op := tsdb.MatchRegexp
			if p.op == "!~" {
				op = tsdb.MatchNotRegexp
			}
			m, err := tsdb.NewMatcher(p.col, op, p.re.x.re.String())
			if err != nil {
				return err
			}
			src.matchers = append(src.matchers, m)
		default:
			// != and == "" differ between Flux (null for a missing tag) and
			// the store's matchers: evaluate per row.
			rest = append(rest, c)
		}
	}
	if len(rest) > 0 {
		body := rest[0]
		for _, r := range rest[1:] {
			body = &Binary{Op: "and", L: body, R: r}
		}
		src.rowFilters = append(src.rowFilters, &function{arrow: &Arrow{Params: f.arrow.Params, Body: body}, env: f.env})
	}
	return nil
}

func intersect(cur, vals []string) []string {
	if cur == nil {
		out := slices.Clone(vals)
		slices.Sort(out)
		return slices.Compact(out)
	}
	out := []string{}
	for _, v := range cur {
		if slices.Contains(vals, v) {
			out = append(out, v)
		}
	}
	return out
}

// ---- aggregates ----

type aggState struct {
	n    int64
	sumF float64
	sumI int64
	sumU uint64
	kind Kind
	vals []float64
	sel  int // selected row index for selectors
	selV Value
	has  bool
	// spread's extremes; stddev over the population rather than a sample
	minV, maxV Value
	population bool
}

func isSelector(fn string) bool {
	return fn == "first" || fn == "last" || fn == "min" || fn == "max"
}

var aggNames = map[string]bool{"mean": true, "sum": true, "count": true, "min": true, "max": true,
	"first": true, "last": true, "median": true, "spread": true, "stddev": true}

func (a *aggState) add(fn string, i int, v Value) error {
	if v.Kind == KNull {
		return nil
	}
	a.n++
	switch fn {
	case "count":
		return nil
	case "first":
		if !a.has {
			a.sel, a.selV, a.has = i, v, true
		}
		return nil
	case "last":
		a.sel, a.selV, a.has = i, v, true
		return nil
	case "min", "max":
		if !a.has {
			a.sel, a.selV, a.has = i, v, true
			return nil
		}
		c, ok := compare(v, a.selV)
		if !ok {
			return invalidf("%s: cannot compare %s values", fn, v.Kind)
		}
		if (fn == "min" && c < 0) || (fn == "max" && c > 0) {
			a.sel, a.selV = i, v
		}
		return nil
	}
	f, ok := v.num()
	if !ok {
		return invalidf("%s: unsupported value type %s", fn, v.Kind)
	}
	a.kind = v.Kind
	a.sumF += f
	switch v.Kind {
	case KInt:
		a.sumI += v.I
	case KUint:
		a.sumU += uint64(v.I)
	}
	if fn == "median" || fn == "stddev" {
		a.vals = append(a.vals, f)
	}
	if fn == "spread" {
		if c, _ := compare(v, a.minV); a.n == 1 || c < 0 {
			a.minV = v
		}
		if c, _ := compare(v, a.maxV); a.n == 1 || c > 0 {
			a.maxV = v
		}
	}
	return nil
}

// result of a non-selector aggregate (null when nothing was added).
func (a *aggState) result(fn string) Value {
	if fn == "count" {
		return Int(a.n)
	}
	if a.n == 0 {
		return Value{}
	}
	switch fn {
	case "mean":
		return Float(a.sumF / float64(a.n))
	case "sum":
		switch a.kind {
		case KInt:
			return Int(a.sumI)
		case KUint:
			return Uint(a.sumU)
		}
		return Float(a.sumF)
	case "median":
		s := slices.Clone(a.vals)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return Float(s[len(s)/2])
		}
		return Float((s[len(s)/2-1] + s[len(s)/2]) / 2)
	case "spread":
		switch a.kind {
		case KInt:
			return Int(a.maxV.I - a.minV.I)
		case KUint:
			return Uint(uint64(a.maxV.I) - uint64(a.minV.I))
		}
		return Float(a.maxV.F() - a.minV.F())
	case "stddev":
		div := float64(len(a.vals) - 1)
		if a.population {
			div++
		}
		if div <= 0 {
			return Value{}
		}
		m := 0.0
		for _, v := range a.vals {
			m += v
		}
		m /= float64(len(a.vals))
		ss := 0.0
		for _, v := range a.vals {
			ss += (v - m) * (v - m)
		}
		return Float(math.Sqrt(ss / div))
	}
	return a.selV
}

func aggKind(fn string, in Kind) Kind {
	switch fn {
	case "count":
		return KInt
	case "mean", "median", "stddev":
		return KFloat
	case "spread":
		if in == KInt || in == KUint {
			return in
		}
		return KFloat
	}
	return in
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
