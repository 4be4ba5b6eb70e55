package tsdb

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
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
		for _, c := range []struct {
			limit  int
			newest bool
		}{{1, false}, {1, true}, {2, true}, {3, true}} {
			got := f.samplesIn(start, end, c.limit, c.newest)
			want := all
			if len(want) > c.limit {
				if c.newest {
					want = want[len(want)-c.limit:]
				} else {
					want = want[:c.limit]
				}
			}
			if !samplesEqual(got, want) {
				t.Fatalf("round %d %+v [%d,%d) ts %v: got %v want %v", round, c, start, end, f.ts, got, want)
			}
		}
	}
}

// A newest-first LIMIT with field filters answered from the head must give
// what filtering the fully sorted field gives, and return every sample
// from its cut-off time on (blocks are merged in before filtering).
func TestHeadNewestMatching(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	fs := []Filter{{Op: FilterLE, Value: 3}}
	answered := 0
	defer func() {
		if answered < 100 {
			t.Errorf("only %d of 500 rounds answered from the head", answered)
		}
	}()
	for round := 0; round < 500; round++ {
		f := &headField{name: "v", typ: Float, sorted: true}
		n := 1 + r.IntN(60)
		unsorted := round%2 == 0
		for i := 0; i < n; i++ {
			ts := int64(i)
			if unsorted {
				ts = int64(r.IntN(30))
			}
			f.append(ts, FloatValue(float64(r.IntN(10))))
		}
		start, end := int64(r.IntN(5)), int64(0)
		if r.IntN(2) == 0 {
			end = start + 5 + int64(r.IntN(60))
		}
		limit := 1 + r.IntN(3)
		full := f.samplesIn(start, end, 0, false)
		want := filterSamples(slices.Clone(full), fs)
		if len(want) > limit {
			want = want[len(want)-limit:]
		}
		got, ok := f.newestMatching(start, end, limit, fs)
		if !ok {
			if len(want) == limit && !unsorted {
				t.Fatalf("round %d: sorted field with %d matches not answered", round, len(want))
			}
			continue // too few matches (or, unsorted, too many overwritten): the caller reads all
		}
		answered++
		if len(got) == 0 || !samplesEqual(got, full[len(full)-len(got):]) {
			t.Fatalf("round %d: not a suffix of the field: got %v full %v", round, got, full)
		}
		res := filterSamples(slices.Clone(got), fs)
		if len(res) > limit {
			res = res[len(res)-limit:]
		}
		if !samplesEqual(res, want) {
			t.Fatalf("round %d limit %d [%d,%d) ts %v vals %v: got %v want %v", round, limit, start, end, f.ts, f.vals, res, want)
		}
	}
}

