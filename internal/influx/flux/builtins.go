package flux

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

type builtinFn func(x *run, args *record, pipe *stream) (Value, error)

func builtins() map[string]Value {
	m := map[string]Value{}
	add := func(name string, f builtinFn, params ...string) {
		if params == nil {
			params = []string{}
		}
		m[name] = Value{Kind: KFunc, x: &ext{fn: &function{name: name, builtin: f, params: params}}}
	}
	add("from", bFrom, "bucket", "org")
	add("range", bRange, "start", "stop")
	add("filter", bFilter, "fn", "onEmpty")
	add("aggregateWindow", bAggregateWindow, "every", "fn", "createEmpty", "column", "timeSrc", "timeDst", "period", "offset", "location")
	for name := range aggNames {
		if name == "stddev" {
			add(name, aggregateFn(name), "column", "mode")
			continue
		}
		add(name, aggregateFn(name), "column")
	}
	add("group", bGroup, "columns", "mode")
	add("keep", bKeep, "columns")
	add("drop", bDrop, "columns")
	add("rename", bRename, "columns")
	add("limit", bLimit, "n", "offset")
	add("sort", bSort, "columns", "desc")
	add("yield", bYield, "name")
	add("pivot", bPivot, "rowKey", "columnKey", "valueColumn")
	add("map", bMap, "fn", "mergeKey")
	add("window", bWindow, "every", "period", "offset", "createEmpty", "timeColumn", "startColumn", "stopColumn", "location")
	add("duplicate", bDuplicate, "column", "as")
	add("set", bSet, "key", "value")
	add("fill", bFill, "column", "value", "usePrevious")
	add("timeShift", bTimeShift, "duration", "columns")
	add("difference", bDifference, "nonNegative", "columns", "keepFirst", "initialZero")
	add("derivative", bDerivative, "unit", "nonNegative", "columns", "timeColumn", "initialZero")
	add("cumulativeSum", bCumulativeSum, "columns")
	add("increase", bIncrease, "columns")
	add("movingAverage", bMovingAverage, "n")
	add("elapsed", bElapsed, "unit", "timeColumn", "columnName")
	add("distinct", bDistinct, "column")
	add("unique", bUnique, "column")
	add("top", topBottom(true), "n", "columns")
	add("bottom", topBottom(false), "n", "columns")
	add("tail", bTail, "n", "offset")
	add("union", bUnion, "tables")
	add("join", bJoin, "tables", "on", "method")
	add("reduce", bReduce, "fn", "identity")
	add("now", bNow)
	for _, name := range []string{"int", "uint", "float", "string", "bool", "time", "duration"} {
		add(name, convertFn(name), "v")
	}
	m["inf"] = Duration(math.MaxInt64, 0)
	return m
}

func bNow(x *run, _ *record, _ *stream) (Value, error) { return Time(x.now), nil }

// ---- argument helpers ----

func argOr(args *record, name string, def Value) Value {
	if v, ok := args.get(name); ok {
		return v
	}
	return def
}

func argKind(args *record, name string, k Kind, required bool) (Value, bool, error) {
	v, ok := args.get(name)
	if !ok {
		if required {
			return Value{}, false, invalidf("missing required argument %s", name)
		}
		return Value{}, false, nil
	}
	if v.Kind != k {
		return Value{}, false, invalidf("argument %s must be a %s, got %s", name, k, v.Kind)
	}
	return v, true, nil
}

func argStrings(args *record, name string, def []string) ([]string, error) {
	v, ok := args.get(name)
	if !ok {
		return def, nil
	}
	if v.Kind != KArray {
		return nil, invalidf("argument %s must be an array of strings", name)
	}
	out := make([]string, len(v.x.arr))
	for i, e := range v.x.arr {
		if e.Kind != KString {
			return nil, invalidf("argument %s must be an array of strings", name)
		}
		out[i] = e.S
	}
	return out, nil
}

func needStream(pipe *stream) error {
	if pipe == nil {
		return invalidf("missing table stream: pipe tables into this function with |>")
	}
	return nil
}

// timeArg turns a time, a duration relative to now or unix seconds into ns.
func (x *run) timeArg(v Value, name string) (int64, error) {
	switch v.Kind {
	case KTime:
		return v.I, nil
	case KDuration:
		return addDuration(x.now, v, false).I, nil
	case KInt:
		return v.I * int64(time.Second), nil
	}
	return 0, invalidf("argument %s must be a time or a duration, got %s", name, v.Kind)
}

