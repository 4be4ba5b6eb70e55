package chunkenc

import (
	"math"
	"math/rand/v2"
	"testing"
)

// iotSeries is a realistic device series: 10 s interval with +-50 ms jitter
// (millisecond clock) and a slowly varying temperature with 0.01 resolution.
func iotSeries(n int) ([]int64, []float64) {
	r := rand.New(rand.NewPCG(42, 43))
	ts := make([]int64, n)
	vs := make([]float64, n)
	t0 := int64(1_700_000_000_000) // ms
	v := 21.0
	for i := range ts {
		ts[i] = (t0 + int64(i)*10_000 + r.Int64N(101) - 50) * 1e6
		v += r.NormFloat64() * 0.02
		vs[i] = math.Round((v+math.Sin(float64(i)/500))*100) / 100
	}
	return ts, vs
}

func BenchmarkEncodeIoT(b *testing.B) {
	ts, vs := iotSeries(1024)
	b.ReportAllocs()
	var tsBuf, vBuf []byte
	for b.Loop() {
		tsBuf = AppendTimestamps(tsBuf[:0], ts)
		vBuf = AppendFloats(vBuf[:0], vs)
	}
	b.ReportMetric(float64(len(tsBuf))/float64(len(ts)), "ts-bytes/sample")
	b.ReportMetric(float64(len(vBuf))/float64(len(vs)), "value-bytes/sample")
	b.ReportMetric(float64(len(tsBuf)+len(vBuf))/float64(len(vs)), "bytes/sample")
	b.ReportMetric(float64(len(appendGorilla(nil, vs)))/float64(len(vs)), "gorilla-bytes/sample")
}

func BenchmarkDecodeIoT(b *testing.B) {
	ts, vs := iotSeries(1024)
	tsBuf := AppendTimestamps(nil, ts)
	vBuf := AppendFloats(nil, vs)
	b.ReportAllocs()
	var dts []int64
	var dvs []float64
	for b.Loop() {
		dts, _ = DecodeTimestamps(tsBuf, dts)
		dvs, _ = DecodeFloats(vBuf, dvs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ts)), "ns/sample")
}

func BenchmarkGorillaDecode(b *testing.B) {
	_, vs := iotSeries(1024)
	for i := range vs {
		vs[i] += 1e-7 * float64(i%7)
	}
	buf := appendGorilla(nil, vs)
	b.ReportAllocs()
	var dvs []float64
	for b.Loop() {
		dvs, _ = DecodeFloats(buf, dvs)
	}
	b.ReportMetric(float64(len(buf))/float64(len(vs)), "bytes/sample")
}
