package influxql

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// timeRange is [start, end); math.MinInt64 / math.MaxInt64 mean unbounded.
type timeRange struct{ start, end int64 }

var fullRange = timeRange{math.MinInt64, math.MaxInt64}

func (r timeRange) intersect(o timeRange) timeRange {
	return timeRange{max(r.start, o.start), min(r.end, o.end)}
}

func (r timeRange) bounded() (startOK, endOK bool) {
	return r.start != math.MinInt64, r.end != math.MaxInt64
}

// budget counts materialised values against Options.MaxPoints.
type budget struct{ max, used int }

func (b *budget) add(n int) error {
	b.used += n
	if b.max > 0 && b.used > b.max {
		return fmt.Errorf("%w: more than %d points materialised (raise the query point limit or narrow the time range)", ErrBudget, b.max)
	}
	return nil
}

// frame is one series from a source: its tags and rows of the used fields.
type frame struct {
	name  string
	tags  []tsdb.Tag
	times []int64
	cols  [][]tsdb.Value
}

func tagValue(tags []tsdb.Tag, k string) string {
	for _, t := range tags {
		if t.Key == k {
			return t.Value
		}
	}
	return ""
}

type evalCtx struct {
	f     *frame
	i     int
	aggs  []tsdb.Value
	aux   []tsdb.Value // aux mode: the selected point's auxiliary values
	gtags []tsdb.Tag
}

type evalFn func(c *evalCtx) tsdb.Value

type aggSlot struct {
	fn    string
	arg   evalFn
	field string // plain field argument (pushdown), "" otherwise
	param float64
	n     int      // top/bottom: number of points
	tags  []string // top/bottom: tag arguments
	unit  int64    // integral: unit (ns)
	kind  slotKind // how rows are folded (feedAgg)
}

// slotKind says how feedAgg folds a slot's input.
type slotKind uint8

const (
	kindPlain slotKind = iota
	kindTop
	kindDistinct
	kindIntegral
	kindPercentile
)

func slotKindOf(fn string) slotKind {
	switch fn {
	case "top", "bottom":
		return kindTop
	case "distinct", "count_distinct":
		return kindDistinct
	case "integral":
		return kindIntegral
	case "percentile":
		return kindPercentile
	}
	return kindPlain
}

type transform struct {
	fn   string
	unit int64
	n    int
}

type outCol struct {
	name    string
	eval    evalFn
	tr      *transform
	tagOnly bool
}

type plan struct {
	st           *SelectStatement
	cols         []*outCol
	aggs         []*aggSlot
	isAgg        bool
	used         []string
	usedIdx      map[string]int
	fields       map[string]bool
	types        map[string]tsdb.ValueType
	matchers     []Matcher
	tagCond      evalFn
	rowCond      evalFn
	hasFieldCol  bool
	hasTransform bool
	selectorTime bool
	groupBy      []string
	groupAll     bool
	condMode     bool // compiling WHERE: a missing tag is ''
	// fromSub: the source is a subquery. Its rows exist on their own (a
	// tag-only selection returns them) and are not re-filtered by time
	// (the range was pushed into it; its first window may start earlier).
	fromSub bool
	// asSub: this statement runs as a subquery.
	asSub bool
	// limitRuns: a raw subquery with LIMIT/OFFSET whose outer query groups
	// by other tags (see rawLimitRuns); outerDims are the outer GROUP BY tags.
	limitRuns bool
	outerDims []string
	// rowExprs are the WHERE conjuncts behind rowCond.
	rowExprs []Expr
	// loc is the tz() location (nil for UTC).
	loc *time.Location
	// auxMode: one selector with bare fields/tags, whose values come from
	// the selected point (compiled into auxEvals).
	auxMode  bool
	auxEvals []evalFn
	// multi is the slot of a top/bottom/distinct statement (several rows
	// per window); integralOnly: integral() is the statement's only call.
	multi        *aggSlot
	integralOnly bool
}

// subOpts are what an outer query propagates into a subquery (as
// InfluxDB does): its time range, its GROUP BY tags (the inner query is
// grouped by them too) and its interval when the inner aggregate has none.
type subOpts struct {
	tr       timeRange
	isSub    bool
	dims     []string
	dimAll   bool
	interval time.Duration
	offset   time.Duration
}

// selectTop runs a top-level SELECT, handling INTO.
func (e *Executor) selectTop(ctx context.Context, st *SelectStatement, pick func(string) (Database, error)) ([]*Row, error) {
	bud := &budget{max: e.opts.MaxPoints}
	rows, err := e.execSelect(ctx, st, pick, subOpts{tr: fullRange}, bud)
	if st.Location != nil {
		for _, r := range rows {
			r.Loc = st.Location
		}
	}
	if err != nil || st.Into == nil {
		return rows, err
	}
	db, err := pick(st.Into.Database)
	if err != nil {
		return nil, err
	}
	var pts []tsdb.Point
	for _, r := range rows {
		for i := 0; i < r.Len(); i++ {
			p := tsdb.Point{Measurement: st.Into.Name, Tags: r.Tags, Time: r.Time[i]}
			for c, name := range r.Columns[1:] {
				if v := r.Cols[c][i]; !isNull(v) {
					p.Fields = append(p.Fields, tsdb.Field{Key: name, Value: v})
				}
			}
			if len(p.Fields) > 0 {
				pts = append(pts, p)
			}
		}
	}
	if len(pts) > 0 {
		if err := db.Write(ctx, pts); err != nil {
			return nil, err
		}
	}
	return []*Row{{Name: "result", Columns: []string{"time", "written"}, Time: []int64{0},
		Cols: [][]tsdb.Value{{tsdb.IntValue(int64(len(pts)))}}}}, nil
}

func (e *Executor) execSelect(ctx context.Context, st *SelectStatement, pick func(string) (Database, error), outer subOpts, bud *budget) ([]*Row, error) {
	cond, tr, err := extractTimeIn(st.Condition, e.opts.Now(), st.Location)
	if err != nil {
		return nil, err
	}
	tr = tr.intersect(outer.tr)
	if outer.isSub {
		cp := *st
		cp.GroupTags = append(slices.Clone(st.GroupTags), outer.dims...)
		cp.GroupAll = st.GroupAll || outer.dimAll
		agg := false
		for _, f := range st.Fields {
			agg = agg || isAggregateCall(f.Expr)
		}
		if agg && cp.Interval == 0 && outer.interval > 0 {
			cp.Interval, cp.Offset = outer.interval, outer.offset
		}
		if agg && cp.Fill == FillNull {
			cp.Fill = FillNone // nulls would be dropped by the outer query anyway
		}
		st = &cp
	}
	inner := subOpts{tr: tr, isSub: true, dims: st.GroupTags, dimAll: st.GroupAll, interval: st.Interval, offset: st.Offset}
	var rows []*Row
	for _, src := range st.Sources {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch s := src.(type) {
		case *Measurement:
			db, err := pick(s.Database)
			if err != nil {
				return nil, err
			}
			names := []string{s.Name}
			if s.Regex != nil {
				if names, err = e.measurements(ctx, db, s); err != nil {
					return nil, err
				}
			}
			for _, name := range names {
				fks, err := db.FieldKeys(ctx, name)
				if err != nil {
					return nil, err
				}
				var tagKeys []string
				if needsTagKeys(st) {
					if tagKeys, err = db.TagKeys(ctx, name); err != nil {
						return nil, err
					}
				}
				pl, err := compile(st, cond, fks, tagKeys)
				if err != nil {
					return nil, err
				}
				pl.asSub = outer.isSub
				if outer.isSub && !outer.dimAll && !st.GroupAll && (st.Limit > 0 || st.OffsetRows > 0) {
					// InfluxDB compares the number of outer dimensions with
					// the number of distinct GROUP BY tags of both queries.
					pl.limitRuns = len(distinct(outer.dims)) != len(distinct(st.GroupTags))
					pl.outerDims = distinct(outer.dims)
				}
				r, err := e.runMeasurement(ctx, pl, db, name, tr, bud)
				if err != nil {
					return nil, err
				}
				rows = append(rows, r...)
			}
		case *SubQuery:
			if s.Stmt.Desc != st.Desc {
				return nil, errors.New("subqueries must be ordered in the same direction as the query itself")
			}
			inner, err := e.execSelect(ctx, s.Stmt, pick, inner, bud)
			if err != nil {
				return nil, err
			}
			if len(inner) == 0 {
				continue
			}
			var fields []FieldKey
			for _, c := range inner[0].Columns[1:] {
				fields = append(fields, FieldKey{Key: c})
			}
			tagSet := map[string]bool{}
			for _, r := range inner {
				for _, t := range r.Tags {
					tagSet[t.Key] = true
				}
			}
			tagKeys := make([]string, 0, len(tagSet))
			for k := range tagSet {
				tagKeys = append(tagKeys, k)
			}
			slices.Sort(tagKeys)
			pl, err := compile(st, cond, fields, tagKeys)
			if err != nil {
				return nil, err
			}
			pl.asSub, pl.fromSub = outer.isSub, true
			frames := make([]*frame, 0, len(inner))
			for _, r := range inner {
				f := &frame{name: r.Name, tags: r.Tags, times: r.Time, cols: make([][]tsdb.Value, len(pl.used))}
				for i, u := range pl.used {
					if c := slices.Index(r.Columns[1:], u); c >= 0 {
						f.cols[i] = r.Cols[c]
					} else {
						f.cols[i] = make([]tsdb.Value, len(r.Time))
					}
				}
				if s.Stmt.Desc { // frames are ascending in time
					slices.Reverse(f.times)
					for _, c := range f.cols {
						slices.Reverse(c)
					}
				}
				frames = append(frames, f)
			}
			r, err := e.runFrames(ctx, pl, frames, tr, bud)
			if err != nil {
				return nil, err
			}
			rows = append(rows, r...)
		}
	}
	if len(st.Sources) > 1 {
		slices.SortStableFunc(rows, func(a, b *Row) int { return strings.Compare(a.Name, b.Name) })
	}
	if st.SOffset > 0 || st.SLimit > 0 {
		rows = page(rows, st.SLimit, st.SOffset)
	}
	return rows, nil
}