// ---- sources ----

func bFrom(x *run, args *record, _ *stream) (Value, error) {
	b, _, err := argKind(args, "bucket", KString, true)
	if err != nil {
		return Value{}, err
	}
	db, err := x.ex.store.Bucket(x.ctx, b.S)
	if err != nil {
		return Value{}, err
	}
	return streamValue(&stream{src: &source{db: db, bucket: b.S}}), nil
}

func bRange(x *run, args *record, pipe *stream) (Value, error) {
	if err := needStream(pipe); err != nil {
		return Value{}, err
	}
	sv, ok := args.get("start")
	if !ok {
		return Value{}, invalidf("missing required argument start")
	}
	start, err := x.timeArg(sv, "start")
	if err != nil {
		return Value{}, err
	}
	stop := x.now
	if v, ok := args.get("stop"); ok {
		if stop, err = x.timeArg(v, "stop"); err != nil {
			return Value{}, err
		}
	}
	if stop < start {
		return Value{}, invalidf("range: stop %s is before start %s", Time(stop), Time(start))
	}
	if pipe.src == nil || pipe.src.hasRange {
		return Value{}, invalidf("range() must directly follow from()")
	}
	src := cloneSource(pipe.src)
	src.start, src.stop, src.hasRange = start, stop, true
	return streamValue(&stream{src: src}), nil
}

func bFilter(x *run, args *record, pipe *stream) (Value, error) {
	if err := needStream(pipe); err != nil {
		return Value{}, err
	}
	f, param, err := rowFn(argOr(args, "fn", Value{}), "filter fn")
	if err != nil {
		return Value{}, err
	}
	onEmpty, err := stringArg(args, "onEmpty", "drop")
	if err != nil {
		return Value{}, err
	}
	if onEmpty != "drop" && onEmpty != "keep" {
		return Value{}, invalidf("filter: onEmpty must be \"drop\" or \"keep\"")
	}
	keepEmpty := onEmpty == "keep"
	if pipe.src != nil && !keepEmpty {
		if !pipe.src.hasRange {
			return Value{}, invalidf("from() must be followed by range() before filter()")
		}
		src := cloneSource(pipe.src)
		if err := x.pushFilter(src, f); err != nil {
			return Value{}, err
		}
		return streamValue(&stream{src: src}), nil
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		nt := &Table{Cols: t.Cols}
		for _, row := range t.Rows {
			v, err := x.evalOnRow(f, param, t, row)
			if err != nil {
				return nil, err
			}
			if v.truthy() {
				nt.Rows = append(nt.Rows, row)
			}
		}
		if len(nt.Rows) > 0 {
			return nt, nil
		}
		if keepEmpty {
			nt.empty = t.keyRow()
			return nt, nil
		}
		return nil, nil
	}))
}

// ---- aggregates ----

