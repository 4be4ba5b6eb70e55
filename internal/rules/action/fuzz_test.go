package action

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules/stream"
)

// FuzzSpec: action specifications arrive as JSON from the API; decoding
// and validating never panics, and a valid spec renders any row without
// panicking.
func FuzzSpec(f *testing.F) {
	f.Add([]byte(`{"type":"webhook","url":"http://h/${device}","headers":{"X":"${temp}"},"timeout":"2s"}`))
	f.Add([]byte(`{"type":"archive","url":"file:///srv/archive","prefix":"p","max_age":"1m","max_bytes":10}`))
	f.Add([]byte(`{"type":"postgres","url":"postgres://h/db","table":"s.t","columns":{"a":"${device}","b":"x${temp}"}}`))
	f.Add([]byte(`{"type":"amqp","url":"amqp://h","exchange":"e","routing_key":"k.${device}","body":"${temp * 2}"}`))
	f.Add([]byte(`{"type":"nats","url":"nats://h","subject":"${upper(device)}","jetstream":true,"retry_backoff":5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Spec
		if json.Unmarshal(b, &s) != nil {
			return
		}
		opts := Options{}
		opts.defaults()
		sk, render, err := build("r", s, &opts)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		defer sk.close(t.Context())
		out := &stream.Output{Rule: "r", Topic: "devices/d/telemetry", EventTime: time.Unix(1, 0),
			Row: stream.Row{Columns: []string{"device", "temp"}, Values: []any{"d", 1.5}}}
		_, _ = render(out)
	})
}
