package tsdb

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"testing"
	"unsafe"
)

func TestValueSize(t *testing.T) {
	if n := unsafe.Sizeof(Value{}); n != 16 {
		t.Errorf("Sizeof(Value) = %d, want 16", n)
	}
	if n := unsafe.Sizeof(Field{}); n != 32 {
		t.Errorf("Sizeof(Field) = %d, want 32", n)
	}
	if n := unsafe.Sizeof(Sample{}); n != 24 {
		t.Errorf("Sizeof(Sample) = %d, want 24", n)
	}
}

func TestValueRoundTrip(t *testing.T) {
	nan := math.Float64frombits(0x7ff8000000000001)
	cases := []struct {
		v    Value
		typ  ValueType
		str  string
		json string
	}{
		{Value{}, 0, "<invalid>", "null"},
		{FloatValue(0), Float, "0", "0"},
		{FloatValue(math.Copysign(0, -1)), Float, "-0", "-0"},
		{FloatValue(-21.5), Float, "-21.5", "-21.5"},
		{FloatValue(math.Inf(1)), Float, "+Inf", "null"},
		{FloatValue(nan), Float, "NaN", "null"},
		{IntValue(0), Integer, "0", "0"},
		{IntValue(math.MinInt64), Integer, "-9223372036854775808", "-9223372036854775808"},
		{IntValue(math.MaxInt64), Integer, "9223372036854775807", "9223372036854775807"},
		{UintValue(0), Unsigned, "0", "0"},
		{UintValue(math.MaxUint64), Unsigned, "18446744073709551615", "18446744073709551615"},
		{BoolValue(false), Boolean, "false", "false"},
		{BoolValue(true), Boolean, "true", "true"},
		{StringValue(""), String, "", `""`},
		{StringValue("a"), String, "a", `"a"`},
		{StringValue("héllo \"x\"\n"), String, "héllo \"x\"\n", `"héllo \"x\"\n"`},
		{StringValue(string(make([]byte, 1<<20))), String, string(make([]byte, 1<<20)), ""},
	}
	for i, c := range cases {
		v := c.v
		if got := v.Type(); got != c.typ {
			t.Errorf("%d: Type() = %v, want %v", i, got, c.typ)
		}
		if got := v.String(); got != c.str {
			t.Errorf("%d: String() = %.40q, want %.40q", i, got, c.str)
		}
		if c.json != "" {
			if b, err := json.Marshal(v); err != nil || string(b) != c.json {
				t.Errorf("%d: MarshalJSON = %s, %v, want %s", i, b, err, c.json)
			}
		}
		f, fok := v.Float()
		n, iok := v.Int()
		u, uok := v.Uint()
		b, bok := v.Bool()
		s, sok := v.Str()
		if fok != (c.typ == Float || c.typ == Integer || c.typ == Unsigned) || iok != (c.typ == Integer) ||
			uok != (c.typ == Unsigned) || bok != (c.typ == Boolean) || sok != (c.typ == String) {
			t.Errorf("%d: ok flags %v %v %v %v %v for %v", i, fok, iok, uok, bok, sok, c.typ)
		}
		// Rebuild the value from what the accessors return.
		var back Value
		switch c.typ {
		case Float:
			back = FloatValue(f)
		case Integer:
			back = IntValue(n)
		case Unsigned:
			back = UintValue(u)
		case Boolean:
			back = BoolValue(b)
		case String:
			back = StringValue(s)
			if n != 0 || u != 0 || b {
				t.Errorf("%d: a string's Int/Uint/Bool = %d %d %v, want zeros", i, n, u, b)
			}
		}
		if !back.Equal(v) || !v.Equal(back) {
			t.Errorf("%d: %v does not round-trip (got %v)", i, v, back)
		}
		if back.Key() != v.Key() || !v.Key().Value().Equal(v) {
			t.Errorf("%d: Key of %v does not round-trip", i, v)
		}
		// Through the WAL encoding.
		if pp, err := prepare(Point{Measurement: "m", Fields: []Field{{Key: "f", Value: v}}}); err == nil {
			pts, err := decodePoints(appendPoints(nil, []preparedPoint{pp}))
			if err != nil {
				t.Fatalf("%d: decode: %v", i, err)
			}
			if got := pts[0].Fields[0].Value; !got.Equal(v) || got.Type() != c.typ {
				t.Errorf("%d: WAL round trip: %v (%v), want %v", i, got, got.Type(), v)
			}
		}
		// Equal against every other case: only itself (and the same
		// bits built again).
		for j, d := range cases {
			if eq := v.Equal(d.v); eq != (i == j) {
				t.Errorf("%d, %d: %v.Equal(%v) = %v", i, j, v, d.v, eq)
			}
			if eq := v.Key() == d.v.Key(); eq != (i == j) {
				t.Errorf("%d, %d: Key equality of %v and %v = %v", i, j, v, d.v, eq)
			}
		}
	}
}

