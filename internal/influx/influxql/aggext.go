package influxql

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// This file holds the InfluxQL functions that do not fold into one value
// per window: the selectors top() and bottom() (several points per
// window, original timestamps), distinct() (several values per window),
// count(distinct()), integral() (a trapezium sum that interpolates across
// window boundaries), and selectors returning the selected point's other
// columns (SELECT max(temp), device FROM m).

// multiRowFns return several rows per window; each must be the only
// function call of its statement.
var multiRowFns = map[string]bool{"top": true, "bottom": true, "distinct": true}

// onlySelectorFns may be combined with bare fields and tags (auxiliary
// columns), which then take their values from the selected point.
var onlySelectorFns = map[string]bool{"first": true, "last": true, "min": true, "max": true,
	"percentile": true, "top": true, "bottom": true, "sample": true}

// selPoint is a point kept by a selector: time, value and (in aux mode)
// the values of the statement's auxiliary columns at that point.
type selPoint struct {
	t   int64
	v   tsdb.Value
	aux []tsdb.Value
}

// better reports whether a ranks before b for top() (bottom() when low):
// the larger (smaller) value, then the earlier time, as InfluxDB's
// TopReducer and BottomReducer.
func better(a, b *selPoint, low bool) bool {
	if !compare("=", a.v, b.v) {
		if low {
			return compare("<", a.v, b.v)
		}
		return compare(">", a.v, b.v)
	}
	return a.t < b.t
}

// selHeap keeps the best n points with the worst one at the root.
type selHeap struct {
	pts []selPoint
	low bool
}

func (h *selHeap) Len() int           { return len(h.pts) }
func (h *selHeap) Less(i, j int) bool { return better(&h.pts[j], &h.pts[i], h.low) }
func (h *selHeap) Swap(i, j int)      { h.pts[i], h.pts[j] = h.pts[j], h.pts[i] }
func (h *selHeap) Push(x any)         { h.pts = append(h.pts, x.(selPoint)) }
func (h *selHeap) Pop() any {
	p := h.pts[len(h.pts)-1]
	h.pts = h.pts[:len(h.pts)-1]
	return p
}

// addTop folds a point into a top()/bottom() window. With tag arguments
// (key is the point's tag values) each key keeps its best point and the n
// best keys win at the end, as InfluxDB's max()/min() per tag set followed
// by the top/bottom reducer.
func (a *acc) addTop(s *aggSlot, t int64, v tsdb.Value, key string, aux func() []tsdb.Value) {
	if !isNumeric(v) {
		return
	}
	a.n++
	low := s.fn == "bottom"
	p := selPoint{t: t, v: v}
	if len(s.tags) > 0 {
		if a.topKey == nil {
			a.topKey = map[string]int{}
		}
		if i, ok := a.topKey[key]; ok {
			if better(&p, &a.pts[i], low) {
				p.aux = aux()
				a.pts[i] = p
			}
			return
		}
		p.aux = aux()
		a.topKey[key] = len(a.pts)
		a.pts = append(a.pts, p)
		return
	}
	h := selHeap{pts: a.pts, low: low}
	switch {
	case len(h.pts) < s.n:
		p.aux = aux()
		heap.Push(&h, p)
	case better(&p, &h.pts[0], low):
		p.aux = aux()
		h.pts[0] = p
		heap.Fix(&h, 0)
	}
	a.pts = h.pts
}

// topResult returns the window's top()/bottom() points ordered by time
// (best first among equal times). Points chosen per tag set carry the
// window start when grouping by time, as InfluxDB's inner max()/min().
func (a *acc) topResult(s *aggSlot, winStart int64, grouped bool) []selPoint {
	low := s.fn == "bottom"
	pts := slices.Clone(a.pts)
	slices.SortStableFunc(pts, func(x, y selPoint) int {
		switch {
		case better(&x, &y, low):
			return -1
		case better(&y, &x, low):
			return 1
		}
		return 0
	})
	if len(pts) > s.n {
		pts = pts[:s.n]
	}
	if len(s.tags) > 0 && grouped {
		for i := range pts {
			pts[i].t = winStart
		}
	}
	slices.SortStableFunc(pts, func(x, y selPoint) int { return cmp.Compare(x.t, y.t) })
	return pts
}

