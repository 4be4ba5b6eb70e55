package lineproto

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// FieldType is the type of a field value.
type FieldType uint8

// Field types.
const (
	Float FieldType = iota + 1
	Integer
	Unsigned
	Boolean
	String
)

func (t FieldType) String() string {
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

// Tag is one tag of a line.
type Tag struct {
	Key, Value []byte
}

// Field is one field of a line; the member matching Type holds the value.
type Field struct {
	Key   []byte
	Type  FieldType
	Float float64
	Int   int64
	Uint  uint64
	Bool  bool
	Str   []byte
}

// Line is one decoded line.
type Line struct {
	// Series is the line's measurement and tags as written (escaped),
	// which identifies the series: callers may cache by it.
	Series      []byte
	Measurement []byte
	Tags        []Tag
	Fields      []Field
	Time        int64 // in the write's precision; valid when HasTime
	HasTime     bool
	Number      int // 1-based line number in the input
}

// LineError describes a line that could not be parsed.
type LineError struct {
	Number int    // 1-based line number
	Text   string // the line (truncated to 256 bytes)
	Msg    string // what is wrong
}

func (e *LineError) Error() string {
	return fmt.Sprintf("unable to parse '%s': %s", e.Text, e.Msg)
}

// ErrEOF is returned by Next after the last line.
var ErrEOF = errors.New("lineproto: end of input")

// Precision is a timestamp unit.
type Precision int64

// Precisions, as multiples of a nanosecond.
const (
	Nanosecond  Precision = 1
	Microsecond Precision = 1e3
	Millisecond Precision = 1e6
	Second      Precision = 1e9
	Minute      Precision = 60e9
	Hour        Precision = 3600e9
)

// ParsePrecision accepts the precisions of both APIs: ns, us, ms, s (2.x)
// and n, u, ms, s, m, h (1.x); "" is nanoseconds.
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "", "n", "ns":
		return Nanosecond, nil
	case "u", "us", "µ", "µs":
		return Microsecond, nil
	case "ms":
		return Millisecond, nil
	case "s":
		return Second, nil
	case "m":
		return Minute, nil
	case "h":
		return Hour, nil
	}
	return 0, fmt.Errorf("lineproto: invalid precision %q (use ns, us, ms, s, m or h)", s)
}

// ToNanos scales a timestamp in precision p to nanoseconds, failing on
// overflow.
func (p Precision) ToNanos(t int64) (int64, error) {
	if p == Nanosecond {
		return t, nil
	}
	if t > math.MaxInt64/int64(p) || t < math.MinInt64/int64(p) {
		return 0, fmt.Errorf("timestamp %d out of range for precision", t)
	}
	return t * int64(p), nil
}

// Decoder reads lines from a buffer.
type Decoder struct {
	// Known, when set, is asked about a line's series key (its
	// measurement and tags as written) before the tags are parsed. When it
	// answers true, the line comes back with Series set but Measurement
	// and Tags empty: the caller already holds them, from an earlier line
	// of the same key that parsed without error (the key's bytes are
	// identical, so its tags would parse identically). Keys with escapes
	// are always parsed in full and Known is not asked.
	Known func(series []byte) bool

	data    []byte
	pos     int
	lineNo  int
	scratch []byte
	line    Line
}

// NewDecoder returns a decoder over data (not copied, not modified).
func NewDecoder(data []byte) *Decoder { return &Decoder{data: data, lineNo: 1} }

// Next decodes the next line. It returns ErrEOF at the end, a *LineError
// for a bad line (call Next again for the following lines), or nil and
// the line, which is valid until the next call.
func (d *Decoder) Next() (*Line, error) {
	// Skip blank lines and comments.
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch c {
		case ' ', '\t', '\r':
			d.pos++
			continue
		case '\n':
			d.pos++
			d.lineNo++
			continue
		case '#':
			d.skipLine()
			continue
		}
		break
	}
	if d.pos >= len(d.data) {
		return nil, ErrEOF
	}
	start, num := d.pos, d.lineNo
	d.scratch = d.scratch[:0]
	l := &d.line
	l.Tags, l.Fields, l.Time, l.HasTime, l.Number = l.Tags[:0], l.Fields[:0], 0, false, num
	if msg := d.parse(l, start); msg != "" {
		end := d.pos
		// Report and skip the rest of the physical line.
		if i := bytes.IndexByte(d.data[end:], '\n'); i >= 0 {
			end += i
		} else {
			end = len(d.data)
		}
		if end < start {
			end = start
		}
		d.pos = end
		text := bytes.TrimRight(d.data[start:end], "\r")
		if len(text) > 256 {
			text = text[:256]
		}
		return nil, &LineError{Number: num, Text: string(text), Msg: msg}
	}
	return l, nil
}

