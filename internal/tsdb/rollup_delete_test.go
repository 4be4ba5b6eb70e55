package tsdb

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// rollupView is a rollup database's content: device -> field -> window
// start (seconds) -> value.
type rollupView map[string]map[string]map[int64]string

func viewRollup(t *testing.T, db *DB) rollupView {
	t.Helper()
	out := rollupView{}
	for _, s := range mustQuery(t, db, Query{Measurement: "telemetry"}) {
		dev := s.Tags[0].Value
		if out[dev] == nil {
			out[dev] = map[string]map[int64]string{}
		}
		out[dev][s.Field] = map[int64]string{}
		for _, x := range s.Samples {
			out[dev][s.Field][x.Time/int64(time.Second)] = x.Value.String()
		}
	}
	return out
}

// setupRollupChain writes two devices into edgewise and rolls them up into
// edgewise_1m and, from there, edgewise_5m.
func setupRollupChain(t *testing.T, c *Catalog) (src, r1m, r5m *DB) {
	t.Helper()
	ctx := context.Background()
	src, _ = c.DB("edgewise")
	for _, r := range []Rollup{
		{Source: "edgewise", Target: "edgewise_1m", Every: time.Minute},
		{Source: "edgewise_1m", Target: "edgewise_5m", Every: 5 * time.Minute},
	} {
		if err := c.AddRollup(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	r1m, _ = c.DB("edgewise_1m")
	r5m, _ = c.DB("edgewise_5m")
	sec := int64(time.Second)
	for _, dev := range []string{"d1", "d2"} {
		mustWrite(t, src,
			pt(dev, 10*sec, f("v", FloatValue(1))), pt(dev, 20*sec, f("v", FloatValue(3))),
			pt(dev, 70*sec, f("v", FloatValue(5))), pt(dev, 130*sec, f("v", FloatValue(7))),
			pt(dev, 190*sec, f("v", FloatValue(9))))
	}
	if err := src.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return len(viewRollup(t, r1m)["d2"]["v_count"]) == 4 }, "1m rollup computed")
	if err := r1m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return viewRollup(t, r5m)["d2"]["v_count_count"][0] == "4" }, "5m rollup computed")
	return src, r1m, r5m
}

