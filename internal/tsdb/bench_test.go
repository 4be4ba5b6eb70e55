package tsdb

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

const benchT0 = int64(1_700_000_000) * int64(time.Second)

// iotBatch returns n points of 10 float fields for devices devs, the k-th
// batch of a stream with a 10 s interval.
func iotBatch(r *rand.Rand, k, n, devs int) []Point {
	pts := make([]Point, n)
	names := [...]string{"temperature", "humidity", "pressure", "battery", "rssi", "co2", "voc", "pm25", "noise", "light"}
	for i := range pts {
		d := (k*n + i) % devs
		step := (k*n + i) / devs
		fields := make([]Field, len(names))
		for j, name := range names {
			v := 20 + float64(j) + math.Sin(float64(step)/300+float64(d))*5 + r.NormFloat64()*0.05
			fields[j] = Field{Key: name, Value: FloatValue(math.Round(v*100) / 100)}
		}
		pts[i] = Point{
			Measurement: "telemetry",
			Tags:        []Tag{{"device_id", fmt.Sprintf("dev-%05d", d)}, {"site", fmt.Sprintf("site-%d", d%10)}},
			Fields:      fields,
			Time:        benchT0 + int64(step)*10*int64(time.Second) + (r.Int64N(101)-50)*int64(time.Millisecond),
		}
	}
	return pts
}

func benchmarkWrite(b *testing.B, policy FsyncPolicy, writers int) {
	db := openTest(b, b.TempDir(), func(o *Options) { o.Fsync = policy })
	r := rand.New(rand.NewPCG(1, 2))
	const batch = 1000
	batches := make([][]Point, 64)
	for i := range batches {
		batches[i] = iotBatch(r, i, batch, 1000)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= b.N {
					return
				}
				if err := db.Write(context.Background(), batches[i%len(batches)]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	values := float64(b.N) * batch * 10
	b.ReportMetric(values/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkWrite writes batches of 1000 points with 10 float fields.
func BenchmarkWrite(b *testing.B) {
	for _, policy := range []FsyncPolicy{FsyncNever, FsyncAlways} {
		for _, writers := range []int{1, 4} {
			b.Run(fmt.Sprintf("fsync=%s/writers=%d", policy, writers), func(b *testing.B) {
				benchmarkWrite(b, policy, writers)
			})
		}
	}
}

// loadIoT writes series x samples of 10-field IoT data and flushes it.
func loadIoT(tb testing.TB, db *DB, devs, samples int) {
	r := rand.New(rand.NewPCG(3, 4))
	const batch = 1000
	for k := 0; k*batch < devs*samples; k++ {
		if err := db.Write(context.Background(), iotBatch(r, k, batch, devs)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := db.Flush(context.Background()); err != nil {
		tb.Fatal(err)
	}
}

// TestBytesPerValue reports the on-disk size of 100 series x 10k samples
// (10 fields each, 10 s interval with jitter, slowly varying values with
// 0.01 resolution) after flush.
func TestBytesPerValue(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 10M values")
	}
	db := openTest(t, t.TempDir(), func(o *Options) { o.BlockDuration = 24 * time.Hour })
	loadIoT(t, db, 100, 10_000)
	st := db.Stats()
	if st.BlockSamples != 100*10_000*10 {
		t.Fatalf("stored %d values", st.BlockSamples)
	}
	bpv := float64(st.BlockBytes) / float64(st.BlockSamples)
	t.Logf("%d values in %d blocks, %d bytes: %.3f bytes/value", st.BlockSamples, st.Blocks, st.BlockBytes, bpv)
	if bpv > 1.5 {
		t.Errorf("%.3f bytes per value exceeds the 1.5 target", bpv)
	}
}

// BenchmarkQueryAggregate: hourly mean over a day of one device (10 fields)
// and over all 100 devices for one field, from blocks.
func BenchmarkQueryAggregate(b *testing.B) {
	db := openTest(b, b.TempDir(), func(o *Options) { o.BlockDuration = 24 * time.Hour })
	loadIoT(b, db, 100, 8640) // one day at 10 s
	cases := []struct {
		name string
		q    Query
	}{
		{"oneDevice", Query{Measurement: "telemetry", Tags: []Tag{{"device_id", "dev-00007"}}, Every: time.Hour, Fn: Mean}},
		{"allDevicesOneField", Query{Measurement: "telemetry", Field: "temperature", Every: time.Hour, Fn: Max}},
		{"raw1h", Query{Measurement: "telemetry", Field: "temperature", Start: benchT0, End: benchT0 + int64(time.Hour)}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				res, err := db.Query(context.Background(), c.q)
				if err != nil {
					b.Fatal(err)
				}
				n = len(res)
			}
			if n == 0 {
				b.Fatal("no result")
			}
		})
	}
}
