package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// histSubBits sets the precision: each power-of-two range is split into
// 1<<histSubBits linear sub-buckets, so a recorded value is known to within
// 1/128 (< 0.8%) of itself.
const histSubBits = 7

// histMaxBits caps recordable values at 2^histMaxBits-1 (about 18 minutes
// when values are nanoseconds); larger values are clamped.
const histMaxBits = 40

const (
	histSubCount = 1 << histSubBits
	histMaxValue = 1<<histMaxBits - 1
	histBuckets  = (histMaxBits - histSubBits + 1) * histSubCount
)

// Histogram is an HDR-like histogram of non-negative int64 values (the load
// generators record nanoseconds) with logarithmic buckets and linear
// sub-buckets, giving a fixed relative error below 1% over the whole range.
// Recording is O(1) and never allocates. The zero value is ready to use.
// A Histogram is not safe for concurrent use: give each goroutine its own
// and Merge them.
type Histogram struct {
	counts   []uint64 // allocated on first Record
	count    uint64
	sum      float64
	min, max int64
}

// NewHistogram returns an empty histogram with its buckets allocated.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, histBuckets)}
}

// histIndex maps a value to its bucket.
func histIndex(v int64) int {
	if v < histSubCount {
		return int(v)
	}
	msb := bits.Len64(uint64(v)) - 1
	shift := msb - histSubBits
	m := v >> uint(shift) // in [histSubCount, 2*histSubCount)
	return (shift+1)<<histSubBits + int(m) - histSubCount
}

// histUpper returns the highest value that maps to bucket i.
func histUpper(i int) int64 {
	if i < histSubCount {
		return int64(i)
	}
	shift := i>>histSubBits - 1
	m := int64(i&(histSubCount-1)) + histSubCount
	return (m+1)<<uint(shift) - 1
}

// Record adds one value. Negative values count as 0 and values above the
// histogram's range are clamped to it.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if v > histMaxValue {
		v = histMaxValue
	}
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	h.counts[histIndex(v)]++
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.count++
	h.sum += float64(v)
}

// RecordDuration records d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.count }

// Min returns the smallest recorded value (0 when empty).
func (h *Histogram) Min() int64 { return h.min }

// Max returns the largest recorded value (0 when empty).
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the arithmetic mean of the recorded values (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.count == 0 {
		return 0
	}
	return h.sum / float64(h.count)
}

// Quantile returns the value at quantile q in [0, 1]: the upper bound of
// the bucket holding the ceil(q*count)-th smallest value, capped at Max, so
// it is never below the true quantile and at most 1% above it. It returns 0
// for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	if h.count == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := histUpper(i)
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return v
		}
	}
	return h.max
}

// Merge adds all values recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.count == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.count += o.count
	h.sum += o.sum
}

// Reset empties h, keeping its buckets allocated.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.count, h.sum, h.min, h.max = 0, 0, 0, 0
}

// Latency summarises a histogram of nanosecond durations.
type Latency struct {
	Count uint64        `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summary returns h's percentiles as durations.
func (h *Histogram) Summary() Latency {
	return Latency{
		Count: h.count,
		Mean:  time.Duration(h.Mean()),
		P50:   time.Duration(h.Quantile(0.50)),
		P90:   time.Duration(h.Quantile(0.90)),
		P99:   time.Duration(h.Quantile(0.99)),
		P999:  time.Duration(h.Quantile(0.999)),
		Max:   time.Duration(h.max),
	}
}
