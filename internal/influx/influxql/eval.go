package influxql

import (
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// Values are tsdb.Values; the zero Value is SQL-style null.
var null tsdb.Value

func isNull(v tsdb.Value) bool { return v.Type() == 0 }

func truthy(v tsdb.Value) bool {
	b, ok := v.Bool()
	return ok && b
}

func isNumeric(v tsdb.Value) bool {
	switch v.Type() {
	case tsdb.Float, tsdb.Integer, tsdb.Unsigned:
		return true
	}
	return false
}

// arith applies + - * / % following InfluxQL: integers stay integers for
// + - * %, division yields a float, and division by zero yields 0.
// Anything non-numeric yields null.
func arith(op string, a, b tsdb.Value) tsdb.Value {
	if !isNumeric(a) || !isNumeric(b) {
		return null
	}
	if a.Type() == tsdb.Integer && b.Type() == tsdb.Integer && op != "/" {
		x, _ := a.Int()
		y, _ := b.Int()
		switch op {
		case "+":
			return tsdb.IntValue(x + y)
		case "-":
			return tsdb.IntValue(x - y)
		case "*":
			return tsdb.IntValue(x * y)
		case "%":
			if y == 0 {
				return tsdb.IntValue(0)
			}
			return tsdb.IntValue(x % y)
		}
	}
	if a.Type() == tsdb.Unsigned && b.Type() == tsdb.Unsigned && op != "/" {
		x, _ := a.Uint()
		y, _ := b.Uint()
		switch op {
		case "+":
			return tsdb.UintValue(x + y)
		case "-":
			return tsdb.UintValue(x - y)
		case "*":
			return tsdb.UintValue(x * y)
		case "%":
			if y == 0 {
				return tsdb.UintValue(0)
			}
			return tsdb.UintValue(x % y)
		}
	}
	x, _ := a.Float()
	y, _ := b.Float()
	switch op {
	case "+":
		return tsdb.FloatValue(x + y)
	case "-":
		return tsdb.FloatValue(x - y)
	case "*":
		return tsdb.FloatValue(x * y)
	case "/":
		if y == 0 {
			return tsdb.FloatValue(0)
		}
		return tsdb.FloatValue(x / y)
	case "%":
		if y == 0 {
			return tsdb.FloatValue(0)
		}
		return tsdb.FloatValue(math.Mod(x, y))
	}
	return null
}

// compare applies a comparison operator; null or mismatched types are false.
func compare(op string, a, b tsdb.Value) bool {
	if isNull(a) || isNull(b) {
		return false
	}
	var c int
	switch {
	case isNumeric(a) && isNumeric(b):
		if a.Type() == tsdb.Integer && b.Type() == tsdb.Integer {
			x, _ := a.Int()
			y, _ := b.Int()
			c = cmpOrdered(x, y)
		} else {
			x, _ := a.Float()
			y, _ := b.Float()
			if math.IsNaN(x) || math.IsNaN(y) {
				return op == "!="
			}
			c = cmpOrdered(x, y)
		}
	case a.Type() == tsdb.String && b.Type() == tsdb.String:
		x, _ := a.Str()
		y, _ := b.Str()
		c = strings.Compare(x, y)
	case a.Type() == tsdb.Boolean && b.Type() == tsdb.Boolean:
		x, _ := a.Bool()
		y, _ := b.Bool()
		if op != "=" && op != "!=" {
			return false
		}
		if x == y {
			c = 0
		} else {
			c = 1
		}
	default:
		return false
	}
	switch op {
	case "=":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return false
}

func cmpOrdered[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func regexMatch(v tsdb.Value, re *regexp.Regexp) (bool, bool) {
	s, ok := v.Str()
	if !ok {
		return false, false
	}
	return re.MatchString(s), true
}

// mathFn applies a one-argument math function.
func mathFn(name string, v tsdb.Value) tsdb.Value {
	if !isNumeric(v) {
		return null
	}
	if v.Type() != tsdb.Float {
		switch name {
		case "floor", "ceil", "round":
			return v
		case "abs":
			if i, ok := v.Int(); ok {
				if i < 0 {
					i = -i
				}
				return tsdb.IntValue(i)
			}
			return v
		}
	}
	x, _ := v.Float()
	var r float64
	switch name {
	case "floor":
		r = math.Floor(x)
	case "ceil":
		r = math.Ceil(x)
	case "round":
		r = math.Round(x)
	case "abs":
		r = math.Abs(x)
	case "sqrt":
		r = math.Sqrt(x)
	case "ln":
		r = math.Log(x)
	case "log2":
		r = math.Log2(x)
	case "log10":
		r = math.Log10(x)
	case "exp":
		r = math.Exp(x)
	case "sin":
		r = math.Sin(x)
	case "cos":
		r = math.Cos(x)
	case "tan":
		r = math.Tan(x)
	default:
		return null
	}
	return tsdb.FloatValue(r)
}

var mathFns1 = map[string]bool{"floor": true, "ceil": true, "round": true, "abs": true, "sqrt": true,
	"ln": true, "log2": true, "log10": true, "exp": true, "sin": true, "cos": true, "tan": true}

var mathFns2 = map[string]bool{"pow": true, "log": true, "atan2": true}

func mathFn2(name string, a, b tsdb.Value) tsdb.Value {
	if !isNumeric(a) || !isNumeric(b) {
		return null
	}
	x, _ := a.Float()
	y, _ := b.Float()
	switch name {
	case "pow":
		return tsdb.FloatValue(math.Pow(x, y))
	case "log":
		return tsdb.FloatValue(math.Log(x) / math.Log(y))
	case "atan2":
		return tsdb.FloatValue(math.Atan2(x, y))
	}
	return null
}

// aggregate and selector functions.
var aggFns = map[string]bool{"mean": true, "sum": true, "min": true, "max": true, "count": true,
	"first": true, "last": true, "median": true, "percentile": true, "spread": true, "stddev": true,
	"mode": true, "distinct": true, "top": true, "bottom": true, "integral": true}

// selectors return one of the input points, so a lone selector keeps that
// point's time.
var selectorFns = map[string]bool{"min": true, "max": true, "first": true, "last": true, "percentile": true}

// transforms map a series of values to another, row by row.
var transformFns = map[string]bool{"difference": true, "non_negative_difference": true, "elapsed": true,
	"derivative": true, "non_negative_derivative": true, "cumulative_sum": true, "moving_average": true}

// acc accumulates one aggregate over one window.
type acc struct {
	n             int64 // non-null values
	nn            int64 // numeric values
	sumF          float64
	sumI          int64
	sumU          uint64
	typ           tsdb.ValueType // type of the first numeric value seen (sum keeps integers)
	mixed         bool
	min, max      tsdb.Value
	minT, maxT    int64
	first, last   tsdb.Value
	firstT, lastT int64
	vals          []float64 // median, percentile, stddev, mode
	keepVals      bool
	// aux: the auxiliary values of the selected point (aux mode).
	aux []tsdb.Value
	// pts: top/bottom candidates, distinct values, or percentile points
	// (when the point's time or other columns are needed).
	pts []selPoint
	// topKey: top/bottom with tag arguments, tag values -> index in pts.
	topKey map[string]int
	// dset: distinct values seen -> index in pts (-1 for count(distinct)).
	dset map[tsdb.ValueKey]int
	// integ: integral() of the window, set when the group is finished.
	integ   float64
	integOK bool
}

// add folds one raw value at time t.
func (a *acc) add(t int64, v tsdb.Value) {
	if isNull(v) {
		return
	}
	a.n++
	if a.n == 1 || t < a.firstT {
		a.first, a.firstT = v, t
	}
	if a.n == 1 || t >= a.lastT {
		a.last, a.lastT = v, t
	}
	if !isNumeric(v) {
		return
	}
	a.addNumeric(t, v)
	if a.keepVals {
		f, _ := v.Float()
		a.vals = append(a.vals, f)
	}
}

func (a *acc) addNumeric(t int64, v tsdb.Value) {
	a.nn++
	if a.typ == 0 {
		a.typ = v.Type()
	} else if a.typ != v.Type() {
		a.mixed = true
	}
	switch v.Type() {
	case tsdb.Integer:
		i, _ := v.Int()
		a.sumI += i
		a.sumF += float64(i)
	case tsdb.Unsigned:
		u, _ := v.Uint()
		a.sumU += u
		a.sumF += float64(u)
	default:
		f, _ := v.Float()
		a.sumF += f
	}
	if isNull(a.min) || compare("<", v, a.min) || (compare("=", v, a.min) && t < a.minT) {
		a.min, a.minT = v, t
	}
	if isNull(a.max) || compare(">", v, a.max) || (compare("=", v, a.max) && t < a.maxT) {
		a.max, a.maxT = v, t
	}
}

// addSum folds a pre-aggregated sum (typed) without counting values.
func (a *acc) addSum(sum tsdb.Value) {
	if isNull(sum) {
		return
	}
	if a.typ == 0 {
		a.typ = sum.Type()
	} else if a.typ != sum.Type() {
		a.mixed = true
	}
	switch sum.Type() {
	case tsdb.Integer:
		i, _ := sum.Int()
		a.sumI += i
		a.sumF += float64(i)
	case tsdb.Unsigned:
		u, _ := sum.Uint()
		a.sumU += u
		a.sumF += float64(u)
	default:
		f, _ := sum.Float()
		a.sumF += f
	}
}

// addCount folds a pre-aggregated count of (numeric) values.
func (a *acc) addCount(n int64) {
	a.n += n
	a.nn += n
}

// mergeMinMax folds a pre-aggregated min or max.
func (a *acc) mergeMinMax(v tsdb.Value) {
	if isNull(v) {
		return
	}
	if a.typ == 0 {
		a.typ = v.Type()
	}
	if isNull(a.min) || compare("<", v, a.min) {
		a.min = v
	}
	if isNull(a.max) || compare(">", v, a.max) {
		a.max = v
	}
	a.n++
	a.nn++
}

// result returns the aggregate's value and the time of the selected point
// (selectors only; ok false when the window is empty).
func (a *acc) result(fn string, param float64) (tsdb.Value, int64, bool) {
	switch fn {
	case "count":
		if a.n == 0 {
			return null, 0, false
		}
		return tsdb.IntValue(a.n), 0, true
	case "count_distinct":
		if a.n == 0 {
			return null, 0, false
		}
		return tsdb.IntValue(int64(len(a.dset))), 0, true
	case "integral":
		if !a.integOK {
			return null, 0, false
		}
		return tsdb.FloatValue(a.integ), 0, true
	}
	if a.n == 0 {
		return null, 0, false
	}
	switch fn {
	case "first":
		return a.first, a.firstT, true
	case "last":
		return a.last, a.lastT, true
	}
	if a.nn == 0 { // only non-numeric values
		return null, 0, false
	}
	switch fn {
	case "mean":
		return tsdb.FloatValue(a.sumF / float64(a.nn)), 0, true
	case "sum":
		switch {
		case a.typ == tsdb.Integer && !a.mixed:
			return tsdb.IntValue(a.sumI), 0, true
		case a.typ == tsdb.Unsigned && !a.mixed:
			return tsdb.UintValue(a.sumU), 0, true
		}
		return tsdb.FloatValue(a.sumF), 0, true
	case "min":
		return a.min, a.minT, true
	case "max":
		return a.max, a.maxT, true
	case "spread":
		return arith("-", a.max, a.min), 0, true
	case "median":
		return medianOf(a.vals)
	case "percentile":
		if len(a.pts) > 0 {
			s := a.sortedPts()
			if i, ok := percentileIndex(len(s), param); ok {
				return s[i].v, s[i].t, true
			}
			return null, 0, false
		}
		if len(a.vals) == 0 {
			return null, 0, false
		}
		s := slices.Clone(a.vals)
		slices.Sort(s)
		i := int(math.Floor(float64(len(s))*param/100.0+0.5)) - 1
		if i < 0 || i >= len(s) {
			return null, 0, false
		}
		return tsdb.FloatValue(s[i]), 0, true
	case "stddev":
		if len(a.vals) < 2 {
			return null, 0, false
		}
		mean := 0.0
		for _, x := range a.vals {
			mean += x
		}
		mean /= float64(len(a.vals))
		var ss float64
		for _, x := range a.vals {
			ss += (x - mean) * (x - mean)
		}
		return tsdb.FloatValue(math.Sqrt(ss / float64(len(a.vals)-1))), 0, true
	case "mode":
		if len(a.vals) == 0 {
			return null, 0, false
		}
		s := slices.Clone(a.vals)
		slices.Sort(s)
		best, bestN := s[0], 0
		for i := 0; i < len(s); {
			j := i
			for j < len(s) && s[j] == s[i] {
				j++
			}
			if j-i > bestN {
				best, bestN = s[i], j-i
			}
			i = j
		}
		return tsdb.FloatValue(best), 0, true
	}
	return null, 0, false
}

func medianOf(v []float64) (tsdb.Value, int64, bool) {
	if len(v) == 0 {
		return null, 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return tsdb.FloatValue(s[len(s)/2]), 0, true
	}
	return tsdb.FloatValue((s[len(s)/2-1] + s[len(s)/2]) / 2), 0, true
}

func needsVals(fn string) bool {
	switch fn {
	case "median", "percentile", "stddev", "mode":
		return true
	}
	return false
}