func aggName(v Value) (string, bool) {
	if v.Kind != KFunc || v.x.fn.builtin == nil || !aggNames[v.x.fn.name] {
		return "", false
	}
	return v.x.fn.name, true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func bAggregateWindow(x *run, args *record, pipe *stream) (Value, error) {
	if err := needStream(pipe); err != nil {
		return Value{}, err
	}
	ev, _, err := argKind(args, "every", KDuration, true)
	if err != nil {
		return Value{}, err
	}
	if ev.months() != 0 || ev.I <= 0 {
		return Value{}, invalidf("aggregateWindow: every must be a positive fixed duration (calendar months are not supported)")
	}
	w, err := windowArgs(args)
	if err != nil {
		return Value{}, fmt.Errorf("aggregateWindow: %w", err)
	}
	if err := utcLocation(args); err != nil {
		return Value{}, err
	}
	fv := argOr(args, "fn", Value{})
	if fv.Kind != KFunc {
		return Value{}, invalidf("aggregateWindow: fn must be an aggregate function such as mean, or a function (column, tables=<-) => ...")
	}
	createEmpty, err := boolArg(args, "createEmpty", true)
	if err != nil {
		return Value{}, err
	}
	column, err := stringArg(args, "column", "_value")
	if err != nil {
		return Value{}, err
	}
	timeSrc, err := stringArg(args, "timeSrc", "_stop")
	if err != nil {
		return Value{}, err
	}
	timeDst, err := stringArg(args, "timeDst", "_time")
	if err != nil {
		return Value{}, err
	}
	fn, builtin := aggName(fv)
	if !builtin || w.every == infinity || w.period != w.every || timeDst != "_time" || (timeSrc != "_stop" && timeSrc != "_start") {
		return x.aggregateWindowGeneric(pipe, fv.x.fn, w, createEmpty, column, timeSrc, timeDst)
	}
	every := w.every
	var tables []*Table
	pushdown := pipe.src != nil && len(pipe.src.rowFilters) == 0 && column == "_value" && timeSrc == "_stop" && w.offset == 0
	switch fn {
	case "median", "spread", "stddev":
		pushdown = false
	}
	if pushdown {
		if tables, err = x.read(pipe.src, time.Duration(every), tsdb.Aggregate(fn)); err != nil {
			return Value{}, err
		}
		for _, t := range tables {
			t.Cols[3].Type = aggKind(fn, t.Cols[3].Type)
		}
	} else {
		tables, err = x.eachTable(pipe, func(t *Table) (*Table, error) { return windowTable(t, fn, w, column, timeSrc) })
		if err != nil {
			return Value{}, err
		}
	}
	if createEmpty {
		for _, t := range tables {
			if err := x.fillEmpty(t, fn, w, column, timeSrc); err != nil {
				return Value{}, err
			}
		}
	}
	return streamValue(&stream{tables: tables}), nil
}

// utcLocation refuses a location argument other than UTC.
func utcLocation(args *record) error {
	loc, ok := args.get("location")
	if !ok {
		return nil
	}
	if loc.Kind == KRecord {
		z, _ := loc.x.rec.get("zone")
		off, _ := loc.x.rec.get("offset")
		if (z.Kind == KNull || z.S == "UTC") && off.I == 0 && off.months() == 0 {
			return nil
		}
	}
	return invalidf("location: only UTC is supported")
}

// aggregateWindowGeneric is aggregateWindow as Flux defines it: window,
// the aggregate, the window's timeSrc copied to timeDst, and the windows
// merged again.
func (x *run) aggregateWindowGeneric(pipe *stream, fn *function, w windowSpec, createEmpty bool, column, timeSrc, timeDst string) (Value, error) {
	in, err := x.materialize(pipe)
	if err != nil {
		return Value{}, err
	}
	start, stop, bounded := pipe.bounds()
	windowed, err := x.window(in, w, start, stop, bounded, createEmpty, "_time", "_start", "_stop")
	if err != nil {
		return Value{}, err
	}
	ws := &stream{tables: windowed, start: start, stop: stop, bounded: bounded}
	fargs := newRecord()
	fargs.set("column", Str(column))
	if fn.arrow != nil && !slices.ContainsFunc(fn.arrow.Params, func(p Property) bool { return p.Key == "column" }) {
		fargs = newRecord()
	}
	agg, err := x.apply(fn, fargs, ws)
	if err != nil {
		return Value{}, err
	}
	if agg.Kind != KStream {
		return Value{}, invalidf("aggregateWindow: fn must return a table stream, got %s", agg.Kind)
	}
	aggregated, err := x.materialize(agg.x.st)
	if err != nil {
		return Value{}, err
	}
	dup := newRecord()
	dup.set("column", Str(timeSrc))
	dup.set("as", Str(timeDst))
	d, err := bDuplicate(x, dup, &stream{tables: aggregated})
	if err != nil {
		return Value{}, err
	}
	out, err := x.window(d.x.st.tables, windowSpec{every: infinity, period: infinity}, start, stop, bounded, false, timeDst, "_start", "_stop")
	if err != nil {
		return Value{}, err
	}
	return streamValue(&stream{tables: out}), nil
}

// keyBounds returns the times in columns startCol and stopCol of t's
// group key (ok is false unless both are there and times).
func keyBounds(t *Table, startCol, stopCol string) (start, stop int64, ok bool) {
	i, j, kr := t.idx(startCol), t.idx(stopCol), t.keyRow()
	if i < 0 || j < 0 || kr == nil || kr[i].Kind != KTime || kr[j].Kind != KTime {
		return 0, 0, false
	}
	return kr[i].I, kr[j].I, true
}

// label is the time aggregateWindow stamps window k with: its stop, or
// its start when timeSrc is _start, clipped to [start, stop].
func (w windowSpec) label(k, start, stop int64, timeSrc string) int64 {
	if timeSrc == "_start" {
		return max(k*w.every+w.offset, start)
	}
	return min((k+1)*w.every+w.offset, stop)
}

// windowTable aggregates one table into epoch-aligned windows of every,
// stamped with the window stop clipped to the table's _stop.
func windowTable(t *Table, fn string, w windowSpec, column, timeSrc string) (*Table, error) {
	ti, vi := t.idx("_time"), t.idx(column)
	if ti < 0 || vi < 0 {
		return nil, invalidf("aggregateWindow: table has no _time or %s column", column)
	}
	start, stop, ok := keyBounds(t, "_start", "_stop")
	if !ok {
		return nil, invalidf("aggregateWindow: tables need _start and _stop (use range())")
	}
	var keep []int
	for i, c := range t.Cols {
		if c.Key || i == ti || i == vi {
			keep = append(keep, i)
		}
	}
	nt := &Table{}
	for _, i := range keep {
		c := t.Cols[i]
		if i == vi {
			c.Type = aggKind(fn, c.Type)
		}
		nt.Cols = append(nt.Cols, c)
	}
	rows := slices.Clone(t.Rows)
	slices.SortStableFunc(rows, func(a, b []Value) int { return cmp.Compare(a[ti].I, b[ti].I) })
	for lo := 0; lo < len(rows); {
		k := w.index(rows[lo][ti].I)
		hi := lo
		var a aggState
		for hi < len(rows) && w.index(rows[hi][ti].I) == k {
			if err := a.add(fn, hi, rows[hi][vi]); err != nil {
				return nil, err
			}
			hi++
		}
		label := w.label(k, start, stop, timeSrc)
		src := rows[lo]
		v := a.result(fn)
		if isSelector(fn) {
			if !a.has {
				lo = hi
				continue
			}
			src = rows[a.sel]
		}
		out := make([]Value, len(keep))
		for j, i := range keep {
			switch i {
			case ti:
				out[j] = Time(label)
			case vi:
				out[j] = v
			default:
				out[j] = src[i]
			}
		}
		nt.Rows = append(nt.Rows, out)
		lo = hi
	}
	if len(nt.Rows) == 0 {
		return nil, nil
	}
	return nt, nil
}

// fillEmpty adds rows (null, or 0 for count) for windows without data.
func (x *run) fillEmpty(t *Table, fn string, w windowSpec, column, timeSrc string) error {
	start, stop, ok := keyBounds(t, "_start", "_stop")
	ti, vi := t.idx("_time"), t.idx(column)
	if !ok || ti < 0 || vi < 0 || stop <= start {
		return nil
	}
	first, last := w.index(start), w.index(stop-1)
	n := last - first + 1
	if n > int64(len(t.Rows)) {
		if err := x.take(int(min(n, 1<<40)) - len(t.Rows)); err != nil {
			return err
		}
	}
	have := map[int64]bool{}
	for _, r := range t.Rows {
		have[r[ti].I] = true
	}
	tmpl := t.Rows[0]
	for k := first; k <= last; k++ {
		label := w.label(k, start, stop, timeSrc)
		if have[label] {
			continue
		}
		row := make([]Value, len(tmpl))
		for i, c := range t.Cols {
			if c.Key {
				row[i] = tmpl[i]
			}
		}
		row[ti] = Time(label)
		if fn == "count" {
			row[vi] = Int(0)
		}
		t.Rows = append(t.Rows, row)
	}
	slices.SortStableFunc(t.Rows, func(a, b []Value) int { return cmp.Compare(a[ti].I, b[ti].I) })
	return nil
}

func aggregateFn(fn string) builtinFn {
	return func(x *run, args *record, pipe *stream) (Value, error) {
		if err := needStream(pipe); err != nil {
			return Value{}, err
		}
		column, err := stringArg(args, "column", "_value")
		if err != nil {
			return Value{}, err
		}
		mode, err := stringArg(args, "mode", "sample")
		if err != nil {
			return Value{}, err
		}
		if mode != "sample" && mode != "population" {
			return Value{}, invalidf("stddev: mode must be \"sample\" or \"population\"")
		}
		regroup := false
		out, err := x.eachTable(pipe, func(t *Table) (*Table, error) {
			vi := t.idx(column)
			if vi < 0 {
				return nil, invalidf("%s: column %q not found", fn, column)
			}
			regroup = regroup || t.Cols[vi].Key
			a := aggState{population: mode == "population"}
			for i, row := range t.Rows {
				if err := a.add(fn, i, row[vi]); err != nil {
					return nil, err
				}
			}
			if isSelector(fn) {
				if !a.has {
					return nil, nil
				}
				return &Table{Cols: t.Cols, Rows: [][]Value{t.Rows[a.sel]}}, nil
			}
			// The output is the group key and the aggregated column (which
			// leaves the key when it was part of it).
			cols, row := keyColumns(t, vi)
			cols = append(cols, Column{Label: column, Type: aggKind(fn, t.Cols[vi].Type)})
			return &Table{Cols: cols, Rows: [][]Value{append(row, a.result(fn))}}, nil
		})
		if err != nil {
			return Value{}, err
		}
		if regroup {
			out = merge(out)
		}
		return streamValue(&stream{tables: out}), nil
	}
}

// keyColumns returns t's group key columns but column except (-1 for
// none) and their values (nulls when the table's key row is unknown).
func keyColumns(t *Table, except int) ([]Column, []Value) {
	var cols []Column
	var vals []Value
	kr := t.keyRow()
	for i, c := range t.Cols {
		if !c.Key || i == except {
			continue
		}
		cols = append(cols, c)
		if kr != nil {
			vals = append(vals, kr[i])
		} else {
			vals = append(vals, Value{})
		}
	}
	return cols, vals
}

// ---- shaping ----

// writeKeyValue adds v to a map key: its text, its kind (values of
// different kinds never collide) and a separator.
func writeKeyValue(b *strings.Builder, v Value) {
	b.WriteString(v.String())
	b.WriteByte(byte(v.Kind))
	b.WriteByte(0)
}

func keyString(t *Table) string {
	var b strings.Builder
	kr := t.keyRow()
	for i, c := range t.Cols {
		if !c.Key {
			continue
		}
		b.WriteString(c.Label)
		b.WriteByte(0)
		if kr != nil {
			writeKeyValue(&b, kr[i])
		} else {
			b.WriteByte(0)
		}
	}
	return b.String()
}

// merge concatenates tables with equal group keys (union of columns).
func merge(tables []*Table) []*Table {
	var order []string
	groups := map[string][]*Table{}
	for _, t := range tables {
		k := keyString(t)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t)
	}
	slices.Sort(order)
	out := make([]*Table, 0, len(order))
	for _, k := range order {
		g := groups[k]
		if len(g) == 1 {
			out = append(out, g[0])
			continue
		}
		nt := &Table{Cols: slices.Clone(g[0].Cols)}
		if kr := g[0].keyRow(); kr != nil {
			nt.empty = slices.Clone(kr)
		}
		for _, t := range g[1:] {
			for _, c := range t.Cols {
				if nt.idx(c.Label) < 0 {
					nt.Cols = append(nt.Cols, c)
				}
			}
		}
		for _, t := range g {
			m := make([]int, len(nt.Cols))
			for i, c := range nt.Cols {
				m[i] = t.idx(c.Label)
			}
			for _, r := range t.Rows {
				row := make([]Value, len(nt.Cols))
				for i, j := range m {
					if j >= 0 {
						row[i] = r[j]
					}
				}
				nt.Rows = append(nt.Rows, row)
			}
		}
		for len(nt.empty) > 0 && len(nt.empty) < len(nt.Cols) {
			nt.empty = append(nt.empty, Value{})
		}
		out = append(out, nt)
	}
	return out
}

