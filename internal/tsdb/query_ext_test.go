package tsdb

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
)

// QueryNewest must agree with Query{Desc, Limit} on data spread over
// flushed blocks (overlapping ones too) and the head.
func TestQueryNewestMatchesDesc(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Options{Dir: t.TempDir(), BlockDuration: 3600e9})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	write := func(n int) {
		var pts []Point
		for i := 0; i < n; i++ {
			pts = append(pts, Point{Measurement: "m", Tags: []Tag{{Key: "h", Value: string(rune('a' + rng.IntN(3)))}},
				Time: rng.Int64N(5 * 3600e9), Fields: []Field{{Key: "v", Value: FloatValue(rng.Float64())}}})
		}
		if err := db.Write(ctx, pts); err != nil {
			t.Fatal(err)
		}
	}
	write(3000)
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	write(3000) // overlaps the blocks
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	write(500) // stays in the head
	// The oldest sample per series (answered from chunk summaries).
	full, err := db.Query(ctx, Query{Measurement: "m"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ start, end int64 }{{0, 0}, {3600e9, 0}, {1800e9, 4 * 3600e9}} {
		first, err := db.Query(ctx, Query{Measurement: "m", Limit: 1, Start: r.start, End: r.end})
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range first {
			var want Sample
			for _, x := range full[i].Samples {
				if x.Time >= r.start {
					want = x
					break
				}
			}
			if len(s.Samples) != 1 || !sampleEqual(s.Samples[0], want) {
				t.Fatalf("oldest of %v from %d: %v, want %v", s.Tags, r.start, s.Samples, want)
			}
		}
	}
	for _, q := range []Query{{Measurement: "m", Limit: 1}, {Measurement: "m", Limit: 50}, {Measurement: "m", Limit: 700}, {Measurement: "m", Limit: 5000, Start: 3600e9, End: 4 * 3600e9}} {
		want, err := db.Query(ctx, Query{Measurement: q.Measurement, Limit: q.Limit, Start: q.Start, End: q.End, Desc: true})
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.QueryNewest(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("limit %d: %d series, want %d", q.Limit, len(got), len(want))
		}
		for i := range want {
			if !samplesEqual(got[i].Samples, want[i].Samples) || !slices.Equal(got[i].Tags, want[i].Tags) {
				t.Fatalf("limit %d series %v: got %d samples, want %d", q.Limit, want[i].Tags, len(got[i].Samples), len(want[i].Samples))
			}
		}
	}
}

