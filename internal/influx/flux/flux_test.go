package flux

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

var t0 = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

type dbStore struct{ db *tsdb.DB }

func (s dbStore) Bucket(_ context.Context, name string) (DB, error) {
	if name != "db" && name != "db/autogen" {
		return nil, ErrBucketNotFound
	}
	return s.db, nil
}

// openData writes cpu host=a,region=us usage=1..6 n=0..5 and cpu
// host=b,region=eu usage=10..60 n=0,2..10 every 10s from t0, plus
// mem host=a free=100 at t0, into a real tsdb (flushed when asked).
func openData(t testing.TB, flush bool) *tsdb.DB {
	db, err := tsdb.Open(context.Background(), tsdb.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var pts []tsdb.Point
	for i := 0; i < 6; i++ {
		ts := t0.Add(time.Duration(i) * 10 * time.Second).UnixNano()
		pts = append(pts,
			tsdb.Point{Measurement: "cpu", Tags: []tsdb.Tag{{Key: "host", Value: "a"}, {Key: "region", Value: "us"}}, Time: ts,
				Fields: []tsdb.Field{{Key: "usage", Value: tsdb.FloatValue(float64(i + 1))}, {Key: "n", Value: tsdb.IntValue(int64(i))}}},
			tsdb.Point{Measurement: "cpu", Tags: []tsdb.Tag{{Key: "host", Value: "b"}, {Key: "region", Value: "eu"}}, Time: ts,
				Fields: []tsdb.Field{{Key: "usage", Value: tsdb.FloatValue(float64(10 * (i + 1)))}, {Key: "n", Value: tsdb.IntValue(int64(2 * i))}}})
	}
	pts = append(pts, tsdb.Point{Measurement: "mem", Tags: []tsdb.Tag{{Key: "host", Value: "a"}}, Time: t0.UnixNano(),
		Fields: []tsdb.Field{{Key: "free", Value: tsdb.IntValue(100)}}})
	if err := db.Write(context.Background(), pts); err != nil {
		t.Fatal(err)
	}
	if flush {
		if err := db.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func runFlux(e *Executor, q string) string {
	res, err := e.Execute(context.Background(), q, time.Time{})
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, res, DefaultDialect); err != nil {
		return "csv error: " + err.Error()
	}
	return strings.ReplaceAll(b.String(), "\r\n", "\n")
}

func TestFluxScript(t *testing.T) {
	for _, flush := range []bool{false, true} {
		e := NewExecutor(dbStore{openData(t, flush)}, Options{Now: func() time.Time { return t0.Add(time.Minute) }})
		raw, err := os.ReadFile("testdata/flux.txt")
		if err != nil {
			t.Fatal(err)
		}
		blocks := strings.Split(string(raw), "-- query\n")
		var out strings.Builder
		out.WriteString(blocks[0])
		for _, blk := range blocks[1:] {
			q, want, _ := strings.Cut(blk, "-- want\n")
			got := runFlux(e, q)
			if *update {
				out.WriteString("-- query\n" + q + "-- want\n" + got + "\n")
				continue
			}
			if strings.TrimSpace(got) != strings.TrimSpace(want) {
				t.Errorf("flushed=%v query:\n%s\ngot:\n%s\nwant:\n%s", flush, strings.TrimSpace(q), got, want)
			}
		}
		if *update && !flush {
			if err := os.WriteFile("testdata/flux.txt", []byte(out.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestFluxBudget(t *testing.T) {
	e := NewExecutor(dbStore{openData(t, false)}, Options{MaxPoints: 5, Now: func() time.Time { return t0.Add(time.Minute) }})
	_, err := e.Execute(context.Background(), `from(bucket: "db") |> range(start: -1h) |> filter(fn: (r) => r._measurement == "cpu")`, time.Time{})
	if !errors.Is(err, tsdb.ErrQueryLimit) && !errors.Is(err, ErrBudget) {
		t.Fatalf("want a budget error, got %v", err)
	}
	_, err = e.Execute(context.Background(), `from(bucket: "db") |> range(start: -1h) |> filter(fn: (r) => r._measurement == "mem")`, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`from(bucket: "b") |> range(start: -30d, stop: now()) |> filter(fn: (r) => r._measurement == "telemetry" and r.device_id =~ /^d[0-9]+$/ or not exists r.x)`,
		`import "strings"` + "\n" + `x = 1h30m` + "\n" + `option v = {timeRangeStart: 2020-01-01T00:00:00Z}` + "\n" + `data |> aggregateWindow(every: x, fn: mean, createEmpty: false) |> yield(name: "m")`,
		`r |> map(fn: (r) => ({r with _value: if r._value > 1.5 then -r._value else r._value * 2.0}))`,
		`a["b"][0] |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`, `"\"\\`,
		`data |> window(every: 5m, period: 10m, offset: -30s, createEmpty: true) |> mean() |> duplicate(column: "_stop", as: "_time") |> window(every: inf)`,
		`join(tables: {a: x, b: y}, on: ["_time", "host"], method: "inner") |> map(fn: (r) => ({r with v: r._value_a / r._value_b}))`,
		`union(tables: [a, b]) |> reduce(fn: (r, accumulator) => ({sum: accumulator.sum + r._value}), identity: {sum: 0.0})`,
		`t |> fill(column: "x", usePrevious: true) |> timeShift(duration: -1mo) |> difference(nonNegative: true, columns: ["_value"]) |> derivative(unit: 1m)`,
		`t |> top(n: 3) |> tail(n: 1, offset: 2) |> distinct(column: r["host"]) |> set(key: "k", value: string(v: now() - 1h))`,
		`f = (tables=<-, n=2) => tables |> movingAverage(n: n) |> elapsed(unit: 1ms) |> increase()` + "\n" + `t |> f(n: 3) |> cumulativeSum()`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		Parse(src)
	})
}

// FuzzExecute runs programs (seeded with the script test's queries)
// against the real data set under a small budget: whatever the program,
// execution ends with results or an error, never a panic.
func FuzzExecute(f *testing.F) {
	raw, err := os.ReadFile("testdata/flux.txt")
	if err != nil {
		f.Fatal(err)
	}
	for _, blk := range strings.Split(string(raw), "-- query\n")[1:] {
		q, _, _ := strings.Cut(blk, "-- want\n")
		f.Add(q)
	}
	e := NewExecutor(dbStore{openData(f, false)}, Options{MaxPoints: 10_000, Now: func() time.Time { return t0.Add(time.Minute) }})
	f.Fuzz(func(t *testing.T, src string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := e.Execute(ctx, src, time.Time{})
		if err == nil {
			WriteCSV(io.Discard, res, DefaultDialect)
		}
	})
}
