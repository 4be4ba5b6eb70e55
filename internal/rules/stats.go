package rules

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram is a lock-free latency histogram with four buckets per power
// of two of microseconds (about 19% relative error).
type histogram struct {
	b [256]atomic.Uint64
}

func bucketOf(us uint64) int {
	if us < 4 {
		return int(us)
	}
	n := bits.Len64(us) // >= 3
	mant := (us >> (n - 3)) & 3
	return (n-2)*4 + int(mant)
}

// lower returns the smallest value of bucket i.
func lower(i int) uint64 {
	if i < 4 {
		return uint64(i)
	}
	n := i/4 + 2
	return (4 | uint64(i%4)) << (n - 3)
}

func (h *histogram) observe(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	h.b[min(bucketOf(us), len(h.b)-1)].Add(1)
}

// quantile returns the q-quantile in milliseconds (the bucket's upper
// bound), or 0 with no observations.
func (h *histogram) quantile(q float64) float64 {
	var counts [256]uint64
	var total uint64
	for i := range h.b {
		counts[i] = h.b[i].Load()
		total += counts[i]
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total-1)) + 1
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			return float64(lower(i+1)) / 1000
		}
	}
	return 0
}