// When writes pause, the writer sorts head fields left out of order; the
// answers stay the same, overwrites included.
func TestIdleWriterSortsHead(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	for _, p := range []Point{
		pt("d", 5, f("v", FloatValue(5))),
		pt("d", 3, f("v", FloatValue(3))),
		pt("d", 4, f("v", FloatValue(4))),
		pt("d", 3, f("v", FloatValue(33))), // overwrites t=3
	} {
		mustWrite(t, db, p)
	}
	sorted := func() bool {
		db.mu.RLock()
		defer db.mu.RUnlock()
		for _, p := range db.head.parts {
			for _, hs := range p.series {
				for _, hf := range hs.fields {
					if !hf.sorted {
						return false
					}
				}
			}
		}
		return true
	}
	if sorted() {
		t.Fatal("head sorted before the writer was idle")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !sorted() {
		if time.Now().After(deadline) {
			t.Fatal("head not sorted after the writer went idle")
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := values(t, mustQuery(t, db, Query{Measurement: "telemetry", Tags: []Tag{{"device_id", "d"}}, Field: "v"}))
	if len(got) != 3 || got[3] != 33 || got[4] != 4 || got[5] != 5 {
		t.Fatalf("after tidying: %v", got)
	}
	if st := db.Stats(); st.HeadSamples != 3 {
		t.Fatalf("head samples after dropping the overwritten one: %d", st.HeadSamples)
	}
}

// tidyHead stops between fields when asked (the writer asks when a write
// is queued), so ingest does not wait for a whole head to be sorted, and
// a later tidy finishes the rest.
func TestTidyStopsBetweenFields(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	db.tidyAfter = time.Hour // only the calls below tidy
	for i := 0; i < 50; i++ {
		dev := fmt.Sprintf("d%d", i)
		mustWrite(t, db, pt(dev, 5, f("v", FloatValue(5))), pt(dev, 3, f("v", FloatValue(3))))
	}
	unsorted := func() int {
		db.mu.RLock()
		defer db.mu.RUnlock()
		n := 0
		for _, p := range db.head.parts {
			for _, hs := range p.series {
				for _, hf := range hs.fields {
					if !hf.sorted {
						n++
					}
				}
			}
		}
		return n
	}
	calls := 0
	db.tidyHead(func() bool { calls++; return calls > 10 })
	if n := unsorted(); n != 40 {
		t.Fatalf("after a tidy stopped at the 11th field: %d of 50 unsorted", n)
	}
	db.tidyHead(func() bool { return false })
	if n := unsorted(); n != 0 {
		t.Fatalf("%d fields unsorted after an undisturbed tidy", n)
	}
}

// BenchmarkSortedCopy sorts a field shaped like a TSBS iot load by 4
// concurrent writers: runs of 25 samples whose order is shuffled a little,
// plus a few overwrites.
func BenchmarkSortedCopy(b *testing.B) {
	f := benchField()
	b.ReportAllocs()
	for b.Loop() {
		f.sortedCopy()
	}
}

// benchField is a field as BenchmarkSortedCopy describes.
func benchField() *headField {
	r := rand.New(rand.NewPCG(1, 2))
	runs := make([]int, 8640/25)
	for i := range runs {
		runs[i] = i
	}
	for i := range runs { // displace each run by up to 3 places
		j := min(len(runs)-1, i+r.IntN(4))
		runs[i], runs[j] = runs[j], runs[i]
	}
	f := &headField{typ: Float, sorted: true}
	for _, k := range runs {
		for i := 0; i < 25; i++ {
			t := int64(k*25+i) * 10e9
			if r.IntN(100) == 0 {
				t -= 10e9 // overwrite
			}
			f.append(t, FloatValue(float64(i)))
		}
	}
	return f
}

// TestSortedCopyMatchesStableSort compares the run-merging sort with a
// stable sort of positions, on fields with ordered runs, random order and
// many equal times (the last write of a time must win).
func TestSortedCopyMatchesStableSort(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for n := 0; n < 300; n++ {
		f := &headField{typ: Integer, sorted: true}
		size := r.IntN(400)
		span := int64(1 + r.IntN(500))
		t0 := int64(0)
		for i := 0; i < size; i++ {
			var ts int64
			switch r.IntN(3) {
			case 0:
				t0 += int64(r.IntN(3))
				ts = t0 // ordered run
			case 1:
				ts = r.Int64N(span)
			default:
				ts = t0 - r.Int64N(5)
			}
			f.append(ts, IntValue(int64(i)))
		}
		idx := make([]int, len(f.ts))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(f.ts[a], f.ts[b]) })
		var wantT []int64
		var wantV []uint64
		for k, i := range idx {
			if k+1 < len(idx) && f.ts[idx[k+1]] == f.ts[i] {
				continue
			}
			wantT, wantV = append(wantT, f.ts[i]), append(wantV, f.vals[i])
		}
		ts, vals, _ := f.sortedCopy()
		if !slices.Equal(ts, wantT) || !slices.Equal(vals, wantV) {
			t.Fatalf("case %d (%d samples): got %v %v\nwant %v %v", n, size, ts, vals, wantT, wantV)
		}
	}
}
