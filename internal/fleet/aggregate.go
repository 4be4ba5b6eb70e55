package fleet

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/edgewise-iot/edgewise/internal/registry/search"
)

// Stats is the result of a statistics aggregation over the numeric values
// of a field (strings that parse as numbers count; other values do not).
type Stats struct {
	Count int      `json:"count"`
	Sum   float64  `json:"sum"`
	Avg   *float64 `json:"avg"`
	Min   *float64 `json:"min"`
	Max   *float64 `json:"max"`
}

// Bucket is one value of a terms aggregation.
type Bucket struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// Terms is the result of a terms aggregation: the most frequent values of
// a field among the matching things, most frequent first (ties by value).
type Terms struct {
	Buckets []Bucket `json:"buckets"`
	// Other counts the values beyond the returned buckets; Missing the
	// matching things without the field.
	Other   int `json:"other"`
	Missing int `json:"missing"`
}

// Aggregate types.
const (
	AggStats = "stats"
	AggTerms = "terms"
)

// Aggregation is the result of Aggregate: Stats or Terms is set.
type Aggregation struct {
	Field string `json:"field"`
	Type  string `json:"type"`
	Stats *Stats `json:"stats,omitempty"`
	Terms *Terms `json:"terms,omitempty"`
}

// Aggregate computes a stats or terms aggregation of field over the things
// matching q. size bounds the terms buckets (0: 10, at most MaxTerms).
func (ix *Index) Aggregate(ctx context.Context, q, field, typ string, size int) (Aggregation, error) {
	pq, err := parse(q)
	if err != nil {
		return Aggregation{}, err
	}
	f, err := search.ParseField(field)
	if err != nil {
		return Aggregation{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	switch {
	case typ != AggStats && typ != AggTerms:
		return Aggregation{}, fmt.Errorf("%w: aggregation type %q is not stats or terms", ErrInvalid, typ)
	case size < 0 || size > MaxTerms:
		return Aggregation{}, fmt.Errorf("%w: size must be from 1 to %d, got %d", ErrInvalid, MaxTerms, size)
	case size == 0:
		size = 10
	}
	ix.rlockSorted()
	defer ix.mu.RUnlock()
	v := newView(ix, ctx)
	var buf []search.Value
	st := Stats{}
	lo, hi := math.Inf(1), math.Inf(-1)
	counts := map[string]int{}
	missing := 0
	err = ix.scanLocked(ctx, pq, "", func(d *doc) bool {
		v.reset(d)
		buf = v.Values(f, buf[:0])
		if len(buf) == 0 {
			missing++
		}
		for _, val := range buf {
			if typ == AggTerms {
				counts[val.String()]++
				continue
			}
			n, ok := number(val)
			if !ok {
				continue
			}
			st.Count++
			st.Sum += n
			lo, hi = math.Min(lo, n), math.Max(hi, n)
		}
		return true
	})
	if err == nil && v.err != nil {
		err = fmt.Errorf("fleet: aggregate: %w", v.err)
	}
	if err != nil {
		return Aggregation{}, err
	}
	out := Aggregation{Field: f.String(), Type: typ}
	if typ == AggStats {
		if st.Count > 0 {
			avg := st.Sum / float64(st.Count)
			st.Avg, st.Min, st.Max = &avg, &lo, &hi
		}
		out.Stats = &st
		return out, nil
	}
	t := &Terms{Buckets: make([]Bucket, 0, len(counts)), Missing: missing}
	for val, n := range counts {
		t.Buckets = append(t.Buckets, Bucket{Value: val, Count: n})
	}
	sort.Slice(t.Buckets, func(i, j int) bool {
		a, b := t.Buckets[i], t.Buckets[j]
		return a.Count > b.Count || a.Count == b.Count && a.Value < b.Value
	})
	if len(t.Buckets) > size {
		for _, b := range t.Buckets[size:] {
			t.Other += b.Count
		}
		t.Buckets = t.Buckets[:size]
	}
	out.Terms = t
	return out, nil
}

func number(v search.Value) (float64, bool) {
	switch v.Kind {
	case search.Number:
		return v.N, true
	case search.String:
		if f, err := strconv.ParseFloat(v.S, 64); err == nil && !math.IsNaN(f) {
			return f, true
		}
	}
	return 0, false
}
