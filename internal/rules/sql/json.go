package sql

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxJSONDepth bounds the nesting of payloads the evaluator reads.
const MaxJSONDepth = 256

var errJSON = errors.New("invalid JSON")

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// ValidJSON reports whether b holds exactly one JSON value.
func ValidJSON(b []byte) bool {
	i, err := skipValue(b, skipWS(b, 0), 0)
	return err == nil && skipWS(b, i) == len(b)
}

// skipValue returns the offset after the value at b[i:], validating it.
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, errJSON
	}
	switch c := b[i]; {
	case c == '{':
		if depth >= MaxJSONDepth {
			return i, errJSON
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, errJSON
			}
			var err error
			if i, err = skipString(b, i); err != nil {
				return i, err
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, errJSON
			}
			if i, err = skipValue(b, skipWS(b, i+1), depth+1); err != nil {
				return i, err
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, errJSON
			}
			if b[i] == '}' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return i, errJSON
			}
			i = skipWS(b, i+1)
		}
	case c == '[':
		if depth >= MaxJSONDepth {
			return i, errJSON
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = skipValue(b, i, depth+1); err != nil {
				return i, err
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, errJSON
			}
			if b[i] == ']' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return i, errJSON
			}
			i = skipWS(b, i+1)
		}
	case c == '"':
		return skipString(b, i)
	case c == 't':
		return skipLit(b, i, "true")
	case c == 'f':
		return skipLit(b, i, "false")
	case c == 'n':
		return skipLit(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		j, _, ok := scanNumber(b, i)
		if !ok {
			return j, errJSON
		}
		return j, nil
	}
	return i, errJSON
}

func skipLit(b []byte, i int, lit string) (int, error) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return i, errJSON
}

// skipString validates the string at b[i] (a quote) and returns the offset
// after its closing quote.
func skipString(b []byte, i int) (int, error) {
	i++
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return i, errJSON
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, errJSON
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return i, errJSON
					}
				}
				i += 6
			default:
				return i, errJSON
			}
		case c < 0x20:
			return i, errJSON
		default:
			i++
		}
	}
	return i, errJSON
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// scanNumber scans a JSON number; isInt is false when it has a fraction or
// an exponent.
func scanNumber(b []byte, i int) (end int, isInt, ok bool) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false, false
	}
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	} else {
		return i, false, false
	}
	isInt = true
	if i < len(b) && b[i] == '.' {
		isInt = false
		i++
		d := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == d {
			return i, false, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isInt = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == d {
			return i, false, false
		}
	}
	_ = start
	return i, isInt, true
}

// lookupPath finds the value at a static path in the valid JSON document
// b; it returns the offset of the value.
func lookupPath(b []byte, i int, steps []Step) (int, bool) {
	i = skipWS(b, i)
	for _, s := range steps {
		if i >= len(b) {
			return 0, false
		}
		if s.Index == nil {
			if b[i] != '{' {
				return 0, false
			}
			i = skipWS(b, i+1)
			found := false
			for i < len(b) && b[i] == '"' {
				ks := i + 1
				ke, _ := skipString(b, i)
				i = skipWS(b, ke)
				i = skipWS(b, i+1) // ':'
				if keyEquals(b[ks:ke-1], s.Key) {
					found = true
					// The last of duplicated keys wins, as in encoding/json.
					j, _ := skipValue(b, i, 0)
					for k := skipWS(b, j); k < len(b) && b[k] == ','; {
						k = skipWS(b, k+1)
						ks2 := k + 1
						ke2, _ := skipString(b, k)
						k = skipWS(b, skipWS(b, ke2)+1)
						if keyEquals(b[ks2:ke2-1], s.Key) {
							i = k
						}
						k, _ = skipValue(b, k, 0)
						k = skipWS(b, k)
					}
					break
				}
				i, _ = skipValue(b, i, 0)
				i = skipWS(b, i)
				if i < len(b) && b[i] == ',' {
					i = skipWS(b, i+1)
				}
			}
			if !found {
				return 0, false
			}
			continue
		}
		if b[i] != '[' {
			return 0, false
		}
		n := s.Index.(*Literal).V.(int64)
		i = skipWS(b, i+1)
		if n < 0 || i >= len(b) || b[i] == ']' {
			return 0, false
		}
		for ; n > 0; n-- {
			i, _ = skipValue(b, i, 0)
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ',' {
				return 0, false
			}
			i = skipWS(b, i+1)
		}
	}
	return i, true
}

// keyEquals compares a raw JSON string body with a key.
func keyEquals(raw []byte, key string) bool {
	for _, c := range raw {
		if c == '\\' {
			return unescape(raw) == key
		}
	}
	return string(raw) == key
}

// unescape decodes the body of a valid JSON string.
func unescape(raw []byte) string {
	bs := -1
	for i, c := range raw {
		if c == '\\' {
			bs = i
			break
		}
	}
	if bs < 0 {
		return string(raw)
	}
	out := make([]byte, 0, len(raw))
	out = append(out, raw[:bs]...)
	for i := bs; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) && i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if r2 := utf16.DecodeRune(r, hex4(raw[i+2:i+6])); r2 != utf8.RuneError {
					r = r2
					i += 6
				}
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			out = append(out, raw[i+1])
		}
		i += 2
	}
	return string(out)
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		default:
			r = r<<4 | rune(c-'A'+10)
		}
	}
	return r
}

// decodeAt decodes the valid JSON value at b[i:].
func decodeAt(b []byte, i int) (any, int) {
	switch c := b[i]; {
	case c == '{':
		m := map[string]any{}
		i = skipWS(b, i+1)
		for i < len(b) && b[i] == '"' {
			ke, _ := skipString(b, i)
			k := unescape(b[i+1 : ke-1])
			i = skipWS(b, skipWS(b, ke)+1)
			var v any
			v, i = decodeAt(b, i)
			m[k] = v
			i = skipWS(b, i)
			if b[i] == ',' {
				i = skipWS(b, i+1)
			}
		}
		return m, i + 1
	case c == '[':
		a := []any{}
		i = skipWS(b, i+1)
		for b[i] != ']' {
			var v any
			v, i = decodeAt(b, i)
			a = append(a, v)
			i = skipWS(b, i)
			if b[i] == ',' {
				i = skipWS(b, i+1)
			}
		}
		return a, i + 1
	case c == '"':
		e, _ := skipString(b, i)
		return unescape(b[i+1 : e-1]), e
	case c == 't':
		return true, i + 4
	case c == 'f':
		return false, i + 5
	case c == 'n':
		return nil, i + 4
	}
	e, isInt, _ := scanNumber(b, i)
	return parseNumber(b[i:e], isInt), e
}

func parseNumber(s []byte, isInt bool) any {
	if isInt {
		if n, err := strconv.ParseInt(string(s), 10, 64); err == nil {
			return n
		}
	}
	f, _ := strconv.ParseFloat(string(s), 64)
	return f
}

// eachMember calls fn for each member of the valid JSON object at b[i:], in
// document order.
func eachMember(b []byte, fn func(key string, val []byte, at int)) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	for i < len(b) && b[i] == '"' {
		ke, _ := skipString(b, i)
		k := unescape(b[i+1 : ke-1])
		i = skipWS(b, skipWS(b, ke)+1)
		fn(k, b, i)
		i, _ = skipValue(b, i, 0)
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
	return true
}