func needsTagKeys(st *SelectStatement) bool {
	if len(st.GroupRegex) > 0 {
		return true
	}
	for _, f := range st.Fields {
		if w, ok := f.Expr.(*Wildcard); ok && w.Type != "field" {
			return true
		}
	}
	return false
}

// ---- compilation ----

func isAggregateCall(e Expr) bool {
	found := false
	walk(e, func(x Expr) bool {
		if c, ok := x.(*Call); ok && aggFns[c.Name] {
			found = true
		}
		return !found
	})
	return found
}

func walk(e Expr, fn func(Expr) bool) {
	if e == nil || !fn(e) {
		return
	}
	switch e := e.(type) {
	case *BinaryExpr:
		walk(e.LHS, fn)
		walk(e.RHS, fn)
	case *ParenExpr:
		walk(e.Expr, fn)
	case *Call:
		for _, a := range e.Args {
			walk(a, fn)
		}
	}
}

// columnName derives InfluxDB's default column name for an expression.
func columnName(e Expr) string {
	switch e := e.(type) {
	case *VarRef:
		return e.Name
	case *Call:
		return e.Name
	case *ParenExpr:
		return columnName(e.Expr)
	case *BinaryExpr:
		var names []string
		walk(e, func(x Expr) bool {
			switch x := x.(type) {
			case *VarRef:
				names = append(names, x.Name)
			case *Call:
				names = append(names, x.Name)
				return false
			}
			return true
		})
		return strings.Join(names, "_")
	}
	return ""
}

// wildcardTypeOK says which field types fn(*) expands to (as InfluxDB's
// RewriteFields); type 0 (unknown, subquery columns) is always accepted.
func wildcardTypeOK(fn string, t tsdb.ValueType) bool {
	if t == 0 {
		return true
	}
	switch fn {
	case "count", "first", "last", "distinct", "elapsed", "mode", "sample", "count_distinct":
		return true
	case "min", "max":
		return t != tsdb.String
	}
	return t == tsdb.Float || t == tsdb.Integer || t == tsdb.Unsigned
}

func compile(st *SelectStatement, cond Expr, fks []FieldKey, tagKeys []string) (*plan, error) {
	pl := &plan{st: st, usedIdx: map[string]int{}, fields: map[string]bool{}, groupAll: st.GroupAll}
	if st.Location != nil && st.Location != time.UTC {
		pl.loc = st.Location
	}
	types := map[string]tsdb.ValueType{}
	pl.types = types
	fields := make([]string, len(fks))
	for i, f := range fks {
		pl.fields[f.Key] = true
		types[f.Key] = f.Type
		fields[i] = f.Key
	}
	// GROUP BY keys (always tags, even where a field has the same name).
	gset := map[string]bool{}
	for _, k := range st.GroupTags {
		if !gset[k] {
			gset[k] = true
			pl.groupBy = append(pl.groupBy, k)
		}
	}
	for _, re := range st.GroupRegex {
		for _, k := range tagKeys {
			if re.MatchString(k) && !gset[k] {
				gset[k] = true
				pl.groupBy = append(pl.groupBy, k)
			}
		}
	}
	slices.Sort(pl.groupBy)

	// Expand wildcards.
	sortedFields := slices.Clone(fields)
	slices.Sort(sortedFields)
	var sel []*Field
	for _, f := range st.Fields {
		switch x := f.Expr.(type) {
		case *Wildcard:
			var names []string
			if x.Type != "tag" {
				names = append(names, sortedFields...)
			}
			if x.Type != "field" && !st.GroupAll {
				for _, k := range tagKeys {
					if !gset[k] {
						names = append(names, k)
					}
				}
			}
			slices.Sort(names)
			for _, n := range names {
				sel = append(sel, &Field{Expr: &VarRef{Name: n}})
			}
			continue
		case *Call:
			if len(x.Args) > 0 {
				var names []string
				expand := false
				switch a := x.Args[0].(type) {
				case *Wildcard:
					expand = true
					for _, n := range sortedFields {
						if wildcardTypeOK(x.Name, types[n]) {
							names = append(names, n)
						}
					}
				case *RegexLit:
					expand = true
					for _, n := range sortedFields {
						if a.Val.MatchString(n) && wildcardTypeOK(x.Name, types[n]) {
							names = append(names, n)
						}
					}
				}
				if expand {
					prefix := x.Name
					if f.Alias != "" {
						prefix = f.Alias
					}
					for _, n := range names {
						args := append([]Expr{&VarRef{Name: n}}, x.Args[1:]...)
						sel = append(sel, &Field{Expr: &Call{Name: x.Name, Args: args}, Alias: prefix + "_" + n})
					}
					continue
				}
			}
		}
		if v, ok := f.Expr.(*VarRef); ok && strings.EqualFold(v.Name, "time") {
			continue // the time column is always present
		}
		sel = append(sel, f)
	}
	sel, err := pl.prepareCalls(sel)
	if err != nil {
		return nil, err
	}
	for _, f := range sel {
		if isAggregateCall(f.Expr) {
			pl.isAgg = true
		}
	}
	if pl.isAgg && !st.GroupAll && len(pl.groupBy) == 0 && st.Interval == 0 {
		// fine: one group
	}
	if !pl.isAgg && st.Interval > 0 {
		return nil, errors.New("GROUP BY requires at least one aggregate function")
	}
	names := map[string]int{}
	for _, f := range sel {
		col := &outCol{name: f.Alias}
		if col.name == "" {
			col.name = columnName(f.Expr)
		}
		expr := f.Expr
		for {
			p, ok := expr.(*ParenExpr)
			if !ok {
				break
			}
			expr = p.Expr
		}
		if c, ok := expr.(*Call); ok && transformFns[c.Name] {
			tr, inner, err := compileTransform(c)
			if err != nil {
				return nil, err
			}
			col.tr, expr = tr, inner
			pl.hasTransform = true
			if pl.isAgg && !isAggregateCall(inner) {
				return nil, fmt.Errorf("aggregate function required inside the call to %s", c.Name)
			}
		}
		ev, refsField, err := pl.compileExpr(expr, pl.isAgg)
		if err != nil {
			return nil, err
		}
		col.eval = ev
		col.tagOnly = !refsField
		if refsField {
			pl.hasFieldCol = true
		}
		if n, dup := names[col.name]; dup {
			names[col.name] = n + 1
			col.name = col.name + "_" + strconv.Itoa(n)
		} else {
			names[col.name] = 1
		}
		pl.cols = append(pl.cols, col)
	}
	if len(pl.cols) == 0 {
		return nil, errors.New("at least 1 non-time field must be queried")
	}
	if pl.isAgg && st.Interval == 0 && len(pl.aggs) == 1 && selectorFns[pl.aggs[0].fn] {
		pl.selectorTime = true
	}
	if len(pl.aggs) == 1 && multiRowFns[pl.aggs[0].fn] {
		pl.multi = pl.aggs[0]
	}
	pl.integralOnly = len(pl.aggs) == 1 && pl.aggs[0].fn == "integral"
	// WHERE: tag conjuncts become matchers or a per-series condition, the
	// rest a per-row condition.
	var tagOnly, rest []Expr
	for _, c := range conjuncts(cond) {
		if pl.refsOnlyTags(c) {
			tagOnly = append(tagOnly, c)
		} else {
			rest = append(rest, c)
		}
	}
	matchers, tagRest := pushdownMatchers(andAll(tagOnly), pl.fields)
	pl.matchers = matchers
	pl.condMode = true
	defer func() { pl.condMode = false }()
	if tagRest != nil {
		ev, _, err := pl.compileExpr(tagRest, false)
		if err != nil {
			return nil, err
		}
		pl.tagCond = ev
	}
	pl.rowExprs = rest
	if r := andAll(rest); r != nil {
		ev, _, err := pl.compileExpr(r, false)
		if err != nil {
			return nil, err
		}
		pl.rowCond = ev
	}
	return pl, nil
}

