package tsdb

import (
	"context"
	"errors"
	"testing"
	"time"
)

func values(t *testing.T, res []Series) map[int64]float64 {
	t.Helper()
	out := map[int64]float64{}
	for _, s := range res {
		for _, x := range s.Samples {
			v, _ := x.Value.Float()
			out[x.Time] = v
		}
	}
	return out
}

func TestCompactionMergesOverlapsAndKeepsNewest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	hour := int64(time.Hour)
	db := openTest(t, dir, nil)
	// Three flushes into the same partition, overlapping in time; the
	// second overwrites t=5 and the third adds late points.
	for i := int64(0); i < 10; i++ {
		mustWrite(t, db, pt("d1", i, f("v", FloatValue(float64(i)))))
	}
	db.Flush(ctx)
	mustWrite(t, db, pt("d1", 5, f("v", FloatValue(50))), pt("d1", 20, f("v", FloatValue(20))))
	db.Flush(ctx)
	mustWrite(t, db, pt("d1", 3, f("v", FloatValue(30))), pt("d2", 4, f("s", StringValue("x"))))
	db.Flush(ctx)
	mustWrite(t, db, pt("d1", hour*3, f("v", FloatValue(1)))) // another partition, one block
	db.Flush(ctx)
	before := values(t, mustQuery(t, db, Query{Measurement: "telemetry", Field: "v"}))
	if st := db.Stats(); st.Blocks != 4 {
		t.Fatalf("blocks before = %d", st.Blocks)
	}
	n, err := db.Compact(ctx)
	if err != nil || n != 1 {
		t.Fatalf("compact = %d, %v", n, err)
	}
	st := db.Stats()
	if st.Blocks != 2 || st.BlockSamples != 13 || st.Compactions != 1 {
		t.Fatalf("after compaction %+v", st)
	}
	after := values(t, mustQuery(t, db, Query{Measurement: "telemetry", Field: "v"}))
	if len(after) != len(before) || after[5] != 50 || after[3] != 30 || after[20] != 20 {
		t.Fatalf("before %v after %v", before, after)
	}
	db.Close()
	db = openTest(t, dir, nil)
	if got := values(t, mustQuery(t, db, Query{Measurement: "telemetry", Field: "v"})); len(got) != len(before) || got[5] != 50 {
		t.Fatalf("after reopen %v", got)
	}
	if res := mustQuery(t, db, Query{Measurement: "telemetry", Field: "s"}); len(res) != 1 {
		t.Fatalf("string field lost: %+v", res)
	}
}

