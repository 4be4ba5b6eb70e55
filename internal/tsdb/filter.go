package tsdb

import (
	"fmt"
	"math"
)

// FilterOp compares a sample's value with a constant.
type FilterOp uint8

// Filter operators.
const (
	FilterLT FilterOp = iota + 1 // <
	FilterLE                     // <=
	FilterGT                     // >
	FilterGE                     // >=
	FilterEQ                     // =
	FilterNE                     // !=
)

// Filter is a condition on the value of a numeric field: value Op Value,
// compared as float64. Query.Filters keeps only the samples that satisfy
// all of them; chunks whose summary (min and max) shows that no sample can
// satisfy them are skipped without being decoded, which is what makes
// "newest point where field <= x" cheap.
type Filter struct {
	Op    FilterOp
	Value float64
}

func (f Filter) match(x float64) bool {
	switch f.Op {
	case FilterLT:
		return x < f.Value
	case FilterLE:
		return x <= f.Value
	case FilterGT:
		return x > f.Value
	case FilterGE:
		return x >= f.Value
	case FilterEQ:
		return x == f.Value
	default:
		return x != f.Value
	}
}

// mayMatch reports whether some value in [lo, hi] can satisfy f.
func (f Filter) mayMatch(lo, hi float64) bool {
	switch f.Op {
	case FilterLT:
		return lo < f.Value
	case FilterLE:
		return lo <= f.Value
	case FilterGT:
		return hi > f.Value
	case FilterGE:
		return hi >= f.Value
	case FilterEQ:
		return lo <= f.Value && f.Value <= hi
	default:
		return !(lo == f.Value && hi == f.Value)
	}
}

func validateFilters(fs []Filter) error {
	for _, f := range fs {
		if f.Op < FilterLT || f.Op > FilterNE {
			return fmt.Errorf("%w: unknown filter operator %d", ErrInvalidQuery, f.Op)
		}
		if math.IsNaN(f.Value) {
			return fmt.Errorf("%w: filter value is NaN", ErrInvalidQuery)
		}
	}
	return nil
}

// summaryFloat converts a chunk summary's value bits to float64.
func summaryFloat(typ ValueType, bits uint64) float64 {
	switch typ {
	case Integer:
		return float64(int64(bits))
	case Unsigned:
		return float64(bits)
	}
	return math.Float64frombits(bits)
}

// chunkMayMatch reports whether chunk c of a field of type typ can hold a
// sample passing all filters. A NaN in the chunk makes its min and max
// meaningless, so such a chunk is always decoded.
func chunkMayMatch(typ ValueType, c *chunkMeta, fs []Filter) bool {
	lo, hi := summaryFloat(typ, c.min), summaryFloat(typ, c.max)
	if math.IsNaN(lo) || math.IsNaN(hi) || (typ == Float && math.IsNaN(math.Float64frombits(c.sum))) {
		return true
	}
	for _, f := range fs {
		if !f.mayMatch(lo, hi) {
			return false
		}
	}
	return true
}

// filterSamples keeps, in place, the samples passing all filters.
func filterSamples(smp []Sample, fs []Filter) []Sample {
	n := 0
	for _, s := range smp {
		x, _ := s.Value.Float()
		ok := true
		for _, f := range fs {
			if !f.match(x) {
				ok = false
				break
			}
		}
		if ok {
			smp[n] = s
			n++
		}
	}
	return smp[:n]
}
