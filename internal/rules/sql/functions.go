package sql

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"math"
	mrand "math/rand/v2"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

type funcDef struct {
	min, max int // max < 0: variadic
	agg      bool
	starArg  int  // index of the argument that may be *, -1 for none
	rawStar  bool // * is the raw payload (encode)
	fn       func(env *Env, c *Call, args []any) (any, error)
	check    func(c *Call) error
}

func (d *funcDef) star(i int) bool { return d.starArg == i }

type scalarFn = func(env *Env, c *Call, args []any) (any, error)

func def(min, max int, fn scalarFn) *funcDef {
	return &funcDef{min: min, max: max, starArg: -1, fn: fn}
}

func aggDef(min, max, starArg int, check func(*Call) error) *funcDef {
	return &funcDef{min: min, max: max, agg: true, starArg: starArg, check: check}
}

// num1 adapts a float function of one number: Int and numeric strings are
// converted, anything else (and NaN/Inf results) is Undefined.
func num1(f func(float64) float64) *funcDef {
	return def(1, 1, func(_ *Env, _ *Call, a []any) (any, error) {
		if _, isBool := a[0].(bool); isBool {
			return Undefined{}, nil
		}
		x, ok := ToFloat(a[0])
		if !ok {
			return Undefined{}, nil
		}
		return finite(f(x)), nil
	})
}

func num2(f func(x, y float64) float64) *funcDef {
	return def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
		x, ok1 := ToFloat(a[0])
		y, ok2 := ToFloat(a[1])
		if !ok1 || !ok2 || isBool(a[0]) || isBool(a[1]) {
			return Undefined{}, nil
		}
		return finite(f(x, y)), nil
	})
}

func isBool(v any) bool { _, ok := v.(bool); return ok }

func finite(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return Undefined{}
	}
	return f
}

// toInt64Result turns an integral float into Int when it fits.
func intResult(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return Undefined{}
	}
	if f >= -9.2e18 && f <= 9.2e18 {
		return int64(f)
	}
	return f
}

// str1 adapts a string function; numbers and booleans are converted to
// text, other types are Undefined.
func str1(f func(string) any) *funcDef {
	return def(1, 1, func(_ *Env, _ *Call, a []any) (any, error) {
		s, ok := asString(a[0])
		if !ok {
			return Undefined{}, nil
		}
		return f(s), nil
	})
}

func asString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int64, float64, bool:
		return ToString(x), true
	}
	return "", false
}

func int2(f func(x, y int64) int64) *funcDef {
	return def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
		x, ok1 := exactInt(a[0])
		y, ok2 := exactInt(a[1])
		if !ok1 || !ok2 {
			return Undefined{}, nil
		}
		return f(x, y), nil
	})
}

func exactInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case string:
		if n, ok := ToNumber(x); ok {
			if i, ok := n.(int64); ok {
				return i, true
			}
		}
	}
	return 0, false
}

func hashFn(h func() hash.Hash) *funcDef {
	return str1(func(s string) any {
		x := h()
		x.Write([]byte(s))
		return hex.EncodeToString(x.Sum(nil))
	})
}

// regexpArg compiles a literal pattern argument at parse time.
func regexpArg(i int) func(c *Call) error {
	return func(c *Call) error {
		lit, ok := c.Args[i].(*Literal)
		if !ok {
			return nil
		}
		s, ok := lit.V.(string)
		if !ok {
			return errAt(lit.P, "%s: the pattern must be a string", c.Name)
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return errAt(lit.P, "%s: bad regular expression: %v", c.Name, err)
		}
		c.re = re
		return nil
	}
}

func (c *Call) regexp(v any) (*regexp.Regexp, bool) {
	if c.re != nil {
		return c.re, true
	}
	s, ok := v.(string)
	if !ok {
		return nil, false
	}
	re, err := regexp.Compile(s)
	return re, err == nil
}

func checkPercentile(c *Call) error {
	if len(c.Args) < 2 {
		return nil
	}
	lit, ok := c.Args[1].(*Literal)
	f, isNum := ToFloat(litVal(lit, ok))
	if !ok || !isNum || isString(lit.V) || f < 0 || f > 1 {
		return errAt(c.Args[1].Pos(), "%s: the fraction must be a number literal between 0 and 1", c.Name)
	}
	return nil
}

func litVal(l *Literal, ok bool) any {
	if !ok {
		return nil
	}
	return l.V
}

func isString(v any) bool { _, ok := v.(string); return ok }

