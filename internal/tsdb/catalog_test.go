package tsdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func openCatalogTest(t *testing.T, dir string) *Catalog {
	t.Helper()
	c, err := OpenCatalog(context.Background(), CatalogOptions{
		Dir: dir, DB: Options{Fsync: FsyncNever, FlushInterval: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCatalogLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openCatalogTest(t, dir)
	if got := c.Databases(); len(got) != 1 || got[0].Name != "edgewise" {
		t.Fatalf("databases = %+v", got)
	}
	if _, err := c.DB("nope"); !errors.Is(err, ErrDatabaseNotFound) {
		t.Fatalf("DB(nope) err = %v", err)
	}
	db, err := c.CreateDatabase(ctx, "a/b ü", RetentionPolicy{Duration: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateDatabase(ctx, "a/b ü", RetentionPolicy{Duration: 24 * time.Hour})
	if err != nil || again != db {
		t.Fatalf("CreateDatabase not idempotent: %v", err)
	}
	if _, err := c.CreateDatabase(ctx, "", RetentionPolicy{}); err == nil {
		t.Fatal("empty name accepted")
	}
	mustWrite(t, db, pt("d1", 1, f("x", FloatValue(1))))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openCatalogTest(t, dir)
	want := []DatabaseInfo{
		{Name: "a/b ü", Retention: RetentionPolicy{Name: "autogen", Duration: 24 * time.Hour}},
		{Name: "edgewise", Retention: RetentionPolicy{Name: "autogen"}},
	}
	if got := c.Databases(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen databases = %+v", got)
	}
	db, err = c.DB("a/b ü")
	if err != nil {
		t.Fatal(err)
	}
	if res := mustQuery(t, db, Query{Measurement: "telemetry"}); len(res) != 1 {
		t.Fatalf("data lost across reopen: %+v", res)
	}
	if err := c.DropDatabase(ctx, "edgewise"); err == nil {
		t.Fatal("dropping the default database was accepted")
	}
	if err := c.DropDatabase(ctx, "a/b ü"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DB("a/b ü"); !errors.Is(err, ErrDatabaseNotFound) {
		t.Fatalf("dropped database still there: %v", err)
	}
	if _, err := os.Stat(c.dbDir("a/b ü")); !os.IsNotExist(err) {
		t.Fatalf("dropped database dir remains: %v", err)
	}
}

// TestCatalogMigratesSingleDatabaseLayout: data written by a DB opened
// directly on the catalog's dir (the layout before databases) is readable
// from the default database after OpenCatalog.
func TestCatalogMigratesSingleDatabaseLayout(t *testing.T) {
	dir := t.TempDir()
	old, err := Open(context.Background(), Options{Dir: dir, Fsync: FsyncNever, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, old, pt("d1", 10, f("x", FloatValue(1))))
	if err := old.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, old, pt("d1", 20, f("x", FloatValue(2)))) // stays in the WAL
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	c := openCatalogTest(t, dir)
	for _, sub := range []string{"wal", "blocks"} {
		if _, err := os.Stat(filepath.Join(dir, sub)); !os.IsNotExist(err) {
			t.Fatalf("%s not moved: %v", sub, err)
		}
	}
	db, err := c.DB("edgewise")
	if err != nil {
		t.Fatal(err)
	}
	res := mustQuery(t, db, Query{Measurement: "telemetry"})
	if len(res) != 1 || len(res[0].Samples) != 2 {
		t.Fatalf("migrated data = %+v", res)
	}
}

func TestMatchersAndMetadata(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), nil)
	mk := func(tags []Tag, t int64, fields ...Field) Point {
		return Point{Measurement: "cpu", Tags: tags, Fields: fields, Time: t}
	}
	mustWrite(t, db,
		mk([]Tag{{"host", "a1"}, {"dc", "east"}}, 1, f("u", FloatValue(1)), f("n", IntValue(3))),
		mk([]Tag{{"host", "a2"}, {"dc", "west"}}, 2, f("u", FloatValue(2))),
		mk([]Tag{{"host", "b1"}}, 3, f("u", FloatValue(3)), f("ok", BoolValue(true))),
		Point{Measurement: "mem", Fields: []Field{f("free", UintValue(5))}, Time: 4},
	)
	hosts := func(ms ...Matcher) []string {
		t.Helper()
		tags, err := db.SeriesTags(ctx, "cpu", ms)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ts := range tags {
			for _, tg := range ts {
				if tg.Key == "host" {
					out = append(out, tg.Value)
				}
			}
		}
		return out
	}
	m := func(k string, op MatchOp, v string) Matcher {
		t.Helper()
		mm, err := NewMatcher(k, op, v)
		if err != nil {
			t.Fatal(err)
		}
		return mm
	}
	cases := []struct {
		ms   []Matcher
		want []string
	}{
		{nil, []string{"a1", "a2", "b1"}},
		{[]Matcher{m("host", MatchEqual, "a2")}, []string{"a2"}},
		{[]Matcher{m("host", MatchNotEqual, "a2")}, []string{"a1", "b1"}},
		{[]Matcher{m("host", MatchRegexp, "a")}, []string{"a1", "a2"}}, // unanchored
		{[]Matcher{m("host", MatchRegexp, "^b")}, []string{"b1"}},
		{[]Matcher{m("host", MatchNotRegexp, "1$")}, []string{"a2"}},
		{[]Matcher{m("dc", MatchEqual, "")}, []string{"b1"}},
		{[]Matcher{m("dc", MatchRegexp, "^$|east")}, []string{"a1", "b1"}},
		{[]Matcher{m("dc", MatchNotEqual, "east"), m("host", MatchRegexp, "a")}, []string{"a2"}},
		{[]Matcher{{Key: "host", Op: MatchRegexp, Value: "2$"}}, []string{"a2"}}, // literal, compiled on use
	}
	for _, c := range cases {
		if got := hosts(c.ms...); !reflect.DeepEqual(got, c.want) {
			t.Errorf("matchers %v: got %v want %v", c.ms, got, c.want)
		}
	}
	if _, err := NewMatcher("host", MatchRegexp, "("); !errors.Is(err, ErrInvalidQuery) {
		t.Fatalf("bad regexp err = %v", err)
	}
	if got, _ := db.Measurements(ctx); !reflect.DeepEqual(got, []string{"cpu", "mem"}) {
		t.Fatalf("measurements = %v", got)
	}
	if got, _ := db.TagKeys(ctx, "cpu"); !reflect.DeepEqual(got, []string{"dc", "host"}) {
		t.Fatalf("tag keys = %v", got)
	}
	if got, _ := db.TagValues(ctx, "cpu", "dc", nil); !reflect.DeepEqual(got, []string{"east", "west"}) {
		t.Fatalf("tag values = %v", got)
	}
	if got, _ := db.TagValues(ctx, "cpu", "host", []Matcher{m("dc", MatchEqual, "west")}); !reflect.DeepEqual(got, []string{"a2"}) {
		t.Fatalf("tag values with matcher = %v", got)
	}
	wantF := []FieldInfo{{"n", Integer}, {"ok", Boolean}, {"u", Float}}
	if got, _ := db.FieldKeys(ctx, "cpu"); !reflect.DeepEqual(got, wantF) {
		t.Fatalf("field keys = %v", got)
	}
	// Query with matchers, several fields, Desc and Limit.
	res := mustQuery(t, db, Query{Measurement: "cpu", Matchers: []Matcher{m("host", MatchRegexp, "a")}, Fields: []string{"u", "n"}})
	if len(res) != 3 {
		t.Fatalf("fields query = %+v", res)
	}
	for i := int64(10); i < 20; i++ {
		mustWrite(t, db, mk([]Tag{{"host", "b1"}}, i, f("u", FloatValue(float64(i)))))
	}
	res = mustQuery(t, db, Query{Measurement: "cpu", Tags: []Tag{{"host", "b1"}}, Field: "u", Desc: true, Limit: 3})
	if len(res) != 1 || len(res[0].Samples) != 3 || res[0].Samples[0].Time != 19 || res[0].Samples[2].Time != 17 {
		t.Fatalf("desc limit = %+v", res)
	}
	if _, err := db.Query(ctx, Query{Measurement: "cpu", MaxSamples: 5}); !errors.Is(err, ErrQueryLimit) {
		t.Fatalf("budget err = %v", err)
	}
}