// addDistinct folds a value into distinct() (keep: remember each value
// and its first time) or count(distinct()) (the set only).
func (a *acc) addDistinct(t int64, v tsdb.Value, keep bool) {
	if isNull(v) {
		return
	}
	a.n++
	if a.dset == nil {
		a.dset = map[tsdb.ValueKey]int{}
	}
	k := v.Key()
	if i, ok := a.dset[k]; ok {
		if keep && t < a.pts[i].t {
			a.pts[i].t = t
		}
		return
	}
	if !keep {
		a.dset[k] = -1
		return
	}
	a.dset[k] = len(a.pts)
	a.pts = append(a.pts, selPoint{t: t, v: v})
}

// distinctResult returns the window's distinct values in the order they
// first occur, all stamped with the window time.
func (a *acc) distinctResult(winTime int64) []selPoint {
	pts := slices.Clone(a.pts)
	slices.SortStableFunc(pts, func(x, y selPoint) int { return cmp.Compare(x.t, y.t) })
	for i := range pts {
		pts[i].t = winTime
	}
	return pts
}

// selects reports whether the raw point (t, v) becomes the point selected
// by fn in this window (checked before folding it).
func (a *acc) selects(fn string, t int64, v tsdb.Value) bool {
	if isNull(v) {
		return false
	}
	switch fn {
	case "first":
		return a.n == 0 || t < a.firstT
	case "last":
		return a.n == 0 || t >= a.lastT
	case "max":
		return isNumeric(v) && (isNull(a.max) || compare(">", v, a.max) || (compare("=", v, a.max) && t < a.maxT))
	case "min":
		return isNumeric(v) && (isNull(a.min) || compare("<", v, a.min) || (compare("=", v, a.min) && t < a.minT))
	}
	return false
}

// percentilePick returns the index in the value-sorted pts that
// percentile(p) selects, as InfluxDB: floor(n*p/100 + 0.5) - 1.
func percentileIndex(n int, p float64) (int, bool) {
	i := int(float64(n)*p/100.0+0.5) - 1
	return i, i >= 0 && i < n
}

// sortedPts returns the percentile points sorted by value (stable).
func (a *acc) sortedPts() []selPoint {
	s := slices.Clone(a.pts)
	slices.SortStableFunc(s, func(x, y selPoint) int {
		switch {
		case compare("<", x.v, y.v):
			return -1
		case compare(">", x.v, y.v):
			return 1
		}
		return 0
	})
	return s
}

// auxFor returns the auxiliary values of the point fn selected.
func (a *acc) auxFor(fn string, param float64) []tsdb.Value {
	if fn == "percentile" {
		s := a.sortedPts()
		if i, ok := percentileIndex(len(s), param); ok {
			return s[i].aux
		}
		return nil
	}
	return a.aux
}

func (pl *plan) evalAux(c *evalCtx) []tsdb.Value {
	if len(pl.auxEvals) == 0 {
		return nil
	}
	out := make([]tsdb.Value, len(pl.auxEvals))
	for i, ev := range pl.auxEvals {
		out[i] = ev(c)
	}
	return out
}

// keepPercentilePoints: percentile() keeps whole points (not just values)
// when it must return the selected point's time or other columns.
func (pl *plan) keepPercentilePoints() bool { return pl.selectorTime || pl.auxMode }

// outerAggCalls returns the aggregate calls of e that are not nested in
// another aggregate, and whether e refers to a field or tag outside them.
func outerAggCalls(e Expr) (calls []*Call, aux bool) {
	walk(e, func(x Expr) bool {
		switch x := x.(type) {
		case *Call:
			if aggFns[x.Name] {
				calls = append(calls, x)
				return false
			}
		case *VarRef:
			if !strings.EqualFold(x.Name, "time") {
				aux = true
			}
		}
		return true
	})
	return calls, aux
}

