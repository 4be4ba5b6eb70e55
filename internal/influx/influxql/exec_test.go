package influxql

import (
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

var t0 = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

func loadCPU(t testing.TB, s Storage) {
	ctx := context.Background()
	if err := s.CreateDatabase(ctx, "db", 0); err != nil {
		t.Fatal(err)
	}
	db, err := s.Database(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	var pts []tsdb.Point
	for i := 0; i < 6; i++ {
		ts := t0.Add(time.Duration(i) * 10 * time.Second).UnixNano()
		a := tsdb.Point{Measurement: "cpu", Tags: []tsdb.Tag{{Key: "host", Value: "a"}, {Key: "region", Value: "us"}}, Time: ts,
			Fields: []tsdb.Field{{Key: "usage", Value: tsdb.FloatValue(float64(i + 1))}, {Key: "n", Value: tsdb.IntValue(int64(i))}}}
		if i == 0 {
			a.Fields = append(a.Fields, tsdb.Field{Key: "status", Value: tsdb.StringValue("ok")})
		}
		b := tsdb.Point{Measurement: "cpu", Tags: []tsdb.Tag{{Key: "host", Value: "b"}, {Key: "region", Value: "eu"}}, Time: ts,
			Fields: []tsdb.Field{{Key: "usage", Value: tsdb.FloatValue(float64(10 * (i + 1)))}, {Key: "n", Value: tsdb.IntValue(int64(2 * i))}}}
		pts = append(pts, a, b)
	}
	pts = append(pts, tsdb.Point{Measurement: "mem", Tags: []tsdb.Tag{{Key: "host", Value: "a"}}, Time: t0.UnixNano(),
		Fields: []tsdb.Field{{Key: "free", Value: tsdb.IntValue(100)}}})
	if err := db.Write(ctx, pts); err != nil {
		t.Fatal(err)
	}
}

// runScript runs testdata/<name>: blocks of "-- query" then "-- want"
// lines; with -update the wants are rewritten from the actual output.
func runScript(t *testing.T, name string, e *Executor) {
	path := "testdata/" + name
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(raw), "-- query\n")
	var out strings.Builder
	out.WriteString(blocks[0])
	for _, blk := range blocks[1:] {
		q, want, _ := strings.Cut(blk, "-- want\n")
		got := run(t, e, strings.TrimSpace(q))
		if *update {
			out.WriteString("-- query\n" + q + "-- want\n" + got + "\n")
			continue
		}
		if strings.TrimSpace(got) != strings.TrimSpace(want) {
			t.Errorf("query:\n%s\ngot:\n%s\nwant:\n%s", strings.TrimSpace(q), got, want)
		}
	}
	if *update {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newTestExecutor(t testing.TB, s Storage) *Executor {
	return NewExecutor(s, Options{Now: func() time.Time { return t0.Add(time.Minute) }})
}

func TestScriptMem(t *testing.T) {
	s := newMemStore()
	loadCPU(t, s)
	runScript(t, "select.txt", newTestExecutor(t, s))
}

func TestBudget(t *testing.T) {
	s := newMemStore()
	loadCPU(t, s)
	e := NewExecutor(s, Options{MaxPoints: 5})
	got := run(t, e, `SELECT usage FROM cpu`)
	if !strings.Contains(got, "point budget") {
		t.Fatalf("want a budget error, got %s", got)
	}
	e = NewExecutor(s, Options{MaxPoints: 1000})
	if got := run(t, e, `SELECT usage FROM cpu`); strings.Contains(got, "error") {
		t.Fatalf("unexpected error %s", got)
	}
}

func TestCancelled(t *testing.T) {
	s := newMemStore()
	loadCPU(t, s)
	e := newTestExecutor(t, s)
	stmts, _ := ParseQuery(`SELECT usage FROM cpu`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := e.Execute(ctx, stmts, "db")
	if res[0].Err == nil {
		t.Fatal("want context error")
	}
}