func bGroup(x *run, args *record, pipe *stream) (Value, error) {
	if err := needStream(pipe); err != nil {
		return Value{}, err
	}
	cols, err := argStrings(args, "columns", nil)
	if err != nil {
		return Value{}, err
	}
	mode, err := stringArg(args, "mode", "by")
	if err != nil {
		return Value{}, err
	}
	if mode != "by" && mode != "except" {
		return Value{}, invalidf("group: mode must be \"by\" or \"except\"")
	}
	return mergedValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		return mapColumns(t, func(c Column) Column {
			c.Key = slices.Contains(cols, c.Label) == (mode == "by")
			return c
		}), nil
	}))
}

// mapColumns returns t (rows shared) with each column passed through f.
func mapColumns(t *Table, f func(c Column) Column) *Table {
	nt := &Table{Cols: make([]Column, len(t.Cols)), Rows: t.Rows}
	for i, c := range t.Cols {
		nt.Cols[i] = f(c)
	}
	return nt
}

func project(t *Table, keep func(label string) bool) *Table {
	var idx []int
	nt := &Table{}
	for i, c := range t.Cols {
		if keep(c.Label) {
			idx = append(idx, i)
			nt.Cols = append(nt.Cols, c)
		}
	}
	nt.Rows = make([][]Value, len(t.Rows))
	for r, row := range t.Rows {
		nr := make([]Value, len(idx))
		for j, i := range idx {
			nr[j] = row[i]
		}
		nt.Rows[r] = nr
	}
	return nt
}