func (d *Decoder) skipLine() {
	if i := bytes.IndexByte(d.data[d.pos:], '\n'); i >= 0 {
		d.pos += i + 1
		d.lineNo++
	} else {
		d.pos = len(d.data)
	}
}

// unescape returns b without the backslashes before chars in set,
// copying into the scratch buffer only when there is something to remove.
func (d *Decoder) unescape(b []byte, set string) []byte {
	i := bytes.IndexByte(b, '\\')
	if i < 0 {
		return b
	}
	s0 := len(d.scratch)
	d.scratch = append(d.scratch, b[:i]...)
	for ; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) && bytes.IndexByte([]byte(set), b[i+1]) >= 0 {
			i++
		}
		d.scratch = append(d.scratch, b[i])
	}
	return d.scratch[s0:len(d.scratch):len(d.scratch)]
}

// scan advances over an identifier up to one of the stop bytes (not
// escaped by a backslash) and returns it, whether escapes were seen, and
// the stop byte (0 at end of input).
func (d *Decoder) scan(stop1, stop2, stop3 byte) ([]byte, bool, byte) {
	start := d.pos
	esc := false
	data := d.data
	for i := d.pos; i < len(data); i++ {
		c := data[i]
		switch c {
		case '\\':
			if i+1 < len(data) && data[i+1] != '\n' {
				esc = true
				i++
			}
		case stop1, stop2, stop3, '\n':
			d.pos = i
			return data[start:i], esc, c
		}
	}
	d.pos = len(data)
	return data[start:], esc, 0
}

// seriesEnd returns the end of the series key starting at start when it
// is the plain case (no backslash, tab or newline before the first space),
// or -1 when the key needs the full parser.
func (d *Decoder) seriesEnd(start int) int {
	rest := d.data[start:]
	i := bytes.IndexByte(rest, ' ')
	if i <= 0 {
		return -1
	}
	key := rest[:i]
	if bytes.IndexByte(key, '\\') >= 0 || bytes.IndexByte(key, '\t') >= 0 || bytes.IndexByte(key, '\n') >= 0 {
		return -1
	}
	return start + i
}

// fieldKeyStop marks the bytes scanFieldKey stops at or must look at.
var fieldKeyStop = [256]bool{'=': true, ',': true, ' ': true, '\n': true, '\\': true}

// scanFieldKey is scan('=', ',', ' ') with a table lookup per byte (field
// keys are most of the bytes scanned per line).
func (d *Decoder) scanFieldKey() ([]byte, bool, byte) {
	start := d.pos
	esc := false
	data := d.data
	for i := d.pos; i < len(data); i++ {
		c := data[i]
		if !fieldKeyStop[c] {
			continue
		}
		if c == '\\' {
			if i+1 < len(data) && data[i+1] != '\n' {
				esc = true
				i++
			}
			continue
		}
		d.pos = i
		return data[start:i], esc, c
	}
	d.pos = len(data)
	return data[start:], esc, 0
}

// parse decodes one line at d.pos into l, returning an error message.
func (d *Decoder) parse(l *Line, start int) string {
	l.Measurement = nil
	if d.Known != nil {
		if end := d.seriesEnd(start); end > 0 && d.Known(d.data[start:end]) {
			l.Series = d.data[start:end]
			d.pos = end
			return d.parseFields(l)
		}
	}
	m, esc, c := d.scan(',', ' ', '\t')
	if len(m) == 0 {
		return "missing measurement"
	}
	if esc {
		m = d.unescape(m, ", ")
	}
	l.Measurement = m
	// Tags.
	for c == ',' {
		d.pos++
		k, kesc, kc := d.scan('=', ',', ' ')
		if kc != '=' {
			return "missing tag value"
		}
		if len(k) == 0 {
			return "missing tag key"
		}
		d.pos++
		v, vesc, vc := d.scan(',', ' ', '\t')
		if len(v) == 0 {
			return "missing tag value"
		}
		if kesc {
			k = d.unescape(k, ",= ")
		}
		if vesc {
			v = d.unescape(v, ",= ")
		}
		for i := range l.Tags {
			if bytes.Equal(l.Tags[i].Key, k) {
				return "duplicate tags"
			}
		}
		l.Tags = append(l.Tags, Tag{Key: k, Value: v})
		c = vc
	}
	if c != ' ' && c != '\t' {
		return "missing fields"
	}
	l.Series = d.data[start:d.pos]
	return d.parseFields(l)
}