func compileTransform(c *Call) (*transform, Expr, error) {
	tr := &transform{fn: c.Name}
	if len(c.Args) == 0 {
		return nil, nil, fmt.Errorf("invalid number of arguments for %s, expected at least 1, got 0", c.Name)
	}
	switch c.Name {
	case "elapsed":
		tr.unit = 1
	case "derivative", "non_negative_derivative":
		tr.unit = int64(time.Second)
	}
	switch c.Name {
	case "elapsed", "derivative", "non_negative_derivative":
		if len(c.Args) > 2 {
			return nil, nil, fmt.Errorf("invalid number of arguments for %s, expected at most 2, got %d", c.Name, len(c.Args))
		}
		if len(c.Args) == 2 {
			d, ok := c.Args[1].(*DurationLit)
			if !ok || d.Val <= 0 {
				return nil, nil, fmt.Errorf("second argument to %s must be a positive duration", c.Name)
			}
			tr.unit = int64(d.Val)
		}
	case "moving_average":
		if len(c.Args) != 2 {
			return nil, nil, fmt.Errorf("invalid number of arguments for moving_average, expected 2, got %d", len(c.Args))
		}
		n, ok := c.Args[1].(*IntegerLit)
		if !ok || n.Val < 1 || n.Val > 1<<20 {
			return nil, nil, errors.New("second argument for moving_average must be an integer between 1 and 1048576")
		}
		tr.n = int(n.Val)
	default:
		if len(c.Args) != 1 {
			return nil, nil, fmt.Errorf("invalid number of arguments for %s, expected 1, got %d", c.Name, len(c.Args))
		}
	}
	return tr, c.Args[0], nil
}

func (pl *plan) refsOnlyTags(e Expr) bool {
	ok := true
	walk(e, func(x Expr) bool {
		switch x := x.(type) {
		case *VarRef:
			if x.Type == "field" || (x.Type != "tag" && pl.fields[x.Name]) || strings.EqualFold(x.Name, "time") {
				ok = false
			}
		case *Call:
			ok = false
		}
		return ok
	})
	return ok
}

func (pl *plan) useField(name string) int {
	if i, ok := pl.usedIdx[name]; ok {
		return i
	}
	pl.usedIdx[name] = len(pl.used)
	pl.used = append(pl.used, name)
	return len(pl.used) - 1
}

// compileExpr compiles e. In aggregate mode aggregate calls become slots
// and bare fields are an error; refsField reports whether a field or an
// aggregate is involved.
func (pl *plan) compileExpr(e Expr, aggMode bool) (evalFn, bool, error) {
	switch e := e.(type) {
	case *ParenExpr:
		return pl.compileExpr(e.Expr, aggMode)
	case *VarRef:
		if strings.EqualFold(e.Name, "time") {
			return nil, false, errors.New("invalid use of time: compare it with a time literal in WHERE")
		}
		if aggMode {
			if !pl.auxMode {
				return nil, false, errors.New("mixing aggregate and non-aggregate queries is not supported")
			}
			return pl.compileAux(e)
		}
		isField := e.Type == "field" || (e.Type != "tag" && pl.fields[e.Name])
		if isField {
			idx := pl.useField(e.Name)
			return func(c *evalCtx) tsdb.Value { return c.f.cols[idx][c.i] }, true, nil
		}
		name := e.Name
		missing := null // a selected tag the series lacks is null
		if pl.condMode {
			missing = tsdb.StringValue("") // but compares as '' in WHERE
		}
		return func(c *evalCtx) tsdb.Value {
			for _, t := range c.f.tags {
				if t.Key == name {
					return tsdb.StringValue(t.Value)
				}
			}
			return missing
		}, false, nil
	case *NumberLit:
		v := tsdb.FloatValue(e.Val)
		return func(*evalCtx) tsdb.Value { return v }, false, nil
	case *IntegerLit:
		v := tsdb.IntValue(e.Val)
		return func(*evalCtx) tsdb.Value { return v }, false, nil
	case *DurationLit:
		v := tsdb.IntValue(int64(e.Val))
		return func(*evalCtx) tsdb.Value { return v }, false, nil
	case *StringLit:
		v := tsdb.StringValue(e.Val)
		return func(*evalCtx) tsdb.Value { return v }, false, nil
	case *BoolLit:
		v := tsdb.BoolValue(e.Val)
		return func(*evalCtx) tsdb.Value { return v }, false, nil
	case *RegexLit:
		return nil, false, errors.New("a regex may only follow =~ or !~")
	case *Wildcard:
		return nil, false, errors.New("unsupported use of wildcard")
	case *BinaryExpr:
		l, lf, err := pl.compileExpr(e.LHS, aggMode)
		if err != nil {
			return nil, false, err
		}
		if e.Op == "=~" || e.Op == "!~" {
			re := e.RHS.(*RegexLit).Val
			neg := e.Op == "!~"
			return func(c *evalCtx) tsdb.Value {
				m, ok := regexMatch(l(c), re)
				return tsdb.BoolValue(ok && m != neg)
			}, lf, nil
		}
		r, rf, err := pl.compileExpr(e.RHS, aggMode)
		if err != nil {
			return nil, false, err
		}
		op := e.Op
		var fn evalFn
		switch op {
		case "+", "-", "*", "/", "%":
			fn = func(c *evalCtx) tsdb.Value { return arith(op, l(c), r(c)) }
		case "AND":
			fn = func(c *evalCtx) tsdb.Value { return tsdb.BoolValue(truthy(l(c)) && truthy(r(c))) }
		case "OR":
			fn = func(c *evalCtx) tsdb.Value { return tsdb.BoolValue(truthy(l(c)) || truthy(r(c))) }
		default:
			fn = func(c *evalCtx) tsdb.Value { return tsdb.BoolValue(compare(op, l(c), r(c))) }
		}
		return fn, lf || rf, nil
	case *Call:
		switch {
		case aggFns[e.Name]:
			if !aggMode {
				return nil, false, fmt.Errorf("aggregate function %s() is not allowed here", e.Name)
			}
			return pl.compileAgg(e)
		case mathFns1[e.Name]:
			if len(e.Args) != 1 {
				return nil, false, fmt.Errorf("invalid number of arguments for %s, expected 1, got %d", e.Name, len(e.Args))
			}
			a, f, err := pl.compileExpr(e.Args[0], aggMode)
			if err != nil {
				return nil, false, err
			}
			name := e.Name
			return func(c *evalCtx) tsdb.Value { return mathFn(name, a(c)) }, f, nil
		case mathFns2[e.Name]:
			if len(e.Args) != 2 {
				return nil, false, fmt.Errorf("invalid number of arguments for %s, expected 2, got %d", e.Name, len(e.Args))
			}
			a, fa, err := pl.compileExpr(e.Args[0], aggMode)
			if err != nil {
				return nil, false, err
			}
			b, fb, err := pl.compileExpr(e.Args[1], aggMode)
			if err != nil {
				return nil, false, err
			}
			name := e.Name
			return func(c *evalCtx) tsdb.Value { return mathFn2(name, a(c), b(c)) }, fa || fb, nil
		case transformFns[e.Name]:
			return nil, false, fmt.Errorf("%s() must be the outermost function of a column", e.Name)
		case e.Name == "now":
			return nil, false, errors.New("now() may only be used in a time condition")
		}
		return nil, false, fmt.Errorf("undefined function %s()", e.Name)
	}
	return nil, false, fmt.Errorf("unsupported expression %T", e)
}

func (pl *plan) compileAgg(c *Call) (evalFn, bool, error) {
	slot := &aggSlot{fn: c.Name}
	if arg, ok, err := pl.compileExtAgg(c, slot); err != nil {
		return nil, false, err
	} else if ok {
		return pl.addSlot(slot, arg)
	}
	want := 1
	if c.Name == "percentile" {
		want = 2
	}
	if len(c.Args) != want {
		return nil, false, fmt.Errorf("invalid number of arguments for %s, expected %d, got %d", c.Name, want, len(c.Args))
	}
	if c.Name == "percentile" {
		switch p := c.Args[1].(type) {
		case *IntegerLit:
			slot.param = float64(p.Val)
		case *NumberLit:
			slot.param = p.Val
		default:
			return nil, false, errors.New("expected float argument in percentile()")
		}
	}
	arg := c.Args[0]
	if isAggregateCall(arg) {
		return nil, false, fmt.Errorf("aggregate function %s() cannot take another aggregate as its argument", c.Name)
	}
	if _, ok := arg.(*VarRef); !ok && !(c.Name == "count" || c.Name == "sum" || c.Name == "mean" || c.Name == "min" || c.Name == "max") {
		if _, isCall := arg.(*Call); isCall {
			return nil, false, fmt.Errorf("expected field argument in %s()", c.Name)
		}
	}
	return pl.addSlot(slot, arg)
}

