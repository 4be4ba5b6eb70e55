package tsdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestSeriesLimitExactUnderConcurrency: many writers, each creating new
// series (some shared between writers), end with exactly MaxSeries
// series; every point of a refused series is reported and none is stored.
func TestSeriesLimitExactUnderConcurrency(t *testing.T) {
	const limit, writers, batches, perBatch = 50, 8, 10, 5
	db := openTest(t, t.TempDir(), func(o *Options) { o.MaxSeries = limit })
	ctx := context.Background()

	var mu sync.Mutex
	accepted := map[string]int{} // device -> points stored
	refused := map[string]int{}  // device -> points reported refused
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var pts []Point
				for i := range perBatch {
					// Half the devices are shared by two writers.
					dev := fmt.Sprintf("w%d-b%d-%d", w, b, i)
					if i%2 == 0 {
						dev = fmt.Sprintf("shared-b%d-%d-%d", b, i, w/2)
					}
					pts = append(pts, pt(dev, int64(1000*w+100*b+i), f("v", FloatValue(1))))
				}
				rej, err := db.WritePartial(ctx, pts)
				if err != nil {
					errc <- err
					return
				}
				bad := map[int]bool{}
				for _, r := range rej {
					if !errors.Is(r.Err, ErrSeriesLimit) {
						errc <- fmt.Errorf("point %d: unexpected %v", r.Index, r.Err)
						return
					}
					bad[r.Index] = true
				}
				mu.Lock()
				for i, p := range pts {
					if bad[i] {
						refused[p.Tags[0].Value]++
					} else {
						accepted[p.Tags[0].Value]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	if st := db.Stats(); st.Series != limit {
		t.Fatalf("series = %d, want exactly %d", st.Series, limit)
	}
	if len(accepted) != limit {
		t.Fatalf("%d devices had points accepted, want %d", len(accepted), limit)
	}
	total := 0
	for dev, n := range refused {
		if accepted[dev] > 0 {
			t.Fatalf("device %s has points both accepted and refused", dev)
		}
		total += n
	}
	if total == 0 {
		t.Fatal("no point was refused: the test did not reach the limit")
	}
	if st := db.Stats(); st.RejectedSeries != int64(total) {
		t.Fatalf("rejected_series = %d, want %d", st.RejectedSeries, total)
	}

	// What is stored is exactly what was acknowledged.
	stored := map[string]int{}
	for _, s := range mustQuery(t, db, Query{Measurement: "telemetry", Field: "v"}) {
		stored[s.Tags[0].Value] += len(s.Samples)
	}
	if len(stored) != limit {
		t.Fatalf("%d series have data, want %d", len(stored), limit)
	}
	for dev, n := range accepted {
		if stored[dev] != n {
			t.Fatalf("device %s: %d points stored, %d acknowledged", dev, stored[dev], n)
		}
	}

	// Existing series still take points; new ones are refused whole by
	// Write, which creates none of the batch's series.
	var some string
	for dev := range accepted {
		some = dev
		break
	}
	mustWrite(t, db, pt(some, 1e9, f("v", FloatValue(2))))
	err := db.Write(ctx, []Point{pt(some, 1e9+1, f("v", FloatValue(3))), pt("brand-new", 1e9, f("v", FloatValue(3)))})
	if !errors.Is(err, ErrSeriesLimit) || !contains(err.Error(), "point 1") {
		t.Fatalf("write over the limit: %v", err)
	}
	if st := db.Stats(); st.Series != limit {
		t.Fatalf("series after refused Write = %d", st.Series)
	}
}

// TestWriteOverLimitCreatesNoSeries: a Write refused for the limit leaves
// no series of the batch behind, so a smaller batch still fits.
func TestWriteOverLimitCreatesNoSeries(t *testing.T) {
	db := openTest(t, t.TempDir(), func(o *Options) { o.MaxSeries = 3 })
	mustWrite(t, db, pt("a", 1, f("v", FloatValue(1))))
	err := db.Write(context.Background(), []Point{
		pt("b", 1, f("v", FloatValue(1))), pt("c", 1, f("v", FloatValue(1))), pt("d", 1, f("v", FloatValue(1))),
	})
	if !errors.Is(err, ErrSeriesLimit) || !contains(err.Error(), "point 2") {
		t.Fatalf("want the limit at point 2: %v", err)
	}
	if st := db.Stats(); st.Series != 1 {
		t.Fatalf("series = %d after the refused batch, want 1", st.Series)
	}
	mustWrite(t, db, pt("b", 1, f("v", FloatValue(1))), pt("c", 1, f("v", FloatValue(1))))
	if st := db.Stats(); st.Series != 3 {
		t.Fatalf("series = %d, want 3", st.Series)
	}
}