// parseFields decodes the fields, timestamp and end of line at d.pos (the
// separator after the series key).
func (d *Decoder) parseFields(l *Line) string {
	d.skipSpace()
	var seen uint64 // signatures of the keys so far
	for {
		k, kesc, kc := d.scanFieldKey()
		if kc != '=' {
			return "missing fields"
		}
		if len(k) == 0 {
			return "missing field key"
		}
		if kesc {
			k = d.unescape(k, ",= ")
		}
		d.pos++
		// Decode into the next slot (a Field is large: no copy).
		n := len(l.Fields)
		if n < cap(l.Fields) {
			l.Fields = l.Fields[:n+1]
			l.Fields[n] = Field{Key: k}
		} else {
			l.Fields = append(l.Fields, Field{Key: k})
		}
		f := &l.Fields[n]
		if msg := d.fieldValue(f); msg != "" {
			return msg
		}
		// A key whose signature bit is new cannot repeat an earlier key:
		// most lines need no key comparisons at all.
		sig := uint64(1) << ((uint(len(k))*7 + uint(k[0])*3 + uint(k[len(k)-1])) & 63)
		if seen&sig != 0 {
			for i := range l.Fields[:n] {
				if bytes.Equal(l.Fields[i].Key, k) {
					l.Fields[i] = *f // the last value of a repeated field wins
					l.Fields = l.Fields[:n]
					break
				}
			}
		}
		seen |= sig
		if d.pos < len(d.data) && d.data[d.pos] == ',' {
			d.pos++
			continue
		}
		break
	}
	// Optional timestamp, then the end of the line.
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] != '\n' && d.data[d.pos] != '\r' {
		ts, end, ok := timestamp(d.data, d.pos)
		d.pos = end
		if !ok {
			return "bad timestamp"
		}
		l.Time, l.HasTime = ts, true
		d.skipSpace()
	}
	if d.pos < len(d.data) && d.data[d.pos] == '\r' {
		d.pos++
	}
	if d.pos < len(d.data) {
		if d.data[d.pos] != '\n' {
			return "invalid field format (unexpected text after the timestamp)"
		}
		d.pos++
		d.lineNo++
	}
	return ""
}

func (d *Decoder) skipSpace() {
	for d.pos < len(d.data) && (d.data[d.pos] == ' ' || d.data[d.pos] == '\t') {
		d.pos++
	}
}

