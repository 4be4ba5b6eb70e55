package tsdb

import (
	"math/rand/v2"
	"testing"
)

// The newest/oldest sample of an unsorted head field, answered from the
// tracked ends, must equal the first/last of the fully sorted answer,
// also after samples were removed.
func TestHeadFieldEnds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 300; round++ {
		f := &headField{name: "v", typ: Float, sorted: true}
		n := 1 + r.IntN(40)
		for i := 0; i < n; i++ {
			f.append(int64(r.IntN(20)), FloatValue(float64(i)))
		}
		if round%3 == 0 { // remove a range, as DELETE does
			lo := int64(r.IntN(20))
			tomb := &tombstone{Start: lo, End: lo + int64(r.IntN(8))}
			keep := 0
			for i, ts := range f.ts {
				if ts >= tomb.Start && ts < tomb.End {
					continue
				}
				f.ts[keep], f.vals[keep] = ts, f.vals[i]
				keep++
			}
			f.ts, f.vals = f.ts[:keep], f.vals[:keep]
			f.findEnds()
		}
		start, end := int64(r.IntN(10)), int64(0)
		if r.IntN(2) == 0 {
			end = start + 1 + int64(r.IntN(15))
		}
		all := f.samplesIn(start, end, 0, false)
		for _, newest := range []bool{false, true} {
			got := f.samplesIn(start, end, 1, newest)
			var want []Sample
			if len(all) > 0 {
				if newest {
					want = all[len(all)-1:]
				} else {
					want = all[:1]
				}
			}
			if len(got) != len(want) || len(got) == 1 && got[0] != want[0] {
				t.Fatalf("round %d newest=%v [%d,%d) ts %v: got %v want %v", round, newest, start, end, f.ts, got, want)
			}
		}
	}
}