// addSlot compiles the argument of an aggregate slot and adds the slot.
func (pl *plan) addSlot(slot *aggSlot, arg Expr) (evalFn, bool, error) {
	if v, ok := arg.(*VarRef); ok && (v.Type == "field" || (v.Type != "tag" && pl.fields[v.Name])) {
		slot.field = v.Name
		if t := pl.types[v.Name]; (t == tsdb.String || t == tsdb.Boolean) && !wildcardTypeOK(slot.fn, t) {
			return nil, false, fmt.Errorf("aggregate %s() is not supported for %s field %q", slot.fn, t, v.Name)
		}
	}
	ev, _, err := pl.compileExpr(arg, false)
	if err != nil {
		return nil, false, err
	}
	slot.arg = ev
	slot.kind = slotKindOf(slot.fn)
	k := len(pl.aggs)
	pl.aggs = append(pl.aggs, slot)
	return func(c *evalCtx) tsdb.Value { return c.aggs[k] }, true, nil
}

// ---- WHERE helpers ----

func conjuncts(e Expr) []Expr {
	switch x := e.(type) {
	case nil:
		return nil
	case *ParenExpr:
		return conjuncts(x.Expr)
	case *BinaryExpr:
		if x.Op == "AND" {
			return append(conjuncts(x.LHS), conjuncts(x.RHS)...)
		}
	}
	return []Expr{e}
}

func andAll(es []Expr) Expr {
	var out Expr
	for _, e := range es {
		if out == nil {
			out = e
		} else {
			out = &BinaryExpr{Op: "AND", LHS: out, RHS: e}
		}
	}
	return out
}

func isTimeRef(e Expr) bool {
	for {
		p, ok := e.(*ParenExpr)
		if !ok {
			break
		}
		e = p.Expr
	}
	v, ok := e.(*VarRef)
	return ok && strings.EqualFold(v.Name, "time")
}

// extractTime removes the time comparisons from the top-level AND of cond.
func extractTime(cond Expr, now time.Time) (Expr, timeRange, error) {
	return extractTimeIn(cond, now, nil)
}

// extractTimeIn is extractTime reading time strings without an offset in
// loc (the statement's tz(); nil = UTC), as InfluxDB does.
func extractTimeIn(cond Expr, now time.Time, loc *time.Location) (Expr, timeRange, error) {
	tr := fullRange
	var rest []Expr
	for _, c := range conjuncts(cond) {
		be, ok := c.(*BinaryExpr)
		if ok && (isTimeRef(be.LHS) || isTimeRef(be.RHS)) {
			op, other := be.Op, be.RHS
			if isTimeRef(be.RHS) {
				other = be.LHS
				switch op {
				case "<":
					op = ">"
				case "<=":
					op = ">="
				case ">":
					op = "<"
				case ">=":
					op = "<="
				}
			}
			t, err := timeValue(other, now, loc)
			if err != nil {
				return nil, tr, err
			}
			switch op {
			case ">":
				tr.start = max(tr.start, satAdd(t, 1))
			case ">=":
				tr.start = max(tr.start, t)
			case "<":
				tr.end = min(tr.end, t)
			case "<=":
				tr.end = min(tr.end, satAdd(t, 1))
			case "=":
				tr.start, tr.end = max(tr.start, t), min(tr.end, satAdd(t, 1))
			default:
				return nil, tr, fmt.Errorf("invalid time comparison operator: %s", be.Op)
			}
			continue
		}
		bad := false
		walk(c, func(x Expr) bool {
			if isTimeRef(x) {
				bad = true
			}
			return !bad
		})
		if bad {
			return nil, tr, errors.New("invalid time condition: time may only be compared with AND at the top level of WHERE")
		}
		rest = append(rest, c)
	}
	return andAll(rest), tr, nil
}

