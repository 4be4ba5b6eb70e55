package flux

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// eachTable materialises the piped stream and maps every table through
// f (a nil table is dropped).
func (x *run) eachTable(pipe *stream, f func(t *Table) (*Table, error)) ([]*Table, error) {
	if err := needStream(pipe); err != nil {
		return nil, err
	}
	in, err := x.materialize(pipe)
	if err != nil {
		return nil, err
	}
	out := make([]*Table, 0, len(in))
	for _, t := range in {
		nt, err := f(t)
		if err != nil {
			return nil, err
		}
		if nt != nil {
			out = append(out, nt)
		}
	}
	return out, nil
}

func tablesValue(ts []*Table, err error) (Value, error) {
	if err != nil {
		return Value{}, err
	}
	return streamValue(&stream{tables: ts}), nil
}

// mergedValue is tablesValue for transformations that can change group
// keys: tables whose keys became equal are merged.
func mergedValue(ts []*Table, err error) (Value, error) {
	if err != nil {
		return Value{}, err
	}
	return streamValue(&stream{tables: merge(ts)}), nil
}

// mapRows returns a table with columns cols whose rows are t's passed
// through f; the key row of a table without rows goes through f too.
func mapRows(t *Table, cols []Column, f func(row []Value) []Value) *Table {
	nt := &Table{Cols: cols, Rows: make([][]Value, len(t.Rows))}
	for r, row := range t.Rows {
		nt.Rows[r] = f(row)
	}
	if len(t.Rows) == 0 && t.empty != nil {
		nt.empty = f(t.empty)
	}
	return nt
}

// columnsArg reads an array of column names, each of which must exist
// in every table it is applied to (checked by the caller).
func columnsArg(args *record, def ...string) ([]string, error) {
	cols, err := argStrings(args, "columns", def)
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, invalidf("columns must not be empty")
	}
	return cols, nil
}

// colIndexes returns the indexes of cols in t; a missing one is an error
// naming it as what ("column", "pivot: row key column").
func colIndexes(t *Table, cols []string, what string) ([]int, error) {
	idx := make([]int, len(cols))
	for i, c := range cols {
		if idx[i] = t.idx(c); idx[i] < 0 {
			return nil, invalidf("%s %q not found", what, c)
		}
	}
	return idx, nil
}

// presentColumns returns the indexes of those of cols that t has.
func presentColumns(t *Table, cols []string) []int {
	var idx []int
	for _, c := range cols {
		if i := t.idx(c); i >= 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

// replaceColumn returns t's columns with column i changed.
func replaceColumn(t *Table, i int, c Column) []Column {
	cols := slices.Clone(t.Cols)
	cols[i] = c
	return cols
}

// addColumn returns a copy of t's columns that has one labelled label
// (appended, without a type, if t has none) and the index of that column.
func addColumn(t *Table, label string) ([]Column, int) {
	cols := slices.Clone(t.Cols)
	if i := t.idx(label); i >= 0 {
		return cols, i
	}
	return append(cols, Column{Label: label}), len(cols)
}

// withValue returns row widened to n values (the new ones null) with v
// at index i.
func withValue(row []Value, n, i int, v Value) []Value {
	nr := make([]Value, n)
	copy(nr, row)
	nr[i] = v
	return nr
}

// ---- duplicate, set, fill, timeShift ----

func bDuplicate(x *run, args *record, pipe *stream) (Value, error) {
	col, _, err := argKind(args, "column", KString, true)
	if err != nil {
		return Value{}, err
	}
	as, _, err := argKind(args, "as", KString, true)
	if err != nil {
		return Value{}, err
	}
	return mergedValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		ci := t.idx(col.S)
		if ci < 0 {
			return nil, invalidf("duplicate: column %q not found", col.S)
		}
		// The copy is never part of the group key; an existing column
		// named as is overwritten in place.
		cols, ai := addColumn(t, as.S)
		cols[ai] = Column{Label: as.S, Type: t.Cols[ci].Type}
		return mapRows(t, cols, func(row []Value) []Value { return withValue(row, len(cols), ai, row[ci]) }), nil
	}))
}