func keepDrop(keep bool) builtinFn {
	return func(x *run, args *record, pipe *stream) (Value, error) {
		if err := needStream(pipe); err != nil {
			return Value{}, err
		}
		cols, err := argStrings(args, "columns", nil)
		if err != nil {
			return Value{}, err
		}
		if cols == nil {
			return Value{}, invalidf("missing required argument columns")
		}
		return mergedValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
			return project(t, func(l string) bool { return slices.Contains(cols, l) == keep }), nil
		}))
	}
}

var (
	bKeep = keepDrop(true)
	bDrop = keepDrop(false)
)

func bRename(x *run, args *record, pipe *stream) (Value, error) {
	if err := needStream(pipe); err != nil {
		return Value{}, err
	}
	m, _, err := argKind(args, "columns", KRecord, true)
	if err != nil {
		return Value{}, err
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		return mapColumns(t, func(c Column) Column {
			if v, ok := m.x.rec.get(c.Label); ok && v.Kind == KString {
				c.Label = v.S
			}
			return c
		}), nil
	}))
}

// countArgs reads the n and offset of limit and tail (capped at 2^40,
// more rows than any table holds).
func countArgs(args *record, fn string) (n, offset int, err error) {
	nv, _, err := argKind(args, "n", KInt, true)
	if err != nil {
		return 0, 0, err
	}
	ov, _, err := argKind(args, "offset", KInt, false)
	if err != nil {
		return 0, 0, err
	}
	if nv.I < 0 || ov.I < 0 {
		return 0, 0, invalidf("%s: n and offset must not be negative", fn)
	}
	return int(min(nv.I, 1<<40)), int(min(ov.I, 1<<40)), nil
}

