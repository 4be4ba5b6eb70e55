package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/influx/influxql"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

var qt0 = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

func openCatalog(t testing.TB) *tsdb.Catalog {
	t.Helper()
	cat, err := tsdb.OpenCatalog(context.Background(), tsdb.CatalogOptions{Dir: t.TempDir(), DefaultDatabase: "db"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}

// loadCPU writes the data set of influxql/testdata/select.txt.
func loadCPU(t testing.TB, cat *tsdb.Catalog) {
	db, err := cat.DB("db")
	if err != nil {
		t.Fatal(err)
	}
	var pts []tsdb.Point
	for i := 0; i < 6; i++ {
		ts := qt0.Add(time.Duration(i) * 10 * time.Second).UnixNano()
		a := tsdb.Point{Measurement: "cpu", Tags: []tsdb.Tag{{Key: "host", Value: "a"}, {Key: "region", Value: "us"}}, Time: ts,
			Fields: []tsdb.Field{{Key: "usage", Value: tsdb.FloatValue(float64(i + 1))}, {Key: "n", Value: tsdb.IntValue(int64(i))}}}
		if i == 0 {
			a.Fields = append(a.Fields, tsdb.Field{Key: "status", Value: tsdb.StringValue("ok")})
		}
		b := tsdb.Point{Measurement: "cpu", Tags: []tsdb.Tag{{Key: "host", Value: "b"}, {Key: "region", Value: "eu"}}, Time: ts,
			Fields: []tsdb.Field{{Key: "usage", Value: tsdb.FloatValue(float64(10 * (i + 1)))}, {Key: "n", Value: tsdb.IntValue(int64(2 * i))}}}
		pts = append(pts, a, b)
	}
	pts = append(pts, tsdb.Point{Measurement: "mem", Tags: []tsdb.Tag{{Key: "host", Value: "a"}}, Time: qt0.UnixNano(),
		Fields: []tsdb.Field{{Key: "free", Value: tsdb.IntValue(100)}}})
	if err := db.Write(context.Background(), pts); err != nil {
		t.Fatal(err)
	}
}

func renderResults(res []influxql.Result) string {
	var b strings.Builder
	for _, r := range res {
		if r.Err != nil {
			fmt.Fprintf(&b, "%d error: %v\n", r.StatementID, r.Err)
			continue
		}
		for _, s := range r.Series {
			fmt.Fprintf(&b, "%d %s", r.StatementID, s.Name)
			for _, t := range s.Tags {
				fmt.Fprintf(&b, " %s=%s", t.Key, t.Value)
			}
			fmt.Fprintf(&b, " [%s]\n", strings.Join(s.Columns, ","))
			for i := 0; i < s.Len(); i++ {
				var cells []string
				if s.Time != nil {
					cells = append(cells, s.FormatTime(s.Time[i]))
				}
				for c := range s.Cols {
					if v := s.Cols[c][i]; v.Type() == 0 {
						cells = append(cells, "null")
					} else {
						cells = append(cells, v.String())
					}
				}
				fmt.Fprintf(&b, "  %s\n", strings.Join(cells, " "))
			}
		}
	}
	return b.String()
}

// TestInfluxQLScriptRealStore runs the executor's script tests against the
// real tsdb (flushed to blocks, so chunk summaries are exercised), which
// must give the same answers as the in-memory store.
func TestInfluxQLScriptRealStore(t *testing.T) {
	for _, name := range []string{"select.txt", "functions.txt", "grafana.txt"} {
		for _, flush := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/flushed=%v", name, flush), func(t *testing.T) {
				cat := openCatalog(t)
				loadCPU(t, cat)
				if flush {
					db, _ := cat.DB("db")
					if err := db.Flush(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				api := NewQueryAPI(cat, QueryOptions{Now: func() time.Time { return qt0.Add(time.Minute) }})
				raw, err := os.ReadFile("influxql/testdata/" + name)
				if err != nil {
					t.Fatal(err)
				}
				for _, blk := range strings.Split(string(raw), "-- query\n")[1:] {
					q, want, _ := strings.Cut(blk, "-- want\n")
					stmts, err := influxql.ParseQuery(strings.TrimSpace(q))
					if err != nil {
						t.Fatal(err)
					}
					got := renderResults(api.ql.Execute(context.Background(), stmts, "db"))
					if strings.TrimSpace(got) != strings.TrimSpace(want) {
						t.Errorf("query:\n%s\ngot:\n%s\nwant:\n%s", strings.TrimSpace(q), got, want)
					}
				}
			})
		}
	}
}

func newQueryServer(t *testing.T, opts QueryOptions) (*httptest.Server, *tsdb.Catalog) {
	cat := openCatalog(t)
	loadCPU(t, cat)
	if opts.Now == nil {
		opts.Now = func() time.Time { return qt0.Add(time.Minute) }
	}
	mux := http.NewServeMux()
	NewQueryAPI(cat, opts).Register(mux, nil)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, cat
}

func get(t *testing.T, u string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestQueryHTTP(t *testing.T) {
	srv, _ := newQueryServer(t, QueryOptions{})
	q := func(params string) string { return srv.URL + "/query?" + params }
	cases := []struct {
		url, hdr string
		code     int
		want     string
	}{
		{q("db=db&q=" + url.QueryEscape(`SELECT mean(usage) FROM cpu WHERE time >= '2020-01-01T00:00:00Z' AND time < '2020-01-01T00:00:40Z' GROUP BY time(20s), host`)), "", 200,
			`{"results":[{"statement_id":0,"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","mean"],"values":[["2020-01-01T00:00:00Z",1.5],["2020-01-01T00:00:20Z",3.5]]},{"name":"cpu","tags":{"host":"b"},"columns":["time","mean"],"values":[["2020-01-01T00:00:00Z",15],["2020-01-01T00:00:20Z",35]]}]}]}`},
		{q("db=db&epoch=s&q=" + url.QueryEscape(`SELECT n, status FROM cpu WHERE host = 'a' LIMIT 2; SELECT x FROM`)), "", 400, `{"error":"error parsing query: found EOF, expected identifier, regex at line 1, char 66"}`},
		{q("db=db&epoch=s&q=" + url.QueryEscape(`SELECT n, status FROM cpu WHERE host = 'a' LIMIT 2; SELECT mean(status) FROM cpu; SHOW DATABASES`)), "", 200,
			`{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","n","status"],"values":[[1577836800,0,"ok"],[1577836810,1,null]]}]},{"statement_id":1,"error":"aggregate mean() is not supported for string field \"status\""}]}`},
		{q("db=nope&q=SHOW+MEASUREMENTS"), "", 200, `{"results":[{"statement_id":0,"error":"database not found: nope"}]}`},
		{q("q=SHOW+DATABASES"), "", 200, `{"results":[{"statement_id":0,"series":[{"name":"databases","columns":["name"],"values":[["db"]]}]}]}`},
		{q("db=db"), "", 400, `{"error":"missing required parameter \"q\""}`},
		{q("db=db&epoch=yr&q=SHOW+DATABASES"), "", 400, `{"error":"invalid epoch \"yr\": use ns, u, ms, s, m or h"}`},
		{q("q=CREATE+DATABASE+x+WITH+REPLICATION+1"), "", 200, `{"results":[{"statement_id":0}]}`}, // TSBS creates its database with GET, as InfluxDB 1.x allows
		{q("db=db&q=" + url.QueryEscape(`SELECT usage FROM cpu WHERE host='b' AND usage > 40`)), "Accept: application/csv", 200,
			"name,tags,time,usage\ncpu,,1577836840000000000,50\ncpu,,1577836850000000000,60\n"},
		{q("db=db&chunked=true&chunk_size=1&q=" + url.QueryEscape(`SELECT usage FROM cpu WHERE host='b' AND usage > 40`)), "", 200,
			`{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","usage"],"values":[["2020-01-01T00:00:40Z",50]],"partial":true}],"partial":true}]}` + "\n" +
				`{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","usage"],"values":[["2020-01-01T00:00:50Z",60]]}]}]}`},
	}
	for _, c := range cases {
		var hdr []string
		if c.hdr != "" {
			k, v, _ := strings.Cut(c.hdr, ": ")
			hdr = []string{k, v}
		}
		code, body, _ := get(t, c.url, hdr...)
		if code != c.code || strings.TrimSpace(body) != strings.TrimSpace(c.want) {
			t.Errorf("%s\n got %d %s\nwant %d %s", c.url, code, body, c.code, c.want)
		}
	}
	// POST form (as TSBS and the influx CLI send) and writes.
	resp, err := http.PostForm(srv.URL+"/query", url.Values{"q": {"CREATE DATABASE x; SHOW DATABASES"}, "pretty": {"true"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var parsed struct {
		Results []struct {
			Series []struct {
				Values [][]string `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &parsed); err != nil || len(parsed.Results) != 2 || len(parsed.Results[1].Series[0].Values) != 2 ||
		!strings.Contains(string(body), "\n    ") {
		t.Fatalf("POST create: %v %s", err, body)
	}
}

func TestQueryLimits(t *testing.T) {
	// Budget: the real tsdb refuses to materialise more than MaxPoints.
	srv, _ := newQueryServer(t, QueryOptions{MaxPoints: 5})
	_, body, _ := get(t, srv.URL+"/query?db=db&q="+url.QueryEscape("SELECT usage FROM cpu"))
	if !strings.Contains(body, "exceeds the memory budget of 5 points (query.max_points)") {
		t.Fatalf("budget: %s", body)
	}
	// Aggregates from chunk summaries or small results stay within it.
	_, body, _ = get(t, srv.URL+"/query?db=db&q="+url.QueryEscape("SELECT free FROM mem"))
	if strings.Contains(body, "error") {
		t.Fatalf("small query failed: %s", body)
	}
	// Timeout: a deadline that has already passed when execution starts.
	srv2, _ := newQueryServer(t, QueryOptions{Timeout: time.Nanosecond})
	_, body, _ = get(t, srv2.URL+"/query?db=db&q="+url.QueryEscape("SELECT usage FROM cpu"))
	if !strings.Contains(body, "query timeout: the query ran longer than 1ns (query.timeout)") {
		t.Fatalf("timeout: %s", body)
	}
}

func httptestServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