func unparen(e Expr) Expr {
	for {
		p, ok := e.(*ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// prepareCalls adds the tag columns of top(field, tag..., N) after it and
// applies InfluxDB's rules on combining functions with each other and
// with bare fields and tags; it sets aux mode when one selector is
// combined with other columns.
func (pl *plan) prepareCalls(sel []*Field) ([]*Field, error) {
	var out []*Field
	for _, f := range sel {
		out = append(out, f)
		c, ok := unparen(f.Expr).(*Call)
		if !ok || (c.Name != "top" && c.Name != "bottom") || len(c.Args) <= 2 {
			continue
		}
		for _, a := range c.Args[1 : len(c.Args)-1] {
			if v, ok := a.(*VarRef); ok {
				out = append(out, &Field{Expr: &VarRef{Name: v.Name, Type: "tag"}})
			}
		}
	}
	var calls []*Call
	aux := false
	for _, f := range out {
		cs, a := outerAggCalls(f.Expr)
		calls = append(calls, cs...)
		aux = aux || a
	}
	for _, c := range calls {
		if (c.Name == "top" || c.Name == "bottom") && len(calls) > 1 {
			return nil, fmt.Errorf("selector function %s() cannot be combined with other functions", c.Name)
		}
	}
	for _, c := range calls {
		if c.Name == "distinct" && (len(calls) != 1 || aux) {
			return nil, errors.New("aggregate function distinct() cannot be combined with other functions or fields")
		}
	}
	if aux && len(calls) > 0 {
		for _, c := range calls {
			if !onlySelectorFns[c.Name] {
				return nil, errors.New("mixing aggregate and non-aggregate queries is not supported")
			}
		}
		if len(calls) > 1 {
			return nil, errors.New("mixing multiple selector functions with tags or fields is not supported")
		}
		pl.auxMode = true
	}
	return out, nil
}

// compileAux compiles a bare field or tag of an aux-mode statement: its
// value is taken from the selected point.
func (pl *plan) compileAux(e *VarRef) (evalFn, bool, error) {
	ev, refsField, err := pl.compileExpr(e, false)
	if err != nil {
		return nil, false, err
	}
	idx := len(pl.auxEvals)
	pl.auxEvals = append(pl.auxEvals, ev)
	return func(c *evalCtx) tsdb.Value {
		if idx < len(c.aux) {
			return c.aux[idx]
		}
		return null
	}, refsField, nil
}

// compileExtAgg checks and sets up the slot of top, bottom, distinct,
// count(distinct()) and integral; ok is false for other functions.
func (pl *plan) compileExtAgg(c *Call, slot *aggSlot) (arg Expr, ok bool, err error) {
	switch c.Name {
	case "top", "bottom":
		if len(c.Args) < 2 {
			return nil, true, fmt.Errorf("invalid number of arguments for %s, expected at least 2, got %d", c.Name, len(c.Args))
		}
		last := c.Args[len(c.Args)-1]
		n, isInt := last.(*IntegerLit)
		if !isInt {
			return nil, true, fmt.Errorf("expected integer as last argument in %s(), found %s", c.Name, ExprString(last))
		}
		if n.Val <= 0 {
			return nil, true, fmt.Errorf("limit (%d) in %s function must be at least 1", n.Val, c.Name)
		}
		if n.Val > 1<<20 {
			return nil, true, fmt.Errorf("limit (%d) in %s function is too large", n.Val, c.Name)
		}
		if _, isRef := c.Args[0].(*VarRef); !isRef {
			return nil, true, fmt.Errorf("expected first argument to be a field in %s(), found %s", c.Name, ExprString(c.Args[0]))
		}
		for _, a := range c.Args[1 : len(c.Args)-1] {
			v, isRef := a.(*VarRef)
			if !isRef {
				return nil, true, fmt.Errorf("only fields or tags are allowed in %s(), found %s", c.Name, ExprString(a))
			}
			slot.tags = append(slot.tags, v.Name)
		}
		slot.n = int(n.Val)
		return c.Args[0], true, nil
	case "distinct":
		a, err := distinctArg(c)
		return a, true, err
	case "count":
		if len(c.Args) == 1 {
			if inner, isCall := unparen(c.Args[0]).(*Call); isCall && inner.Name == "distinct" {
				a, err := distinctArg(inner)
				slot.fn = "count_distinct"
				return a, true, err
			}
		}
	case "integral":
		if len(c.Args) < 1 || len(c.Args) > 2 {
			return nil, true, fmt.Errorf("invalid number of arguments for integral, expected at least 1 but no more than 2, got %d", len(c.Args))
		}
		slot.unit = int64(time.Second)
		if len(c.Args) == 2 {
			d, isDur := c.Args[1].(*DurationLit)
			if !isDur {
				return nil, true, errors.New("second argument must be a duration")
			}
			if d.Val <= 0 {
				return nil, true, fmt.Errorf("duration argument must be positive, got %s", formatDuration(d.Val))
			}
			slot.unit = int64(d.Val)
		}
		if _, isRef := c.Args[0].(*VarRef); !isRef {
			return nil, true, errors.New("expected field argument in integral()")
		}
		return c.Args[0], true, nil
	}
	return nil, false, nil
}

func distinctArg(c *Call) (Expr, error) {
	switch {
	case len(c.Args) == 0:
		return nil, errors.New("distinct function requires at least one argument")
	case len(c.Args) != 1:
		return nil, errors.New("distinct function can only have one argument")
	}
	if _, ok := c.Args[0].(*VarRef); !ok {
		return nil, errors.New("expected field argument in distinct()")
	}
	return c.Args[0], nil
}

// intPoint is one input point of integral().
type intPoint struct {
	t int64
	v float64
}

func (g *group) addIntegral(k, nslots int, t int64, v float64) {
	if g.integ == nil {
		g.integ = make([][]intPoint, nslots)
	}
	g.integ[k] = append(g.integ[k], intPoint{t, v})
}

// integralWindows runs InfluxDB's IntegralReducer over a group's points
// and returns the area per window start (0 without GROUP BY time). The
// points of all series of the group are merged by time; of points with
// the same time the last one counts. When a point falls past its window,
// the area up to the window end is interpolated linearly and the rest,
// up to the point, goes to the point's window.
func (pl *plan) integralWindows(pts []intPoint, unit int64) map[int64]float64 {
	out := map[int64]float64{}
	if len(pts) == 0 {
		return out
	}
	slices.SortStableFunc(pts, func(a, b intPoint) int { return cmp.Compare(a.t, b.t) })
	iv := int64(pl.st.Interval)
	bounds := func(t int64) (int64, int64) {
		if iv == 0 {
			return 0, 0
		}
		return windowBounds(t, iv, int64(pl.st.Offset), pl.loc)
	}
	u := float64(unit)
	prev := pts[0]
	wStart, wEnd := bounds(prev.t)
	sum := 0.0
	for _, p := range pts[1:] {
		if p.t == prev.t {
			prev = p
			continue
		}
		if iv > 0 && p.t >= wEnd {
			if prev.t != wEnd {
				value := prev.v + (p.v-prev.v)/float64(p.t-prev.t)*float64(wEnd-prev.t)
				sum += 0.5 * (value + prev.v) * float64(wEnd-prev.t) / u
				prev = intPoint{wEnd, value}
			}
			out[wStart] = sum
			wStart, wEnd = bounds(p.t)
			sum = 0
		}
		sum += 0.5 * (p.v + prev.v) * float64(p.t-prev.t) / u
		prev = p
	}
	if prev.t != wStart {
		out[wStart] = sum
	}
	return out
}

// finishMulti builds the rows of a top(), bottom() or distinct()
// statement: every window's points, windows without any left out (these
// functions are not filled).
func (e *Executor) finishMulti(pl *plan, g *group, tr timeRange) *Row {
	st := pl.st
	s := pl.aggs[0]
	keys := slices.Clone(g.winKey)
	slices.Sort(keys)
	var pts []selPoint
	for _, w := range keys {
		a := &g.accs[g.wins[w]][0]
		wt := w
		if st.Interval == 0 { // stamped like other aggregates: range start or epoch 0
			wt = tr.start
			if wt == fullRange.start {
				wt = 0
			}
		}
		if s.fn == "distinct" {
			pts = append(pts, a.distinctResult(wt)...)
		} else {
			pts = append(pts, a.topResult(s, wt, st.Interval > 0)...)
		}
	}
	if st.Desc {
		slices.Reverse(pts)
	}
	r := &Row{Name: g.name, Tags: g.tags, Time: make([]int64, len(pts)), Cols: make([][]tsdb.Value, len(pl.cols))}
	for ci := range r.Cols {
		r.Cols[ci] = make([]tsdb.Value, len(pts))
	}
	c := &evalCtx{gtags: g.tags, aggs: make([]tsdb.Value, 1)}
	for i, p := range pts {
		r.Time[i] = p.t
		c.aggs[0], c.aux = p.v, p.aux
		for ci, col := range pl.cols {
			r.Cols[ci][i] = col.eval(c)
		}
	}
	e.finishRows(pl, r, pl.hasTransform)
	return r
}
