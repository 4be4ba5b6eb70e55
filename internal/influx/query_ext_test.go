package influx

import (
	"net/url"
	"strings"
	"testing"
)

// TestQueryHTTPTimeZoneAndTop checks tz() and top() through /query: the
// zone offset in RFC3339 times (also when chunked), epoch and CSV output
// unchanged, an unknown zone rejected like InfluxDB does.
func TestQueryHTTPTimeZoneAndTop(t *testing.T) {
	srv, _ := newQueryServer(t, QueryOptions{})
	q := func(params, query string) string {
		return srv.URL + "/query?db=db&" + params + "q=" + url.QueryEscape(query)
	}
	meanTZ := `SELECT mean(usage) FROM cpu WHERE time >= '2020-01-01T00:00:00Z' AND time < '2020-01-01T00:00:40Z' GROUP BY time(20s) tz('Europe/Paris')`
	cases := []struct {
		url, hdr string
		code     int
		want     string
	}{
		{q("", meanTZ), "", 200,
			`{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","mean"],"values":[["2020-01-01T01:00:00+01:00",8.25],["2020-01-01T01:00:20+01:00",19.25]]}]}]}`},
		{q("epoch=ms&", meanTZ), "", 200,
			`{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","mean"],"values":[[1577836800000,8.25],[1577836820000,19.25]]}]}]}`},
		{q("", meanTZ), "Accept: application/csv", 200,
			"name,tags,time,mean\ncpu,,1577836800000000000,8.25\ncpu,,1577836820000000000,19.25\n"},
		{q("", `SELECT mean(usage) FROM cpu tz('Europe/Nowhere')`), "", 400,
			`{"error":"error parsing query: unknown time zone Europe/Nowhere"}`},
		{q("", `SELECT top(usage, host, 2) FROM cpu`), "", 200,
			`{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","top","host"],"values":[["2020-01-01T00:00:50Z",60,"b"],["2020-01-01T00:00:50Z",6,"a"]]}]}]}`},
		{q("", `SELECT bottom(usage, 2), region FROM cpu WHERE host = 'b'; SELECT top(usage, 3) FROM cpu WHERE time >= '2020-01-01T00:00:00Z' GROUP BY time(30s)`), "", 200,
			`{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","bottom","region"],"values":[["2020-01-01T00:00:00Z",10,"eu"],["2020-01-01T00:00:10Z",20,"eu"]]}]},` +
				`{"statement_id":1,"series":[{"name":"cpu","columns":["time","top"],"values":[["2020-01-01T00:00:00Z",10],["2020-01-01T00:00:10Z",20],` +
				`["2020-01-01T00:00:20Z",30],["2020-01-01T00:00:30Z",40],["2020-01-01T00:00:40Z",50],["2020-01-01T00:00:50Z",60]]}]}]}`},
		{q("chunked=true&chunk_size=1&", `SELECT top(usage, 2) FROM cpu tz('America/New_York')`), "", 200,
			`{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","top"],"values":[["2019-12-31T19:00:40-05:00",50]],"partial":true}],"partial":true}]}` + "\n" +
				`{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","top"],"values":[["2019-12-31T19:00:50-05:00",60]]}]}]}`},
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
}
