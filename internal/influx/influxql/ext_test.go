package influxql

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// loadEnergy writes the data set of testdata/tz.txt.
func loadEnergy(t testing.TB, s Storage) {
	ctx := context.Background()
	if err := s.CreateDatabase(ctx, "db", 0); err != nil {
		t.Fatal(err)
	}
	db, err := s.Database(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	var pts []tsdb.Point
	add := func(at time.Time, v float64) {
		pts = append(pts, tsdb.Point{Measurement: "energy", Tags: []tsdb.Tag{{Key: "meter", Value: "m1"}}, Time: at.UnixNano(),
			Fields: []tsdb.Field{{Key: "kwh", Value: tsdb.FloatValue(v)}}})
	}
	spring := time.Date(2020, 3, 27, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 16; i++ {
		add(spring.Add(time.Duration(i)*6*time.Hour), float64(i+1))
	}
	autumn := time.Date(2020, 10, 24, 0, 0, 0, 0, time.UTC)
	for i := 0; i <= 12; i++ {
		add(autumn.Add(time.Duration(i)*6*time.Hour), 1)
	}
	if err := db.Write(ctx, pts); err != nil {
		t.Fatal(err)
	}
}

func TestScriptFunctions(t *testing.T) {
	s := newMemStore()
	loadCPU(t, s)
	runScript(t, "functions.txt", newTestExecutor(t, s))
}

func TestScriptGrafana(t *testing.T) {
	s := newMemStore()
	loadCPU(t, s)
	runScript(t, "grafana.txt", newTestExecutor(t, s))
}

func TestScriptTZ(t *testing.T) {
	s := newMemStore()
	loadEnergy(t, s)
	runScript(t, "tz.txt", newTestExecutor(t, s))
}

// TestWindowDST checks the window arithmetic against local midnights
// computed by the time package, for every day of 2020 in zones with and
// without DST (and a half-hour offset).
func TestWindowDST(t *testing.T) {
	day := int64(24 * time.Hour)
	for _, name := range []string{"Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"} {
		loc, err := loadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		mid := time.Date(2020, 1, 1, 0, 0, 0, 0, loc)
		zone := zoneOffset(loc, mid.UnixNano())
		w := windowStart(mid.UnixNano(), day, 0, loc)
		for d := 0; d < 366; d++ {
			want := mid.AddDate(0, 0, d)
			if w != want.UnixNano() {
				t.Fatalf("%s day %d: window %s, want local midnight %s", name, d, time.Unix(0, w).In(loc), want)
			}
			// Every instant of the local day falls in that window.
			for _, h := range []int{0, 1, 2, 3, 12, 23} {
				at := want.Add(time.Duration(h) * time.Hour)
				if at.Day() != want.Day() {
					continue
				}
				if got := windowStart(at.UnixNano(), day, 0, loc); got != w {
					t.Fatalf("%s %s: window %s, want %s", name, at, time.Unix(0, got).In(loc), want)
				}
			}
			w = nextWindow(w, day, loc, &zone)
		}
	}
}

func TestParseTZ(t *testing.T) {
	stmts, err := ParseQuery(`SELECT mean(v) FROM m WHERE time > now() - 1d GROUP BY time(1h) fill(none) LIMIT 5 SLIMIT 2 tz('Europe/Paris')`)
	if err != nil {
		t.Fatal(err)
	}
	st := stmts[0].(*SelectStatement)
	if st.Location == nil || st.Location.String() != "Europe/Paris" || st.Limit != 5 || st.SLimit != 2 {
		t.Fatalf("statement %+v", st)
	}
	for _, c := range []struct{ q, want string }{
		{`SELECT v FROM m tz('Europe/Pariss')`, "error parsing query: unknown time zone Europe/Pariss"},
		{`SELECT v FROM m tz(Europe)`, "found Europe, expected string"},
		{`SELECT v FROM m tz('UTC'`, "found EOF, expected )"},
		{`SELECT v FROM m tz('UTC') tz('UTC')`, "duplicate tz() clause"},
	} {
		_, err := ParseQuery(c.q)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.q, err, c.want)
		}
	}
}
