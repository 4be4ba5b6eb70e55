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
	for _, q := range []Query{{Measurement: "m", Limit: 1}, {Measurement: "m", Limit: 700}, {Measurement: "m", Limit: 5000, Start: 3600e9, End: 4 * 3600e9}} {
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
			if !slices.Equal(got[i].Samples, want[i].Samples) || !slices.Equal(got[i].Tags, want[i].Tags) {
				t.Fatalf("limit %d series %v: got %d samples, want %d", q.Limit, want[i].Tags, len(got[i].Samples), len(want[i].Samples))
			}
		}
	}
}
