package loadgen

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestAppendTimestamp(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 3, 5, 7, 8, 9, 123456789, time.UTC), "2024-03-05T07:08:09.123456"},
		{time.Date(2024, 3, 5, 7, 8, 9, 0, time.UTC), "2024-03-05T07:08:09"},
		{time.Date(2024, 3, 5, 7, 8, 9, 999, time.UTC), "2024-03-05T07:08:09"}, // sub-µs dropped like Python
		{time.Date(2024, 3, 5, 7, 8, 9, 1000, time.UTC), "2024-03-05T07:08:09.000001"},
		{time.Date(2024, 3, 5, 9, 8, 9, 500000000, time.FixedZone("CEST", 2*3600)), "2024-03-05T07:08:09.500000"},
	}
	for _, tt := range tests {
		if got := string(AppendTimestamp(nil, tt.in)); got != tt.want {
			t.Errorf("AppendTimestamp(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

type telemetryDoc struct {
	DeviceID  string             `json:"device_id"`
	Timestamp string             `json:"timestamp"`
	Data      map[string]float64 `json:"data"`
}

func TestAppendTelemetryMatchesSeedFormat(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 600000000, time.UTC)
	got := string(AppendTelemetry(nil, "sim-0001", ts, Reading{21, 45.25, 1013.2, 87.5}))
	want := `{"device_id": "sim-0001", "timestamp": "2024-01-02T03:04:05.600000", "data": {"temperature": 21.0, "humidity": 45.25, "pressure": 1013.2, "battery": 87.5}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestAppendTelemetryEscapes(t *testing.T) {
	tests := []string{"plain", `quo"te`, `back\slash`, "ctl\x01\n\t", "ünï", "bad\xffutf8", ""}
	for _, id := range tests {
		b := AppendTelemetry(nil, id, time.Now(), Reading{Temperature: math.NaN()})
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("id %q: invalid JSON %s: %v", id, b, err)
		}
		want := jsonRoundTrip(t, id)
		if doc["device_id"] != want {
			t.Errorf("id %q round-tripped as %q", id, doc["device_id"])
		}
	}
}

func TestAppendState(t *testing.T) {
	b := AppendState(nil, "d1", time.Unix(0, 0), DeviceState{Status: "online", Firmware: "1.2.0", Battery: 50, Uptime: 90 * time.Second, LastCommand: "reboot"})
	var doc struct {
		DeviceID string         `json:"device_id"`
		Data     map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	if doc.DeviceID != "d1" || doc.Data["status"] != "online" || doc.Data["uptime_s"] != 90.0 || doc.Data["last_command"] != "reboot" {
		t.Fatalf("unexpected state %s", b)
	}
}

func TestSensorRealistic(t *testing.T) {
	s := NewSensor(7)
	now := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	prev := s.Next(now)
	for i := 0; i < 10_000; i++ {
		now = now.Add(10 * time.Second)
		r := s.Next(now)
		switch {
		case r.Temperature < 5 || r.Temperature > 40:
			t.Fatalf("step %d: temperature %v out of range", i, r.Temperature)
		case r.Humidity < 0 || r.Humidity > 100:
			t.Fatalf("step %d: humidity %v out of range", i, r.Humidity)
		case r.Pressure < 950 || r.Pressure > 1070:
			t.Fatalf("step %d: pressure %v out of range", i, r.Pressure)
		case r.Battery < 0 || r.Battery > 100:
			t.Fatalf("step %d: battery %v out of range", i, r.Battery)
		case math.Abs(r.Temperature-prev.Temperature) > 1:
			t.Fatalf("step %d: temperature jumped %v -> %v", i, prev.Temperature, r.Temperature)
		}
		prev = r
	}
	// Deterministic per seed, different across seeds.
	a, b, c := NewSensor(1).Next(now), NewSensor(1).Next(now), NewSensor(2).Next(now)
	if a != b || a == c {
		t.Fatalf("seeding: %v %v %v", a, b, c)
	}
}

func TestStamp(t *testing.T) {
	now := time.Now()
	p := make([]byte, 64)
	PutStamp(p, now)
	got, ok := Stamp(p)
	if !ok || got != now.UnixNano() {
		t.Fatalf("Stamp = %d,%v want %d", got, ok, now.UnixNano())
	}
	if _, ok := Stamp(p[:7]); ok {
		t.Fatal("short payload accepted")
	}
}

// FuzzAppendTelemetry checks that any device name (user-supplied through
// --prefix) yields valid JSON carrying the name back.
func FuzzAppendTelemetry(f *testing.F) {
	for _, s := range []string{"sim-0001", `"`, "\\", "\x00", "\xff", "é", "\u2028"} {
		f.Add(s, int64(1700000000123456789), 21.5)
	}
	f.Fuzz(func(t *testing.T, id string, ns int64, temp float64) {
		b := AppendTelemetry(nil, id, time.Unix(0, ns), Reading{Temperature: temp})
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("invalid JSON %q: %v", b, err)
		}
		if want := jsonRoundTrip(t, id); doc["device_id"] != want {
			t.Fatalf("id %q came back as %q", id, doc["device_id"])
		}
	})
}

// jsonRoundTrip returns what encoding/json makes of s (invalid UTF-8 bytes
// become U+FFFD one by one, as appendJSONString does).
func jsonRoundTrip(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func BenchmarkAppendTelemetry(b *testing.B) {
	s := NewSensor(1)
	buf := make([]byte, 0, 256)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendTelemetry(buf[:0], "sim-000042", now, s.Next(now))
	}
}
