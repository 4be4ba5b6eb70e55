package action

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// Items are spooled in a small binary form: a version byte, then the
// origin, key, body, headers, values, point and time, each string or byte
// slice as a uvarint length and its bytes. Values keep their types (nil,
// bool, int64, uint64, float64, string; anything else as JSON text).

const itemVersion = 1

const (
	vNil byte = iota
	vBool
	vInt
	vUint
	vFloat
	vString
	vJSON
)

var errItem = errors.New("action: damaged spooled item")

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, vNil)
	case bool:
		if x {
			return append(b, vBool, 1)
		}
		return append(b, vBool, 0)
	case int:
		return binary.AppendVarint(append(b, vInt), int64(x))
	case int64:
		return binary.AppendVarint(append(b, vInt), x)
	case int32:
		return binary.AppendVarint(append(b, vInt), int64(x))
	case uint64:
		return binary.AppendUvarint(append(b, vUint), x)
	case float64:
		return binary.LittleEndian.AppendUint64(append(b, vFloat), math.Float64bits(x))
	case float32:
		return binary.LittleEndian.AppendUint64(append(b, vFloat), math.Float64bits(float64(x)))
	case string:
		return appendStr(append(b, vString), x)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			return append(b, vNil)
		}
		return appendBytes(append(b, vJSON), j)
	}
}

// encodeItem appends the spooled form of it to b.
func encodeItem(b []byte, it *Item) []byte {
	b = append(b, itemVersion)
	if o := it.Origin; o != nil {
		b = append(b, 1)
		b = appendStr(b, o.Rule)
		b = appendStr(b, o.Topic)
		b = appendStr(b, o.ClientID)
		b = appendStr(b, o.Principal)
		b = appendBytes(b, o.Payload)
		b = binary.AppendUvarint(b, uint64(o.Hops))
	} else {
		b = append(b, 0)
	}
	b = appendStr(b, it.Key)
	b = appendStr(b, it.ID)
	b = appendBytes(b, it.Body)
	b = binary.AppendUvarint(b, uint64(len(it.Headers)))
	for k, v := range it.Headers {
		b = appendStr(appendStr(b, k), v)
	}
	b = binary.AppendUvarint(b, uint64(len(it.Values)))
	for _, v := range it.Values {
		b = appendValue(b, v)
	}
	if p := it.Point; p != nil {
		b = append(b, 1)
		b = appendStr(b, p.Measurement)
		b = binary.AppendUvarint(b, uint64(len(p.Tags)))
		for _, t := range p.Tags {
			b = appendStr(appendStr(b, t.Key), t.Value)
		}
		b = binary.AppendUvarint(b, uint64(len(p.Fields)))
		for _, f := range p.Fields {
			b = appendStr(b, f.Key)
			b = append(b, byte(f.Value.Type()))
			switch f.Value.Type() {
			case tsdb.Float:
				x, _ := f.Value.Float()
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
			case tsdb.Integer:
				x, _ := f.Value.Int()
				b = binary.AppendVarint(b, x)
			case tsdb.Unsigned:
				x, _ := f.Value.Uint()
				b = binary.AppendUvarint(b, x)
			case tsdb.Boolean:
				x, _ := f.Value.Bool()
				if x {
					b = append(b, 1)
				} else {
					b = append(b, 0)
				}
			default:
				x, _ := f.Value.Str()
				b = appendStr(b, x)
			}
		}
		b = binary.AppendVarint(b, p.Time)
	} else {
		b = append(b, 0)
	}
	if it.Time.IsZero() {
		return append(b, 0)
	}
	return binary.AppendVarint(append(b, 1), it.Time.UnixNano())
}

type itemReader struct {
	b   []byte
	err error
}

func (r *itemReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errItem
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *itemReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errItem
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *itemReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errItem
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *itemReader) u64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errItem
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *itemReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errItem
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *itemReader) str() string { return string(r.bytes()) }

// count reads a collection length, bounded by the bytes left (every
// element takes at least one byte).
func (r *itemReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errItem
		return 0
	}
	return int(n)
}

func (r *itemReader) value() any {
	switch r.byte() {
	case vNil:
		return nil
	case vBool:
		return r.byte() == 1
	case vInt:
		return r.varint()
	case vUint:
		return r.uvarint()
	case vFloat:
		return math.Float64frombits(r.u64())
	case vString:
		return r.str()
	case vJSON:
		return r.str()
	}
	r.err = errItem
	return nil
}

// decodeItem reads an item written by encodeItem. Byte slices of the
// result alias b.
func decodeItem(b []byte) (*Item, error) {
	r := &itemReader{b: b}
	if v := r.byte(); v != itemVersion {
		return nil, fmt.Errorf("%w: version %d", errItem, v)
	}
	it := &Item{}
	if r.byte() == 1 {
		it.Origin = &Origin{Rule: r.str(), Topic: r.str(), ClientID: r.str(), Principal: r.str(), Payload: r.bytes(), Hops: int(r.uvarint())}
	}
	it.Key = r.str()
	it.ID = r.str()
	it.Body = r.bytes()
	if n := r.count(); n > 0 {
		it.Headers = make(map[string]string, n)
		for range n {
			k := r.str()
			it.Headers[k] = r.str()
		}
	}
	if n := r.count(); n > 0 {
		it.Values = make([]any, n)
		for i := range it.Values {
			it.Values[i] = r.value()
		}
	}
	if r.byte() == 1 {
		p := &tsdb.Point{Measurement: r.str()}
		for range r.count() {
			p.Tags = append(p.Tags, tsdb.Tag{Key: r.str(), Value: r.str()})
		}
		for range r.count() {
			k := r.str()
			var v tsdb.Value
			switch tsdb.ValueType(r.byte()) {
			case tsdb.Float:
				v = tsdb.FloatValue(math.Float64frombits(r.u64()))
			case tsdb.Integer:
				v = tsdb.IntValue(r.varint())
			case tsdb.Unsigned:
				v = tsdb.UintValue(r.uvarint())
			case tsdb.Boolean:
				v = tsdb.BoolValue(r.byte() == 1)
			case tsdb.String:
				v = tsdb.StringValue(r.str())
			default:
				r.err = errItem
			}
			p.Fields = append(p.Fields, tsdb.Field{Key: k, Value: v})
		}
		p.Time = r.varint()
		it.Point = p
	}
	if r.byte() == 1 {
		it.Time = time.Unix(0, r.varint())
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errItem
	}
	if r.err != nil {
		return nil, r.err
	}
	return it, nil
}