func bLimit(x *run, args *record, pipe *stream) (Value, error) {
	if err := needStream(pipe); err != nil {
		return Value{}, err
	}
	n, off, err := countArgs(args, "limit")
	if err != nil {
		return Value{}, err
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		lo := min(off, len(t.Rows))
		hi := min(lo+n, len(t.Rows))
		if hi <= lo {
			return nil, nil
		}
		return &Table{Cols: t.Cols, Rows: t.Rows[lo:hi]}, nil
	}))
}

func bSort(x *run, args *record, pipe *stream) (Value, error) {
	if err := needStream(pipe); err != nil {
		return Value{}, err
	}
	cols, err := argStrings(args, "columns", []string{"_value"})
	if err != nil {
		return Value{}, err
	}
	desc, err := boolArg(args, "desc", false)
	if err != nil {
		return Value{}, err
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		rows := slices.Clone(t.Rows)
		sortRows(rows, presentColumns(t, cols), desc)
		return &Table{Cols: t.Cols, Rows: rows}, nil
	}))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func bYield(x *run, args *record, pipe *stream) (Value, error) {
	if err := needStream(pipe); err != nil {
		return Value{}, err
	}
	name, err := stringArg(args, "name", "_result")
	if err != nil {
		return Value{}, err
	}
	tables, err := x.materialize(pipe)
	if err != nil {
		return Value{}, err
	}
	s := &stream{tables: tables}
	if err := x.yield(s, name); err != nil {
		return Value{}, err
	}
	return streamValue(s), nil
}