func bSet(x *run, args *record, pipe *stream) (Value, error) {
	key, _, err := argKind(args, "key", KString, true)
	if err != nil {
		return Value{}, err
	}
	val, _, err := argKind(args, "value", KString, true)
	if err != nil {
		return Value{}, err
	}
	return mergedValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		cols, ci := addColumn(t, key.S)
		cols[ci].Type = KString
		return mapRows(t, cols, func(row []Value) []Value { return withValue(row, len(cols), ci, val) }), nil
	}))
}

func bFill(x *run, args *record, pipe *stream) (Value, error) {
	column, err := stringArg(args, "column", "_value")
	if err != nil {
		return Value{}, err
	}
	usePrevious, err := boolArg(args, "usePrevious", false)
	if err != nil {
		return Value{}, err
	}
	value, hasValue := args.get("value")
	if hasValue == usePrevious {
		return Value{}, invalidf("fill: give either value or usePrevious: true")
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		ci := t.idx(column)
		if ci < 0 {
			return nil, invalidf("fill: column %q not found", column)
		}
		ct := t.Cols[ci].Type
		if hasValue && ct != KNull && value.Kind != ct {
			return nil, invalidf("fill: value has type %s but column %q holds %s values", value.Kind, column, ct)
		}
		nt := &Table{Cols: t.Cols, Rows: make([][]Value, len(t.Rows)), empty: t.empty}
		if hasValue && ct == KNull {
			nt.Cols = replaceColumn(t, ci, Column{Label: column, Type: value.Kind, Key: t.Cols[ci].Key})
		}
		var prev Value
		for r, row := range t.Rows {
			v := row[ci]
			if v.Kind == KNull {
				if usePrevious {
					v = prev
				} else {
					v = value
				}
			} else {
				prev = v
			}
			if v != row[ci] {
				row = slices.Clone(row)
				row[ci] = v
			}
			nt.Rows[r] = row
		}
		return nt, nil
	}))
}

func bTimeShift(x *run, args *record, pipe *stream) (Value, error) {
	d, _, err := argKind(args, "duration", KDuration, true)
	if err != nil {
		return Value{}, err
	}
	cols, err := columnsArg(args, "_start", "_stop", "_time")
	if err != nil {
		return Value{}, err
	}
	shift := func(v Value) Value {
		if v.Kind != KTime {
			return v
		}
		return addDuration(v.I, d, false)
	}
	out, err := x.eachTable(pipe, func(t *Table) (*Table, error) {
		idx := presentColumns(t, cols)
		return mapRows(t, t.Cols, func(row []Value) []Value {
			nr := slices.Clone(row)
			for _, i := range idx {
				nr[i] = shift(nr[i])
			}
			return nr
		}), nil
	})
	if err != nil {
		return Value{}, err
	}
	s := &stream{tables: out}
	if start, stop, ok := pipe.bounds(); ok {
		s.start, s.stop, s.bounded = shift(Time(start)).I, shift(Time(stop)).I, true
	}
	return streamValue(s), nil
}

// ---- difference, derivative, cumulativeSum, increase ----

func numericColumn(t *Table, i int, fn string) error {
	switch t.Cols[i].Type {
	case KInt, KUint, KFloat, KNull:
		return nil
	}
	return invalidf("%s: column %q holds %s values, not numbers", fn, t.Cols[i].Label, t.Cols[i].Type)
}

// numericColumns returns the indexes of cols in t, which must all hold
// numbers.
func numericColumns(t *Table, cols []string, fn string) ([]int, error) {
	idx, err := colIndexes(t, cols, "column")
	if err != nil {
		return nil, err
	}
	for _, i := range idx {
		if err := numericColumn(t, i, fn); err != nil {
			return nil, err
		}
	}
	return idx, nil
}