func satAdd(t, d int64) int64 {
	if t == math.MaxInt64 {
		return t
	}
	return t + d
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"}

func timeValue(e Expr, now time.Time, loc *time.Location) (int64, error) {
	if loc == nil {
		loc = time.UTC
	}
	switch x := e.(type) {
	case *ParenExpr:
		return timeValue(x.Expr, now, loc)
	case *StringLit:
		for _, l := range timeLayouts {
			if t, err := time.ParseInLocation(l, x.Val, loc); err == nil {
				return t.UnixNano(), nil
			}
		}
		return 0, fmt.Errorf("invalid time literal '%s': use RFC3339 (2006-01-02T15:04:05Z)", x.Val)
	case *IntegerLit:
		return x.Val, nil
	case *NumberLit:
		return int64(x.Val), nil
	case *DurationLit:
		return int64(x.Val), nil
	case *Call:
		if x.Name == "now" && len(x.Args) == 0 {
			return now.UnixNano(), nil
		}
	case *BinaryExpr:
		if x.Op == "+" || x.Op == "-" {
			l, err := timeValue(x.LHS, now, loc)
			if err != nil {
				return 0, err
			}
			r, err := timeValue(x.RHS, now, loc)
			if err != nil {
				return 0, err
			}
			if x.Op == "-" {
				return l - r, nil
			}
			return l + r, nil
		}
	}
	return 0, fmt.Errorf("invalid time expression %s", ExprString(e))
}

// pushdownMatchers turns conjuncts of simple tag comparisons into
// matchers; what cannot be expressed is returned as rest.
func pushdownMatchers(cond Expr, fields map[string]bool) ([]Matcher, Expr) {
	var ms []Matcher
	var rest []Expr
	for _, c := range conjuncts(cond) {
		if m, ok := toMatcher(c, fields); ok {
			ms = append(ms, m)
		} else {
			rest = append(rest, c)
		}
	}
	return ms, andAll(rest)
}

func tagName(e Expr, fields map[string]bool) (string, bool) {
	v, ok := e.(*VarRef)
	if !ok || v.Type == "field" || (v.Type != "tag" && fields[v.Name]) || strings.EqualFold(v.Name, "time") {
		return "", false
	}
	return v.Name, true
}

func toMatcher(c Expr, fields map[string]bool) (Matcher, bool) {
	for {
		p, ok := c.(*ParenExpr)
		if !ok {
			break
		}
		c = p.Expr
	}
	be, ok := c.(*BinaryExpr)
	if !ok {
		return Matcher{}, false
	}
	switch be.Op {
	case "=", "!=":
		k, ok := tagName(be.LHS, fields)
		s, sok := be.RHS.(*StringLit)
		if !ok || !sok {
			k, ok = tagName(be.RHS, fields)
			s, sok = be.LHS.(*StringLit)
		}
		if !ok || !sok {
			return Matcher{}, false
		}
		op := MatchEqual
		if be.Op == "!=" {
			op = MatchNotEqual
		}
		return Matcher{Key: k, Op: op, Value: s.Val}, true
	case "=~", "!~":
		k, ok := tagName(be.LHS, fields)
		if !ok {
			return Matcher{}, false
		}
		op := MatchRegexp
		if be.Op == "!~" {
			op = MatchNotRegexp
		}
		re := be.RHS.(*RegexLit).Val
		return Matcher{Key: k, Op: op, Value: re.String(), Re: re}, true
	case "OR":
		// k = 'a' OR k = 'b' ... on one tag: a regex alternation.
		var key string
		var vals []string
		okAll := true
		var visit func(e Expr)
		visit = func(e Expr) {
			for {
				p, ok := e.(*ParenExpr)
				if !ok {
					break
				}
				e = p.Expr
			}
			b, ok := e.(*BinaryExpr)
			if !ok {
				okAll = false
				return
			}
			if b.Op == "OR" {
				visit(b.LHS)
				visit(b.RHS)
				return
			}
			m, ok := toMatcher(b, fields)
			if !ok || m.Op != MatchEqual || (key != "" && m.Key != key) {
				okAll = false
				return
			}
			key = m.Key
			vals = append(vals, m.Value)
		}
		visit(be)
		if !okAll || key == "" {
			return Matcher{}, false
		}
		quoted := make([]string, len(vals))
		for i, v := range vals {
			quoted[i] = regexpQuote(v)
		}
		src := "^(?:" + strings.Join(quoted, "|") + ")$"
		re, err := compileRegexp(src)
		if err != nil {
			return Matcher{}, false
		}
		return Matcher{Key: key, Op: MatchRegexp, Value: src, Re: re}, true
	}
	return Matcher{}, false
}

func compileCond(e Expr, fields map[string]bool) (evalFn, error) {
	pl := &plan{usedIdx: map[string]int{}, fields: fields, condMode: true}
	ev, _, err := pl.compileExpr(e, false)
	return ev, err
}

// ---- execution ----

func (pl *plan) pushdownOK(tr timeRange) bool {
	if !pl.isAgg || pl.rowCond != nil || pl.st.Offset != 0 || pl.selectorTime || tr.start < 0 || len(pl.aggs) == 0 ||
		pl.auxMode || pl.loc != nil {
		return false
	}
	for _, a := range pl.aggs {
		switch a.fn {
		case "mean", "sum", "count", "min", "max":
		default:
			return false
		}
		if a.field == "" {
			return false
		}
	}
	return true
}

func (e *Executor) runMeasurement(ctx context.Context, pl *plan, db Database, name string, tr timeRange, bud *budget) ([]*Row, error) {
	if !pl.hasFieldCol || tr.start >= tr.end {
		return nil, nil
	}
	if pl.pushdownOK(tr) {
		return e.runPushdown(ctx, pl, db, name, tr, bud)
	}
	if len(pl.used) == 0 {
		return nil, nil
	}
	req := ReadRequest{Measurement: name, Matchers: pl.matchers, Fields: pl.used, Start: tr.start}
	if tr.end != math.MaxInt64 {
		req.End = tr.end
	}
	st := pl.st
	if !pl.isAgg && !pl.hasTransform && st.Limit > 0 {
		if fs, ok := pl.filters(); pl.rowCond == nil || ok {
			// With filters the store counts only samples passing WHERE.
			req.Limit, req.Desc, req.Filters = st.Limit+st.OffsetRows, st.Desc, fs
			if pl.limitRuns {
				req.Limit++
			}
		} else if frames, ok, err := e.readDeepening(ctx, pl, db, req, bud); err != nil {
			return nil, err
		} else if ok {
			return e.runFrames(ctx, pl, frames, tr, bud)
		}
	}
	if sr, ok := db.(SeriesReader); ok && pl.isAgg && req.Limit == 0 {
		return e.runAggEach(ctx, pl, sr, name, req, tr, bud)
	}
	series, err := db.Read(ctx, req)
	if err != nil {
		return nil, err
	}
	frames, err := joinSeries(name, series, pl.usedIdx, bud)
	if err != nil {
		return nil, err
	}
	return e.runFrames(ctx, pl, frames, tr, bud)
}

// runAggEach folds an aggregate's input series by series as the store
// hands them over, keeping only the per-group accumulators.
func (e *Executor) runAggEach(ctx context.Context, pl *plan, sr SeriesReader, name string, req ReadRequest, tr timeRange, bud *budget) ([]*Row, error) {
	groups := map[string]*group{}
	err := sr.ReadEach(ctx, req, func(series []tsdb.Series) error {
		frames, err := joinSeries(name, series, pl.usedIdx, bud)
		if err != nil {
			return err
		}
		for _, f := range frames {
			if !pl.seriesOK(f.tags) {
				continue
			}
			g := pl.groupFor(groups, f)
			g.frames = []*frame{f}
			err := e.feedAgg(ctx, pl, g, tr)
			g.frames = nil
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e.finishAgg(ctx, pl, pl.sortedGroups(groups), tr, bud)
}

// groupFor returns the group of frame f in groups, creating it.
func (pl *plan) groupFor(groups map[string]*group, f *frame) *group {
	key, gt := pl.groupOf(f.tags)
	gkey := f.name + "\x00" + key
	g := groups[gkey]
	if g == nil {
		g = &group{key: key, name: f.name, tags: gt, wins: map[int64]int{}}
		groups[gkey] = g
	}
	return g
}

// readDeepening serves LIMIT with a field predicate without reading the
// whole range: it reads the first (or, for DESC, the last) n samples of
// each series field, n growing 8x per round, until every series either
// has enough rows passing the predicate within its first n rows (the only
// rows that are complete when each field was cut at n) or was exhausted.
// ok is false when the rounds end without an answer (read everything).
func (e *Executor) readDeepening(ctx context.Context, pl *plan, db Database, req ReadRequest, bud *budget) ([]*frame, bool, error) {
	need := pl.st.Limit + pl.st.OffsetRows
	if pl.limitRuns {
		need++
	}
	for n := max(1024, need); n <= 1<<20; n *= 8 {
		req.Limit, req.Desc = n, pl.st.Desc
		series, err := db.Read(ctx, req)
		if err != nil {
			return nil, false, err
		}
		cut := map[string]bool{}
		for _, s := range series {
			if len(s.Samples) >= n {
				cut[tagsKey(s.Tags)] = true
			}
		}
		frames, err := joinSeries(req.Measurement, series, pl.usedIdx, &budget{})
		if err != nil {
			return nil, false, err
		}
		done := true
		for _, f := range frames {
			if !cut[tagsKey(f.tags)] || !pl.seriesOK(f.tags) {
				continue
			}
			// Keep the n rows nearest the start of the scan: those are complete.
			if len(f.times) > n {
				lo, hi := 0, n
				if pl.st.Desc {
					lo, hi = len(f.times)-n, len(f.times)
				}
				f.times = f.times[lo:hi]
				for c := range f.cols {
					f.cols[c] = f.cols[c][lo:hi]
				}
			}
			if pl.passing(f, need) < need {
				done = false
				break
			}
		}
		if done {
			for _, f := range frames {
				if err := bud.add(len(f.times) * max(len(f.cols), 1)); err != nil {
					return nil, false, err
				}
			}
			return frames, true, nil
		}
	}
	return nil, false, nil
}

// passing counts, up to need, the rows of f that pass WHERE and have a
// non-null field column.
func (pl *plan) passing(f *frame, need int) int {
	c := &evalCtx{f: f}
	n := 0
	for i := range f.times {
		c.i = i
		if pl.rowCond != nil && !truthy(pl.rowCond(c)) {
			continue
		}
		for _, col := range pl.cols {
			if !col.tagOnly && !isNull(col.eval(c)) {
				n++
				break
			}
		}
		if n >= need {
			break
		}
	}
	return n
}

// joinSeries turns per-field series into frames, one per tag set, with
// rows at the union of the fields' timestamps.
func joinSeries(name string, series []tsdb.Series, usedIdx map[string]int, bud *budget) ([]*frame, error) {
	var frames []*frame
	for i := 0; i < len(series); {
		j := i + 1
		for j < len(series) && compareTags(series[j].Tags, series[i].Tags) == 0 {
			j++
		}
		group := series[i:j]
		i = j
		n := 0
		for _, s := range group {
			n += len(s.Samples)
		}
		if err := bud.add(n); err != nil {
			return nil, err
		}
		f := &frame{name: name, tags: group[0].Tags, cols: make([][]tsdb.Value, len(usedIdx))}
		same := true
		for _, s := range group[1:] {
			if !sameTimes(s.Samples, group[0].Samples) {
				same = false
				break
			}
		}
		if same {
			f.times = make([]int64, len(group[0].Samples))
			for k, smp := range group[0].Samples {
				f.times[k] = smp.Time
			}
		} else {
			for _, s := range group {
				f.times = unionTimes(f.times, s.Samples)
			}
		}
		for _, s := range group {
			idx, ok := usedIdx[s.Field]
			if !ok {
				continue
			}
			col := make([]tsdb.Value, len(f.times))
			if same {
				for k, smp := range s.Samples {
					col[k] = smp.Value
				}
			} else {
				k := 0
				for _, smp := range s.Samples {
					for f.times[k] != smp.Time {
						k++
					}
					col[k] = smp.Value
				}
			}
			f.cols[idx] = col
		}
		for c := range f.cols {
			if f.cols[c] == nil {
				f.cols[c] = make([]tsdb.Value, len(f.times))
			}
		}
		frames = append(frames, f)
	}
	return frames, nil
}

func sameTimes(a, b []tsdb.Sample) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Time != b[i].Time {
			return false
		}
	}
	return true
}

func (pl *plan) groupOf(tags []tsdb.Tag) (string, []tsdb.Tag) {
	if pl.groupAll {
		return tagsKey(tags), tags
	}
	if len(pl.groupBy) == 0 {
		return "", nil
	}
	g := make([]tsdb.Tag, len(pl.groupBy))
	for i, k := range pl.groupBy {
		g[i] = tsdb.Tag{Key: k, Value: tagValue(tags, k)}
	}
	return tagsKey(g), g
}

func tagsKey(tags []tsdb.Tag) string {
	var b strings.Builder
	for _, t := range tags {
		b.WriteString(t.Key)
		b.WriteByte(0)
		b.WriteString(t.Value)
		b.WriteByte(0)
	}
	return b.String()
}

func (pl *plan) seriesOK(tags []tsdb.Tag) bool {
	for _, m := range pl.matchers {
		if !m.Matches(tagValue(tags, m.Key)) {
			return false
		}
	}
	if pl.tagCond != nil {
		return truthy(pl.tagCond(&evalCtx{f: &frame{tags: tags}}))
	}
	return true
}

type group struct {
	key    string
	name   string
	tags   []tsdb.Tag
	frames []*frame
	integ  [][]intPoint // integral() input per slot
	// aggregate state
	wins   map[int64]int
	winKey []int64
	accs   [][]acc
}

func (g *group) acc(pl *plan, w int64) []acc {
	if i, ok := g.wins[w]; ok {
		return g.accs[i]
	}
	a := make([]acc, len(pl.aggs))
	for k, s := range pl.aggs {
		a[k].keepVals = needsVals(s.fn) && !(s.fn == "percentile" && pl.keepPercentilePoints())
	}
	g.wins[w] = len(g.accs)
	g.winKey = append(g.winKey, w)
	g.accs = append(g.accs, a)
	return a
}

func (pl *plan) sortedGroups(m map[string]*group) []*group {
	out := sortedGroups(m)
	if pl.st.Desc { // InfluxDB also reverses the series order
		slices.Reverse(out)
	}
	return out
}

func sortedGroups(m map[string]*group) []*group {
	out := make([]*group, 0, len(m))
	for _, g := range m {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *group) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return compareTags(a.tags, b.tags)
	})
	return out
}

