package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/edgewise-iot/edgewise/internal/testenv"
)

// TestSeedQueriesOfficialClient runs the seed's IoTTimeSeries class,
// translated to Go with github.com/influxdata/influxdb-client-go/v2:
// write_telemetry (Point("telemetry").tag("device_id").field(...)),
// query_device_data and aggregate_device_data, and checks the tables the
// client parses from our annotated CSV.
func TestSeedQueriesOfficialClient(t *testing.T) {
	s := newTestServer(t, false, nil)
	client := influxdb2.NewClient(s.URL, testToken)
	defer client.Close()
	ctx := context.Background()
	const bucket = "edgewise"
	wapi := client.WriteAPIBlocking("my-org", bucket)
	// write_telemetry: one point per measurement key, every 10 minutes over
	// the last 3 hours, for two devices.
	now := time.Now().UTC().Truncate(time.Second)
	base := now.Add(-3 * time.Hour).Truncate(time.Hour)
	type key struct {
		dev  string
		hour int64
	}
	sums, counts := map[key]float64{}, map[key]float64{}
	var written int
	for i := 0; i < 18; i++ {
		ts := base.Add(time.Duration(i) * 10 * time.Minute)
		for d, dev := range []string{"dev-1", "dev-2"} {
			measurements := map[string]any{"temperature": 20 + float64(i)/2 + float64(d), "humidity": int64(40 + i)}
			var pts []*write.Point
			for k, v := range measurements {
				pts = append(pts, influxdb2.NewPointWithMeasurement("telemetry").AddTag("device_id", dev).AddField(k, v).SetTime(ts))
			}
			if err := wapi.WritePoint(ctx, pts...); err != nil {
				t.Fatal(err)
			}
			written += len(pts)
			k := key{dev, ts.Truncate(time.Hour).Add(time.Hour).UnixNano()}
			sums[k] += measurements["temperature"].(float64)
			counts[k]++
		}
	}
	qapi := client.QueryAPI("my-org")

	// query_device_data(device_id, start, stop)
	start, stop := base.Format(time.RFC3339), now.Add(time.Minute).Format(time.RFC3339)
	res, err := qapi.Query(ctx, fmt.Sprintf(`
from(bucket: "%s")
|> range(start: %s, stop: %s)
|> filter(fn: (r) => r._measurement == "telemetry")
|> filter(fn: (r) => r.device_id == "%s")
`, bucket, start, stop, "dev-1"))
	if err != nil {
		t.Fatal(err)
	}
	n, fields := 0, map[string]int{}
	for res.Next() {
		rec := res.Record()
		if rec.Measurement() != "telemetry" || rec.ValueByKey("device_id") != "dev-1" || rec.Start().Format(time.RFC3339) != start {
			t.Errorf("record %v", rec.Values())
		}
		switch rec.Field() {
		case "temperature":
			if _, ok := rec.Value().(float64); !ok {
				t.Errorf("temperature is %T", rec.Value())
			}
		case "humidity":
			if _, ok := rec.Value().(int64); !ok {
				t.Errorf("humidity is %T", rec.Value())
			}
		}
		fields[rec.Field()]++
		n++
	}
	if res.Err() != nil || n != written/2 || fields["temperature"] != 18 || fields["humidity"] != 18 {
		t.Fatalf("query_device_data: err %v, %d records %v", res.Err(), n, fields)
	}

	// aggregate_device_data(device_id, field, interval='1h')
	for _, dev := range []string{"dev-1", "dev-2"} {
		res, err = qapi.Query(ctx, fmt.Sprintf(`
from(bucket: "%s")
|> range(start: -30d)
|> filter(fn: (r) => r._measurement == "telemetry")
|> filter(fn: (r) => r.device_id == "%s")
|> filter(fn: (r) => r._field == "%s")
|> aggregateWindow(every: %s, fn: mean, createEmpty: false)
`, bucket, dev, "temperature", "1h"))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for res.Next() {
			rec := res.Record()
			k := key{dev, rec.Time().UnixNano()}
			want := sums[k] / counts[k]
			if v, ok := rec.Value().(float64); !ok || math.Abs(v-want) > 1e-9 {
				t.Errorf("%s window %v: got %v want %v", dev, rec.Time(), rec.Value(), want)
			}
			got++
		}
		windows := 0
		for k := range counts {
			if k.dev == dev {
				windows++
			}
		}
		if res.Err() != nil || got != windows {
			t.Fatalf("aggregate_device_data %s: err %v, %d windows, want %d", dev, res.Err(), got, windows)
		}
	}

	// Raw CSV with the client's default dialect, and a query error.
	raw, err := qapi.QueryRaw(ctx, `from(bucket: "edgewise") |> range(start: -1d) |> filter(fn: (r) => r._field == "humidity") |> last()`, influxdb2.DefaultDialect())
	if err != nil || !strings.Contains(raw, "#datatype,string,long,dateTime:RFC3339") || strings.Count(raw, "\n,_result,") != 2 {
		t.Fatalf("raw: %v\n%s", err, raw)
	}
	if _, err := qapi.Query(ctx, `from(bucket: "edgewise") |> range(start: -1h) |> nosuch()`); err == nil || !strings.Contains(err.Error(), "undefined identifier nosuch") {
		t.Fatalf("error through the client: %v", err)
	}
	if _, err := qapi.Query(ctx, `from(bucket: "missing") |> range(start: -1h)`); err == nil || !strings.Contains(err.Error(), "bucket not found") {
		t.Fatalf("missing bucket through the client: %v", err)
	}
}

