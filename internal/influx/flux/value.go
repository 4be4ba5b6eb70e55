package flux

import (
	"math"
	"regexp"
	"strconv"
	"time"
)

// Kind is a value's type.
type Kind uint8

// Kinds of values.
const (
	KNull Kind = iota
	KString
	KInt
	KUint
	KFloat
	KBool
	KTime
	KDuration
	KRegex
	KArray
	KRecord
	KFunc
	KStream
)

func (k Kind) String() string {
	return [...]string{"null", "string", "int", "uint", "float", "bool", "time", "duration", "regexp", "array", "record", "function", "stream"}[k]
}

// Value is a Flux value. Scalars live in I (ints, uint bits, float bits,
// bool 0/1, time and duration ns) and S; composite values in x.
type Value struct {
	Kind Kind
	I    int64
	S    string
	x    *ext
}

type ext struct {
	months int64
	re     *regexp.Regexp
	arr    []Value
	rec    *record
	fn     *function
	st     *stream
}

type record struct {
	keys []string
	vals map[string]Value
}

func (r *record) get(k string) (Value, bool) {
	v, ok := r.vals[k]
	return v, ok
}

func (r *record) set(k string, v Value) {
	if _, ok := r.vals[k]; !ok {
		r.keys = append(r.keys, k)
	}
	r.vals[k] = v
}

func newRecord() *record { return &record{vals: map[string]Value{}} }

// Constructors.
func Str(s string) Value                 { return Value{Kind: KString, S: s} }
func Int(i int64) Value                  { return Value{Kind: KInt, I: i} }
func Uint(u uint64) Value                { return Value{Kind: KUint, I: int64(u)} }
func Float(f float64) Value              { return Value{Kind: KFloat, I: int64(math.Float64bits(f))} }
func Time(ns int64) Value                { return Value{Kind: KTime, I: ns} }
func regexValue(re *regexp.Regexp) Value { return Value{Kind: KRegex, x: &ext{re: re}} }
func arrayValue(a []Value) Value         { return Value{Kind: KArray, x: &ext{arr: a}} }
func recordValue(r *record) Value        { return Value{Kind: KRecord, x: &ext{rec: r}} }

// Bool returns a boolean value.
func Bool(b bool) Value {
	if b {
		return Value{Kind: KBool, I: 1}
	}
	return Value{Kind: KBool}
}

// Duration returns a duration of nanos plus calendar months.
func Duration(nanos, months int64) Value {
	v := Value{Kind: KDuration, I: nanos}
	if months != 0 {
		v.x = &ext{months: months}
	}
	return v
}

func (v Value) F() float64 { return math.Float64frombits(uint64(v.I)) }
func (v Value) months() int64 {
	if v.x == nil {
		return 0
	}
	return v.x.months
}
func (v Value) isNull() bool { return v.Kind == KNull }
func (v Value) truthy() bool { return v.Kind == KBool && v.I != 0 }

func (v Value) negate() (Value, bool) {
	switch v.Kind {
	case KInt:
		return Int(-v.I), true
	case KFloat:
		return Float(-v.F()), true
	case KDuration:
		return Duration(-v.I, -v.months()), true
	}
	return v, false
}

func (v Value) num() (float64, bool) {
	switch v.Kind {
	case KInt:
		return float64(v.I), true
	case KUint:
		return float64(uint64(v.I)), true
	case KFloat:
		return v.F(), true
	}
	return 0, false
}

// String renders a scalar for CSV.
func (v Value) String() string {
	switch v.Kind {
	case KString:
		return v.S
	case KInt:
		return strconv.FormatInt(v.I, 10)
	case KUint:
		return strconv.FormatUint(uint64(v.I), 10)
	case KFloat:
		f := v.F()
		switch {
		case math.IsInf(f, 1):
			return "+Inf"
		case math.IsInf(f, -1):
			return "-Inf"
		}
		return strconv.FormatFloat(f, 'f', -1, 64)
	case KBool:
		return strconv.FormatBool(v.I != 0)
	case KTime:
		return time.Unix(0, v.I).UTC().Format(time.RFC3339Nano)
	case KDuration:
		return formatDuration(v)
	}
	return ""
}

func cmpNum[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compare orders two values of comparable kinds; ok is false otherwise.
func compare(a, b Value) (int, bool) {
	if a.Kind == KNull || b.Kind == KNull {
		return 0, false
	}
	if a.Kind == b.Kind {
		switch a.Kind {
		case KString:
			switch {
			case a.S < b.S:
				return -1, true
			case a.S > b.S:
				return 1, true
			}
			return 0, true
		case KInt, KTime, KDuration, KBool:
			return cmpNum(a.I, b.I), true
		case KUint:
			return cmpNum(uint64(a.I), uint64(b.I)), true
		case KFloat:
			return cmpNum(a.F(), b.F()), true
		}
		return 0, false
	}
	x, ok1 := a.num()
	y, ok2 := b.num()
	if ok1 && ok2 {
		return cmpNum(x, y), true
	}
	return 0, false
}

func arith(op string, a, b Value) (Value, bool) {
	if a.Kind == KNull || b.Kind == KNull {
		return Value{}, true
	}
	if a.Kind == KString && b.Kind == KString && op == "+" {
		return Str(a.S + b.S), true
	}
	if a.Kind == KTime && b.Kind == KDuration && (op == "+" || op == "-") {
		return addDuration(a.I, b, op == "-"), true
	}
	if a.Kind == KDuration && b.Kind == KDuration && (op == "+" || op == "-") {
		if op == "-" {
			return Duration(a.I-b.I, a.months()-b.months()), true
		}
		return Duration(a.I+b.I, a.months()+b.months()), true
	}
	if a.Kind != b.Kind {
		return Value{}, false // Flux has no implicit conversions
	}
	switch a.Kind {
	case KInt:
		if op == "^" {
			return Float(math.Pow(float64(a.I), float64(b.I))), true
		}
		if r, ok := intArith(op, a.I, b.I); ok {
			return Int(r), true
		}
	case KUint:
		if r, ok := intArith(op, uint64(a.I), uint64(b.I)); ok {
			return Uint(r), true
		}
	case KFloat:
		x, y := a.F(), b.F()
		switch op {
		case "+":
			return Float(x + y), true
		case "-":
			return Float(x - y), true
		case "*":
			return Float(x * y), true
		case "/":
			return Float(x / y), true
		case "%":
			return Float(math.Mod(x, y)), true
		case "^":
			return Float(math.Pow(x, y)), true
		}
	}
	return Value{}, false
}

// intArith applies + - * / or % to two integers (ok is false for another
// operator or a division by zero).
func intArith[T int64 | uint64](op string, x, y T) (T, bool) {
	switch op {
	case "+":
		return x + y, true
	case "-":
		return x - y, true
	case "*":
		return x * y, true
	case "/":
		if y == 0 {
			return 0, false
		}
		return x / y, true
	case "%":
		if y == 0 {
			return 0, false
		}
		return x % y, true
	}
	return 0, false
}

// addDuration adds (or subtracts) a possibly calendar duration to a time.
func addDuration(t int64, d Value, sub bool) Value {
	n, m := d.I, d.months()
	if sub {
		n, m = -n, -m
	}
	if m != 0 {
		t = time.Unix(0, t).UTC().AddDate(0, int(m), 0).UnixNano()
	}
	return Time(t + n)
}
