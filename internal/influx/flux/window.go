package flux

import (
	"cmp"
	"math"
	"slices"
)

// infinity is the duration of inf: window(every: inf) puts every row of a
// table into one window spanning the range bounds.
const infinity = math.MaxInt64

// maxOverlap bounds how many windows one row may fall into (period/every).
const maxOverlap = 1000

// windowSpec is a fixed window: starts at offset + k*every, period long.
type windowSpec struct {
	every, period, offset int64
}

// index is the number of the window of every that contains t (window k
// starts at offset + k*every).
func (w windowSpec) index(t int64) int64 { return floorDiv(t-w.offset, w.every) }

// starts appends, in ascending order, the starts of the windows that
// contain t (start <= t < start+period).
func (w windowSpec) starts(t int64, out []int64) []int64 {
	k := w.index(t)
	first := len(out)
	for s := k*w.every + w.offset; s > t-w.period; s -= w.every {
		out = append(out, s)
		if len(out)-first > maxOverlap {
			break
		}
	}
	slices.Reverse(out[first:])
	return out
}

// overlapping returns the starts of the windows overlapping [lo, hi).
func (w windowSpec) overlapping(lo, hi int64) []int64 {
	var out []int64
	s := w.index(lo)*w.every + w.offset
	for s-w.every+w.period > lo {
		s -= w.every
	}
	for ; s < hi; s += w.every {
		if s+w.period > lo {
			out = append(out, s)
		}
		if s > math.MaxInt64-w.every {
			break
		}
	}
	return out
}

// durationArg reads a fixed (no calendar months) duration argument.
func durationArg(args *record, name string, def int64, required bool) (int64, error) {
	v, ok, err := argKind(args, name, KDuration, required)
	if err != nil || !ok {
		return def, err
	}
	if v.months() != 0 {
		return 0, invalidf("%s: calendar durations (mo, y) are not supported here", name)
	}
	return v.I, nil
}

func stringArg(args *record, name, def string) (string, error) {
	v, ok, err := argKind(args, name, KString, false)
	if err != nil || !ok {
		return def, err
	}
	return v.S, nil
}

func boolArg(args *record, name string, def bool) (bool, error) {
	v, ok, err := argKind(args, name, KBool, false)
	if err != nil || !ok {
		return def, err
	}
	return v.truthy(), nil
}

// windowArgs reads window's every, period and offset.
func windowArgs(args *record) (windowSpec, error) {
	every, err := durationArg(args, "every", 0, false)
	if err != nil {
		return windowSpec{}, err
	}
	period, err := durationArg(args, "period", every, false)
	if err != nil {
		return windowSpec{}, err
	}
	if _, ok := args.get("every"); !ok {
		every = period
	}
	offset, err := durationArg(args, "offset", 0, false)
	if err != nil {
		return windowSpec{}, err
	}
	if every <= 0 || period <= 0 {
		return windowSpec{}, invalidf("window: every (or period) must be a positive duration")
	}
	if every != infinity && period/every > maxOverlap {
		return windowSpec{}, invalidf("window: period may be at most %d times every", maxOverlap)
	}
	if every != infinity {
		offset %= every
	}
	return windowSpec{every: every, period: period, offset: offset}, nil
}

func bWindow(x *run, args *record, pipe *stream) (Value, error) {
	if err := needStream(pipe); err != nil {
		return Value{}, err
	}
	w, err := windowArgs(args)
	if err != nil {
		return Value{}, err
	}
	createEmpty, err := boolArg(args, "createEmpty", false)
	if err != nil {
		return Value{}, err
	}
	var cols [3]string
	for i, a := range [][2]string{{"timeColumn", "_time"}, {"startColumn", "_start"}, {"stopColumn", "_stop"}} {
		if cols[i], err = stringArg(args, a[0], a[1]); err != nil {
			return Value{}, err
		}
	}
	in, err := x.materialize(pipe)
	if err != nil {
		return Value{}, err
	}
	start, stop, ok := pipe.bounds()
	out, err := x.window(in, w, start, stop, ok, createEmpty, cols[0], cols[1], cols[2])
	if err != nil {
		return Value{}, err
	}
	return streamValue(&stream{tables: out}), nil
}

