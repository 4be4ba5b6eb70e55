package sql

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
)

// AggArg evaluates an aggregate's argument for one message: include is
// false when FILTER (WHERE ...) rejects the message. count(*) and count()
// give true for every message.
func (c *Call) AggArg(env *Env) (v any, include bool, err error) {
	if c.Filter != nil {
		f, err := c.Filter.Eval(env)
		if err != nil {
			return nil, false, err
		}
		if !Truthy(f) {
			return nil, false, nil
		}
	}
	if len(c.Args) == 0 {
		return true, true, nil
	}
	if _, ok := c.Args[0].(*Star); ok && c.Name == "count" {
		return true, true, nil
	}
	v, err = c.Args[0].Eval(env)
	return v, err == nil, err
}

// Acc accumulates one aggregate over a window. Its zero value is not
// usable: make it with NewAcc.
type Acc struct {
	Name   string  `json:"fn"`
	P      float64 `json:"p,omitempty"`
	N      int64   `json:"n,omitempty"`
	I      int64   `json:"i,omitempty"` // integer sum while AllInt
	F      float64 `json:"f,omitempty"` // float sum
	AllInt bool    `json:"ai,omitempty"`
	Mean   float64 `json:"mean,omitempty"`
	M2     float64 `json:"m2,omitempty"`
	Val    Value   `json:"v"`
	T      int64   `json:"t,omitempty"`
	Has    bool    `json:"has,omitempty"`
	Vals   []Value `json:"vs,omitempty"`
}

// NewAcc makes the accumulator of aggregate call c.
func NewAcc(c *Call) Acc {
	a := Acc{Name: c.Name, AllInt: true}
	switch c.Name {
	case "percentile", "percentile_cont", "percentile_disc":
		a.P, _ = ToFloat(c.Args[1].(*Literal).V)
	case "median":
		a.P = 0.5
	}
	return a
}

// Add adds the value of one message whose event time is t (UnixNano).
func (a *Acc) Add(v any, t int64) {
	if IsUndefined(v) {
		return
	}
	switch a.Name {
	case "count":
		if v != nil {
			a.N++
		}
	case "collect":
		a.Vals = append(a.Vals, Value{v})
	case "first":
		if !a.Has || t < a.T {
			a.Val, a.T, a.Has = Value{v}, t, true
		}
	case "last":
		if !a.Has || t >= a.T {
			a.Val, a.T, a.Has = Value{v}, t, true
		}
	case "min", "max":
		if v == nil {
			return
		}
		if !a.Has {
			a.Val, a.Has = Value{v}, true
			return
		}
		c, ok := Compare(v, a.Val.V)
		if ok && (a.Name == "min" && c < 0 || a.Name == "max" && c > 0) {
			a.Val = Value{v}
		}
	default: // numeric: sum avg stddev* var* percentile* median
		if isBool(v) {
			return
		}
		n, ok := ToNumber(v)
		if !ok {
			return
		}
		f, _ := ToFloat(n)
		a.N++
		if i, isInt := n.(int64); isInt && a.AllInt {
			if s := a.I + i; (s > a.I) == (i > 0) || i == 0 {
				a.I = s
			} else {
				a.AllInt = false
			}
		} else {
			a.AllInt = false
		}
		a.F += f
		d := f - a.Mean
		a.Mean += d / float64(a.N)
		a.M2 += d * (f - a.Mean)
		switch a.Name {
		case "percentile", "percentile_cont", "percentile_disc", "median":
			a.Vals = append(a.Vals, Value{f})
		}
	}
}

// Result is the aggregate's value: count is 0 and the others are Null over
// no values.
func (a *Acc) Result() any {
	switch a.Name {
	case "count":
		return a.N
	case "collect":
		out := make([]any, len(a.Vals))
		for i, v := range a.Vals {
			out[i] = v.V
		}
		return out
	case "first", "last", "min", "max":
		if !a.Has {
			return nil
		}
		return a.Val.V
	}
	if a.N == 0 {
		return nil
	}
	switch a.Name {
	case "sum":
		if a.AllInt {
			return a.I
		}
		return a.F
	case "avg":
		return a.F / float64(a.N)
	case "stddev":
		return math.Sqrt(a.M2 / float64(a.N))
	case "var":
		return a.M2 / float64(a.N)
	case "stddevs", "vars":
		if a.N < 2 {
			return nil
		}
		if a.Name == "vars" {
			return a.M2 / float64(a.N-1)
		}
		return math.Sqrt(a.M2 / float64(a.N-1))
	}
	// Percentiles.
	xs := make([]float64, len(a.Vals))
	for i, v := range a.Vals {
		xs[i], _ = ToFloat(v.V)
	}
	sort.Float64s(xs)
	if a.Name == "percentile_disc" {
		i := int(math.Ceil(a.P*float64(len(xs)))) - 1
		return xs[max(i, 0)]
	}
	pos := a.P * float64(len(xs)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(xs)-1)
	return xs[lo] + (xs[hi]-xs[lo])*(pos-float64(lo))
}

// Value wraps a SQL value so that it survives a JSON round trip with its
// type (Int stays Int, Decimal stays Decimal).
type Value struct{ V any }

// MarshalJSON writes ["i", 1], ["f", 1.5] or ["j", <json>].
func (v Value) MarshalJSON() ([]byte, error) {
	switch x := v.V.(type) {
	case int64:
		return fmt.Appendf(nil, `["i",%d]`, x), nil
	case float64:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		return append(append([]byte(`["f",`), b...), ']'), nil
	}
	b, err := json.Marshal(Normalize(v.V))
	if err != nil {
		return nil, err
	}
	return append(append([]byte(`["j",`), b...), ']'), nil
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (v *Value) UnmarshalJSON(b []byte) error {
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil || len(parts) != 2 {
		return fmt.Errorf("sql: bad value %.40q", b)
	}
	switch string(parts[0]) {
	case `"i"`:
		var n int64
		if err := json.Unmarshal(parts[1], &n); err != nil {
			return fmt.Errorf("sql: bad int value: %w", err)
		}
		v.V = n
	case `"f"`:
		var f float64
		if err := json.Unmarshal(parts[1], &f); err != nil {
			return fmt.Errorf("sql: bad decimal value: %w", err)
		}
		v.V = f
	case `"j"`:
		if !ValidJSON(parts[1]) {
			return fmt.Errorf("sql: bad value %.40q", b)
		}
		v.V, _ = decodeAt(parts[1], 0)
	default:
		return fmt.Errorf("sql: bad value tag %s", parts[0])
	}
	return nil
}
