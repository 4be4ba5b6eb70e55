package chunkenc

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func tsCases(r *rand.Rand) map[string][]int64 {
	regular := make([]int64, 1000)
	jitter := make([]int64, 1000)
	random := make([]int64, 500)
	t := int64(1_700_000_000_000_000_000)
	for i := range regular {
		regular[i] = t + int64(i)*10e9
		jitter[i] = t + int64(i)*10e9 + (r.Int64N(101)-50)*1e6
		random[i%500] = int64(r.Uint64())
	}
	return map[string][]int64{
		"empty":       {},
		"one":         {42},
		"two":         {-5, 7},
		"regular":     regular,
		"jitter":      jitter,
		"random":      random,
		"extremes":    {math.MinInt64, math.MaxInt64, 0, math.MinInt64, -1, math.MaxInt64, math.MaxInt64},
		"descending":  {100, 90, 80, 70, 10, -1000},
		"repeated":    {5, 5, 5, 5, 5},
		"hugeDeltas":  {0, 1 << 62, -(1 << 62), 1 << 40, 3},
		"nanoseconds": {1, 2, 4, 7, 11, 16, 1 << 20},
	}
}

func TestTimestampsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for name, ts := range tsCases(r) {
		t.Run(name, func(t *testing.T) {
			enc := AppendTimestamps(nil, ts)
			got, err := DecodeTimestamps(enc, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, ts) {
				t.Fatalf("round trip mismatch:\n got %v\nwant %v", got, ts)
			}
		})
	}
}

func TestTimestampsRegularIsOneBit(t *testing.T) {
	ts := make([]int64, 1025)
	for i := range ts {
		ts[i] = 1_700_000_000e9 + int64(i)*10e9
	}
	enc := AppendTimestamps(nil, ts)
	if len(enc) > 16+1024/8 {
		t.Fatalf("regular timestamps took %d bytes", len(enc))
	}
}

func intCases(r *rand.Rand) map[string][]int64 {
	walk := make([]int64, 1000)
	counter := make([]int64, 1000)
	random := make([]int64, 300)
	v := int64(0)
	for i := range walk {
		v += r.Int64N(21) - 10
		walk[i] = v
		counter[i] = int64(i)*1000 + r.Int64N(3)
		random[i%300] = int64(r.Uint64())
	}
	return map[string][]int64{
		"empty":    {},
		"one":      {math.MinInt64},
		"two":      {1, 2},
		"walk":     walk,
		"counter":  counter,
		"random":   random,
		"extremes": {math.MaxInt64, math.MinInt64, math.MaxInt64, 0, -1, math.MinInt64},
		"constant": {7, 7, 7, 7, 7, 7, 7, 7, 7},
		"zeros":    make([]int64, 100),
	}
}

func TestIntsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for name, vs := range intCases(r) {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeInts(AppendInts(nil, vs), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, vs) {
				t.Fatalf("mismatch:\n got %v\nwant %v", got, vs)
			}
			us := make([]uint64, len(vs))
			for i, v := range vs {
				us[i] = uint64(v) * 3
			}
			gotU, err := DecodeUints(AppendUints(nil, us), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(gotU, us) {
				t.Fatalf("uint mismatch")
			}
		})
	}
}

func floatCases(r *rand.Rand) map[string][]float64 {
	walk := make([]float64, 1000)
	decimal := make([]float64, 1000)
	random := make([]float64, 300)
	v := 20.0
	for i := range walk {
		v += r.NormFloat64() * 0.05
		walk[i] = v
		decimal[i] = math.Round(v*100) / 100
		random[i%300] = math.Float64frombits(r.Uint64())
	}
	return map[string][]float64{
		"empty":     {},
		"one":       {math.Pi},
		"walk":      walk,
		"decimal":   decimal,
		"random":    random,
		"special":   {math.NaN(), math.Float64frombits(0x7ff8000000000001), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, math.MaxFloat64, math.SmallestNonzeroFloat64},
		"negZero":   {0, math.Copysign(0, -1), 0},
		"repeated":  {1.5, 1.5, 1.5, 1.5, 1.5},
		"integers":  {1, 2, 3, 1e15, -1e15},
		"bigExact":  {9007199254740992, 9007199254740993, 1},
		"tiny":      {1e-300, 2e-300},
		"mixedSign": {-1.25, 1.25, -1.25, 3},
	}
}

func TestFloatsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for name, vs := range floatCases(r) {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeFloats(AppendFloats(nil, vs), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(vs) {
				t.Fatalf("len %d want %d", len(got), len(vs))
			}
			for i := range vs {
				if math.Float64bits(got[i]) != math.Float64bits(vs[i]) {
					t.Fatalf("value %d: got %x want %x", i, math.Float64bits(got[i]), math.Float64bits(vs[i]))
				}
			}
			// Gorilla alone must round-trip too.
			got, err = DecodeFloats(appendGorilla(nil, vs), nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range vs {
				if math.Float64bits(got[i]) != math.Float64bits(vs[i]) {
					t.Fatalf("gorilla value %d mismatch", i)
				}
			}
		})
	}
}

func TestFloatsRandomProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for iter := 0; iter < 300; iter++ {
		n := r.IntN(200)
		vs := make([]float64, n)
		for i := range vs {
			switch r.IntN(4) {
			case 0:
				vs[i] = math.Float64frombits(r.Uint64())
			case 1:
				vs[i] = float64(r.IntN(1000)) / 10
			case 2:
				if i > 0 {
					vs[i] = vs[i-1]
				}
			default:
				vs[i] = r.NormFloat64()
			}
		}
		got, err := DecodeFloats(AppendFloats(nil, vs), nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range vs {
			if math.Float64bits(got[i]) != math.Float64bits(vs[i]) {
				t.Fatalf("iter %d value %d mismatch", iter, i)
			}
		}
	}
}

func TestIntsRandomProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for iter := 0; iter < 300; iter++ {
		n := r.IntN(200)
		vs := make([]int64, n)
		scale := int64(1) << r.IntN(63)
		for i := range vs {
			vs[i] = r.Int64N(scale) - scale/2
			if r.IntN(10) == 0 {
				vs[i] = int64(r.Uint64())
			}
		}
		got, err := DecodeInts(AppendInts(nil, vs), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, vs) {
			t.Fatalf("iter %d mismatch", iter)
		}
	}
}

func TestBoolsRoundTrip(t *testing.T) {
	cases := map[string][]bool{
		"empty": {},
		"one":   {true},
		"nine":  {true, false, true, true, false, false, true, false, true},
		"many":  make([]bool, 1000),
	}
	for name, vs := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeBools(AppendBools(nil, vs), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, vs) {
				t.Fatal("mismatch")
			}
		})
	}
}

func TestStringsRoundTrip(t *testing.T) {
	repeated := make([]string, 1000)
	for i := range repeated {
		repeated[i] = []string{"ok", "warn", "error"}[i%3]
	}
	cases := map[string][]string{
		"empty":    {},
		"one":      {"hello"},
		"emptyStr": {"", "", ""},
		"distinct": {"a", "bb", "ccc", "", "ünïcödé"},
		"repeated": repeated,
		"binary":   {"\x00\xff", "\x00\xff", "\x00\xff", "x"},
	}
	for name, vs := range cases {
		t.Run(name, func(t *testing.T) {
			enc := AppendStrings(nil, vs)
			got, err := DecodeStrings(enc, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, vs) {
				t.Fatalf("mismatch: %q vs %q", got, vs)
			}
		})
	}
	if enc := AppendStrings(nil, repeated); len(enc) > 300 {
		t.Fatalf("dictionary not used: %d bytes", len(enc))
	}
}

func TestCorruptInputs(t *testing.T) {
	ts := AppendTimestamps(nil, []int64{1, 2, 3, 5, 100, 1 << 40})
	fl := AppendFloats(nil, []float64{1.1, 2.7, math.Pi, 1e100})
	in := AppendInts(nil, []int64{1, 5, -100, 1 << 50})
	bo := AppendBools(nil, []bool{true, false, true})
	st := AppendStrings(nil, []string{"a", "b", "a", "a", "a"})
	decoders := map[string]func([]byte) error{
		"timestamps": func(b []byte) error { _, err := DecodeTimestamps(b, nil); return err },
		"floats":     func(b []byte) error { _, err := DecodeFloats(b, nil); return err },
		"ints":       func(b []byte) error { _, err := DecodeInts(b, nil); return err },
		"bools":      func(b []byte) error { _, err := DecodeBools(b, nil); return err },
		"strings":    func(b []byte) error { _, err := DecodeStrings(b, nil); return err },
	}
	valid := map[string][]byte{"timestamps": ts, "floats": fl, "ints": in, "bools": bo, "strings": st}
	for name, dec := range decoders {
		t.Run(name, func(t *testing.T) {
			if err := dec(nil); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("empty input: %v", err)
			}
			if err := dec([]byte{99, 1}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unknown encoding: %v", err)
			}
			if err := dec([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("huge count: %v", err)
			}
			b := valid[name]
			if err := dec(b[:len(b)-1]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("truncated: %v", err)
			}
		})
	}
}
