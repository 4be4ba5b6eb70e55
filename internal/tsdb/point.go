package tsdb

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"unsafe"
)

// Tag is one key/value pair identifying a series.
type Tag struct {
	Key, Value string
}

// Field is one named value of a point.
type Field struct {
	Key   string
	Value Value
}

// Point is one measurement at one instant: the series is Measurement plus
// Tags, and each Field is stored as its own column.
type Point struct {
	Measurement string
	Tags        []Tag
	Fields      []Field
	Time        int64 // unix nanoseconds
}

// seriesKey is the canonical identity of a series: measurement and the
// tags sorted by key, joined with separators that cannot be confused.
func seriesKey(measurement string, sorted []Tag) string {
	n := len(measurement)
	for _, t := range sorted {
		n += len(t.Key) + len(t.Value) + 2
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(measurement)
	for _, t := range sorted {
		b.WriteByte(0)
		b.WriteString(t.Key)
		b.WriteByte(1)
		b.WriteString(t.Value)
	}
	return b.String()
}

func compareTags(a, b []Tag) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := cmp.Compare(a[i].Key, b[i].Key); c != 0 {
			return c
		}
		if c := cmp.Compare(a[i].Value, b[i].Value); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// preparedPoint is a validated point with sorted tags and its series key.
type preparedPoint struct {
	Point
	key string
	s   *series // resolved by the writer goroutine (nil before)
	// bs numbers the distinct series keys of one batch from 1, so that
	// the WAL encoder and the writer handle each series once per batch
	// instead of once per point; 0 = not numbered.
	bs int32
	// hinted: the writer found every field among the series' hints and
	// replaced the keys by the index's own strings, so apply has no field
	// to record and the head compares keys by pointer.
	hinted bool
}

// preparer prepares the points of one batch, reusing the sorted tags and
// series key of points that share a Tags backing array (line protocol
// bodies and clients that reuse tag slices do).
type preparer struct {
	cache map[*Tag]preparedSeries
	n     int32 // batch series numbers handed out
}

type preparedSeries struct {
	measurement string
	n           int
	tags        []Tag
	key         string
	bs          int32
	// fieldKeys are the field names of the last point of the series that
	// passed checkFields; a point naming the same strings (line protocol
	// bodies intern them) needs only its values checked.
	fieldKeys []string
}

func (pr *preparer) prepare(p Point) (preparedPoint, error) {
	var pp preparedPoint
	err := pr.prepareTo(&pp, &p)
	return pp, err
}

// prepareTo is prepare writing into *dst (the write path prepares into
// its array: a preparedPoint is over 100 bytes).
func (pr *preparer) prepareTo(dst *preparedPoint, p *Point) error {
	if len(p.Tags) == 0 || p.Measurement == "" {
		pp, err := prepare(*p)
		if err != nil {
			return err
		}
		pr.n++
		pp.bs = pr.n
		*dst = pp
		return nil
	}
	id := &p.Tags[0]
	if c, ok := pr.cache[id]; ok && c.n == len(p.Tags) && c.measurement == p.Measurement {
		if sameKeys(p.Fields, c.fieldKeys) {
			if err := checkValues(p.Fields); err != nil {
				return err
			}
		} else {
			if err := checkFields(p.Fields); err != nil {
				return err
			}
			c.fieldKeys = c.fieldKeys[:0]
			for _, f := range p.Fields {
				c.fieldKeys = append(c.fieldKeys, f.Key)
			}
			pr.cache[id] = c
		}
		*dst = preparedPoint{Point: Point{Measurement: p.Measurement, Tags: c.tags, Fields: p.Fields, Time: p.Time}, key: c.key, bs: c.bs}
		return nil
	}
	pp, err := prepare(*p)
	if err != nil {
		return err
	}
	if pr.cache == nil {
		pr.cache = make(map[*Tag]preparedSeries)
	}
	pr.n++
	pp.bs = pr.n
	keys := make([]string, len(p.Fields))
	for i, f := range p.Fields {
		keys[i] = f.Key
	}
	pr.cache[id] = preparedSeries{measurement: p.Measurement, n: len(p.Tags), tags: pp.Tags, key: pp.key, bs: pp.bs, fieldKeys: keys}
	*dst = pp
	return nil
}

// prepare validates p and returns it with tags sorted (copied, the
// caller's slice is not modified).
func prepare(p Point) (preparedPoint, error) {
	if p.Measurement == "" {
		return preparedPoint{}, fmt.Errorf("empty measurement")
	}
	if len(p.Fields) == 0 {
		return preparedPoint{}, fmt.Errorf("no fields")
	}
	tags := p.Tags
	if !slices.IsSortedFunc(tags, func(a, b Tag) int { return cmp.Compare(a.Key, b.Key) }) {
		tags = slices.Clone(tags)
		slices.SortFunc(tags, func(a, b Tag) int { return cmp.Compare(a.Key, b.Key) })
	}
	for i, t := range tags {
		if t.Key == "" {
			return preparedPoint{}, fmt.Errorf("empty tag key")
		}
		if i > 0 && tags[i-1].Key == t.Key {
			return preparedPoint{}, fmt.Errorf("duplicate tag key %q", t.Key)
		}
	}
	if err := checkFields(p.Fields); err != nil {
		return preparedPoint{}, err
	}
	p.Tags = tags
	return preparedPoint{Point: p, key: seriesKey(p.Measurement, tags)}, nil
}

// checkFields validates the fields of a point.
func checkFields(fields []Field) error {
	if len(fields) == 0 {
		return fmt.Errorf("no fields")
	}
	var seen uint64 // signature bits of the keys so far
	for i, f := range fields {
		k := f.Key
		if k == "" {
			return fmt.Errorf("empty field key")
		}
		// A key whose signature bit is new cannot repeat an earlier one,
		// so most points need no key comparisons.
		sig := uint64(1) << ((uint(len(k))*7 + uint(k[0])*3 + uint(k[len(k)-1])) & 63)
		if seen&sig != 0 {
			for _, g := range fields[:i] {
				if g.Key == k {
					return fmt.Errorf("duplicate field key %q", k)
				}
			}
		}
		seen |= sig
	}
	return checkValues(fields)
}

// checkValues validates the values of fields whose keys are known valid.
func checkValues(fields []Field) error {
	for _, f := range fields {
		switch f.Value.typ() {
		case Float:
			v := math.Float64frombits(f.Value.n)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("field %q: non-finite float %v", f.Key, v)
			}
		case Integer, Unsigned, Boolean, String:
		default:
			return fmt.Errorf("field %q: invalid value", f.Key)
		}
	}
	return nil
}