// lookupFunc returns the function named name (lower case), or nil.
func lookupFunc(name string) *funcDef {
	switch name {
	// Aggregates.
	case "count":
		return aggDef(0, 1, 0, nil)
	case "sum", "avg", "min", "max", "stddev", "stddevs", "var", "vars", "median", "first", "last":
		return aggDef(1, 1, -1, nil)
	case "collect":
		return aggDef(1, 1, 0, nil)
	case "percentile", "percentile_cont", "percentile_disc":
		return aggDef(2, 2, -1, checkPercentile)

	// Math.
	case "abs":
		return def(1, 1, func(_ *Env, _ *Call, a []any) (any, error) {
			switch x := a[0].(type) {
			case int64:
				if x < 0 {
					return arith("-", int64(0), x), nil
				}
				return x, nil
			case float64:
				return math.Abs(x), nil
			case string:
				if f, ok := ToFloat(x); ok {
					return math.Abs(f), nil
				}
			}
			return Undefined{}, nil
		})
	case "acos":
		return num1(math.Acos)
	case "asin":
		return num1(math.Asin)
	case "atan":
		return num1(math.Atan)
	case "atan2":
		return num2(math.Atan2)
	case "cos":
		return num1(math.Cos)
	case "cosh":
		return num1(math.Cosh)
	case "sin":
		return num1(math.Sin)
	case "sinh":
		return num1(math.Sinh)
	case "tan":
		return num1(math.Tan)
	case "tanh":
		return num1(math.Tanh)
	case "exp":
		return num1(math.Exp)
	case "ln":
		return num1(math.Log)
	case "log":
		return num1(math.Log10)
	case "sqrt":
		return num1(math.Sqrt)
	case "power", "pow":
		return num2(math.Pow)
	case "ceil", "floor":
		f := math.Ceil
		if name == "floor" {
			f = math.Floor
		}
		return def(1, 1, func(_ *Env, _ *Call, a []any) (any, error) {
			if i, ok := a[0].(int64); ok {
				return i, nil
			}
			x, ok := ToFloat(a[0])
			if !ok || isBool(a[0]) {
				return Undefined{}, nil
			}
			return intResult(f(x)), nil
		})
	case "round":
		return def(1, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			x, ok := ToFloat(a[0])
			if !ok || isBool(a[0]) {
				return Undefined{}, nil
			}
			if len(a) == 2 {
				d, ok := exactInt(a[1])
				if !ok || d < 0 || d > 15 {
					return Undefined{}, nil
				}
				p := math.Pow(10, float64(d))
				return finite(math.Round(x*p) / p), nil
			}
			if i, ok := a[0].(int64); ok {
				return i, nil
			}
			return intResult(math.Round(x)), nil
		})
	case "trunc":
		return def(1, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			x, ok := ToFloat(a[0])
			if !ok || isBool(a[0]) {
				return Undefined{}, nil
			}
			var d int64
			if len(a) == 2 {
				if d, ok = exactInt(a[1]); !ok || d < 0 || d > 15 {
					return Undefined{}, nil
				}
			}
			if d == 0 {
				if i, ok := a[0].(int64); ok {
					return i, nil
				}
				return intResult(math.Trunc(x)), nil
			}
			p := math.Pow(10, float64(d))
			return finite(math.Trunc(x*p) / p), nil
		})
	case "sign":
		return def(1, 1, func(_ *Env, _ *Call, a []any) (any, error) {
			x, ok := ToFloat(a[0])
			if !ok || isBool(a[0]) {
				return Undefined{}, nil
			}
			return int64(cmp3(x < 0, x > 0)), nil
		})
	case "mod", "remainder":
		return def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			r := arith("%", a[0], a[1])
			if name == "remainder" || IsUndefined(r) {
				return r, nil
			}
			// mod takes the sign of the divisor.
			switch x := r.(type) {
			case int64:
				if y, _ := ToInt(a[1]); x != 0 && (x < 0) != (y < 0) {
					return x + y, nil
				}
			case float64:
				if y, _ := ToFloat(a[1]); x != 0 && (x < 0) != (y < 0) {
					return x + y, nil
				}
			}
			return r, nil
		})
	case "nanvl":
		return def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			switch x := a[0].(type) {
			case float64:
				if math.IsNaN(x) {
					return a[1], nil
				}
			case string:
				if strings.EqualFold(x, "nan") {
					return a[1], nil
				}
			}
			return a[0], nil
		})
	case "rand":
		return def(0, 0, func(*Env, *Call, []any) (any, error) { return mrand.Float64(), nil })
	case "bitand":
		return int2(func(x, y int64) int64 { return x & y })
	case "bitor":
		return int2(func(x, y int64) int64 { return x | y })
	case "bitxor":
		return int2(func(x, y int64) int64 { return x ^ y })
	case "bitnot":
		return def(1, 1, func(_ *Env, _ *Call, a []any) (any, error) {
			x, ok := exactInt(a[0])
			if !ok {
				return Undefined{}, nil
			}
			return ^x, nil
		})

	// Strings.
	case "lower":
		return str1(func(s string) any { return strings.ToLower(s) })
	case "upper":
		return str1(func(s string) any { return strings.ToUpper(s) })
	case "length":
		return str1(func(s string) any { return int64(utf8.RuneCountInString(s)) })
	case "numbytes":
		return str1(func(s string) any { return int64(len(s)) })
	case "trim":
		return str1(func(s string) any { return strings.TrimSpace(s) })
	case "ltrim":
		return str1(func(s string) any { return strings.TrimLeftFunc(s, unicode.IsSpace) })
	case "rtrim":
		return str1(func(s string) any { return strings.TrimRightFunc(s, unicode.IsSpace) })
	case "chr":
		return def(1, 1, func(_ *Env, _ *Call, a []any) (any, error) {
			n, ok := exactInt(a[0])
			if !ok || n < 0 || n > unicode.MaxRune || !utf8.ValidRune(rune(n)) {
				return Undefined{}, nil
			}
			return string(rune(n)), nil
		})
	case "concat":
		return def(1, -1, func(_ *Env, _ *Call, a []any) (any, error) {
			arr := false
			for _, v := range a {
				if IsUndefined(v) {
					return Undefined{}, nil
				}
				if _, ok := v.([]any); ok {
					arr = true
				}
			}
			if arr {
				var out []any
				for _, v := range a {
					if x, ok := v.([]any); ok {
						out = append(out, x...)
					} else {
						out = append(out, v)
					}
				}
				return out, nil
			}
			var b strings.Builder
			for _, v := range a {
				b.WriteString(ToString(v))
			}
			return b.String(), nil
		})
	case "startswith", "endswith":
		return def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			s, ok1 := a[0].(string)
			p, ok2 := a[1].(string)
			if !ok1 || !ok2 {
				return Undefined{}, nil
			}
			if name == "startswith" {
				return strings.HasPrefix(s, p), nil
			}
			return strings.HasSuffix(s, p), nil
		})
	case "indexof":
		return def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			s, ok1 := asString(a[0])
			p, ok2 := asString(a[1])
			if !ok1 || !ok2 {
				return Undefined{}, nil
			}
			i := strings.Index(s, p)
			if i < 0 {
				return int64(-1), nil
			}
			return int64(utf8.RuneCountInString(s[:i])), nil
		})
	case "substring":
		return def(2, 3, func(_ *Env, _ *Call, a []any) (any, error) {
			s, ok := asString(a[0])
			start, ok2 := ToInt(a[1])
			if !ok || !ok2 || isBool(a[1]) {
				return Undefined{}, nil
			}
			r := []rune(s)
			end := int64(len(r))
			if len(a) == 3 {
				e, ok := ToInt(a[2])
				if !ok || isBool(a[2]) {
					return Undefined{}, nil
				}
				end = min(e, end)
			}
			start = max(start, 0)
			if start >= end {
				return "", nil
			}
			return string(r[start:end]), nil
		})
	case "replace":
		return def(3, 3, func(_ *Env, _ *Call, a []any) (any, error) {
			s, ok1 := asString(a[0])
			o, ok2 := asString(a[1])
			n, ok3 := asString(a[2])
			if !ok1 || !ok2 || !ok3 {
				return Undefined{}, nil
			}
			return strings.ReplaceAll(s, o, n), nil
		})
	case "lpad", "rpad":
		return def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			s, ok1 := asString(a[0])
			n, ok2 := exactInt(a[1])
			if !ok1 || !ok2 || n > 1<<16 || n < -(1<<16) {
				return Undefined{}, nil
			}
			left := name == "lpad"
			if n < 0 {
				left, n = !left, -n
			}
			pad := strings.Repeat(" ", int(n))
			if left {
				return pad + s, nil
			}
			return s + pad, nil
		})
	case "regexp_matches":
		d := def(2, 2, func(_ *Env, c *Call, a []any) (any, error) {
			s, ok := asString(a[0])
			re, ok2 := c.regexp(a[1])
			if !ok || !ok2 {
				return Undefined{}, nil
			}
			return re.MatchString(s), nil
		})
		d.check = regexpArg(1)
		return d
	case "regexp_replace":
		d := def(3, 3, func(_ *Env, c *Call, a []any) (any, error) {
			s, ok := asString(a[0])
			re, ok2 := c.regexp(a[1])
			r, ok3 := asString(a[2])
			if !ok || !ok2 || !ok3 {
				return Undefined{}, nil
			}
			return re.ReplaceAllString(s, r), nil
		})
		d.check = regexpArg(1)
		return d
	case "regexp_substr":
		d := def(2, 2, func(_ *Env, c *Call, a []any) (any, error) {
			s, ok := asString(a[0])
			re, ok2 := c.regexp(a[1])
			if !ok || !ok2 {
				return Undefined{}, nil
			}
			return re.FindString(s), nil
		})
		d.check = regexpArg(1)
		return d

	// Types and values.
	case "isnull":
		return def(1, 1, func(_ *Env, _ *Call, a []any) (any, error) { return a[0] == nil, nil })
	case "isundefined":
		return def(1, 1, func(_ *Env, _ *Call, a []any) (any, error) { return IsUndefined(a[0]), nil })
	case "coalesce":
		return def(1, -1, func(_ *Env, _ *Call, a []any) (any, error) {
			for _, v := range a {
				if v != nil && !IsUndefined(v) {
					return v, nil
				}
			}
			return Undefined{}, nil
		})
	case "get_or_default":
		return def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			if a[0] == nil || IsUndefined(a[0]) {
				return a[1], nil
			}
			return a[0], nil
		})
	case "get":
		return def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			switch x := a[0].(type) {
			case []any:
				if i, ok := exactInt(a[1]); ok && i >= 0 && i < int64(len(x)) {
					return x[i], nil
				}
			case map[string]any:
				if k, ok := a[1].(string); ok {
					if v, ok := x[k]; ok {
						return v, nil
					}
				}
			}
			return Undefined{}, nil
		})
	case "encode":
		d := def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			if s, _ := a[1].(string); !strings.EqualFold(s, "base64") {
				return Undefined{}, nil
			}
			switch x := a[0].(type) {
			case rawPayload:
				return base64.StdEncoding.EncodeToString(x), nil
			case Undefined:
				return Undefined{}, nil
			}
			return base64.StdEncoding.EncodeToString([]byte(ToString(a[0]))), nil
		})
		d.starArg, d.rawStar = 0, true
		return d
	case "decode":
		return def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			s, ok := a[0].(string)
			if e, _ := a[1].(string); !ok || !strings.EqualFold(e, "base64") {
				return Undefined{}, nil
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return Undefined{}, nil
			}
			return string(b), nil
		})
	case "md5":
		return hashFn(md5.New)
	case "sha1":
		return hashFn(sha1.New)
	case "sha224":
		return hashFn(sha256.New224)
	case "sha256":
		return hashFn(sha256.New)
	case "sha384":
		return hashFn(sha512.New384)
	case "sha512":
		return hashFn(sha512.New)
	case "crc32":
		return str1(func(s string) any { return int64(crc32.ChecksumIEEE([]byte(s))) })

	// Message context.
	case "topic":
		return def(0, 1, func(env *Env, _ *Call, a []any) (any, error) {
			if len(a) == 0 {
				return env.Topic, nil
			}
			n, ok := exactInt(a[0])
			if !ok || n < 1 {
				return Undefined{}, nil
			}
			t := env.Topic
			for i := int64(1); ; i++ {
				j := strings.IndexByte(t, '/')
				if i == n {
					if j < 0 {
						return t, nil
					}
					return t[:j], nil
				}
				if j < 0 {
					return Undefined{}, nil
				}
				t = t[j+1:]
			}
		})
	case "clientid":
		return def(0, 0, func(env *Env, _ *Call, _ []any) (any, error) { return env.ClientID, nil })
	case "principal":
		return def(0, 0, func(env *Env, _ *Call, _ []any) (any, error) { return env.Principal, nil })
	case "newuuid":
		return def(0, 0, func(*Env, *Call, []any) (any, error) { return newUUID(), nil })
	case "timestamp":
		return def(0, 0, func(env *Env, _ *Call, _ []any) (any, error) {
			t := env.Now
			if t.IsZero() {
				t = time.Now()
			}
			return t.UnixMilli(), nil
		})
	case "window_start", "window_end":
		return def(0, 0, func(env *Env, c *Call, _ []any) (any, error) {
			t := env.WindowStart
			if c.Name == "window_end" {
				t = env.WindowEnd
			}
			if t.IsZero() {
				return Undefined{}, nil
			}
			return t.UnixMilli(), nil
		})
	case "parse_time":
		return def(2, 3, func(_ *Env, _ *Call, a []any) (any, error) {
			pat, ok1 := a[0].(string)
			ms, ok2 := ToInt(a[1])
			if !ok1 || !ok2 || isBool(a[1]) {
				return Undefined{}, nil
			}
			loc := time.UTC
			if len(a) == 3 {
				tz, ok := a[2].(string)
				if !ok {
					return Undefined{}, nil
				}
				l, err := time.LoadLocation(tz)
				if err != nil {
					return Undefined{}, nil
				}
				loc = l
			}
			return time.UnixMilli(ms).In(loc).Format(javaLayout(pat)), nil
		})
	case "time_to_epoch":
		return def(2, 2, func(_ *Env, _ *Call, a []any) (any, error) {
			s, ok1 := a[0].(string)
			pat, ok2 := a[1].(string)
			if !ok1 || !ok2 {
				return Undefined{}, nil
			}
			t, err := time.ParseInLocation(javaLayout(pat), s, time.UTC)
			if err != nil {
				return Undefined{}, nil
			}
			return t.UnixMilli(), nil
		})

	// Registry lookups.
	case "get_thing_attr":
		return def(2, 2, func(env *Env, _ *Call, a []any) (any, error) {
			thing, ok1 := a[0].(string)
			attr, ok2 := a[1].(string)
			if !ok1 || !ok2 || env.Lookup == nil {
				return Undefined{}, nil
			}
			if v, ok := env.Lookup.ThingAttribute(env.ctx(), thing, attr); ok {
				return v, nil
			}
			return Undefined{}, nil
		})
	case "get_thing_type":
		return def(1, 1, func(env *Env, _ *Call, a []any) (any, error) {
			thing, ok := a[0].(string)
			if !ok || env.Lookup == nil {
				return Undefined{}, nil
			}
			if v, ok := env.Lookup.ThingType(env.ctx(), thing); ok {
				return v, nil
			}
			return Undefined{}, nil
		})
	}
	return nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// javaLayout translates a java.time DateTimeFormatter pattern (as AWS IoT's