func (pl *plan) window(t int64) int64 {
	iv := int64(pl.st.Interval)
	if iv == 0 {
		return 0
	}
	return windowStart(t, iv, int64(pl.st.Offset), pl.loc)
}

func (e *Executor) runPushdown(ctx context.Context, pl *plan, db Database, name string, tr timeRange, bud *budget) ([]*Row, error) {
	groups := map[string]*group{}
	every := pl.st.Interval
	end := tr.end
	if every == 0 {
		every = time.Duration(end) // one window [0, end) holds [start, end)
	}
	for k, slot := range pl.aggs {
		fns := []tsdb.Aggregate{tsdb.Aggregate(slot.fn)}
		if slot.fn == "mean" {
			fns = []tsdb.Aggregate{tsdb.Sum, tsdb.Count}
		}
		for _, fn := range fns {
			req := ReadRequest{Measurement: name, Matchers: pl.matchers, Fields: []string{slot.field},
				Start: tr.start, Every: every, Fn: fn}
			if end != math.MaxInt64 {
				req.End = end
			}
			series, err := db.Read(ctx, req)
			if err != nil {
				return nil, err
			}
			for _, s := range series {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				if !pl.seriesOK(s.Tags) {
					continue
				}
				if err := bud.add(len(s.Samples)); err != nil {
					return nil, err
				}
				key, gt := pl.groupOf(s.Tags)
				g := groups[key]
				if g == nil {
					g = &group{key: key, name: name, tags: gt, wins: map[int64]int{}}
					groups[key] = g
				}
				for _, smp := range s.Samples {
					w := int64(0)
					if pl.st.Interval > 0 {
						w = pl.window(smp.Time - 1)
					}
					a := &g.acc(pl, w)[k]
					switch {
					case fn == tsdb.Count:
						n, _ := smp.Value.Int()
						if slot.fn == "count" {
							a.n += n
						} else {
							a.addCount(n)
						}
					case fn == tsdb.Sum:
						a.addSum(smp.Value)
						if slot.fn == "sum" {
							a.addCount(1)
						}
					default:
						a.mergeMinMax(smp.Value)
					}
				}
			}
		}
	}
	return e.finishAgg(ctx, pl, pl.sortedGroups(groups), tr, bud)
}