// sameKeys reports whether fields are named by exactly the strings keys
// (same bytes in memory, so equal without comparing them), which passed
// checkFields before.
func sameKeys(fields []Field, keys []string) bool {
	if len(fields) != len(keys) || len(keys) == 0 {
		return false
	}
	for i, f := range fields {
		if len(f.Key) != len(keys[i]) || unsafe.StringData(f.Key) != unsafe.StringData(keys[i]) {
			return false
		}
	}
	return true
}

// appendPoints encodes points as one WAL record payload (format 2):
//
//	uvarint 0, byte 2 (format marker; format 1 payloads start with a
//	non-zero point count), uvarint nseries, per series: string
//	measurement, uvarint ntags, (string key, string value)*; uvarint
//	nnames, string field name*; uvarint n; n times: uvarint series index,
//	varint time, uvarint nfields, (uvarint name index, byte type, value)*
//	where value is 8 bytes (float), varint (integer), uvarint (unsigned),
//	byte (boolean) or string; string = uvarint length + bytes.
//
// Series and field names are written once per record: points sharing a
// series key string (as the batch preparer arranges) share the entry.
func appendPoints(dst []byte, pts []preparedPoint) []byte {
	var e recordEncoder
	e.encode(nil, pts)
	dst, _ = e.finish(dst)
	return dst
}

// recordEncoder builds a WAL record payload (see appendPoints) one point
// at a time, so that the write path can encode a point right after
// preparing it, while its fields are still in cache.
type recordEncoder struct {
	body      []byte // the point section, without its leading count
	n         int    // points added
	seriesIdx map[*byte]int
	byNum     []int32 // batch series number -> series index + 1
	series    []seriesRef
	nameIdx   map[string]int
	names     []string
	// Points of a batch mostly name the same fields in the same order:
	// the last point's name indexes skip the map.
	last []int
}

type seriesRef struct {
	measurement string
	tags        []Tag
}