func bDifference(x *run, args *record, pipe *stream) (Value, error) {
	var opt [3]bool
	for i, name := range []string{"nonNegative", "keepFirst", "initialZero"} {
		var err error
		if opt[i], err = boolArg(args, name, false); err != nil {
			return Value{}, err
		}
	}
	cols, err := columnsArg(args, "_value")
	if err != nil {
		return Value{}, err
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		return difference(t, cols, opt[0], opt[1], opt[2])
	}))
}

// difference subtracts each value from the last non-null one before it
// (uint differences become ints). A negative difference is null with
// nonNegative, or the value itself (a counter reset to zero) with
// initialZero too. The first row is dropped unless keepFirst.
func difference(t *Table, cols []string, nonNegative, keepFirst, initialZero bool) (*Table, error) {
	idx, err := numericColumns(t, cols, "difference")
	if err != nil {
		return nil, err
	}
	nt := &Table{Cols: slices.Clone(t.Cols), empty: t.empty}
	for _, i := range idx {
		if nt.Cols[i].Type == KUint {
			nt.Cols[i].Type = KInt
		}
	}
	prev := make([]Value, len(idx))
	for r, row := range t.Rows {
		nr := slices.Clone(row)
		for n, i := range idx {
			cur := row[i]
			var d Value
			if cur.Kind != KNull && prev[n].Kind != KNull {
				d = subtract(cur, prev[n])
				if nonNegative && isNegative(d) {
					d = Value{}
					if initialZero && !isNegative(toDiffKind(cur)) {
						d = toDiffKind(cur)
					}
				}
			}
			if cur.Kind != KNull {
				prev[n] = cur
			}
			nr[i] = d
		}
		if r > 0 || keepFirst {
			nt.Rows = append(nt.Rows, nr)
		}
	}
	return nt, nil
}

func toDiffKind(v Value) Value {
	if v.Kind == KUint {
		return Int(v.I)
	}
	return v
}

func subtract(a, b Value) Value {
	switch a.Kind {
	case KFloat:
		return Float(a.F() - b.F())
	case KUint:
		return Int(int64(uint64(a.I) - uint64(b.I)))
	}
	return Int(a.I - b.I)
}

func isNegative(v Value) bool {
	switch v.Kind {
	case KInt:
		return v.I < 0
	case KFloat:
		return v.F() < 0
	}
	return false
}

func bDerivative(x *run, args *record, pipe *stream) (Value, error) {
	unit, err := durationArg(args, "unit", int64(time.Second), false)
	if err != nil {
		return Value{}, err
	}
	if unit <= 0 {
		return Value{}, invalidf("derivative: unit must be positive")
	}
	nonNegative, err := boolArg(args, "nonNegative", false)
	if err != nil {
		return Value{}, err
	}
	initialZero, err := boolArg(args, "initialZero", false)
	if err != nil {
		return Value{}, err
	}
	timeCol, err := stringArg(args, "timeColumn", "_time")
	if err != nil {
		return Value{}, err
	}
	cols, err := columnsArg(args, "_value")
	if err != nil {
		return Value{}, err
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		idx, err := colIndexes(t, cols, "column")
		if err != nil {
			return nil, err
		}
		ti := t.idx(timeCol)
		if ti < 0 {
			return nil, invalidf("derivative: column %q not found", timeCol)
		}
		nt := &Table{Cols: slices.Clone(t.Cols), empty: t.empty}
		for _, i := range idx {
			if err := numericColumn(t, i, "derivative"); err != nil {
				return nil, err
			}
			nt.Cols[i].Type = KFloat
		}
		type last struct {
			v   float64
			t   int64
			set bool
		}
		prev := make([]last, len(idx))
		lastTime, first := int64(0), true
		for _, row := range t.Rows {
			tv := row[ti]
			if tv.Kind != KTime {
				continue
			}
			if !first && tv.I <= lastTime {
				continue // rows at the same time (or out of order) have no rate
			}
			nr := slices.Clone(row)
			for n, i := range idx {
				f, ok := row[i].num()
				nr[i] = Value{}
				if !ok {
					continue
				}
				if p := prev[n]; p.set {
					rate := (f - p.v) / (float64(tv.I-p.t) / float64(unit))
					if nonNegative && rate < 0 {
						if initialZero && f >= 0 {
							nr[i] = Float(f / (float64(tv.I-p.t) / float64(unit)))
						}
					} else {
						nr[i] = Float(rate)
					}
				}
				prev[n] = last{v: f, t: tv.I, set: true}
			}
			if !first {
				nt.Rows = append(nt.Rows, nr)
			}
			lastTime, first = tv.I, false
		}
		return nt, nil
	}))
}

