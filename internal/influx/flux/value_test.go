package flux

import (
	"math"
	"testing"
)

func TestArith(t *testing.T) {
	const bad = "!" // arith refuses the operation
	for _, c := range []struct {
		op   string
		a, b Value
		want string
	}{
		{"+", Int(7), Int(-2), "int 5"},
		{"-", Int(7), Int(-2), "int 9"},
		{"*", Int(7), Int(-2), "int -14"},
		{"/", Int(7), Int(-2), "int -3"},
		{"%", Int(7), Int(-2), "int 1"},
		{"^", Int(2), Int(10), "float 1024"},
		{"/", Int(1), Int(0), bad},
		{"%", Int(1), Int(0), bad},
		{"/", Int(math.MinInt64), Int(-1), "int -9223372036854775808"},
		{"+", Int(math.MaxInt64), Int(1), "int -9223372036854775808"},
		{"+", Uint(7), Uint(2), "uint 9"},
		{"-", Uint(2), Uint(7), "uint 18446744073709551611"},
		{"*", Uint(1 << 63), Uint(2), "uint 0"},
		{"/", Uint(math.MaxUint64), Uint(2), "uint 9223372036854775807"},
		{"%", Uint(math.MaxUint64), Uint(10), "uint 5"},
		{"/", Uint(1), Uint(0), bad},
		{"%", Uint(1), Uint(0), bad},
		{"^", Uint(2), Uint(3), bad},
		{"/", Float(1), Float(0), "float +Inf"},
		{"%", Float(7.5), Float(2), "float 1.5"},
		{"^", Float(2), Float(0.5), "float 1.4142135623730951"},
		{"+", Int(1), Float(1), bad},
		{"+", Int(1), Value{}, "null "},
		{"+", Str("a"), Str("b"), "string ab"},
		{"-", Str("a"), Str("b"), bad},
	} {
		v, ok := arith(c.op, c.a, c.b)
		got := bad
		if ok {
			got = v.Kind.String() + " " + v.String()
		}
		if got != c.want {
			t.Errorf("%s %s %s %s = %s, want %s", c.a.Kind, c.a, c.op, c.b, got, c.want)
		}
	}
}