// reset starts a new payload, reusing body's array.
func (e *recordEncoder) reset(body []byte) {
	e.body, e.n = body[:0], 0
	// Clearing a map costs its capacity: drop the ones a huge batch grew.
	if len(e.seriesIdx) > 4096 {
		e.seriesIdx = nil
	}
	clear(e.seriesIdx)
	clear(e.byNum)
	e.byNum = e.byNum[:0]
	e.series = e.series[:0]
	if len(e.nameIdx) > 4096 {
		e.nameIdx = nil
	}
	clear(e.nameIdx)
	e.names, e.last = e.names[:0], e.last[:0]
}

// encode starts a new payload in body's array holding pts.
func (e *recordEncoder) encode(body []byte, pts []preparedPoint) {
	e.reset(body)
	for i := range pts {
		e.add(&pts[i])
	}
}

func (e *recordEncoder) add(p *preparedPoint) {
	e.n++
	var si int
	if p.bs > 0 && int(p.bs) < len(e.byNum) && e.byNum[p.bs] > 0 {
		si = int(e.byNum[p.bs]) - 1
	} else {
		k := unsafe.StringData(p.key)
		var ok bool
		if e.seriesIdx == nil {
			e.seriesIdx = make(map[*byte]int)
		}
		si, ok = e.seriesIdx[k]
		if !ok {
			si = len(e.series)
			e.seriesIdx[k] = si
			e.series = append(e.series, seriesRef{p.Measurement, p.Tags})
		}
		if p.bs > 0 {
			if int(p.bs) >= len(e.byNum) {
				e.byNum = append(e.byNum, make([]int32, int(p.bs)+1-len(e.byNum))...)
			}
			e.byNum[p.bs] = int32(si) + 1
		}
	}
	body := e.body
	body = binary.AppendUvarint(body, uint64(si))
	body = binary.AppendVarint(body, p.Time)
	body = binary.AppendUvarint(body, uint64(len(p.Fields)))
	for j, f := range p.Fields {
		var ni int
		if j < len(e.last) && e.names[e.last[j]] == f.Key {
			ni = e.last[j]
		} else {
			var ok bool
			if e.nameIdx == nil {
				e.nameIdx = make(map[string]int)
			}
			ni, ok = e.nameIdx[f.Key]
			if !ok {
				ni = len(e.names)
				e.nameIdx[f.Key] = ni
				e.names = append(e.names, f.Key)
			}
			if j < len(e.last) {
				e.last[j] = ni
			} else if j == len(e.last) {
				e.last = append(e.last, ni)
			}
		}
		body = binary.AppendUvarint(body, uint64(ni))
		t := f.Value.typ()
		body = append(body, byte(t))
		switch t {
		case Float:
			body = binary.LittleEndian.AppendUint64(body, f.Value.n)
		case Integer:
			body = binary.AppendVarint(body, int64(f.Value.n))
		case Unsigned:
			body = binary.AppendUvarint(body, f.Value.n)
		case Boolean:
			body = append(body, byte(f.Value.n))
		case String:
			body = appendString(body, f.Value.str())
		}
	}
	e.body = body
}

// finish appends the payload to dst and returns it and the point section's
// array for reuse.
func (e *recordEncoder) finish(dst []byte) ([]byte, []byte) {
	dst = append(dst, 0, 2)
	dst = binary.AppendUvarint(dst, uint64(len(e.series)))
	for _, sr := range e.series {
		dst = appendString(dst, sr.measurement)
		dst = binary.AppendUvarint(dst, uint64(len(sr.tags)))
		for _, t := range sr.tags {
			dst = appendString(dst, t.Key)
			dst = appendString(dst, t.Value)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.names)))
	for _, n := range e.names {
		dst = appendString(dst, n)
	}
	dst = binary.AppendUvarint(dst, uint64(e.n))
	dst = append(dst, e.body...)
	clear(e.series) // do not keep the caller's tags alive
	return dst, e.body
}

// maxBatchSeries returns the largest batch series number in pts.
func maxBatchSeries(pts []preparedPoint) int32 {
	var n int32
	for i := range pts {
		n = max(n, pts[i].bs)
	}
	return n
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads the primitive encodings used by WAL records and block
// indexes; the first error sticks and later reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail("uint64")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) u32() uint32 {
	if len(d.b) < 4 {
		d.fail("uint32")
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string length")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a collection length and checks that at least min bytes per
// element remain, so corrupt input cannot force a huge allocation.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b))/uint64(min) {
		d.fail("count")
		return 0
	}
	return int(n)
}