// window places each row into the tables of the windows its time falls
// in: _start and _stop become the window bounds, clipped to the range
// bounds (or the table's own _start/_stop when the stream has none), and
// join the group key.
func (x *run) window(in []*Table, w windowSpec, bs, be int64, bounded, createEmpty bool, timeCol, startCol, stopCol string) ([]*Table, error) {
	var out []*Table
	var starts []int64
	for _, t := range in {
		ti := t.idx(timeCol)
		if ti < 0 {
			return nil, invalidf("window: table has no %s column", timeCol)
		}
		lo, hi := bs, be
		if !bounded {
			var ok bool
			if lo, hi, ok = keyBounds(t, startCol, stopCol); !ok {
				lo, hi = math.MinInt64, math.MaxInt64
			}
		}
		// The output schema: the input's, with start and stop columns in the key.
		cols := slices.Clone(t.Cols)
		src := make([]int, 0, len(cols)+2) // output column -> input column (-1: new)
		for i := range cols {
			src = append(src, i)
		}
		si, pi := t.idx(startCol), t.idx(stopCol)
		if pi < 0 {
			cols = append([]Column{{Label: stopCol}}, cols...)
			src = append([]int{-1}, src...)
		}
		if si < 0 {
			cols = append([]Column{{Label: startCol}}, cols...)
			src = append([]int{-1}, src...)
		}
		var osi, opi int
		for i := range cols {
			switch cols[i].Label {
			case startCol:
				osi = i
			case stopCol:
				opi = i
			default:
				continue
			}
			cols[i].Key, cols[i].Type = true, KTime
		}
		project := func(row []Value, ws, we int64) []Value {
			nr := make([]Value, len(cols))
			for i, j := range src {
				if j >= 0 && row != nil {
					nr[i] = row[j]
				}
			}
			nr[osi], nr[opi] = Time(ws), Time(we)
			return nr
		}
		byBounds := map[[2]int64]*Table{}
		add := func(ws, we int64) *Table {
			nt := byBounds[[2]int64{ws, we}]
			if nt == nil {
				nt = &Table{Cols: cols}
				byBounds[[2]int64{ws, we}] = nt
			}
			return nt
		}
		for _, row := range t.Rows {
			tv := row[ti]
			if tv.Kind != KTime {
				continue
			}
			if w.every == infinity {
				nt := add(lo, hi) // every row, as Flux does, whatever its time
				nt.Rows = append(nt.Rows, project(row, lo, hi))
				continue
			}
			starts = w.starts(tv.I, starts[:0])
			for _, s := range starts {
				ws, we := max(s, lo), min(satAdd(s, w.period), hi)
				if ws >= we {
					continue
				}
				nt := add(ws, we)
				nt.Rows = append(nt.Rows, project(row, ws, we))
			}
		}
		if createEmpty && lo < hi {
			all := []int64{lo}
			if w.every != infinity {
				// Count before building: a tiny every over a long range
				// must hit the budget, not memory.
				n := uint64(hi-lo)/uint64(w.every) + uint64(w.period/w.every) + 2
				if err := x.take(int(min(n, 1<<40))); err != nil {
					return nil, err
				}
				if n > 1<<26 {
					return nil, invalidf("window: createEmpty would make %d windows per table", n)
				}
				all = w.overlapping(lo, hi)
			}
			for _, s := range all {
				ws, we := max(s, lo), min(satAdd(s, w.period), hi)
				if w.every == infinity {
					ws, we = lo, hi
				}
				if ws < we && byBounds[[2]int64{ws, we}] == nil {
					add(ws, we).empty = project(t.keyRow(), ws, we)
				}
			}
		}
		keys := make([][2]int64, 0, len(byBounds))
		for k := range byBounds {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b [2]int64) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
		for _, k := range keys {
			out = append(out, byBounds[k])
		}
	}
	return merge(out), nil
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