func bCumulativeSum(x *run, args *record, pipe *stream) (Value, error) {
	cols, err := columnsArg(args, "_value")
	if err != nil {
		return Value{}, err
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) { return cumulativeSum(t, cols) }))
}

// cumulativeSum replaces each value by the sum of the column so far
// (null values stay null and add nothing).
func cumulativeSum(t *Table, cols []string) (*Table, error) {
	idx, err := numericColumns(t, cols, "cumulativeSum")
	if err != nil {
		return nil, err
	}
	nt := &Table{Cols: t.Cols, Rows: make([][]Value, len(t.Rows)), empty: t.empty}
	sums := make([]Value, len(idx))
	for r, row := range t.Rows {
		nr := slices.Clone(row)
		for n, i := range idx {
			v := row[i]
			if v.Kind == KNull {
				continue
			}
			if sums[n].Kind == KNull {
				sums[n] = v
			} else if s, ok := arith("+", sums[n], v); ok {
				sums[n] = s
			}
			nr[i] = sums[n]
		}
		nt.Rows[r] = nr
	}
	return nt, nil
}

func bIncrease(x *run, args *record, pipe *stream) (Value, error) {
	cols, err := columnsArg(args, "_value")
	if err != nil {
		return Value{}, err
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		d, err := difference(t, cols, true, false, true)
		if err != nil {
			return nil, err
		}
		return cumulativeSum(d, cols)
	}))
}

// ---- movingAverage, elapsed ----

func bMovingAverage(x *run, args *record, pipe *stream) (Value, error) {
	nv, _, err := argKind(args, "n", KInt, true)
	if err != nil {
		return Value{}, err
	}
	if nv.I <= 0 {
		return Value{}, invalidf("movingAverage: n must be positive")
	}
	n := int(min(nv.I, 1<<30))
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		vi := t.idx("_value")
		if vi < 0 {
			return nil, invalidf("movingAverage: table has no _value column")
		}
		if err := numericColumn(t, vi, "movingAverage"); err != nil {
			return nil, err
		}
		nt := &Table{Cols: replaceColumn(t, vi, Column{Label: "_value", Type: KFloat, Key: t.Cols[vi].Key}), empty: t.empty}
		mean := func(rows [][]Value) Value {
			sum, cnt := 0.0, 0
			for _, r := range rows {
				if f, ok := r[vi].num(); ok {
					sum += f
					cnt++
				}
			}
			if cnt == 0 {
				return Value{}
			}
			return Float(sum / float64(cnt))
		}
		emit := func(row []Value, v Value) {
			nr := slices.Clone(row)
			nr[vi] = v
			nt.Rows = append(nt.Rows, nr)
		}
		if len(t.Rows) > 0 && len(t.Rows) < n {
			emit(t.Rows[len(t.Rows)-1], mean(t.Rows))
			return nt, nil
		}
		for i := n - 1; i < len(t.Rows); i++ {
			emit(t.Rows[i], mean(t.Rows[i-n+1:i+1]))
		}
		return nt, nil
	}))
}