func (e *Executor) runFrames(ctx context.Context, pl *plan, frames []*frame, tr timeRange, bud *budget) ([]*Row, error) {
	groups := map[string]*group{}
	for _, f := range frames {
		if !pl.seriesOK(f.tags) {
			continue
		}
		g := pl.groupFor(groups, f)
		g.frames = append(g.frames, f)
	}
	if pl.limitRuns && !pl.isAgg && !pl.hasTransform {
		return e.rawLimitRuns(ctx, pl, groups, tr, bud)
	}
	gs := pl.sortedGroups(groups)
	if pl.isAgg {
		for _, g := range gs {
			if err := e.feedAgg(ctx, pl, g, tr); err != nil {
				return nil, err
			}
		}
		return e.finishAgg(ctx, pl, gs, tr, bud)
	}
	var rows []*Row
	for _, g := range gs {
		r, err := e.rawGroup(ctx, pl, g, tr, bud)
		if err != nil {
			return nil, err
		}
		if r != nil {
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func (pl *plan) frameRange(f *frame, tr timeRange) (int, int) {
	if pl.fromSub {
		return 0, len(f.times)
	}
	lo, hi := 0, len(f.times)
	if tr.start != math.MinInt64 {
		lo, _ = slices.BinarySearch(f.times, tr.start)
	}
	if tr.end != math.MaxInt64 {
		hi, _ = slices.BinarySearch(f.times, tr.end)
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

func (e *Executor) feedAgg(ctx context.Context, pl *plan, g *group, tr timeRange) error {
	c := &evalCtx{}
	for _, f := range g.frames {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.f = f
		lo, hi := pl.frameRange(f, tr)
		lastW, haveW := int64(0), false
		var accs []acc
		auxFn := func() []tsdb.Value { return pl.evalAux(c) }
		topKey := ""
		if pl.multi != nil && len(pl.multi.tags) > 0 {
			for _, k := range pl.multi.tags {
				topKey += tagValue(f.tags, k) + "\x00"
			}
		}
		for i := lo; i < hi; i++ {
			c.i = i
			if pl.rowCond != nil && !truthy(pl.rowCond(c)) {
				continue
			}
			t := f.times[i]
			if w := pl.window(t); !haveW || w != lastW {
				lastW, haveW = w, true
				accs = g.acc(pl, w)
			}
			for k, s := range pl.aggs {
				v := s.arg(c)
				a := &accs[k]
				switch s.kind {
				case kindTop:
					a.addTop(s, t, v, topKey, auxFn)
				case kindDistinct:
					a.addDistinct(t, v, s.fn == "distinct")
				case kindIntegral:
					a.add(t, v)
					if x, ok := v.Float(); ok && isNumeric(v) {
						g.addIntegral(k, len(pl.aggs), t, x)
					}
				case kindPercentile:
					a.add(t, v)
					if isNumeric(v) && pl.keepPercentilePoints() {
						a.pts = append(a.pts, selPoint{t: t, v: v, aux: pl.evalAux(c)})
					}
				default:
					if pl.auxMode && a.selects(s.fn, t, v) {
						a.add(t, v)
						a.aux = pl.evalAux(c)
					} else {
						a.add(t, v)
					}
				}
			}
		}
	}
	return nil
}

// finishAgg turns accumulated windows into rows: fill, column
// expressions, transforms, order and limits.
func (e *Executor) finishAgg(ctx context.Context, pl *plan, gs []*group, tr timeRange, bud *budget) ([]*Row, error) {
	st := pl.st
	iv := int64(st.Interval)
	var rows []*Row
	for _, g := range gs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(g.winKey) == 0 {
			continue
		}
		if pl.multi != nil {
			if r := e.finishMulti(pl, g, tr); r.Len() > 0 {
				rows = append(rows, r)
			}
			continue
		}
		for k, pts := range g.integ {
			if pts == nil {
				continue
			}
			for w, sum := range pl.integralWindows(pts, pl.aggs[k].unit) {
				a := &g.accs[g.wins[w]][k]
				a.integ, a.integOK = sum, true
			}
		}
		g.integ = nil
		fill := st.Fill
		if pl.integralOnly { // InfluxDB does not fill integral()
			fill = FillNone
		}
		var wins []int64
		if iv == 0 {
			t := tr.start
			if t == math.MinInt64 || pl.integralOnly {
				t = 0
			}
			wins = []int64{t}
			if _, ok := g.wins[t]; !ok {
				g.wins[t] = g.wins[0]
			}
		} else {
			keys := slices.Clone(g.winKey)
			slices.Sort(keys)
			first, last := keys[0], keys[len(keys)-1]
			if tr.start != math.MinInt64 {
				first = pl.window(tr.start)
			}
			if tr.end != math.MaxInt64 {
				last = pl.window(tr.end - 1)
			}
			if fill == FillNone {
				wins = keys
			} else {
				n := (last-first)/iv + 1
				if n > 0 {
					if err := bud.add(int(min(n, math.MaxInt32))); err != nil {
						return nil, err
					}
				}
				zone := zoneOffset(pl.loc, first)
				for w := first; w <= last; w = nextWindow(w, iv, pl.loc, &zone) {
					wins = append(wins, w)
				}
				if pl.loc != nil {
					// With an offset, InfluxDB's window arithmetic can place a
					// point past a DST switch in a window the fill sequence
					// steps over; keep such windows rather than lose data.
					wins = append(wins, keys...)
					slices.Sort(wins)
					wins = slices.Compact(wins)
				}
			}
		}
		nslots := len(pl.aggs)
		vals := make([][]tsdb.Value, len(wins)) // per window, per slot
		times := make([]int64, len(wins))
		present := make([]bool, len(wins))
		var auxs [][]tsdb.Value
		if pl.auxMode {
			auxs = make([][]tsdb.Value, len(wins))
		}
		for wi, w := range wins {
			vals[wi] = make([]tsdb.Value, nslots)
			times[wi] = w
			if fill == FillNull { // InfluxDB: count() of an empty window is 0
				for k, s := range pl.aggs {
					if s.fn == "count" || s.fn == "count_distinct" {
						vals[wi][k] = tsdb.IntValue(0)
					}
				}
			}
			idx, ok := g.wins[w]
			if !ok {
				continue
			}
			for k, s := range pl.aggs {
				v, t, ok := g.accs[idx][k].result(s.fn, s.param)
				if ok {
					vals[wi][k] = v
					present[wi] = true
					if pl.selectorTime {
						times[wi] = t
					}
					if pl.auxMode {
						auxs[wi] = g.accs[idx][k].auxFor(s.fn, s.param)
					}
				}
			}
		}
		if fill != FillNone {
			fillSlots(st, vals, present, times)
		}
		r := &Row{Name: g.name, Tags: g.tags}
		var keep []int
		for wi := range wins {
			if fill == FillNone && !present[wi] {
				continue
			}
			keep = append(keep, wi)
		}
		if st.Desc {
			slices.Reverse(keep)
		}
		base := make([][]tsdb.Value, len(pl.cols))
		ts := make([]int64, len(keep))
		c := &evalCtx{gtags: g.tags}
		for ri, wi := range keep {
			ts[ri] = times[wi]
			c.aggs = vals[wi]
			if auxs != nil {
				c.aux = auxs[wi]
			}
			for ci, col := range pl.cols {
				base[ci] = append(base[ci], col.eval(c))
			}
		}
		r.Time, r.Cols = ts, base
		e.finishRows(pl, r, pl.hasTransform)
		if r.Len() > 0 {
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// fillSlots applies fill(previous|linear|number) to empty slots.
func fillSlots(st *SelectStatement, vals [][]tsdb.Value, present []bool, times []int64) {
	switch st.Fill {
	case FillNumber:
		fv := tsdb.FloatValue(st.FillValue)
		if st.FillValue == math.Trunc(st.FillValue) && math.Abs(st.FillValue) < 1<<53 {
			fv = tsdb.IntValue(int64(st.FillValue))
		}
		for wi := range vals {
			for k := range vals[wi] {
				if isNull(vals[wi][k]) {
					vals[wi][k] = fv
				}
			}
		}
	case FillPrevious:
		for wi := 1; wi < len(vals); wi++ {
			for k := range vals[wi] {
				if isNull(vals[wi][k]) {
					vals[wi][k] = vals[wi-1][k]
				}
			}
		}
	case FillLinear:
		if len(vals) == 0 {
			return
		}
		for k := range vals[0] {
			prev := -1
			for wi := range vals {
				if isNull(vals[wi][k]) {
					continue
				}
				if prev >= 0 && wi-prev > 1 {
					a, _ := vals[prev][k].Float()
					b, _ := vals[wi][k].Float()
					if isNumeric(vals[prev][k]) && isNumeric(vals[wi][k]) {
						for j := prev + 1; j < wi; j++ {
							frac := float64(times[j]-times[prev]) / float64(times[wi]-times[prev])
							vals[j][k] = tsdb.FloatValue(a + (b-a)*frac)
						}
					}
				}
				prev = wi
			}
		}
	}
}

type rawRef struct {
	t   int64
	pos int // row index into the value slab
}

func (e *Executor) rawGroup(ctx context.Context, pl *plan, g *group, tr timeRange, bud *budget) (*Row, error) {
	st := pl.st
	ncol := len(pl.cols)
	perFrameCap := 0
	if st.Limit > 0 && !pl.hasTransform {
		perFrameCap = st.Limit + st.OffsetRows
	}
	var refs []rawRef
	var slab []tsdb.Value
	c := &evalCtx{}
	tmp := make([]tsdb.Value, ncol)
	for _, f := range g.frames {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.f = f
		lo, hi := pl.frameRange(f, tr)
		taken := 0
		for n := lo; n < hi; n++ {
			i := n
			if st.Desc {
				i = hi - 1 - (n - lo)
			}
			c.i = i
			if pl.rowCond != nil && !truthy(pl.rowCond(c)) {
				continue
			}
			has := false
			for ci, col := range pl.cols {
				tmp[ci] = col.eval(c)
				if (!col.tagOnly || pl.fromSub) && !isNull(tmp[ci]) {
					has = true
				}
			}
			if !has {
				continue
			}
			refs = append(refs, rawRef{t: f.times[i], pos: len(slab) / max(ncol, 1)})
			slab = append(slab, tmp...)
			taken++
			if perFrameCap > 0 && taken >= perFrameCap {
				break
			}
		}
		if len(refs)%4096 == 0 {
			if err := bud.add(0); err != nil {
				return nil, err
			}
		}
	}
	if err := bud.add(len(slab)); err != nil {
		return nil, err
	}
	if len(g.frames) > 1 {
		if st.Desc {
			slices.SortStableFunc(refs, func(a, b rawRef) int { return cmp.Compare(b.t, a.t) })
		} else {
			slices.SortStableFunc(refs, func(a, b rawRef) int { return cmp.Compare(a.t, b.t) })
		}
	}
	if perFrameCap > 0 && len(refs) > perFrameCap {
		refs = refs[:perFrameCap]
	}
	r := &Row{Name: g.name, Tags: g.tags, Time: make([]int64, len(refs)), Cols: make([][]tsdb.Value, ncol)}
	for ci := range r.Cols {
		r.Cols[ci] = make([]tsdb.Value, len(refs))
	}
	for ri, ref := range refs {
		r.Time[ri] = ref.t
		row := slab[ref.pos*ncol : ref.pos*ncol+ncol]
		for ci := range row {
			r.Cols[ci][ri] = row[ci]
		}
	}
	e.finishRows(pl, r, true)
	if r.Len() == 0 {
		return nil, nil
	}
	return r, nil
}

// rowHas reports whether row i of r counts as present: some field column
// is non-null (or, for subquery sources, any column).
func (pl *plan) rowHas(r *Row, i int) bool {
	for ci, col := range pl.cols {
		if (!col.tagOnly || pl.fromSub) && !isNull(r.Cols[ci][i]) {
			return true
		}
	}
	return false
}

// finishRows applies transforms, drops rows without any field value
// (when dropEmpty), then OFFSET/LIMIT, and sets the column names.
func (e *Executor) finishRows(pl *plan, r *Row, dropEmpty bool) {
	st := pl.st
	for ci, col := range pl.cols {
		if col.tr != nil {
			r.Cols[ci] = applyTransform(col.tr, r.Time, r.Cols[ci])
		}
	}
	if dropEmpty {
		n := 0
		for i := range r.Time {
			if !pl.rowHas(r, i) {
				continue
			}
			r.Time[n] = r.Time[i]
			for ci := range r.Cols {
				r.Cols[ci][n] = r.Cols[ci][i]
			}
			n++
		}
		r.Time = r.Time[:n]
		for ci := range r.Cols {
			r.Cols[ci] = r.Cols[ci][:n]
		}
	}
	if (st.OffsetRows > 0 || st.Limit > 0) && !pl.limitRuns {
		lo := min(st.OffsetRows, len(r.Time))
		hi := len(r.Time)
		if st.Limit > 0 && lo+st.Limit < hi {
			hi = lo + st.Limit
		}
		r.Time = r.Time[lo:hi]
		for ci := range r.Cols {
			r.Cols[ci] = r.Cols[ci][lo:hi]
		}
	}
	r.Columns = make([]string, 0, len(pl.cols)+1)
	r.Columns = append(r.Columns, "time")
	for _, col := range pl.cols {
		r.Columns = append(r.Columns, col.name)
	}
}

func applyTransform(tr *transform, times []int64, in []tsdb.Value) []tsdb.Value {
	out := make([]tsdb.Value, len(in))
	prevI := -1
	var sum tsdb.Value
	var window []float64
	for i, v := range in {
		if isNull(v) {
			continue
		}
		switch tr.fn {
		case "cumulative_sum":
			if isNull(sum) {
				sum = v
			} else {
				sum = arith("+", sum, v)
			}
			out[i] = sum
		case "moving_average":
			f, ok := v.Float()
			if !ok {
				continue
			}
			window = append(window, f)
			if len(window) > tr.n {
				window = window[1:]
			}
			if len(window) == tr.n {
				s := 0.0
				for _, x := range window {
					s += x
				}
				out[i] = tsdb.FloatValue(s / float64(tr.n))
			}
		default:
			if prevI >= 0 {
				prev := in[prevI]
				switch tr.fn {
				case "difference":
					out[i] = arith("-", v, prev)
				case "non_negative_difference":
					if d := arith("-", v, prev); compare(">=", d, tsdb.IntValue(0)) {
						out[i] = d
					}
				case "elapsed":
					out[i] = tsdb.IntValue((times[i] - times[prevI]) / tr.unit)
				case "derivative", "non_negative_derivative":
					dt := float64(times[i]-times[prevI]) / float64(tr.unit)
					a, _ := v.Float()
					b, _ := prev.Float()
					if dt != 0 && isNumeric(v) && isNumeric(prev) {
						d := (a - b) / dt
						if tr.fn == "derivative" || d >= 0 {
							out[i] = tsdb.FloatValue(d)
						}
					}
				}
			}
			prevI = i
		}
	}
	return out
}

func distinct(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// rawLimitRuns applies a raw subquery's LIMIT/OFFSET the way InfluxDB 1.x
// does when the outer query groups by other tags than the subquery (the
// TSBS high-load query is one): each series contributes its first
// LIMIT+OFFSET+1 rows in scan order, the series of one outer group (the
// outer GROUP BY tags) are merged by time, and the LIMIT/OFFSET counter
// restarts whenever the subquery's group tags differ from the previous
// row's. So a subquery "GROUP BY name, driver ... LIMIT 1" under an outer
// "GROUP BY name" yields one row per run of equal drivers, not one per
// driver.
func (e *Executor) rawLimitRuns(ctx context.Context, pl *plan, groups map[string]*group, tr timeRange, bud *budget) ([]*Row, error) {
	st := pl.st
	ncol := len(pl.cols)
	perSeries := st.Limit + st.OffsetRows + 1
	type item struct {
		t   int64
		g   *group
		pos int
		ord int // series order; breaks ties in time
	}
	// InfluxDB merges series in series-key order (reversed for DESC).
	ords := map[*frame]int{}
	{
		var all []*frame
		for _, g := range groups {
			all = append(all, g.frames...)
		}
		key := func(f *frame) string {
			var b strings.Builder
			b.WriteString(f.name)
			for _, t := range f.tags {
				b.WriteString("," + t.Key + "=" + t.Value)
			}
			return b.String()
		}
		slices.SortFunc(all, func(a, b *frame) int { return strings.Compare(key(a), key(b)) })
		for i, f := range all {
			ords[f] = i
		}
	}
	var slab []tsdb.Value
	dims := map[string][]item{}
	var dimKeys []string
	c := &evalCtx{}
	tmp := make([]tsdb.Value, ncol)
	for _, g := range sortedGroups(groups) {
		for _, f := range g.frames {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			dk := f.name + "\x00"
			for _, k := range pl.outerDims {
				dk += tagValue(f.tags, k) + "\x00"
			}
			if _, ok := dims[dk]; !ok {
				dimKeys = append(dimKeys, dk)
			}
			c.f = f
			lo, hi := pl.frameRange(f, tr)
			taken := 0
			for n := lo; n < hi && taken < perSeries; n++ {
				i := n
				if st.Desc {
					i = hi - 1 - (n - lo)
				}
				c.i = i
				if pl.rowCond != nil && !truthy(pl.rowCond(c)) {
					continue
				}
				has := false
				for ci, col := range pl.cols {
					tmp[ci] = col.eval(c)
					if (!col.tagOnly || pl.fromSub) && !isNull(tmp[ci]) {
						has = true
					}
				}
				if !has {
					continue
				}
				dims[dk] = append(dims[dk], item{t: f.times[i], g: g, pos: len(slab) / max(ncol, 1), ord: ords[f]})
				slab = append(slab, tmp...)
				taken++
			}
		}
	}
	if err := bud.add(len(slab)); err != nil {
		return nil, err
	}
	kept := map[*group][]item{}
	for _, dk := range dimKeys {
		items := dims[dk]
		slices.SortFunc(items, func(a, b item) int {
			if st.Desc {
				return cmp.Or(cmp.Compare(b.t, a.t), cmp.Compare(b.ord, a.ord))
			}
			return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.ord, b.ord))
		})
		var prev *group
		n := 0
		for _, it := range items {
			if it.g != prev {
				prev, n = it.g, 0
			}
			n++
			// The engine and then the statement apply OFFSET, so it counts twice.
			if n <= 2*st.OffsetRows || (st.Limit > 0 && n-st.OffsetRows > st.Limit) {
				continue
			}
			kept[it.g] = append(kept[it.g], it)
		}
	}
	var rows []*Row
	for _, g := range pl.sortedGroups(groups) {
		items := kept[g]
		if len(items) == 0 {
			continue
		}
		slices.SortStableFunc(items, func(a, b item) int {
			if st.Desc {
				return cmp.Compare(b.t, a.t)
			}
			return cmp.Compare(a.t, b.t)
		})
		r := &Row{Name: g.name, Tags: g.tags, Time: make([]int64, len(items)), Cols: make([][]tsdb.Value, ncol)}
		for ci := range r.Cols {
			r.Cols[ci] = make([]tsdb.Value, len(items))
		}
		for ri, it := range items {
			r.Time[ri] = it.t
			for ci := range r.Cols {
				r.Cols[ci][ri] = slab[it.pos*ncol+ci]
			}
		}
		e.finishRows(pl, r, true)
		if r.Len() > 0 {
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// filters turns WHERE into store filters when the query reads one numeric
// field and every row condition compares that field with a number, so
// that LIMIT can be counted by the store (which skips chunks that cannot
// match) instead of by reading ever deeper.
func (pl *plan) filters() ([]tsdb.Filter, bool) {
	if len(pl.used) != 1 || len(pl.rowExprs) == 0 {
		return nil, false
	}
	field := pl.used[0]
	if t := pl.types[field]; t != tsdb.Float && t != tsdb.Integer && t != tsdb.Unsigned {
		return nil, false
	}
	ops := map[string]tsdb.FilterOp{"<": tsdb.FilterLT, "<=": tsdb.FilterLE, ">": tsdb.FilterGT, ">=": tsdb.FilterGE,
		"=": tsdb.FilterEQ, "!=": tsdb.FilterNE, "<>": tsdb.FilterNE}
	flip := map[tsdb.FilterOp]tsdb.FilterOp{tsdb.FilterLT: tsdb.FilterGT, tsdb.FilterLE: tsdb.FilterGE,
		tsdb.FilterGT: tsdb.FilterLT, tsdb.FilterGE: tsdb.FilterLE, tsdb.FilterEQ: tsdb.FilterEQ, tsdb.FilterNE: tsdb.FilterNE}
	num := func(e Expr) (float64, bool) {
		switch x := e.(type) {
		case *NumberLit:
			return x.Val, true
		case *IntegerLit:
			return float64(x.Val), true
		}
		return 0, false
	}
	isField := func(e Expr) bool {
		v, ok := e.(*VarRef)
		return ok && v.Name == field && v.Type != "tag"
	}
	var out []tsdb.Filter
	for _, c := range pl.rowExprs {
		for {
			p, ok := c.(*ParenExpr)
			if !ok {
				break
			}
			c = p.Expr
		}
		b, ok := c.(*BinaryExpr)
		if !ok {
			return nil, false
		}
		op, ok := ops[b.Op]
		if !ok {
			return nil, false
		}
		if v, ok := num(b.RHS); ok && isField(b.LHS) {
			out = append(out, tsdb.Filter{Op: op, Value: v})
		} else if v, ok := num(b.LHS); ok && isField(b.RHS) {
			out = append(out, tsdb.Filter{Op: flip[op], Value: v})
		} else {
			return nil, false
		}
	}
	return out, true
}

// unionTimes merges the (sorted, distinct) times of smp into the sorted,
// distinct times a.
func unionTimes(a []int64, smp []tsdb.Sample) []int64 {
	out := make([]int64, 0, max(len(a), len(smp))+len(smp)/8)
	i, j := 0, 0
	for i < len(a) && j < len(smp) {
		switch t := smp[j].Time; {
		case a[i] < t:
			out = append(out, a[i])
			i++
		case a[i] > t:
			out = append(out, t)
			j++
		default:
			out = append(out, t)
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	for ; j < len(smp); j++ {
		out = append(out, smp[j].Time)
	}
	return out
}
