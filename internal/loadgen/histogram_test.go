package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistIndexRoundTrip(t *testing.T) {
	// Every value must land in a bucket whose upper bound is >= the value
	// and within the histogram's relative precision, and the bucket index
	// must be monotonic in the value.
	prev := -1
	check := func(v int64) {
		t.Helper()
		i := histIndex(v)
		if i < prev {
			t.Fatalf("index not monotonic at %d: %d < %d", v, i, prev)
		}
		prev = i
		if i < 0 || i >= histBuckets {
			t.Fatalf("index %d of %d out of range", i, v)
		}
		up := histUpper(i)
		if up < v {
			t.Fatalf("upper(%d)=%d below value %d", i, up, v)
		}
		if float64(up-v) > float64(v)/histSubCount+1 {
			t.Fatalf("upper(%d)=%d too far above %d", i, up, v)
		}
	}
	for v := int64(0); v < 1<<16; v++ {
		check(v)
	}
	for v := int64(1 << 16); v < histMaxValue; v = v*5/4 + 3 {
		check(v)
	}
	check(histMaxValue)
}

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []int64
		q      float64
		want   int64 // exact quantile; result must be within 1%
	}{
		{"single", []int64{42}, 0.5, 42},
		{"median of 1..100", seq(1, 100), 0.5, 50},
		{"p99 of 1..1000", seq(1, 1000), 0.99, 990},
		{"p90 microseconds", scale(seq(1, 1000), 1000), 0.90, 900_000},
		{"max", []int64{1, 5, 3_000_000_000}, 1, 3_000_000_000},
		{"min", []int64{7, 5, 3000}, 0, 5},
		{"negative counts as zero", []int64{-5, -1}, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			got := h.Quantile(tt.q)
			if got < tt.want || float64(got-tt.want) > float64(tt.want)*0.01+0.5 {
				t.Fatalf("Quantile(%v) = %d, want %d (+1%%)", tt.q, got, tt.want)
			}
		})
	}
}

func TestHistogramAgainstSorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 100_000)
	for i := range vals {
		// log-normal-ish latencies between ~10µs and ~100ms
		vals[i] = int64(math.Exp(rng.NormFloat64()*1.5 + 12))
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/histSubCount+1 {
			t.Errorf("q=%v: got %d, exact %d", q, got, exact)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Errorf("min/max = %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
}

func TestHistogramMergeAndReset(t *testing.T) {
	var a, b, all Histogram
	for i := int64(1); i <= 1000; i++ {
		all.Record(i * 1000)
		if i%2 == 0 {
			a.Record(i * 1000)
		} else {
			b.Record(i * 1000)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(nil)
	m.Merge(&Histogram{})
	if m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() || m.Mean() != all.Mean() {
		t.Fatalf("merged stats differ: %+v vs %+v", m.Summary(), all.Summary())
	}
	for _, q := range []float64{0.1, 0.5, 0.99} {
		if m.Quantile(q) != all.Quantile(q) {
			t.Fatalf("q=%v: merged %d, direct %d", q, m.Quantile(q), all.Quantile(q))
		}
	}
	m.Reset()
	if m.Count() != 0 || m.Quantile(0.5) != 0 || m.Max() != 0 {
		t.Fatalf("reset histogram not empty: %+v", m.Summary())
	}
	m.Record(3)
	if m.Min() != 3 || m.Max() != 3 {
		t.Fatalf("after reset min/max = %d/%d", m.Min(), m.Max())
	}
}

func TestHistogramEmptyAndClamp(t *testing.T) {
	var h Histogram
	if s := h.Summary(); s != (Latency{}) {
		t.Fatalf("empty summary = %+v", s)
	}
	h.RecordDuration(time.Hour)
	if h.Max() != histMaxValue {
		t.Fatalf("max = %d, want clamp to %d", h.Max(), int64(histMaxValue))
	}
}

func seq(from, to int64) []int64 {
	var s []int64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func scale(s []int64, f int64) []int64 {
	for i := range s {
		s[i] *= f
	}
	return s
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	b.ReportAllocs()
	v := int64(12345)
	for i := 0; b.Loop(); i++ {
		h.Record(v + int64(i&0xffff)*1000)
	}
}