func bElapsed(x *run, args *record, pipe *stream) (Value, error) {
	unit, err := durationArg(args, "unit", int64(time.Second), false)
	if err != nil {
		return Value{}, err
	}
	if unit <= 0 {
		return Value{}, invalidf("elapsed: unit must be positive")
	}
	timeCol, err := stringArg(args, "timeColumn", "_time")
	if err != nil {
		return Value{}, err
	}
	name, err := stringArg(args, "columnName", "elapsed")
	if err != nil {
		return Value{}, err
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		ti := t.idx(timeCol)
		if ti < 0 {
			return nil, invalidf("elapsed: column %q not found", timeCol)
		}
		nt := &Table{Cols: append(slices.Clone(t.Cols), Column{Label: name, Type: KInt})}
		var prev Value
		for r, row := range t.Rows {
			tv := row[ti]
			if tv.Kind != KTime {
				return nil, invalidf("elapsed: %s must not be null", timeCol)
			}
			if r > 0 {
				nt.Rows = append(nt.Rows, append(slices.Clone(row), Int((tv.I-prev.I)/unit)))
			}
			prev = tv
		}
		return nt, nil
	}))
}

// ---- distinct, unique, top, bottom, tail ----

type valueKey struct {
	kind Kind
	i    int64
	s    string
}

func keyOf(v Value) valueKey { return valueKey{v.Kind, v.I, v.S} }

func bDistinct(x *run, args *record, pipe *stream) (Value, error) {
	column, err := stringArg(args, "column", "_value")
	if err != nil {
		return Value{}, err
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		ci := t.idx(column)
		if ci < 0 {
			return nil, invalidf("distinct: column %q not found", column)
		}
		// The output holds the group key and the distinct values in _value.
		cols, key := keyColumns(t, t.idx("_value"))
		nt := &Table{Cols: append(cols, Column{Label: "_value", Type: t.Cols[ci].Type})}
		seen := map[valueKey]bool{}
		for _, row := range t.Rows {
			v := row[ci]
			if seen[keyOf(v)] {
				continue
			}
			seen[keyOf(v)] = true
			nt.Rows = append(nt.Rows, append(slices.Clone(key), v))
		}
		return nt, nil
	}))
}

func bUnique(x *run, args *record, pipe *stream) (Value, error) {
	column, err := stringArg(args, "column", "_value")
	if err != nil {
		return Value{}, err
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		ci := t.idx(column)
		if ci < 0 {
			return nil, invalidf("unique: column %q not found", column)
		}
		nt := &Table{Cols: t.Cols}
		seen := map[valueKey]bool{}
		for _, row := range t.Rows {
			if k := keyOf(row[ci]); !seen[k] {
				seen[k] = true
				nt.Rows = append(nt.Rows, row)
			}
		}
		return nt, nil
	}))
}

// sortRows orders rows by the given columns (nulls first), stably.
func sortRows(rows [][]Value, idx []int, desc bool) {
	slices.SortStableFunc(rows, func(a, b []Value) int {
		for _, j := range idx {
			c, ok := compare(a[j], b[j])
			if !ok { // nulls first
				c = cmp.Compare(boolInt(a[j].Kind != KNull), boolInt(b[j].Kind != KNull))
			}
			if c != 0 {
				if desc {
					return -c
				}
				return c
			}
		}
		return 0
	})
}

func topBottom(top bool) builtinFn {
	return func(x *run, args *record, pipe *stream) (Value, error) {
		n, _, err := argKind(args, "n", KInt, true)
		if err != nil {
			return Value{}, err
		}
		if n.I < 0 {
			return Value{}, invalidf("n must not be negative")
		}
		cols, err := columnsArg(args, "_value")
		if err != nil {
			return Value{}, err
		}
		return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
			idx, err := colIndexes(t, cols, "column")
			if err != nil {
				return nil, err
			}
			rows := slices.Clone(t.Rows)
			sortRows(rows, idx, top)
			return &Table{Cols: t.Cols, Rows: rows[:min(int(min(n.I, 1<<40)), len(rows))]}, nil
		}))
	}
}

func bTail(x *run, args *record, pipe *stream) (Value, error) {
	n, off, err := countArgs(args, "tail")
	if err != nil {
		return Value{}, err
	}
	return tablesValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		hi := max(len(t.Rows)-off, 0)
		lo := max(hi-n, 0)
		return &Table{Cols: t.Cols, Rows: t.Rows[lo:hi]}, nil
	}))
}