func TestQueryAuth(t *testing.T) {
	s := newTestServer(t, false, nil)
	q := url.QueryEscape("SHOW DATABASES")
	for _, c := range []struct {
		path string
		hdr  map[string]string
		code int
	}{
		{"/query?q=" + q, nil, 401},
		{"/query?q=" + q + "&u=x&p=" + testToken, nil, 200},
		{"/query?q=" + q, map[string]string{"Authorization": "Token " + testToken}, 200},
		{"/query?q=" + q, map[string]string{"Authorization": "Token nope"}, 401},
		{"/api/v2/query", map[string]string{"Content-Type": "application/vnd.flux"}, 401},
		{"/api/v2/query", map[string]string{"Content-Type": "application/vnd.flux", "Authorization": "Bearer " + testToken}, 200},
	} {
		body := ""
		if strings.HasPrefix(c.path, "/api/v2") {
			body = `from(bucket: "edgewise") |> range(start: -1h)`
		}
		code, resp := s.post(t, c.path, body, c.hdr)
		if code != c.code {
			t.Errorf("%s %v: %d %s", c.path, c.hdr, code, resp)
		}
	}
	anon := newTestServer(t, true, nil)
	if code, resp := anon.post(t, "/query?q="+q, "", nil); code != 200 {
		t.Errorf("anonymous: %d %s", code, resp)
	}
	// v2 errors are InfluxDB's {"code","message"} JSON.
	code, resp := s.post(t, "/api/v2/query?org=o", `{"query": "from(bucket: \"edgewise\") |> range(start: -1h) |>", "type": "flux"}`,
		map[string]string{"Content-Type": "application/json", "Authorization": "Token " + testToken})
	var e struct{ Code, Message string }
	if code != 400 || json.Unmarshal([]byte(resp), &e) != nil || e.Code != "invalid" || !strings.Contains(e.Message, "syntax error at 1:49") {
		t.Errorf("v2 error: %d %s", code, resp)
	}
}

// TestInfluxCLI drives Debian's influx 1.x shell (package influxdb-client)
// against the server: SHOW DATABASES and a SELECT with -format json.
func TestInfluxCLI(t *testing.T) {
	bin, err := exec.LookPath("influx")
	if err != nil {
		testenv.Missing(t, "the influx CLI (apt-get install influxdb-client)")
		return
	}
	s := newTestServer(t, false, nil)
	if code, body := s.post(t, "/write?db=edgewise", "cpu,host=a usage=1.5 1577836800000000000\ncpu,host=b usage=2.5 1577836810000000000",
		map[string]string{"Authorization": "Token " + testToken}); code != 204 {
		t.Fatalf("write: %d %s", code, body)
	}
	u, _ := url.Parse(s.URL)
	run := func(args ...string) string {
		base := []string{"-host", u.Hostname(), "-port", u.Port(), "-username", "cli", "-password", testToken}
		out, err := exec.Command(bin, append(base, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("influx %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("-execute", "SHOW DATABASES", "-format", "json"); !strings.Contains(out, `"values":[["edgewise"]]`) {
		t.Errorf("SHOW DATABASES: %s", out)
	}
	out := run("-database", "edgewise", "-precision", "rfc3339", "-format", "json", "-execute", "SELECT usage, host FROM cpu WHERE usage > 2")
	if !strings.Contains(out, `"columns":["time","usage","host"],"values":[["2020-01-01T00:00:10Z",2.5,"b"]]`) {
		t.Errorf("SELECT: %s", out)
	}
	out = run("-database", "edgewise", "-format", "column", "-execute", "SELECT mean(usage) FROM cpu GROUP BY host")
	if !strings.Contains(out, "tags: host=a") || !strings.Contains(out, "1.5") || !strings.Contains(out, "2.5") {
		t.Errorf("column format: %s", out)
	}
	if out, err := exec.Command(bin, "-host", u.Hostname(), "-port", u.Port(), "-username", "cli", "-password", testToken,
		"-execute", "SELECT FROM").CombinedOutput(); err == nil || !strings.Contains(string(out), "error parsing query") {
		t.Errorf("bad query: %v %s", err, out)
	}
}
