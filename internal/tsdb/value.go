package tsdb

import (
	"math"
	"strconv"
	"unsafe"
)

// ValueType is the type of a field value.
type ValueType uint8

// Value types. The zero ValueType is invalid.
const (
	Float ValueType = iota + 1
	Integer
	Unsigned
	Boolean
	String
)

// String returns the Influx name of the type.
func (t ValueType) String() string {
	switch t {
	case Float:
		return "float"
	case Integer:
		return "integer"
	case Unsigned:
		return "unsigned"
	case Boolean:
		return "boolean"
	case String:
		return "string"
	}
	return "invalid"
}

// Value is a typed field value: a float64, int64, uint64, bool or string.
// The zero Value is invalid and rejected by Write.
//
// A Value is 16 bytes: n holds the float bits, the int64 bits, the uint64
// or 0/1 for non-strings and the length for strings; p points at
// valueTypes[typ] for non-strings and at the string's bytes for strings (at
// valueTypes[String] for the empty string). Keeping p an unsafe.Pointer
// lets the garbage collector see the string's bytes.
//
// Values are not comparable with == (two equal strings may live at
// different addresses): use Equal, or Key for a map key.
type Value struct {
	_ [0]func() // not comparable; first, as a trailing zero-size field would be padded
	n uint64
	p unsafe.Pointer
}

// valueTypes gives each non-string type (and the empty string) a static
// address that Value.p points at; Type recovers the type from the offset.
var valueTypes [String + 1]byte

// numValue returns a non-string Value of type t (Float, Integer, Unsigned
// or Boolean) with bits n. It panics for String: n would be taken for the
// length of a string at valueTypes[String].
func numValue(t ValueType, n uint64) Value {
	if t >= String {
		panic("tsdb: numValue of type " + t.String()) // a bug: never a string of length n
	}
	return Value{n: n, p: unsafe.Pointer(&valueTypes[t])}
}

// FloatValue returns a Float value.
func FloatValue(f float64) Value { return numValue(Float, math.Float64bits(f)) }

// IntValue returns an Integer value.
func IntValue(i int64) Value { return numValue(Integer, uint64(i)) }

// UintValue returns an Unsigned value.
func UintValue(u uint64) Value { return numValue(Unsigned, u) }

// BoolValue returns a Boolean value.
func BoolValue(b bool) Value {
	if b {
		return numValue(Boolean, 1)
	}
	return numValue(Boolean, 0)
}

// StringValue returns a String value. The Value refers to s's bytes, which
// Go strings never change; a caller converting a reused []byte must copy
// (string(b)), as it always had to.
func StringValue(s string) Value {
	if len(s) == 0 {
		return Value{p: unsafe.Pointer(&valueTypes[String])}
	}
	return Value{n: uint64(len(s)), p: unsafe.Pointer(unsafe.StringData(s))}
}

// typ returns the value's type: the index into valueTypes when p points
// there, String when p points anywhere else, 0 for the zero Value.
func (v Value) typ() ValueType {
	if d := uintptr(v.p) - uintptr(unsafe.Pointer(&valueTypes[0])); d < uintptr(len(valueTypes)) {
		return ValueType(d)
	}
	if v.p == nil {
		return 0
	}
	return String
}

// str returns the string of a String value; the caller checks the type.
func (v Value) str() string { return unsafe.String((*byte)(v.p), int(v.n)) }

// Type returns the value's type (0 for the zero Value).
func (v Value) Type() ValueType { return v.typ() }

// Equal reports whether v and w have the same type and the same value:
// the same bits for numbers and booleans (so a NaN equals a NaN with the
// same bits, and 0 does not equal -0) and the same bytes for strings.
func (v Value) Equal(w Value) bool {
	return v.n == w.n && (v.p == w.p || v.typ() == String && w.typ() == String && v.str() == w.str())
}

// ValueKey is a comparable form of a Value for map keys: two Values have
// the same key exactly when they are Equal.
type ValueKey struct {
	typ ValueType
	n   uint64
	s   string
}

// Key returns v's map key.
func (v Value) Key() ValueKey {
	t := v.typ()
	if t == String {
		return ValueKey{typ: t, s: v.str()}
	}
	return ValueKey{typ: t, n: v.n}
}

// Value returns the Value whose key is k.
func (k ValueKey) Value() Value {
	switch k.typ {
	case 0:
		return Value{}
	case String:
		return StringValue(k.s)
	}
	return numValue(k.typ, k.n)
}

// Float returns the value as a float64; numeric types convert, and ok is
// false for booleans, strings and the zero Value.
func (v Value) Float() (float64, bool) {
	switch v.typ() {
	case Float:
		return math.Float64frombits(v.n), true
	case Integer:
		return float64(int64(v.n)), true
	case Unsigned:
		return float64(v.n), true
	}
	return 0, false
}

// Int returns an Integer value; ok is false for other types.
func (v Value) Int() (int64, bool) {
	t := v.typ()
	if t == String {
		return 0, false // n is the length
	}
	return int64(v.n), t == Integer
}

// Uint returns an Unsigned value; ok is false for other types.
func (v Value) Uint() (uint64, bool) {
	t := v.typ()
	if t == String {
		return 0, false // n is the length
	}
	return v.n, t == Unsigned
}

// Bool returns a Boolean value; ok is false for other types.
func (v Value) Bool() (bool, bool) {
	t := v.typ()
	if t == String {
		return false, false // n is the length
	}
	return v.n != 0, t == Boolean
}

// Str returns a String value; ok is false for other types.
func (v Value) Str() (string, bool) {
	if v.typ() != String {
		return "", false
	}
	return v.str(), true
}

// String formats the value: numbers and booleans in their Go form,
// strings unquoted.
func (v Value) String() string {
	switch v.typ() {
	case Float:
		return strconv.FormatFloat(math.Float64frombits(v.n), 'g', -1, 64)
	case Integer:
		return strconv.FormatInt(int64(v.n), 10)
	case Unsigned:
		return strconv.FormatUint(v.n, 10)
	case Boolean:
		return strconv.FormatBool(v.n != 0)
	case String:
		return v.str()
	}
	return "<invalid>"
}

// MarshalJSON encodes the natural JSON value: a number, a boolean or a
// string. Non-finite floats (which Write rejects, but aggregates could in
// principle produce) and the zero Value encode as null.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.typ() {
	case Float:
		f := math.Float64frombits(v.n)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return []byte("null"), nil
		}
		return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
	case Integer:
		return strconv.AppendInt(nil, int64(v.n), 10), nil
	case Unsigned:
		return strconv.AppendUint(nil, v.n, 10), nil
	case Boolean:
		return strconv.AppendBool(nil, v.n != 0), nil
	case String:
		return strconv.AppendQuote(nil, v.str()), nil
	}
	return []byte("null"), nil
}