// ---- union, join, reduce ----

func bUnion(x *run, args *record, _ *stream) (Value, error) {
	v, _, err := argKind(args, "tables", KArray, true)
	if err != nil {
		return Value{}, err
	}
	if len(v.x.arr) == 0 {
		return Value{}, invalidf("union: tables must list at least one stream")
	}
	out := &stream{}
	var all []*Table
	for _, e := range v.x.arr {
		if e.Kind != KStream {
			return Value{}, invalidf("union: tables must be an array of table streams, found a %s", e.Kind)
		}
		ts, err := x.materialize(e.x.st)
		if err != nil {
			return Value{}, err
		}
		all = append(all, ts...)
		inheritBounds(out, e.x.st)
	}
	out.tables = merge(all)
	return streamValue(out), nil
}

// bJoin is the classic inner join of two streams on equal values of the
// on columns (nulls never match). Other columns present on both sides are
// renamed <column>_<name of the stream>; the group key is the union of
// both sides' keys.
func bJoin(x *run, args *record, _ *stream) (Value, error) {
	tv, _, err := argKind(args, "tables", KRecord, true)
	if err != nil {
		return Value{}, err
	}
	if len(tv.x.rec.keys) != 2 {
		return Value{}, invalidf("join: tables must be a record of exactly two streams, like {a: s1, b: s2}")
	}
	on, err := argStrings(args, "on", nil)
	if err != nil {
		return Value{}, err
	}
	if len(on) == 0 {
		return Value{}, invalidf("join: on must name at least one column")
	}
	if m, err := stringArg(args, "method", "inner"); err != nil {
		return Value{}, err
	} else if m != "inner" {
		return Value{}, invalidf("join: method %q is not supported (only inner)", m)
	}
	names := tv.x.rec.keys
	var sides [2][]*Table
	out := &stream{}
	for i, n := range names {
		s := tv.x.rec.vals[n]
		if s.Kind != KStream {
			return Value{}, invalidf("join: tables.%s must be a table stream, found a %s", n, s.Kind)
		}
		if sides[i], err = x.materialize(s.x.st); err != nil {
			return Value{}, err
		}
		inheritBounds(out, s.x.st)
	}
	// Schemas: the union of each side's columns.
	var schema [2][]Column
	for i := range sides {
		for _, t := range sides[i] {
			for _, c := range t.Cols {
				if j := slices.IndexFunc(schema[i], func(s Column) bool { return s.Label == c.Label }); j < 0 {
					schema[i] = append(schema[i], c)
				} else if schema[i][j].Type == KNull {
					schema[i][j].Type = c.Type
				}
			}
		}
	}
	has := func(side int, label string) bool {
		return slices.ContainsFunc(schema[side], func(c Column) bool { return c.Label == label })
	}
	for _, c := range on {
		for i := range sides {
			if len(sides[i]) > 0 && !has(i, c) {
				return Value{}, invalidf("join: column %q is not in tables.%s", c, names[i])
			}
		}
	}
	// Output columns, sorted by label; src[i] says where each comes from.
	type origin struct {
		side  int
		label string
	}
	var cols []Column
	var src []origin
	for i := range sides {
		for _, c := range schema[i] {
			label := c.Label
			if slices.Contains(on, label) {
				if i == 1 {
					if j := slices.IndexFunc(cols, func(o Column) bool { return o.Label == label }); j >= 0 {
						cols[j].Key = cols[j].Key || c.Key
					}
					continue
				}
			} else if has(1-i, label) {
				label += "_" + names[i]
			}
			cols = append(cols, Column{Label: label, Type: c.Type, Key: c.Key})
			src = append(src, origin{i, c.Label})
		}
	}
	order := make([]int, len(cols))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(cols[a].Label, cols[b].Label) })
	sorted := make([]Column, len(cols))
	for i, j := range order {
		sorted[i] = cols[j]
	}
	// Index the right side by its on values.
	type ref struct {
		t   *Table
		row []Value
	}
	joinKey := func(t *Table, row []Value) (string, bool) {
		var b strings.Builder
		for _, c := range on {
			v := row[t.idx(c)]
			if v.Kind == KNull {
				return "", false
			}
			writeKeyValue(&b, v)
		}
		return b.String(), true
	}
	right := map[string][]ref{}
	for _, t := range sides[1] {
		for _, row := range t.Rows {
			if k, ok := joinKey(t, row); ok {
				right[k] = append(right[k], ref{t, row})
			}
		}
	}
	var rows [][]Value
	for _, lt := range sides[0] {
		for _, lrow := range lt.Rows {
			k, ok := joinKey(lt, lrow)
			if !ok {
				continue
			}
			for _, r := range right[k] {
				if err := x.take(len(sorted)); err != nil {
					return Value{}, err
				}
				nr := make([]Value, len(sorted))
				for i, j := range order {
					o := src[j]
					t, row := lt, lrow
					if o.side == 1 {
						t, row = r.t, r.row
					}
					if ci := t.idx(o.label); ci >= 0 {
						nr[i] = row[ci]
					}
				}
				rows = append(rows, nr)
			}
		}
	}
	out.tables = regroup(sorted, rows)
	return streamValue(out), nil
}