// fieldValue parses the value at d.pos into f.
func (d *Decoder) fieldValue(f *Field) string {
	data := d.data
	if d.pos >= len(data) {
		return "missing field value"
	}
	if data[d.pos] == '"' {
		start := d.pos + 1
		esc := false
		for i := start; i < len(data); i++ {
			switch data[i] {
			case '\\':
				if i+1 < len(data) && (data[i+1] == '"' || data[i+1] == '\\') {
					esc = true
					i++
				}
			case '"':
				s := data[start:i]
				if esc {
					s = d.unescape(s, `"\`)
				}
				// Newlines inside the string belong to this line.
				d.lineNo += bytes.Count(s, []byte{'\n'})
				f.Type, f.Str = String, s
				d.pos = i + 1
				if d.pos < len(data) {
					if c := data[d.pos]; c != ',' && c != ' ' && c != '\t' && c != '\n' && c != '\r' {
						return "invalid field format (text after a string value)"
					}
				}
				return ""
			}
		}
		return "unbalanced quotes"
	}
	if x, end, ok := plainDecimal(data, d.pos); ok {
		f.Type, f.Float = Float, x
		d.pos = end
		return ""
	}
	start := d.pos
	for d.pos < len(data) {
		c := data[d.pos]
		if c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		d.pos++
	}
	v := data[start:d.pos]
	if len(v) == 0 {
		return "missing field value"
	}
	switch last := v[len(v)-1]; {
	case last == 'i' && len(v) > 1 && isNumStart(v[0]):
		n, ok := parseInt(v[:len(v)-1])
		if !ok {
			return "invalid integer " + strconv.Quote(string(v))
		}
		f.Type, f.Int = Integer, n
	case last == 'u' && len(v) > 1 && v[0] >= '0' && v[0] <= '9':
		n, err := strconv.ParseUint(unsafeString(v[:len(v)-1]), 10, 64)
		if err != nil {
			return "invalid unsigned integer " + strconv.Quote(string(v))
		}
		f.Type, f.Uint = Unsigned, n
	case isNumStart(v[0]):
		x, ok := parseFloat(v)
		if !ok {
			return "invalid number " + strconv.Quote(string(v))
		}
		f.Type, f.Float = Float, x
	default:
		switch string(v) {
		case "t", "T", "true", "True", "TRUE":
			f.Type, f.Bool = Boolean, true
		case "f", "F", "false", "False", "FALSE":
			f.Type, f.Bool = Boolean, false
		default:
			return "invalid boolean " + strconv.Quote(string(v))
		}
	}
	return ""
}

func isNumStart(c byte) bool { return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' }

// parseInt parses a decimal int64 (optional sign) without allocating.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// timestamp parses the timestamp at data[i:] up to the next space, tab,
// newline or carriage return (end), in one pass for the common case of
// plain digits; ok is false when it is not a valid int64.
func timestamp(data []byte, i int) (ts int64, end int, ok bool) {
	start := i
	var n uint64
	for ; i < len(data) && i-start < 19; i++ {
		d := data[i] - '0'
		if d > 9 {
			break
		}
		n = n*10 + uint64(d)
	}
	if i > start && (i == len(data) || isTimestampEnd(data[i])) {
		// At most 19 digits: below 1e19, so n did not wrap.
		return int64(n), i, n <= math.MaxInt64
	}
	// Signs, 19 digits and beyond, or junk: find the end, then parse.
	for i = start; i < len(data) && !isTimestampEnd(data[i]); i++ {
	}
	ts, ok = parseInt(data[start:i])
	return ts, i, ok
}

func isTimestampEnd(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// parseFloat parses a finite float: digits with optional sign, fraction
// and exponent (no hex, no inf/nan, no underscores).
// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
	1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseDecimal converts a plain decimal of at most 15 significant digits
// ([-]digits[.digits], no exponent) exactly: the digits fit a float64
// mantissa and the power of ten is exact, so one division rounds
// correctly (Clinger's fast path, as strconv does after more work).
func parseDecimal(b []byte) (float64, bool) {
	x, end, ok := plainDecimal(b, 0)
	return x, ok && end == len(b)
}

// plainDecimal parses the common field value, a plain decimal (see
// parseDecimal) at data[i:], while finding its end: a separator or the end
// of input. It returns the value and its end, or ok false to leave the
// value to the general path.
func plainDecimal(data []byte, i int) (x float64, end int, ok bool) {
	neg := false
	if i < len(data) && (data[i] == '-' || data[i] == '+') {
		neg = data[i] == '-'
		i++
	}
	var m uint64
	nd, frac, dot := 0, 0, false
	for ; i < len(data); i++ {
		c := data[i]
		if d := c - '0'; d <= 9 {
			m = m*10 + uint64(d)
			nd++
			if dot {
				frac++
			}
			continue
		}
		if c == '.' && !dot {
			dot = true
			continue
		}
		if c != ',' && c != ' ' && c != '\n' && c != '\t' && c != '\r' {
			return 0, 0, false // i, u, exponent, or not a number at all
		}
		break
	}
	if nd == 0 || nd > 15 {
		return 0, 0, false
	}
	x = float64(m) / pow10[frac]
	if neg {
		x = -x
	}
	return x, i, true
}

func parseFloat(b []byte) (float64, bool) {
	if x, ok := parseDecimal(b); ok {
		return x, true
	}
	digits := 0
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' || c == 'e' || c == 'E' || (c == '-' || c == '+') && (i == 0 || b[i-1] == 'e' || b[i-1] == 'E'):
		default:
			return 0, false
		}
	}
	if digits == 0 {
		return 0, false
	}
	x, err := strconv.ParseFloat(unsafeString(b), 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, false
	}
	return x, true
}

// unsafeString views b as a string for parsing calls that do not keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
