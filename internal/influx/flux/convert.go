package flux

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// convertFn returns the conversion function int(v:), float(v:), ...:
// null stays null, impossible conversions are errors.
func convertFn(to string) builtinFn {
	conv := conversions[to]
	return func(_ *run, args *record, _ *stream) (Value, error) {
		v, ok := args.get("v")
		if !ok {
			return Value{}, invalidf("missing required argument v")
		}
		if v.Kind == KNull {
			return v, nil
		}
		out, err := conv(v)
		if err != nil {
			return Value{}, invalidf("%s(): cannot convert %s %q: %v", to, v.Kind, v.String(), err)
		}
		return out, nil
	}
}

// conversions holds each conversion of a non-null value: errUnsupported
// for a kind it does not take, errRange for a value it cannot represent.
var conversions = map[string]func(v Value) (Value, error){
	"string": toString, "int": toInt, "uint": toUint, "float": toFloat,
	"bool": toBool, "time": toTime, "duration": toDuration,
}

func toString(v Value) (Value, error) {
	switch v.Kind {
	case KString, KInt, KUint, KFloat, KBool, KTime:
		return Str(v.String()), nil
	case KDuration:
		return Str(formatDuration(v)), nil
	}
	return Value{}, errUnsupported
}

// toInt takes times as nanoseconds since the epoch, durations as
// nanoseconds (not calendar ones) and booleans as 0 or 1.
func toInt(v Value) (Value, error) {
	switch v.Kind {
	case KInt, KUint, KBool, KTime, KDuration:
		if v.months() != 0 {
			return Value{}, errUnsupported
		}
		return Int(v.I), nil
	case KFloat:
		if f := v.F(); inRange(f, math.MinInt64, math.MaxInt64) {
			return Int(int64(f)), nil
		}
		return Value{}, errRange
	case KString:
		i, err := strconv.ParseInt(v.S, 10, 64)
		return Int(i), err
	}
	return Value{}, errUnsupported
}

func toUint(v Value) (Value, error) {
	switch v.Kind {
	case KInt, KUint, KTime, KBool:
		return Uint(uint64(v.I)), nil
	case KFloat:
		if f := v.F(); inRange(f, 0, math.MaxUint64) {
			return Uint(uint64(f)), nil
		}
		return Value{}, errRange
	case KString:
		u, err := strconv.ParseUint(v.S, 10, 64)
		return Uint(u), err
	}
	return Value{}, errUnsupported
}

// inRange reports whether f lies in [lo, hi) (NaN never does).
func inRange(f, lo, hi float64) bool { return f >= lo && f < hi }

func toFloat(v Value) (Value, error) {
	switch v.Kind {
	case KInt, KUint, KFloat:
		f, _ := v.num()
		return Float(f), nil
	case KBool:
		return Float(float64(v.I)), nil
	case KString:
		f, err := strconv.ParseFloat(v.S, 64)
		return Float(f), err
	}
	return Value{}, errUnsupported
}

// toBool takes the numbers 0 and 1 and the strings "true" and "false".
func toBool(v Value) (Value, error) {
	switch v.Kind {
	case KBool:
		return v, nil
	case KInt, KUint, KFloat:
		if f, _ := v.num(); f == 0 || f == 1 {
			return Bool(f == 1), nil
		}
		return Value{}, errRange
	case KString:
		if v.S == "true" || v.S == "false" {
			return Bool(v.S == "true"), nil
		}
	}
	return Value{}, errUnsupported
}

func toTime(v Value) (Value, error) {
	switch v.Kind {
	case KTime:
		return v, nil
	case KInt, KUint:
		return Time(v.I), nil
	case KString:
		ns, err := parseTime(v.S)
		return Time(ns), err
	}
	return Value{}, errUnsupported
}

// toDuration parses strings as duration literals, with an optional sign.
func toDuration(v Value) (Value, error) {
	switch v.Kind {
	case KDuration:
		return v, nil
	case KInt, KUint:
		return Duration(v.I, 0), nil
	case KString:
		neg := strings.HasPrefix(v.S, "-")
		s := strings.TrimPrefix(v.S, "-")
		if !durRe.MatchString(s) || durRe.FindString(s) != s {
			return Value{}, errUnsupported
		}
		d, err := parseDuration(s)
		if err == nil && neg {
			d, _ = d.negate()
		}
		return d, err
	}
	return Value{}, errUnsupported
}

type convError string

func (e convError) Error() string { return string(e) }

const (
	errUnsupported = convError("unsupported conversion")
	errRange       = convError("out of range")
)

// formatDuration renders a duration the way Flux writes literals (1h30m).
func formatDuration(v Value) string {
	var b strings.Builder
	n, m := v.I, v.months()
	if n < 0 || m < 0 {
		b.WriteByte('-')
		n, m = -n, -m
	}
	if m/12 > 0 {
		b.WriteString(strconv.FormatInt(m/12, 10) + "y")
	}
	if m%12 > 0 {
		b.WriteString(strconv.FormatInt(m%12, 10) + "mo")
	}
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{7 * 24 * time.Hour, "w"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"},
		{time.Millisecond, "ms"}, {time.Microsecond, "us"}, {1, "ns"}} {
		if q := n / int64(u.d); q > 0 {
			b.WriteString(strconv.FormatInt(q, 10) + u.name)
			n -= q * int64(u.d)
		}
	}
	if b.Len() == 0 || b.String() == "-" {
		return "0s"
	}
	return b.String()
}
