package stream

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/topics"
)

// Engine-only benchmarks: messages already decoded from MQTT, one core.
// Each reports msgs/s besides ns/op (one op = one message).

var benchBase = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// seedPayload is the seed's envelope as Python's IoTDevice publishes it.
func seedPayload(dev int, t time.Time, temp float64) []byte {
	return fmt.Appendf(nil, `{"device_id": "dev-%05d", "timestamp": "%s", "data": {"temperature": %.2f, "humidity": 41.2, "battery": 88}}`,
		dev, t.Format("2006-01-02T15:04:05.000000"), temp)
}

func report(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkFilterProjection: a per-message threshold rule; half of the
// messages pass and produce a row.
func BenchmarkFilterProjection(b *testing.B) {
	r, err := Compile("hot", "SELECT topic(2) AS device, data.temperature AS t, timestamp AS ts FROM 'devices/+/telemetry' WHERE data.temperature > 30", Options{})
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([]*Message, 1024)
	for i := range msgs {
		msgs[i] = &Message{Topic: fmt.Sprintf("devices/dev-%05d/telemetry", i), Payload: seedPayload(i, benchBase.Add(time.Duration(i)*time.Millisecond), float64(20+i%20)), Received: benchBase}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	passed := 0
	for i := 0; i < b.N; i++ {
		outs, err := r.Process(ctx, msgs[i&1023])
		if err != nil {
			b.Fatal(err)
		}
		passed += len(outs)
	}
	report(b, start)
	if b.N > 100 && passed == 0 {
		b.Fatal("no output")
	}
}

// BenchmarkTumblingAvg10kDevices: a 10 s tumbling average grouped by
// device over 10,000 devices each sending once per second of event time,
// with the seed envelope's ISO timestamps; windows close as time advances.
func BenchmarkTumblingAvg10kDevices(b *testing.B) {
	const devices, seconds = 10_000, 25
	src := "SELECT device_id, avg(data.temperature) AS avg_t, count(*) AS n FROM 'devices/+/telemetry' GROUP BY device_id, TUMBLINGWINDOW(ss, 10)"
	msgs := make([]*Message, 0, devices*seconds)
	for s := range seconds {
		for d := range devices {
			t := benchBase.Add(time.Duration(s)*time.Second + time.Duration(d)*time.Microsecond)
			msgs = append(msgs, &Message{Topic: fmt.Sprintf("devices/dev-%05d/telemetry", d), Payload: seedPayload(d, t, float64(15+(d+s)%20)), Received: benchBase})
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var r *Rule
	windows := 0
	for i := 0; i < b.N; i++ {
		j := i % len(msgs)
		if j == 0 {
			// Event time restarts with the pool: start a fresh rule.
			r, _ = Compile("avg", src, Options{})
		}
		outs, err := r.Process(ctx, msgs[j])
		if err != nil {
			b.Fatal(err)
		}
		windows += len(outs)
	}
	report(b, start)
	if b.N > 2*devices*10 && windows == 0 {
		b.Fatal("no window closed")
	}
}

// Benchmark1000Rules: 1,000 rules loaded; the topic trie finds the rules of
// each message and each matching rule processes it.
func Benchmark1000Rules(b *testing.B) {
	for _, tc := range []struct {
		name   string
		filter func(i int) string
	}{
		// Each rule watches its own device: every message matches one rule.
		{"one-match", func(i int) string { return fmt.Sprintf("devices/dev-%05d/telemetry", i) }},
		// Every rule watches all devices: every message runs 1,000 rules.
		{"all-match", func(int) string { return "devices/+/telemetry" }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			trie := topics.New[*Rule]()
			for i := range 1000 {
				var src string
				switch i % 4 {
				case 0:
					src = fmt.Sprintf("SELECT topic(2) AS device, data.temperature AS t FROM '%s' WHERE data.temperature > %d", tc.filter(i), 30+i%10)
				case 1:
					src = fmt.Sprintf("SELECT * FROM '%s' WHERE data.battery < %d", tc.filter(i), 10+i%10)
				case 2:
					src = fmt.Sprintf("SELECT device_id, data.humidity AS h FROM '%s' WHERE data.humidity > %d AND device_id <> 'x'", tc.filter(i), 90+i%10)
				case 3:
					src = fmt.Sprintf("SELECT device_id, avg(data.temperature) AS a FROM '%s' GROUP BY device_id, TUMBLINGWINDOW(mi, 1)", tc.filter(i))
				}
				r, err := Compile(fmt.Sprint("r", i), src, Options{})
				if err != nil {
					b.Fatal(err)
				}
				trie.Add(r.Filter(), r)
			}
			msgs := make([]*Message, 1000)
			for i := range msgs {
				msgs[i] = &Message{Topic: fmt.Sprintf("devices/dev-%05d/telemetry", i), Payload: seedPayload(i, benchBase.Add(time.Duration(i)*time.Millisecond), float64(20+i%20)), Received: benchBase}
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			evals := 0
			for i := 0; i < b.N; i++ {
				m := msgs[i%1000]
				m.Prepare() // once per message, shared by its rules
				trie.Match(m.Topic, func(_ string, r *Rule) bool {
					evals++
					if _, err := r.Process(ctx, m); err != nil {
						b.Fatal(err)
					}
					return true
				})
			}
			report(b, start)
			b.ReportMetric(float64(evals)/time.Since(start).Seconds(), "rule-evals/s")
		})
	}
}

// BenchmarkCompile: compiling a typical windowed rule (1,000 rules load in
// 1,000 × this).
func BenchmarkCompile(b *testing.B) {
	src := "SELECT device_id, avg(data.temperature) AS a, count(*) FILTER (WHERE data.temperature > 30) AS hot FROM 'devices/+/telemetry' WHERE data.temperature IS NOT UNDEFINED GROUP BY device_id, TUMBLINGWINDOW(ss, 10) HAVING a > 20"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Compile("c", src, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRuleMemory reports the heap a loaded per-message rule retains.
func BenchmarkRuleMemory(b *testing.B) {
	var before, after runtime.MemStats
	rules := make([]*Rule, 0, 1000)
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 1000 {
		r, err := Compile("r", fmt.Sprintf("SELECT topic(2) AS device, data.temperature AS t FROM 'devices/dev-%05d/telemetry' WHERE data.temperature > %d", i, i), Options{})
		if err != nil {
			b.Fatal(err)
		}
		rules = append(rules, r)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(rules)), "B/rule")
	runtime.KeepAlive(rules)
}