// TestDeleteRecomputesRollups: a delete in the source leaves the rollups
// (and the rollup of a rollup) as if the deleted points had never been
// written, for the matched series only, as soon as Delete returns.
func TestDeleteRecomputesRollups(t *testing.T) {
	ctx := context.Background()
	c := openCatalogTest(t, t.TempDir())
	src, r1m, r5m := setupRollupChain(t, c)
	d2Before1m, d2Before5m := viewRollup(t, r1m)["d2"], viewRollup(t, r5m)["d2"]

	// d1 loses 20s, 70s and 130s: window 0 keeps 10s, windows 60 and 120
	// are left empty, window 180 is outside the range.
	sec := int64(time.Second)
	d1, _ := NewMatcher("device_id", MatchEqual, "d1")
	if err := src.Delete(ctx, "telemetry", []Matcher{d1}, 15*sec, 135*sec); err != nil {
		t.Fatal(err)
	}
	got := viewRollup(t, r1m)
	want := map[string]map[int64]string{
		"v_mean": {0: "1", 180: "9"}, "v_min": {0: "1", 180: "9"},
		"v_max": {0: "1", 180: "9"}, "v_count": {0: "1", 180: "1"},
	}
	if !reflect.DeepEqual(got["d1"], want) {
		t.Fatalf("1m rollup of d1 after delete:\n got %v\nwant %v", got["d1"], want)
	}
	if !reflect.DeepEqual(got["d2"], d2Before1m) {
		t.Fatalf("1m rollup of d2 changed: %v, was %v", got["d2"], d2Before1m)
	}
	got5 := viewRollup(t, r5m)
	if d := got5["d1"]; d["v_count_count"][0] != "2" || d["v_max_max"][0] != "9" || d["v_min_min"][0] != "1" || d["v_count_mean"][0] != "1" {
		t.Fatalf("5m rollup of d1 after delete: %v", d)
	}
	if !reflect.DeepEqual(got5["d2"], d2Before5m) {
		t.Fatalf("5m rollup of d2 changed: %v, was %v", got5["d2"], d2Before5m)
	}

	// Dropping a series (no time bound) removes all its windows.
	d2, _ := NewMatcher("device_id", MatchEqual, "d2")
	if err := src.Delete(ctx, "telemetry", []Matcher{d2}, -1<<63, 0); err != nil {
		t.Fatal(err)
	}
	if v := viewRollup(t, r1m); v["d2"] != nil || !reflect.DeepEqual(v["d1"], want) {
		t.Fatalf("1m rollup after dropping d2: %v", v)
	}
	if v := viewRollup(t, r5m); v["d2"] != nil || v["d1"]["v_count_count"][0] != "2" {
		t.Fatalf("5m rollup after dropping d2: %v", v)
	}

	// Still right once the rollup databases are compacted and reopened.
	for _, db := range []*DB{r1m, r5m} {
		if _, err := db.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if v := viewRollup(t, r1m); v["d2"] != nil || !reflect.DeepEqual(v["d1"], want) {
		t.Fatalf("1m rollup after compaction: %v", v)
	}
	if got := c.pending; len(got) != 0 {
		t.Fatalf("pending rollup deletes left: %+v", got)
	}
}

// TestInterruptedRollupDeleteResumes: a delete recorded as pending whose
// rollup update did not run (a crash) is finished by OpenCatalog.
func TestInterruptedRollupDeleteResumes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openCatalogTest(t, dir)
	src, r1m, _ := setupRollupChain(t, c)
	sec := int64(time.Second)
	d1, _ := NewMatcher("device_id", MatchEqual, "d1")
	pd := rollupDelete{Database: "edgewise", Measurement: "telemetry", Start: 15 * sec, End: 135 * sec,
		Matchers: []matcherDoc{{Key: "device_id", Op: MatchEqual, Value: "d1"}}}
	if err := c.setPending(pd, true); err != nil {
		t.Fatal(err)
	}
	// The source delete happens, the rollup update does not.
	if err := src.deleteAndNotify(ctx, "telemetry", []Matcher{d1}, 15*sec, 135*sec); err != nil {
		t.Fatal(err)
	}
	if v := viewRollup(t, r1m); v["d1"]["v_count"][60] != "1" {
		t.Fatalf("rollup changed without the hook: %v", v["d1"])
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openCatalogTest(t, dir)
	r1m, _ = c.DB("edgewise_1m")
	want := map[string]map[int64]string{
		"v_mean": {0: "1", 180: "9"}, "v_min": {0: "1", 180: "9"},
		"v_max": {0: "1", 180: "9"}, "v_count": {0: "1", 180: "1"},
	}
	if v := viewRollup(t, r1m); !reflect.DeepEqual(v["d1"], want) || len(v["d2"]["v_count"]) != 4 {
		t.Fatalf("1m rollup after resume: %v", v)
	}
	r5m, _ := c.DB("edgewise_5m")
	if v := viewRollup(t, r5m); v["d1"]["v_count_count"][0] != "2" || v["d2"]["v_count_count"][0] != "4" {
		t.Fatalf("5m rollup after resume: %v", v)
	}
	b, err := os.ReadFile(filepath.Join(dir, catalogFileName))
	if err != nil {
		t.Fatal(err)
	}
	var cf catalogFile
	if err := json.Unmarshal(b, &cf); err != nil || len(cf.RollupDeletes) != 0 {
		t.Fatalf("catalog.json still lists pending deletes (%v): %s", err, b)
	}
}

func TestWindowSpan(t *testing.T) {
	for _, tc := range []struct{ start, end, every, lo, hi int64 }{
		{15, 135, 60, 0, 180},
		{0, 60, 60, 0, 60},
		{-5, 1, 60, -60, 60},
	} {
		if lo, hi := windowSpan(tc.start, tc.end, tc.every); lo != tc.lo || hi != tc.hi {
			t.Errorf("windowSpan(%d, %d, %d) = %d, %d, want %d, %d", tc.start, tc.end, tc.every, lo, hi, tc.lo, tc.hi)
		}
	}
	// The extremes do not overflow.
	const every = int64(time.Minute)
	lo, hi := windowSpan(math.MinInt64, math.MaxInt64, every)
	if lo%every != 0 || hi%every != 0 || lo > math.MinInt64+2*every || hi < math.MaxInt64-2*every {
		t.Errorf("windowSpan of everything = %d, %d", lo, hi)
	}
}