func TestOutOfOrderWindowAndSeriesLimit(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), func(o *Options) { o.OutOfOrderWindow = time.Minute; o.MaxSeries = 2 })
	now := int64(1e12)
	mustWrite(t, db, pt("d1", now, f("v", FloatValue(1))))
	mustWrite(t, db, pt("d1", now-int64(30*time.Second), f("v", FloatValue(2)))) // late, within window
	err := db.Write(ctx, []Point{pt("d1", now-int64(2*time.Minute), f("v", FloatValue(3)))})
	if !errors.Is(err, ErrOutOfWindow) {
		t.Fatalf("too late: %v", err)
	}
	rej, err := db.WritePartial(ctx, []Point{
		pt("d1", now+1, f("v", FloatValue(4))),
		pt("d1", 0, f("v", FloatValue(5))),
		pt("d2", now+2, f("v", FloatValue(6))),
		pt("d3", now+3, f("v", FloatValue(7))),
	})
	if err != nil || len(rej) != 2 || rej[0].Index != 1 || !errors.Is(rej[0].Err, ErrOutOfWindow) ||
		rej[1].Index != 3 || !errors.Is(rej[1].Err, ErrSeriesLimit) {
		t.Fatalf("partial: %v %+v", err, rej)
	}
	st := db.Stats()
	if st.RejectedLate != 2 || st.RejectedSeries != 1 || st.Series != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRetentionDropsPartitions(t *testing.T) {
	ctx := context.Background()
	clock := time.Unix(0, 10*int64(time.Hour))
	db := openTest(t, t.TempDir(), func(o *Options) {
		o.Retention = 4 * time.Hour
		o.Now = func() time.Time { return clock }
	})
	hour := int64(time.Hour)
	for h := int64(6); h < 10; h++ {
		mustWrite(t, db, pt("d1", h*hour, f("v", FloatValue(float64(h)))))
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, db, pt("d1", 9*hour+1, f("v", FloatValue(9.5)))) // stays in the head
	if err := db.Write(ctx, []Point{pt("d1", 5*hour, f("v", FloatValue(5)))}); !errors.Is(err, ErrOutOfWindow) {
		t.Fatalf("write beyond retention: %v", err)
	}
	clock = clock.Add(2 * time.Hour) // cutoff 9h: partitions [6,8) end at 8h
	if err := db.enforceRetention(); err != nil {
		t.Fatal(err)
	}
	got := values(t, mustQuery(t, db, Query{Measurement: "telemetry"}))
	if len(got) != 3 || got[8*hour] != 8 || got[9*hour+1] != 9.5 {
		t.Fatalf("after retention %v", got)
	}
	if st := db.Stats(); st.DroppedParts != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeleteByTimeAndTags(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	for i := int64(0); i < 20; i++ {
		mustWrite(t, db, pt("d1", i, f("v", FloatValue(float64(i)))), pt("d2", i, f("v", FloatValue(float64(-i)))))
		if i == 9 {
			db.Flush(ctx) // half in a block, half in the head
		}
	}
	m, _ := NewMatcher("device_id", MatchRegexp, "1$")
	if err := db.Delete(ctx, "telemetry", []Matcher{m}, 5, 15); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, db, pt("d1", 7, f("v", FloatValue(700)))) // written after the delete: kept
	check := func(stage string) {
		t.Helper()
		d1 := values(t, mustQuery(t, db, Query{Measurement: "telemetry", Tags: []Tag{{"device_id", "d1"}}}))
		d2 := values(t, mustQuery(t, db, Query{Measurement: "telemetry", Tags: []Tag{{"device_id", "d2"}}}))
		if len(d1) != 11 || d1[7] != 700 || d1[4] != 4 || d1[15] != 15 || len(d2) != 20 {
			t.Fatalf("%s: d1 %v d2 has %d", stage, d1, len(d2))
		}
		agg := mustQuery(t, db, Query{Measurement: "telemetry", Tags: []Tag{{"device_id", "d1"}}, Every: time.Hour, Fn: Count})
		if n, _ := agg[0].Samples[0].Value.Int(); n != 11 {
			t.Fatalf("%s: count %d", stage, n)
		}
	}
	check("tombstoned")
	db.Close()
	db = openTest(t, dir, nil)
	check("reopened")
	if _, err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	check("compacted")
	if st := db.Stats(); st.Tombstones != 0 || st.Blocks != 1 {
		t.Fatalf("tombstones not collected: %+v", st)
	}
}

// A query that planned before a compaction still reads the old blocks.
func TestCompactionDuringQuery(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), nil)
	for k := 0; k < 3; k++ {
		for i := int64(0); i < 100; i++ {
			mustWrite(t, db, pt("d1", i*10+int64(k), f("v", FloatValue(1))))
		}
		db.Flush(ctx)
	}
	plans, blocks, err := db.plan(&Query{Measurement: "telemetry"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	smp, err := raw(&plans[0], &Query{}, &budget{})
	for _, b := range blocks {
		b.release()
	}
	if err != nil || len(smp) != 300 {
		t.Fatalf("old plan read %d, %v", len(smp), err)
	}
	if got := mustQuery(t, db, Query{Measurement: "telemetry"}); len(got[0].Samples) != 300 {
		t.Fatalf("new query %d", len(got[0].Samples))
	}
}