// Filters must give what filtering every sample gives, for Query (both
// orders) and QueryNewest, with chunks skipped by their summaries, blocks
// overlapping each other and samples still in the head; and integers
// compare as numbers.
func TestQueryFilters(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Options{Dir: t.TempDir(), BlockDuration: 3600e9})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	var all []Point
	write := func(n int, t0 int64) {
		var pts []Point
		for i := 0; i < n; i++ {
			// A slowly falling level with rare dips under 0.1, like a fuel gauge.
			v := 1 - float64(i%4000)/4000
			if rng.IntN(500) == 0 {
				v = 0.05
			}
			pts = append(pts, Point{Measurement: "m", Tags: []Tag{{Key: "h", Value: string(rune('a' + i%2))}},
				Time: t0 + int64(i)*1e9, Fields: []Field{{Key: "v", Value: FloatValue(v)}, {Key: "n", Value: IntValue(int64(i % 100))}}})
		}
		if err := db.Write(ctx, pts); err != nil {
			t.Fatal(err)
		}
		all = append(all, pts...)
	}
	write(9000, 0)
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	write(3000, 1500e9) // overlaps the first block
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	write(2000, 20000e9) // head
	brute := func(field, h string, fs []Filter) []Sample {
		byTime := map[int64]Value{}
		for _, p := range all {
			if p.Tags[0].Value != h {
				continue
			}
			for _, f := range p.Fields {
				if f.Key == field {
					byTime[p.Time] = f.Value // last write wins
				}
			}
		}
		var out []Sample
		for ts, v := range byTime {
			if len(filterSamples([]Sample{{Time: ts, Value: v}}, fs)) == 1 {
				out = append(out, Sample{Time: ts, Value: v})
			}
		}
		slices.SortFunc(out, func(a, b Sample) int { return int(a.Time - b.Time) })
		return out
	}
	cases := []struct {
		field string
		fs    []Filter
	}{
		{"v", []Filter{{Op: FilterLE, Value: 0.1}}},
		{"v", []Filter{{Op: FilterGT, Value: 0.5}, {Op: FilterLT, Value: 0.6}}},
		{"n", []Filter{{Op: FilterEQ, Value: 42}}},
		{"n", []Filter{{Op: FilterNE, Value: 0}, {Op: FilterGE, Value: 99}}},
		{"v", []Filter{{Op: FilterLT, Value: -1}}},
	}
	for _, c := range cases {
		for _, h := range []string{"a", "b"} {
			want := brute(c.field, h, c.fs)
			q := Query{Measurement: "m", Tags: []Tag{{Key: "h", Value: h}}, Field: c.field, Filters: c.fs}
			got, err := db.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				if len(got) != 0 {
					t.Fatalf("%s %v: got %d series, want none", c.field, c.fs, len(got))
				}
				continue
			}
			if len(got) != 1 || !samplesEqual(got[0].Samples, want) {
				t.Fatalf("%s %v host %s: Query gave %v series, want %d samples", c.field, c.fs, h, len(got), len(want))
			}
			for _, limit := range []int{1, 3} {
				q.Limit = limit
				asc, err := db.Query(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if n := min(limit, len(want)); !samplesEqual(asc[0].Samples, want[:n]) {
					t.Fatalf("%s %v limit %d: oldest %v, want %v", c.field, c.fs, limit, asc[0].Samples, want[:n])
				}
				newest, err := db.QueryNewest(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				rev := slices.Clone(want)
				slices.Reverse(rev)
				if n := min(limit, len(rev)); !samplesEqual(newest[0].Samples, rev[:n]) {
					t.Fatalf("%s %v limit %d: newest %v, want %v", c.field, c.fs, limit, newest[0].Samples, rev[:n])
				}
			}
		}
	}
	if _, err := db.Query(ctx, Query{Measurement: "m", Every: 1e9, Fn: Mean, Filters: []Filter{{Op: FilterLT, Value: 1}}}); err == nil {
		t.Error("filters on an aggregate query: no error")
	}
}

// LIMIT queries copy only the needed end of a sorted head; the answers
// must equal the ends of the full result (head overwriting a block too).
func TestLimitWithSortedHead(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), func(o *Options) { o.BlockDuration = 1 << 40 })
	write := func(from, to int64, v int64) {
		var pts []Point
		for ts := from; ts < to; ts++ {
			pts = append(pts, pt("d", ts, Field{Key: "v", Value: IntValue(ts*10 + v)}))
		}
		if err := db.Write(ctx, pts); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 3000, 1)
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	write(2990, 5000, 2) // sorted head, overlapping the block's end
	full := mustQuery(t, db, Query{Measurement: "telemetry"})[0].Samples
	for _, limit := range []int{1, 7, 2500} {
		asc := mustQuery(t, db, Query{Measurement: "telemetry", Limit: limit})[0].Samples
		if !samplesEqual(asc, full[:limit]) {
			t.Fatalf("oldest %d differ", limit)
		}
		desc := mustQuery(t, db, Query{Measurement: "telemetry", Limit: limit, Desc: true})[0].Samples
		newest, err := db.QueryNewest(ctx, Query{Measurement: "telemetry", Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(full[len(full)-limit:])
		slices.Reverse(want)
		if !samplesEqual(desc, want) || !samplesEqual(newest[0].Samples, want) {
			t.Fatalf("newest %d differ", limit)
		}
	}
}
