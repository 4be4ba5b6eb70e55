package tsdb

import (
	"math"
	"strconv"
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
type Value struct {
	typ ValueType
	n   uint64 // float bits, int64 bits, uint64, or 0/1
	s   string
}

// FloatValue returns a Float value.
func FloatValue(f float64) Value { return Value{typ: Float, n: math.Float64bits(f)} }

// IntValue returns an Integer value.
func IntValue(i int64) Value { return Value{typ: Integer, n: uint64(i)} }

// UintValue returns an Unsigned value.
func UintValue(u uint64) Value { return Value{typ: Unsigned, n: u} }

// BoolValue returns a Boolean value.
func BoolValue(b bool) Value {
	if b {
		return Value{typ: Boolean, n: 1}
	}
	return Value{typ: Boolean}
}

// StringValue returns a String value.
func StringValue(s string) Value { return Value{typ: String, s: s} }

// Type returns the value's type (0 for the zero Value).
func (v Value) Type() ValueType { return v.typ }

// Float returns the value as a float64; numeric types convert, and ok is
// false for booleans, strings and the zero Value.
func (v Value) Float() (float64, bool) {
	switch v.typ {
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
func (v Value) Int() (int64, bool) { return int64(v.n), v.typ == Integer }

// Uint returns an Unsigned value; ok is false for other types.
func (v Value) Uint() (uint64, bool) { return v.n, v.typ == Unsigned }

// Bool returns a Boolean value; ok is false for other types.
func (v Value) Bool() (bool, bool) { return v.n != 0, v.typ == Boolean }

// Str returns a String value; ok is false for other types.
func (v Value) Str() (string, bool) { return v.s, v.typ == String }

// String formats the value: numbers and booleans in their Go form,
// strings unquoted.
func (v Value) String() string {
	switch v.typ {
	case Float:
		return strconv.FormatFloat(math.Float64frombits(v.n), 'g', -1, 64)
	case Integer:
		return strconv.FormatInt(int64(v.n), 10)
	case Unsigned:
		return strconv.FormatUint(v.n, 10)
	case Boolean:
		return strconv.FormatBool(v.n != 0)
	case String:
		return v.s
	}
	return "<invalid>"
}

// MarshalJSON encodes the natural JSON value: a number, a boolean or a
// string. Non-finite floats (which Write rejects, but aggregates could in
// principle produce) and the zero Value encode as null.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.typ {
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
		return strconv.AppendQuote(nil, v.s), nil
	}
	return []byte("null"), nil
}