// regroup splits rows of one schema into tables by their group key values.
func regroup(cols []Column, rows [][]Value) []*Table {
	var tables []*Table
	byKey := map[string]*Table{}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range cols {
			if c.Key {
				writeKeyValue(&b, row[i])
			}
		}
		t := byKey[b.String()]
		if t == nil {
			t = &Table{Cols: cols}
			byKey[b.String()] = t
			tables = append(tables, t)
		}
		t.Rows = append(t.Rows, row)
	}
	return merge(tables)
}

// rowRecord builds the record of one row.
func rowRecord(t *Table, row []Value) Value {
	r := newRecord()
	for i, c := range t.Cols {
		r.set(c.Label, row[i])
	}
	return recordValue(r)
}

func bReduce(x *run, args *record, pipe *stream) (Value, error) {
	fv := argOr(args, "fn", Value{})
	if fv.Kind != KFunc || fv.x.fn.arrow == nil {
		return Value{}, invalidf("reduce: fn must be a function like (r, accumulator) => ({...})")
	}
	f := fv.x.fn
	for _, p := range []string{"r", "accumulator"} {
		if !slices.ContainsFunc(f.arrow.Params, func(q Property) bool { return q.Key == p }) {
			return Value{}, invalidf("reduce: fn must take the parameters r and accumulator")
		}
	}
	identity, _, err := argKind(args, "identity", KRecord, true)
	if err != nil {
		return Value{}, err
	}
	return mergedValue(x.eachTable(pipe, func(t *Table) (*Table, error) {
		acc := identity
		for _, row := range t.Rows {
			a := newRecord()
			a.set("r", rowRecord(t, row))
			a.set("accumulator", acc)
			v, err := x.apply(f, a, nil)
			if err != nil {
				return nil, err
			}
			if v.Kind != KRecord {
				return nil, invalidf("reduce: fn must return a record, got %s", v.Kind)
			}
			acc = v
		}
		// The output: the group key (values overwritten by the
		// accumulator's fields of the same name) and the other fields.
		rec := acc.x.rec
		cols, row := keyColumns(t, -1)
		for i, c := range cols {
			if av, ok := rec.get(c.Label); ok {
				row[i], cols[i].Type = av, av.Kind
			}
		}
		nt := &Table{Cols: cols}
		for _, k := range rec.keys {
			if nt.idx(k) >= 0 {
				continue
			}
			v := rec.vals[k]
			typ := v.Kind
			if typ == KNull {
				if iv, ok := identity.x.rec.get(k); ok {
					typ = iv.Kind
				}
			}
			nt.Cols = append(nt.Cols, Column{Label: k, Type: typ})
			row = append(row, v)
		}
		nt.Rows = [][]Value{row}
		return nt, nil
	}))
}