func TestValueEqualStrings(t *testing.T) {
	a := StringValue(string([]byte("temp")))
	b := StringValue(string([]byte("temp")))
	if unsafe.StringData(a.String()) == unsafe.StringData(b.String()) {
		t.Fatal("test strings share memory")
	}
	if !a.Equal(b) || a.Key() != b.Key() {
		t.Error("equal strings at different addresses differ")
	}
	if a.Equal(StringValue("tem")) || a.Equal(StringValue("temq")) {
		t.Error("different strings are equal")
	}
	// A string never equals a number with the same bits as its length.
	if StringValue("abcd").Equal(IntValue(4)) || IntValue(4).Equal(StringValue("abcd")) ||
		StringValue("").Equal(IntValue(0)) || StringValue("").Equal(Value{}) || (Value{}).Equal(StringValue("")) {
		t.Error("string equals a number")
	}
	if !(Value{}).Equal(Value{}) {
		t.Error("zero Value differs from itself")
	}
	// Empty strings from anywhere are the same value.
	buf := []byte("xyz")
	if e := StringValue(unsafe.String(&buf[1], 0)); !e.Equal(StringValue("")) || e.Type() != String {
		t.Errorf("empty substring: %v %v", e, e.Type())
	}
}

// TestValueCallerBuffer: a Value built the way callers build it from a
// []byte they reuse (StringValue(string(b))) keeps its bytes when the
// buffer changes.
func TestValueCallerBuffer(t *testing.T) {
	buf := []byte("on;off")
	v := StringValue(string(buf[:2]))
	w := StringValue(string(buf[3:]))
	copy(buf, "XXXXXX")
	clear(buf)
	if s, ok := v.Str(); !ok || s != "on" {
		t.Errorf("v = %q, %v after the buffer changed", s, ok)
	}
	if s, _ := w.Str(); s != "off" {
		t.Errorf("w = %q after the buffer changed", s)
	}
}

func TestValueInvalidType(t *testing.T) {
	var v Value
	if v.Type() != 0 {
		t.Fatal("zero Value has a type")
	}
	if _, ok := v.Float(); ok {
		t.Error("zero Value converts to float")
	}
	if _, ok := v.Str(); ok {
		t.Error("zero Value is a string")
	}
}

var valueType = reflect.TypeFor[Value]()

// deepEqual is reflect.DeepEqual except that Values compare with Equal:
// two equal strings need not share memory. Like reflect.DeepEqual it tells
// nil from empty slices and maps.
func deepEqual(a, b any) bool {
	x, y := reflect.ValueOf(a), reflect.ValueOf(b)
	if !x.IsValid() || !y.IsValid() {
		return x.IsValid() == y.IsValid()
	}
	return x.Type() == y.Type() && deepValueEqual(x, y)
}

func deepValueEqual(x, y reflect.Value) bool {
	if x.Type() == valueType {
		v := Value{n: x.FieldByName("n").Uint(), p: x.FieldByName("p").UnsafePointer()}
		w := Value{n: y.FieldByName("n").Uint(), p: y.FieldByName("p").UnsafePointer()}
		return v.Equal(w)
	}
	switch x.Kind() {
	case reflect.Slice:
		if x.IsNil() != y.IsNil() || x.Len() != y.Len() {
			return false
		}
		fallthrough
	case reflect.Array:
		for i := range x.Len() {
			if !deepValueEqual(x.Index(i), y.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Pointer, reflect.Interface:
		if x.IsNil() || y.IsNil() {
			return x.IsNil() == y.IsNil()
		}
		if x.Kind() == reflect.Interface && x.Elem().Type() != y.Elem().Type() {
			return false
		}
		return deepValueEqual(x.Elem(), y.Elem())
	case reflect.Struct:
		for i := range x.NumField() {
			if !deepValueEqual(x.Field(i), y.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if x.IsNil() != y.IsNil() || x.Len() != y.Len() {
			return false
		}
		for it := x.MapRange(); it.Next(); {
			w := y.MapIndex(it.Key())
			if !w.IsValid() || !deepValueEqual(it.Value(), w) {
				return false
			}
		}
		return true
	case reflect.Func:
		return x.IsNil() && y.IsNil()
	}
	return x.Equal(y)
}

func sampleEqual(a, b Sample) bool { return a.Time == b.Time && a.Value.Equal(b.Value) }

// samplesEqual is slices.Equal for Samples.
func samplesEqual(a, b []Sample) bool { return slices.EqualFunc(a, b, sampleEqual) }

func TestDeepEqual(t *testing.T) {
	mk := func(s string) []Series {
		return []Series{{Measurement: "m", Tags: []Tag{{"k", "v"}}, Field: "f", Samples: []Sample{
			{1, FloatValue(1)}, {2, StringValue(s)}, {3, BoolValue(true)},
		}}}
	}
	a, b := mk(string([]byte("x"))), mk(string([]byte("x")))
	if reflect.DeepEqual(a, b) {
		t.Log("reflect.DeepEqual now finds equal strings at different addresses equal")
	}
	if !deepEqual(a, b) {
		t.Error("equal series differ")
	}
	if deepEqual(a, mk("y")) {
		t.Error("different strings are equal")
	}
	c := mk("x")
	c[0].Samples[0].Value = FloatValue(math.Copysign(0, -1))
	if deepEqual(a, c) {
		t.Error("0 and -0 are equal")
	}
	c = mk("x")
	c[0].Tags = nil
	if deepEqual(a, c) || deepEqual([]Series(nil), []Series{}) {
		t.Error("nil and non-nil slices are equal")
	}
	if deepEqual(a, a[0]) {
		t.Error("different types are equal")
	}
}
