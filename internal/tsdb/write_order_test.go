package tsdb

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"
)

// TestBatchAppliedBySeries writes requests that interleave series, leave
// out fields and repeat timestamps within a series, and compares every
// field with a model where the last write of a time wins: the writer
// applies a request grouped by series (seriesOrder), which must not change
// the outcome.
func TestBatchAppliedBySeries(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	r := rand.New(rand.NewPCG(7, 11))
	type key struct{ dev, field string }
	model := map[key]map[int64]Value{}
	fields := []string{"a", "b", "c", "d"}
	for req := 0; req < 20; req++ {
		var pts []Point
		for i := 0; i < 200; i++ {
			dev := fmt.Sprintf("d%d", r.IntN(5))
			ts := int64(r.IntN(40)) * 10
			var fs []Field
			for _, name := range fields {
				if r.IntN(4) == 0 {
					continue // sparse, as TSBS iot
				}
				v := IntValue(int64(req*1000 + i))
				fs = append(fs, f(name, v))
			}
			if len(fs) == 0 {
				fs = append(fs, f("a", IntValue(int64(req*1000+i))))
			}
			for _, x := range fs {
				k := key{dev, x.Key}
				if model[k] == nil {
					model[k] = map[int64]Value{}
				}
				model[k][ts] = x.Value
			}
			pts = append(pts, pt(dev, ts, fs...))
		}
		mustWrite(t, db, pts...)
	}
	if o := db.seriesOrder(make([]preparedPoint, 10), 3); o != nil {
		t.Fatalf("small requests are applied in arrival order, got %v", o)
	}
	for k, byTime := range model {
		res := mustQuery(t, db, Query{Measurement: "telemetry", Tags: []Tag{{"device_id", k.dev}}, Field: k.field})
		if len(res) != 1 {
			t.Fatalf("%v: %d series", k, len(res))
		}
		var want []Sample
		for ts := int64(0); ts < 400; ts += 10 {
			if v, ok := byTime[ts]; ok {
				want = append(want, Sample{Time: ts, Value: v})
			}
		}
		if !deepEqual(res[0].Samples, want) {
			t.Fatalf("%v:\n got %v\nwant %v", k, res[0].Samples, want)
		}
	}
}

func TestSeriesOrder(t *testing.T) {
	db := &DB{}
	pts := make([]preparedPoint, 70)
	for i := range pts {
		pts[i].bs = int32(1 + i%3) // 1 2 3 1 2 3 ...
	}
	order := db.seriesOrder(pts, 4)
	if len(order) != len(pts) {
		t.Fatalf("order %v", order)
	}
	prev := int32(-1)
	for k, i := range order {
		p := pts[i]
		if k > 0 && p.bs < pts[order[k-1]].bs {
			t.Fatalf("series out of order at %d: %v", k, order)
		}
		if k > 0 && p.bs == pts[order[k-1]].bs && i <= prev {
			t.Fatalf("points of a series reordered at %d: %v", k, order)
		}
		prev = i
	}
	pts[5].bs = 0 // not numbered: arrival order
	if db.seriesOrder(pts, 4) != nil {
		t.Fatal("unnumbered point accepted")
	}
}

func TestInternName(t *testing.T) {
	b := []byte("temperature")
	s := InternName(b)
	b[0] = 'X'
	if s != "temperature" {
		t.Fatalf("interned name aliases the caller's buffer: %q", s)
	}
	if u := internName("temperature"); unsafe.StringData(u) != unsafe.StringData(s) {
		t.Fatal("a second lookup returns another copy")
	}
	if a, c := InternName([]byte("humidity")), InternName([]byte("humidity")); a != c {
		t.Fatal("not equal")
	}
}

// TestWritePartialRecordsReplay: WritePartial encodes the WAL record while
// preparing and re-encodes when points are dropped later (out of window,
// type conflicts). Whatever path a batch took, replaying the WAL must give
// back exactly what queries saw.
func TestWritePartialRecordsReplay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := func(o *Options) { o.OutOfOrderWindow = time.Minute }
	db := openTest(t, dir, opts)
	now := int64(1e12)
	batches := [][]Point{
		{pt("a", now, f("v", FloatValue(1)), f("s", StringValue("x"))), pt("b", now, f("v", FloatValue(2)))}, // all kept
		{pt("a", now+1, f("v", FloatValue(math.NaN()))), pt("b", now+2, f("v", FloatValue(3))),
			pt("a", now-int64(2*time.Minute), f("v", FloatValue(4))), pt("c", now+3, f("w", IntValue(5)))}, // invalid + late
		{pt("a", now+4, f("v", IntValue(6))), pt("b", now+5, f("v", FloatValue(7)), f("u", UintValue(8)))}, // type conflict
	}
	wantRej := []int{0, 2, 1}
	for i, b := range batches {
		rej, err := db.WritePartial(ctx, b)
		if err != nil || len(rej) != wantRej[i] {
			t.Fatalf("batch %d: %v %v", i, err, rej)
		}
	}
	before := mustQuery(t, db, Query{Measurement: "telemetry"})
	if len(before) != 5 {
		t.Fatalf("series %v", before)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, opts)
	if after := mustQuery(t, db, Query{Measurement: "telemetry"}); !deepEqual(after, before) {
		t.Fatalf("after replay\n got %v\nwant %v", after, before)
	}
}
