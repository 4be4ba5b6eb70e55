package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits on a single payload.
const (
	MaxFields   = 1024 // fields per message
	MaxKeyBytes = 256  // bytes in a flattened field key
	MaxDepth    = 8    // nesting depth of objects
)

// ErrMalformed is wrapped by every payload parsing error.
var ErrMalformed = errors.New("malformed payload")

// Kind is a field value's type.
type Kind uint8

// Field kinds.
const (
	KindFloat Kind = iota
	KindBool
	KindString
)

// FieldValue is one flattened payload value.
type FieldValue struct {
	Key   string
	Kind  Kind
	Float float64
	Bool  bool
	Str   string
}

// Payload is a parsed device message.
type Payload struct {
	// DeviceID is the envelope's device_id, if any (informational: the
	// topic decides the device).
	DeviceID string
	// Time is the message timestamp; zero when the message had none.
	Time time.Time
	// Fields are the flattened values, sorted by key.
	Fields []FieldValue
	// Data is the data object as decoded (used for state documents).
	Data map[string]any
}

// Parse decodes a telemetry or state payload. A JSON object whose "data"
// is an object is the seed's envelope; any other JSON object is flat (its
// "timestamp" and "device_id" keys, if present, are read as such and not
// stored as fields).
func Parse(b []byte) (Payload, error) {
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return p, fmt.Errorf("ingest: %w: not JSON: %v", ErrMalformed, err)
	}
	if dec.More() {
		return p, fmt.Errorf("ingest: %w: trailing data after the JSON object", ErrMalformed)
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return p, fmt.Errorf("ingest: %w: want a JSON object, got %s", ErrMalformed, jsonKind(root))
	}
	data, envelope := obj["data"].(map[string]any)
	if !envelope {
		data = obj
	}
	if id, ok := obj["device_id"]; ok {
		s, ok := id.(string)
		if !ok {
			return p, fmt.Errorf("ingest: %w: \"device_id\" must be a string", ErrMalformed)
		}
		p.DeviceID = s
	}
	if ts, ok := obj["timestamp"]; ok && ts != nil {
		t, err := ParseTime(ts)
		if err != nil {
			return p, err
		}
		p.Time = t
	}
	if !envelope {
		// Flat form: the envelope keys are not data.
		flat := make(map[string]any, len(obj))
		for k, v := range obj {
			if k != "timestamp" && k != "device_id" {
				flat[k] = v
			}
		}
		data = flat
	}
	p.Data = data
	if err := flatten(&p.Fields, "", data, 0); err != nil {
		return p, err
	}
	sortFields(p.Fields)
	return p, nil
}

func flatten(out *[]FieldValue, prefix string, m map[string]any, depth int) error {
	if depth >= MaxDepth {
		return fmt.Errorf("ingest: %w: objects nested deeper than %d levels", ErrMalformed, MaxDepth)
	}
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if k == "" {
			return fmt.Errorf("ingest: %w: empty key under %q", ErrMalformed, prefix)
		}
		if len(key) > MaxKeyBytes {
			return fmt.Errorf("ingest: %w: key %.40q... longer than %d bytes", ErrMalformed, key, MaxKeyBytes)
		}
		var fv FieldValue
		switch x := v.(type) {
		case json.Number:
			f, err := strconv.ParseFloat(string(x), 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return fmt.Errorf("ingest: %w: %q: number %s out of range", ErrMalformed, key, x)
			}
			fv = FieldValue{Key: key, Kind: KindFloat, Float: f}
		case bool:
			fv = FieldValue{Key: key, Kind: KindBool, Bool: x}
		case string:
			fv = FieldValue{Key: key, Kind: KindString, Str: x}
		case map[string]any:
			if err := flatten(out, key, x, depth+1); err != nil {
				return err
			}
			continue
		default: // nil, arrays
			continue
		}
		if len(*out) >= MaxFields {
			return fmt.Errorf("ingest: %w: more than %d fields", ErrMalformed, MaxFields)
		}
		*out = append(*out, fv)
	}
	return nil
}

func sortFields(f []FieldValue) {
	// Insertion sort: payloads hold a handful of fields.
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].Key < f[j-1].Key; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}

// layouts accepted for string timestamps, tried in order.
var layouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
}

// ParseTime reads a timestamp: an ISO-8601 string (zone optional, naive
// means UTC) or an epoch number whose unit follows from its magnitude.
func ParseTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		for _, l := range layouts {
			if t, err := time.Parse(l, s); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("ingest: %w: timestamp %.64q is not ISO-8601", ErrMalformed, x)
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return time.Time{}, fmt.Errorf("ingest: %w: timestamp %s is not a valid epoch time", ErrMalformed, x)
		}
		return EpochTime(f)
	default:
		return time.Time{}, fmt.Errorf("ingest: %w: timestamp must be a string or a number, got %s", ErrMalformed, jsonKind(v))
	}
}

// EpochTime converts an epoch number in s, ms, µs or ns (by magnitude).
func EpochTime(f float64) (time.Time, error) {
	switch {
	case f < 1e11: // seconds (until year 5138); a float64 holds them to the microsecond
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1000).UTC(), nil
	case f < 1e14:
		return time.UnixMilli(int64(f)).UTC(), nil
	case f < 1e17:
		return time.UnixMicro(int64(f)).UTC(), nil
	case f < 9.2e18:
		return time.Unix(0, int64(f)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("ingest: %w: timestamp %g out of range", ErrMalformed, f)
}
