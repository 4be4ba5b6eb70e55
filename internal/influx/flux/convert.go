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
	return func(_ *run, args *record, _ *stream) (Value, error) {
		v, ok := args.get("v")
		if !ok {
			return Value{}, invalidf("missing required argument v")
		}
		if v.Kind == KNull {
			return v, nil
		}
		out, err := convert(to, v)
		if err != nil {
			return Value{}, invalidf("%s(): cannot convert %s %q: %v", to, v.Kind, v.String(), err)
		}
		return out, nil
	}
}

func convert(to string, v Value) (Value, error) {
	switch to {
	case "string":
		switch v.Kind {
		case KString, KInt, KUint, KFloat, KBool, KTime:
			return Str(v.String()), nil
		case KDuration:
			return Str(formatDuration(v)), nil
		}
	case "int":
		switch v.Kind {
		case KInt, KTime, KDuration:
			if v.months() != 0 {
				return Value{}, errUnsupported
			}
			return Int(v.I), nil
		case KUint:
			return Int(v.I), nil
		case KBool:
			return Int(v.I), nil
		case KFloat:
			f := v.F()
			if math.IsNaN(f) || f >= math.MaxInt64 || f < math.MinInt64 {
				return Value{}, errRange
			}
			return Int(int64(f)), nil
		case KString:
			i, err := strconv.ParseInt(v.S, 10, 64)
			return Int(i), err
		}
	case "uint":
		switch v.Kind {
		case KInt, KUint, KTime, KBool:
			return Uint(uint64(v.I)), nil
		case KFloat:
			f := v.F()
			if math.IsNaN(f) || f < 0 || f >= math.MaxUint64 {
				return Value{}, errRange
			}
			return Uint(uint64(f)), nil
		case KString:
			u, err := strconv.ParseUint(v.S, 10, 64)
			return Uint(u), err
		}
	case "float":
		switch v.Kind {
		case KInt, KUint, KFloat, KBool:
			f, _ := v.num()
			if v.Kind == KBool {
				f = float64(v.I)
			}
			return Float(f), nil
		case KString:
			f, err := strconv.ParseFloat(v.S, 64)
			return Float(f), err
		}
	case "bool":
		switch v.Kind {
		case KBool:
			return v, nil
		case KInt, KUint:
			if v.I == 0 || v.I == 1 {
				return Bool(v.I == 1), nil
			}
			return Value{}, errRange
		case KFloat:
			if f := v.F(); f == 0 || f == 1 {
				return Bool(f == 1), nil
			}
			return Value{}, errRange
		case KString:
			b, err := strconv.ParseBool(v.S)
			if v.S != "true" && v.S != "false" {
				err = errUnsupported
			}
			return Bool(b), err
		}
	case "time":
		switch v.Kind {
		case KTime:
			return v, nil
		case KInt, KUint:
			return Time(v.I), nil
		case KString:
			ns, err := parseTime(v.S)
			return Time(ns), err
		}
	case "duration":
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
