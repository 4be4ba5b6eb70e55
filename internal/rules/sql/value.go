package sql

import (
	"encoding/json"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Undefined is the value of a missing field or of a function given bad
// arguments; it is left out of output rows. Test with IsUndefined.
type Undefined struct{}

// IsUndefined reports whether v is Undefined.
func IsUndefined(v any) bool { _, ok := v.(Undefined); return ok }

// Truthy is the WHERE test: Boolean true or the string "true" (any case).
func Truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return strings.EqualFold(x, "true")
	}
	return false
}

// toBool converts for AND, OR, NOT.
func toBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		if strings.EqualFold(x, "true") {
			return true, true
		}
		if strings.EqualFold(x, "false") {
			return false, true
		}
	}
	return false, false
}

// ToNumber converts Int, Decimal and numeric strings to int64 or float64.
func ToNumber(v any) (any, bool) {
	switch x := v.(type) {
	case int64, float64:
		return x, true
	case int:
		return int64(x), true
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f, true
		}
	}
	return nil, false
}

// ToFloat converts a number or numeric string to float64.
func ToFloat(v any) (float64, bool) {
	n, ok := ToNumber(v)
	if !ok {
		return 0, false
	}
	switch x := n.(type) {
	case int64:
		return float64(x), true
	default:
		return x.(float64), true
	}
}

// ToInt converts a number (truncating) or numeric string to int64.
func ToInt(v any) (int64, bool) {
	n, ok := ToNumber(v)
	if !ok {
		return 0, false
	}
	switch x := n.(type) {
	case int64:
		return x, true
	default:
		f := x.(float64)
		if f >= -9.2e18 && f <= 9.2e18 {
			return int64(f), true
		}
	}
	return 0, false
}

// ToString renders a value as text: strings as is, numbers in their
// shortest form, Null as "null", arrays and objects as JSON, Undefined as "".
func ToString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return FormatDecimal(x)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "null"
	case Undefined:
		return ""
	}
	b, err := json.Marshal(Normalize(v))
	if err != nil {
		return ""
	}
	return string(b)
}

// FormatDecimal writes a float64 without exponent in the usual range.
func FormatDecimal(f float64) string {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	return s
}

// Normalize makes a value JSON-marshalable: Undefined members of objects
// and arrays are dropped, NaN and infinities become null.
func Normalize(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case map[string]any:
		for k, e := range x {
			if IsUndefined(e) {
				m := make(map[string]any, len(x))
				for k2, e2 := range x {
					if !IsUndefined(e2) {
						m[k2] = Normalize(e2)
					}
				}
				return m
			}
			if n := Normalize(e); !sameKind(n, e) {
				x[k] = n
			}
		}
	case []any:
		out := x[:0:0]
		for _, e := range x {
			if !IsUndefined(e) {
				out = append(out, Normalize(e))
			}
		}
		return out
	case Undefined:
		return nil
	}
	return v
}

func sameKind(a, b any) bool { return reflect.TypeOf(a) == reflect.TypeOf(b) }

// Compare orders two values: numbers (and numeric strings against numbers)
// numerically, strings lexically, booleans false < true. ok is false when
// the values cannot be ordered.
func Compare(a, b any) (int, bool) {
	switch x := a.(type) {
	case int64:
		if y, ok := b.(int64); ok {
			return cmp3(x < y, x > y), true
		}
	case string:
		if y, ok := b.(string); ok {
			// Two numeric strings compare as numbers (AWS IoT converts
			// operands to Decimal); other strings compare lexically.
			fx, okx := ToFloat(x)
			fy, oky := ToFloat(y)
			if okx && oky {
				return cmp3(fx < fy, fx > fy), true
			}
			return strings.Compare(x, y), true
		}
	case bool:
		if y, ok := b.(bool); ok {
			return cmp3(!x && y, x && !y), true
		}
		return 0, false
	}
	fa, ok1 := ToFloat(a)
	fb, ok2 := ToFloat(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	if _, s := a.(string); s {
		if _, s2 := b.(string); s2 {
			return 0, false
		}
	}
	return cmp3(fa < fb, fa > fb), true
}

func cmp3(lt, gt bool) int {
	switch {
	case lt:
		return -1
	case gt:
		return 1
	}
	return 0
}

// Equal is the = operator on defined values.
func Equal(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	switch x := a.(type) {
	case []any, map[string]any:
		return reflect.DeepEqual(a, b)
	case string:
		if y, ok := b.(string); ok {
			return x == y
		}
	}
	if c, ok := Compare(a, b); ok {
		return c == 0
	}
	return false
}

// arith applies + - * / % to two values.
func arith(op string, a, b any) any {
	if op == "+" {
		sa, ok1 := a.(string)
		sb, ok2 := b.(string)
		if ok1 && ok2 {
			if _, n1 := ToNumber(sa); !n1 {
				return sa + sb
			}
			if _, n2 := ToNumber(sb); !n2 {
				return sa + sb
			}
		}
	}
	if _, isBool := a.(bool); isBool {
		return Undefined{}
	}
	if _, isBool := b.(bool); isBool {
		return Undefined{}
	}
	na, ok1 := ToNumber(a)
	nb, ok2 := ToNumber(b)
	if !ok1 || !ok2 {
		return Undefined{}
	}
	x, xi := na.(int64)
	y, yi := nb.(int64)
	if xi && yi {
		switch op {
		case "+":
			if s := x + y; (s > x) == (y > 0) {
				return s
			}
		case "-":
			if s := x - y; (s < x) == (y > 0) {
				return s
			}
		case "*":
			if x == 0 || y == 0 {
				return int64(0)
			}
			if p := x * y; p/y == x && !(x == -1 && y == math.MinInt64) && !(y == -1 && x == math.MinInt64) {
				return p
			}
		case "/":
			if y == 0 || (x == math.MinInt64 && y == -1) {
				return Undefined{}
			}
			return x / y
		case "%":
			if y == 0 || y == -1 {
				if y == -1 {
					return int64(0)
				}
				return Undefined{}
			}
			return x % y
		}
	}
	fx, _ := ToFloat(na)
	fy, _ := ToFloat(nb)
	var r float64
	switch op {
	case "+":
		r = fx + fy
	case "-":
		r = fx - fy
	case "*":
		r = fx * fy
	case "/":
		if fy == 0 {
			return Undefined{}
		}
		r = fx / fy
	case "%":
		if fy == 0 {
			return Undefined{}
		}
		r = math.Mod(fx, fy)
	}
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return Undefined{}
	}
	return r
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