// parse_time and time_to_epoch take) into a Go layout.
func javaLayout(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); {
		c := p[i]
		if c == '\'' {
			j := i + 1
			if j < len(p) && p[j] == '\'' {
				b.WriteByte('\'')
				i += 2
				continue
			}
			for j < len(p) && p[j] != '\'' {
				j++
			}
			b.WriteString(p[i+1 : min(j, len(p))])
			i = j + 1
			continue
		}
		n := 1
		for i+n < len(p) && p[i+n] == c {
			n++
		}
		switch c {
		case 'y', 'u':
			if n == 2 {
				b.WriteString("06")
			} else {
				b.WriteString("2006")
			}
		case 'M', 'L':
			b.WriteString([]string{"1", "01", "Jan", "January"}[min(n, 4)-1])
		case 'd':
			b.WriteString([]string{"2", "02"}[min(n, 2)-1])
		case 'D':
			b.WriteString("002")
		case 'H', 'k':
			b.WriteString("15")
		case 'h', 'K':
			b.WriteString([]string{"3", "03"}[min(n, 2)-1])
		case 'm':
			b.WriteString([]string{"4", "04"}[min(n, 2)-1])
		case 's':
			b.WriteString([]string{"5", "05"}[min(n, 2)-1])
		case 'S':
			if !strings.HasSuffix(b.String(), ".") && !strings.HasSuffix(b.String(), ",") {
				b.WriteByte('.')
			}
			b.WriteString(strings.Repeat("0", min(n, 9)))
		case 'a':
			b.WriteString("PM")
		case 'E':
			if n >= 4 {
				b.WriteString("Monday")
			} else {
				b.WriteString("Mon")
			}
		case 'z':
			b.WriteString("MST")
		case 'Z':
			if n >= 5 {
				b.WriteString("-07:00")
			} else {
				b.WriteString("-0700")
			}
		case 'X':
			b.WriteString([]string{"Z07", "Z0700", "Z07:00"}[min(n, 3)-1])
		case 'x':
			b.WriteString([]string{"-07", "-0700", "-07:00"}[min(n, 3)-1])
		default:
			b.WriteString(p[i : i+n])
		}
		i += n
	}
	return b.String()
}