// decodePoints decodes a WAL record payload (see appendPoints). Decoded
// points are re-validated, so a record that passes the CRC but carries
// invalid points is reported as corrupt.
func decodePoints(b []byte) ([]preparedPoint, error) {
	if len(b) >= 2 && b[0] == 0 && b[1] == 2 {
		return decodePoints2(b[2:])
	}
	return decodePoints1(b)
}

// decodePoints2 decodes a format 2 payload (after the marker).
func decodePoints2(b []byte) ([]preparedPoint, error) {
	d := decoder{b: b}
	ns := d.count(2)
	series := make([]preparedPoint, 0, ns)
	for i := 0; i < ns && d.err == nil; i++ {
		var p Point
		p.Measurement = d.string()
		nt := d.count(2)
		if nt > 0 {
			p.Tags = make([]Tag, nt)
			for j := range p.Tags {
				p.Tags[j] = Tag{Key: d.string(), Value: d.string()}
			}
		}
		if d.err != nil {
			break
		}
		p.Fields = []Field{{Key: "x", Value: BoolValue(true)}} // placeholder for validation
		pp, err := prepare(p)
		if err != nil {
			return nil, fmt.Errorf("%w: series %d: %v", ErrCorrupt, i, err)
		}
		series = append(series, pp)
	}
	nn := d.count(1)
	names := make([]string, 0, nn)
	for i := 0; i < nn && d.err == nil; i++ {
		names = append(names, d.string())
	}
	n := d.count(3)
	pts := make([]preparedPoint, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		si := d.uvarint()
		if si >= uint64(len(series)) {
			d.fail("series index")
			break
		}
		pp := series[si]
		pp.bs = int32(si) + 1
		pp.Time = d.varint()
		nf := d.count(3)
		pp.Fields = make([]Field, nf)
		for j := range pp.Fields {
			ni := d.uvarint()
			if ni >= uint64(len(names)) {
				d.fail("field name index")
				break
			}
			pp.Fields[j] = Field{Key: names[ni], Value: d.value()}
		}
		if d.err != nil {
			break
		}
		if err := checkFields(pp.Fields); err != nil {
			return nil, fmt.Errorf("%w: point %d: %v", ErrCorrupt, i, err)
		}
		pts = append(pts, pp)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes in record", ErrCorrupt, len(d.b))
	}
	return pts, nil
}

// value reads a type byte and a value.
func (d *decoder) value() Value {
	switch ValueType(d.byte()) {
	case Float:
		return numValue(Float, d.u64())
	case Integer:
		return IntValue(d.varint())
	case Unsigned:
		return UintValue(d.uvarint())
	case Boolean:
		return BoolValue(d.byte() != 0)
	case String:
		return StringValue(d.string())
	}
	d.fail("value type")
	return Value{}
}

// decodePoints1 decodes a format 1 payload (WALs of earlier versions):
// per point the measurement, tags and field names in full.
func decodePoints1(b []byte) ([]preparedPoint, error) {
	d := decoder{b: b}
	n := d.count(4)
	pts := make([]preparedPoint, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		var p Point
		p.Measurement = d.string()
		nt := d.count(2)
		if nt > 0 {
			p.Tags = make([]Tag, nt)
			for j := range p.Tags {
				p.Tags[j] = Tag{Key: d.string(), Value: d.string()}
			}
		}
		p.Time = d.varint()
		nf := d.count(3)
		p.Fields = make([]Field, nf)
		for j := range p.Fields {
			k := d.string()
			var v Value
			switch ValueType(d.byte()) {
			case Float:
				v = numValue(Float, d.u64())
			case Integer:
				v = IntValue(d.varint())
			case Unsigned:
				v = UintValue(d.uvarint())
			case Boolean:
				v = BoolValue(d.byte() != 0)
			case String:
				v = StringValue(d.string())
			default:
				d.fail("value type")
			}
			p.Fields[j] = Field{Key: k, Value: v}
		}
		if d.err != nil {
			break
		}
		pp, err := prepare(p)
		if err != nil {
			return nil, fmt.Errorf("%w: point %d: %v", ErrCorrupt, i, err)
		}
		pts = append(pts, pp)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes in record", ErrCorrupt, len(d.b))
	}
	return pts, nil
}
