package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules/sql"
)

// Message is one MQTT publish seen by the rules.
type Message struct {
	Topic string
	// Payload is the raw payload. Field references read it as JSON when
	// evaluated; a payload that is not JSON fails the rules that read
	// fields (ErrBadJSON), while topic(), clientid(), encode(*, 'base64')
	// and the like still work on it.
	Payload   []byte
	ClientID  string
	Principal string // thing name, "admin", or "" for anonymous
	QoS       byte
	Received  time.Time // broker receive time (processing time)

	idx *sql.Index
}

// Prepare validates and indexes the payload once for every rule that will
// process m: call it before handing one message to many rules (possibly
// from several goroutines); without it each rule validates the payload
// itself. The payload must not change afterwards.
func (m *Message) Prepare() { m.idx = sql.NewIndex(m.Payload) }

// Row is one output record: columns in SELECT order (JSON object order is
// preserved when marshalled). Values are nil, bool, int64, float64, string,
// []any or map[string]any.
type Row struct {
	Columns []string
	Values  []any
}

// Get returns the value of column col.
func (r Row) Get(col string) (any, bool) {
	for i, c := range r.Columns {
		if c == col {
			return r.Values[i], true
		}
	}
	return nil, false
}

// Map returns the row as a map.
func (r Row) Map() map[string]any {
	m := make(map[string]any, len(r.Columns))
	for i, c := range r.Columns {
		m[c] = r.Values[i]
	}
	return m
}

// MarshalJSON writes the row as a JSON object with its columns in order.
func (r Row) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range r.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(c)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(sql.Normalize(r.Values[i]))
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Output is what a rule emits.
type Output struct {
	Rule      string
	Row       Row
	Topic     string // topic of the triggering message (the last message of the window for windows)
	ClientID  string
	Principal string
	// EventTime is the message's event time, or the window end for
	// window outputs.
	EventTime              time.Time
	WindowStart, WindowEnd time.Time // zero unless windowed
	Source                 *Message  // triggering message (nil for window outputs)
}

// Lookup resolves registry lookups (get_thing_attr, get_thing_type); it
// may be nil.
type Lookup interface {
	ThingAttribute(ctx context.Context, thing, attr string) (string, bool)
	ThingType(ctx context.Context, thing string) (string, bool)
}

// Options tune a compiled rule; the zero value is sane.
type Options struct {
	Lookup Lookup
	// AllowedLateness is how far behind the newest event time of its
	// group a message may be and still enter its window (0: windows close
	// as soon as a later event passes their end).
	AllowedLateness time.Duration
	// IdleTimeout closes a group's open windows when it has received
	// nothing for this long (processing time, checked by Tick). Zero means
	// the window length (the session timeout for session windows);
	// negative disables idle closing. Count windows never emit on idle:
	// with an explicit IdleTimeout a quiet group's partial count window is
	// dropped and the group forgotten, without one it waits for more
	// messages.
	IdleTimeout time.Duration
	// Now is the clock (time.Now when nil); used for messages without a
	// receive time.
	Now func() time.Time
	// MaxGroups bounds the groups a windowed rule tracks (default
	// 1,000,000); a message that would start one more fails with
	// ErrLimit.
	MaxGroups int
	// MaxBuffered bounds the messages a windowed rule buffers for
	// sliding, session and count windows, over all groups (default
	// 1,000,000); a message beyond it fails with ErrLimit.
	MaxBuffered int
	// ProcessingTime makes windows use the broker receive time instead of
	// the payload timestamp (for devices without a trustworthy clock).
	ProcessingTime bool
	// TimestampField is the payload path of the event time ("timestamp"
	// when empty), e.g. "ts" or "meta.time".
	TimestampField string
}

// RuleStats counts what a rule did.
type RuleStats struct {
	Matched     uint64 `json:"matched"`      // messages processed
	Passed      uint64 `json:"passed"`       // messages that passed WHERE
	Outputs     uint64 `json:"outputs"`      // rows emitted
	Errors      uint64 `json:"errors"`       // messages or windows that failed to evaluate
	Late        uint64 `json:"late"`         // messages dropped (entirely or from some window) as late
	WindowsOpen int    `json:"windows_open"` // windows holding data
	Groups      int    `json:"groups"`       // groups tracked (incl. recently idle ones)
}
