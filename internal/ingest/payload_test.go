package ingest

import (
	"errors"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	ts := time.Date(2026, 11, 21, 10, 30, 0, 123456000, time.UTC)
	cases := []struct {
		name    string
		in      string
		time    time.Time
		fields  map[string]any
		device  string
		wantErr bool
	}{
		{name: "seed envelope naive utc", in: `{"device_id":"d1","timestamp":"2026-11-21T10:30:00.123456","data":{"temperature":21.5,"ok":true,"mode":"eco"}}`,
			time: ts, device: "d1", fields: map[string]any{"temperature": 21.5, "ok": true, "mode": "eco"}},
		{name: "zoned", in: `{"timestamp":"2026-11-21T11:30:00.123456+01:00","data":{"t":1}}`, time: ts, fields: map[string]any{"t": 1.0}},
		{name: "flat", in: `{"temperature":21.5,"humidity":40}`, fields: map[string]any{"temperature": 21.5, "humidity": 40.0}},
		{name: "flat with timestamp", in: `{"timestamp":1795257000.123456,"v":2}`, time: time.Unix(1795257000, 123456000).UTC(), fields: map[string]any{"v": 2.0}},
		{name: "epoch ms", in: `{"timestamp":1795257000123,"v":2}`, time: time.UnixMilli(1795257000123).UTC(), fields: map[string]any{"v": 2.0}},
		{name: "nested flattened, arrays and null skipped", in: `{"data":{"a":{"b":{"c":1}},"arr":[1,2],"n":null}}`, fields: map[string]any{"a.b.c": 1.0}},
		{name: "flat data number is a field", in: `{"data":5}`, fields: map[string]any{"data": 5.0}},
		{name: "not json", in: `{"a":`, wantErr: true},
		{name: "array root", in: `[1,2]`, wantErr: true},
		{name: "trailing", in: `{"a":1} {"b":2}`, wantErr: true},
		{name: "bad timestamp", in: `{"timestamp":"yesterday","data":{"a":1}}`, wantErr: true},
		{name: "bad device id", in: `{"device_id":5,"data":{"a":1}}`, wantErr: true},
		{name: "huge number", in: `{"a":1e999}`, wantErr: true},
		{name: "empty key", in: `{"":1}`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.in))
			if tc.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("want ErrMalformed, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !p.Time.Equal(tc.time) {
				t.Errorf("time = %v, want %v", p.Time, tc.time)
			}
			if p.DeviceID != tc.device {
				t.Errorf("device = %q", p.DeviceID)
			}
			if len(p.Fields) != len(tc.fields) {
				t.Fatalf("fields = %+v, want %v", p.Fields, tc.fields)
			}
			for i, f := range p.Fields {
				if i > 0 && p.Fields[i-1].Key >= f.Key {
					t.Errorf("fields not sorted: %+v", p.Fields)
				}
				var got any
				switch f.Kind {
				case KindFloat:
					got = f.Float
				case KindBool:
					got = f.Bool
				default:
					got = f.Str
				}
				if tc.fields[f.Key] != got {
					t.Errorf("field %s = %v, want %v", f.Key, got, tc.fields[f.Key])
				}
			}
		})
	}
}

func TestRoute(t *testing.T) {
	cases := []struct {
		topic, dev, ch string
		ok             bool
	}{
		{"devices/d1/telemetry", "d1", "telemetry", true},
		{"devices/d1/state", "d1", "state", true},
		{"devices//telemetry", "", "", false},
		{"devices/d1/telemetry/x", "", "", false},
		{"other/d1/telemetry", "", "", false},
		{"devices/d1", "", "", false},
	}
	for _, tc := range cases {
		d, c, ok := Route(tc.topic)
		if d != tc.dev || c != tc.ch || ok != tc.ok {
			t.Errorf("Route(%q) = %q %q %v", tc.topic, d, c, ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"device_id":"d1","timestamp":"2026-11-21T10:30:00.123456","data":{"temperature":21.5}}`,
		`{"temperature":21.5,"nested":{"x":[1,{"y":2}]}}`, `{"timestamp":17e8}`, `[]`, `null`, `{"data":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if len(p.Fields) > MaxFields {
			t.Fatalf("too many fields: %d", len(p.Fields))
		}
		for _, fv := range p.Fields {
			if fv.Key == "" || len(fv.Key) > MaxKeyBytes {
				t.Fatalf("bad key %q", fv.Key)
			}
		}
	})
}
