package chunkenc

import (
	"math"
	"slices"
	"testing"
)

func FuzzDecodeTimestamps(f *testing.F) {
	f.Add(AppendTimestamps(nil, []int64{1, 2, 3, 5, 100, 1 << 40}))
	f.Add(AppendTimestamps(nil, []int64{math.MinInt64, math.MaxInt64}))
	f.Add([]byte{1, 3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := DecodeTimestamps(b, nil)
		if err != nil {
			return
		}
		again, err := DecodeTimestamps(AppendTimestamps(nil, ts), nil)
		if err != nil || !slices.Equal(again, ts) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
	})
}

func FuzzDecodeFloats(f *testing.F) {
	f.Add(AppendFloats(nil, []float64{1.1, 2.7, math.Pi, 1e100}))
	f.Add(AppendFloats(nil, []float64{21.5, 21.52, 21.49}))
	f.Add(appendGorilla(nil, []float64{math.NaN(), 0, -1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := DecodeFloats(b, nil)
		if err != nil {
			return
		}
		again, err := DecodeFloats(AppendFloats(nil, vs), nil)
		if err != nil || len(again) != len(vs) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
		for i := range vs {
			if math.Float64bits(again[i]) != math.Float64bits(vs[i]) {
				t.Fatalf("value %d mismatch", i)
			}
		}
	})
}

func FuzzDecodeInts(f *testing.F) {
	f.Add(AppendInts(nil, []int64{1, 5, -100, 1 << 50}))
	f.Add(AppendInts(nil, []int64{0, 10, 20, 30, 41}))
	f.Add(AppendInts(nil, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}))
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := DecodeInts(b, nil)
		if err != nil {
			return
		}
		again, err := DecodeInts(AppendInts(nil, vs), nil)
		if err != nil || !slices.Equal(again, vs) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
	})
}

func FuzzDecodeBools(f *testing.F) {
	f.Add(AppendBools(nil, []bool{true, false, true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := DecodeBools(b, nil)
		if err != nil {
			return
		}
		again, err := DecodeBools(AppendBools(nil, vs), nil)
		if err != nil || !slices.Equal(again, vs) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
	})
}

func FuzzDecodeStrings(f *testing.F) {
	f.Add(AppendStrings(nil, []string{"a", "b", "a", "a", "a"}))
	f.Add(AppendStrings(nil, []string{"hello", "world"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := DecodeStrings(b, nil)
		if err != nil {
			return
		}
		again, err := DecodeStrings(AppendStrings(nil, vs), nil)
		if err != nil || !slices.Equal(again, vs) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
	})
}