func bPivot(x *run, args *record, pipe *stream) (Value, error) {
	if err := needStream(pipe); err != nil {
		return Value{}, err
	}
	rowKey, err := argStrings(args, "rowKey", nil)
	if err != nil {
		return Value{}, err
	}
	colKey, err := argStrings(args, "columnKey", nil)
	if err != nil {
		return Value{}, err
	}
	vc, _, err := argKind(args, "valueColumn", KString, true)
	if err != nil {
		return Value{}, err
	}
	if len(rowKey) == 0 || len(colKey) == 0 {
		return Value{}, invalidf("pivot: rowKey and columnKey must not be empty")
	}
	in, err := x.materialize(pipe)
	if err != nil {
		return Value{}, err
	}
	// Regroup without the column-key and value columns in the key.
	regrouped := make([]*Table, len(in))
	for i, t := range in {
		regrouped[i] = mapColumns(t, func(c Column) Column {
			c.Key = c.Key && !slices.Contains(colKey, c.Label) && c.Label != vc.S
			return c
		})
	}
	var out []*Table
	for _, t := range merge(regrouped) {
		vi := t.idx(vc.S)
		if vi < 0 {
			return Value{}, invalidf("pivot: value column %q not found", vc.S)
		}
		rk, err := colIndexes(t, rowKey, "pivot: row key column")
		if err != nil {
			return Value{}, err
		}
		ck, err := colIndexes(t, colKey, "pivot: column key column")
		if err != nil {
			return Value{}, err
		}
		nt := &Table{}
		var keyIdx []int
		for i, c := range t.Cols {
			if c.Key && !slices.Contains(rk, i) {
				nt.Cols = append(nt.Cols, c)
				keyIdx = append(keyIdx, i)
			}
		}
		for _, j := range rk {
			nt.Cols = append(nt.Cols, Column{Label: t.Cols[j].Label, Type: t.Cols[j].Type})
		}
		base := len(nt.Cols)
		newCol := map[string]int{}
		rowOf := map[string]int{}
		var rows [][]Value
		for _, r := range t.Rows {
			var ckb strings.Builder
			for n, j := range ck {
				if n > 0 {
					ckb.WriteByte('_')
				}
				ckb.WriteString(r[j].String())
			}
			name := ckb.String()
			ci, ok := newCol[name]
			if !ok {
				ci = base + len(newCol)
				newCol[name] = ci
				nt.Cols = append(nt.Cols, Column{Label: name, Type: r[vi].Kind})
			}
			if nt.Cols[ci].Type == KNull && r[vi].Kind != KNull {
				nt.Cols[ci].Type = r[vi].Kind
			}
			var rkb strings.Builder
			for _, j := range rk {
				rkb.WriteString(r[j].String())
				rkb.WriteByte(0)
			}
			ri, ok := rowOf[rkb.String()]
			if !ok {
				ri = len(rows)
				rowOf[rkb.String()] = ri
				row := make([]Value, 0, base)
				for _, j := range keyIdx {
					row = append(row, r[j])
				}
				for _, j := range rk {
					row = append(row, r[j])
				}
				rows = append(rows, row)
			}
			for len(rows[ri]) <= ci {
				rows[ri] = append(rows[ri], Value{})
			}
			rows[ri][ci] = r[vi]
		}
		for i := range rows {
			for len(rows[i]) < len(nt.Cols) {
				rows[i] = append(rows[i], Value{})
			}
		}
		slices.SortStableFunc(rows, func(a, b []Value) int {
			for n := range rk {
				if c, ok := compare(a[len(keyIdx)+n], b[len(keyIdx)+n]); ok && c != 0 {
					return c
				}
			}
			return 0
		})
		nt.Rows = rows
		out = append(out, nt)
	}
	return streamValue(&stream{tables: out}), nil
}

func bMap(x *run, args *record, pipe *stream) (Value, error) {
	if err := needStream(pipe); err != nil {
		return Value{}, err
	}
	f, param, err := rowFn(argOr(args, "fn", Value{}), "map fn")
	if err != nil {
		return Value{}, err
	}
	return mergedValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		var nt *Table
		for _, row := range t.Rows {
			v, err := x.evalOnRow(f, param, t, row)
			if err != nil {
				return nil, err
			}
			if v.Kind != KRecord {
				return nil, invalidf("map fn must return a record, got %s", v.Kind)
			}
			rec := v.x.rec
			if nt == nil {
				nt = &Table{}
				for _, k := range rec.keys {
					c := Column{Label: k, Type: rec.vals[k].Kind}
					if j := t.idx(k); j >= 0 {
						c.Key = t.Cols[j].Key
						if c.Type == KNull {
							c.Type = t.Cols[j].Type
						}
					}
					nt.Cols = append(nt.Cols, c)
				}
			}
			nr := make([]Value, len(nt.Cols))
			for i, c := range nt.Cols {
				nr[i] = rec.vals[c.Label]
				if nt.Cols[i].Type == KNull {
					nt.Cols[i].Type = nr[i].Kind
				}
			}
			nt.Rows = append(nt.Rows, nr)
		}
		return nt, nil
	}))
}
