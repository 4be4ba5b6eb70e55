package influx

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	"github.com/influxdata/influxdb-client-go/v2/domain"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// TestV2ManagementOfficialClient drives the organisation, bucket and
// delete APIs with github.com/influxdata/influxdb-client-go/v2, by name as
// applications do, and checks the catalog underneath.
func TestV2ManagementOfficialClient(t *testing.T) {
	s := newTestServer(t, false, nil)
	client := influxdb2.NewClient(s.URL, testToken)
	defer client.Close()
	ctx := context.Background()

	// One organisation, reachable under any name.
	org, err := client.OrganizationsAPI().FindOrganizationByName(ctx, "my-org")
	if err != nil {
		t.Fatal(err)
	}
	if org.Name != "my-org" || org.Id == nil || *org.Id != orgID {
		t.Fatalf("org: %+v", org)
	}
	if o, err := client.OrganizationsAPI().FindOrganizationByID(ctx, orgID); err != nil || o.Name != DefaultOrg {
		t.Fatalf("org by ID: %+v %v", o, err)
	}

	buckets := client.BucketsAPI()
	def, err := buckets.FindBucketByName(ctx, "edgewise")
	if err != nil {
		t.Fatal(err)
	}
	if *def.Id != BucketID("edgewise") || *def.OrgID != orgID || len(def.RetentionRules) != 1 || def.RetentionRules[0].EverySeconds != 0 {
		t.Fatalf("default bucket: %+v", def)
	}
	if _, err := buckets.FindBucketByName(ctx, "plant"); err == nil {
		t.Fatal("found a bucket that does not exist")
	}

	// Create a bucket with a retention of one week: a database.
	b, err := buckets.CreateBucketWithName(ctx, org, "plant", domain.RetentionRule{EverySeconds: 7 * 86400})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "plant" || *b.Id != BucketID("plant") || b.RetentionRules[0].EverySeconds != 7*86400 {
		t.Fatalf("created: %+v", b)
	}
	var info tsdb.DatabaseInfo
	for _, i := range s.cat.Databases() {
		if i.Name == "plant" {
			info = i
		}
	}
	if info.Retention.Duration != 7*24*time.Hour {
		t.Fatalf("catalog: %+v", s.cat.Databases())
	}
	if _, err := buckets.CreateBucketWithName(ctx, org, "plant"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second create: %v", err)
	}
	if _, err := buckets.CreateBucketWithName(ctx, org, "bad/name"); err == nil {
		t.Fatal("created a bucket with an invalid name")
	}
	list, err := buckets.FindBucketsByOrgName(ctx, "my-org")
	if err != nil {
		t.Fatal(err)
	}
	if len(*list) != 2 || (*list)[0].Name != "edgewise" || (*list)[1].Name != "plant" {
		t.Fatalf("list: %+v", *list)
	}
	if got, err := buckets.FindBucketByID(ctx, BucketID("plant")); err != nil || got.Name != "plant" {
		t.Fatalf("by ID: %+v %v", got, err)
	}

	// Write into it and delete by name: only host a's cpu points in
	// [t0+2m, t0+5m] go.
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour) // inside the week of retention
	wapi := client.WriteAPIBlocking("my-org", "plant")
	for i := 0; i < 10; i++ {
		ts := t0.Add(time.Duration(i) * time.Minute)
		for _, h := range []string{"a", "b"} {
			if err := wapi.WritePoint(ctx,
				influxdb2.NewPoint("cpu", map[string]string{"host": h}, map[string]any{"usage": float64(i)}, ts),
				influxdb2.NewPoint("mem", map[string]string{"host": h}, map[string]any{"free": int64(i)}, ts)); err != nil {
				t.Fatal(err)
			}
		}
	}
	del := client.DeleteAPI()
	if err := del.DeleteWithName(ctx, "my-org", "plant", t0.Add(2*time.Minute), t0.Add(5*time.Minute), `_measurement="cpu" AND host="a"`); err != nil {
		t.Fatal(err)
	}
	counts := func(meas string) map[string]int {
		out := map[string]int{}
		for _, sr := range s.samples(t, "plant", meas, tsdb.Query{Start: t0.UnixNano(), End: t0.Add(time.Hour).UnixNano()}) {
			out[sr.Tags[0].Value] = len(sr.Samples)
		}
		return out
	}
	if got := counts("cpu"); got["a"] != 6 || got["b"] != 10 {
		t.Fatalf("cpu after delete: %v", got)
	}
	if got := counts("mem"); got["a"] != 10 || got["b"] != 10 {
		t.Fatalf("mem after delete: %v", got)
	}
	// By IDs (DeleteAPI.Delete), without a predicate: every measurement.
	if err := del.Delete(ctx, org, b, t0, t0.Add(time.Minute), ""); err != nil {
		t.Fatal(err)
	}
	if got := counts("mem"); got["a"] != 8 || got["b"] != 8 {
		t.Fatalf("mem after the second delete: %v", got)
	}
	if err := del.DeleteWithName(ctx, "my-org", "nope", t0, t0, ""); err == nil {
		t.Fatal("deleted from a missing bucket")
	}

	// The new Flux functions over what is left, through the client.
	rng := fmt.Sprintf("range(start: %s, stop: %s)", t0.Format(time.RFC3339), t0.Add(10*time.Minute).Format(time.RFC3339))
	res, err := client.QueryAPI("my-org").Query(ctx, `
		cpu = from(bucket: "plant") |> `+rng+`
		  |> filter(fn: (r) => r._measurement == "cpu" and r.host == "a")
		mem = from(bucket: "plant") |> `+rng+`
		  |> filter(fn: (r) => r._measurement == "mem" and r.host == "a")
		join(tables: {cpu: cpu, mem: mem}, on: ["_time", "host"])
		  |> map(fn: (r) => ({_time: r._time, ratio: r._value_cpu / float(v: r._value_mem)}))
		  |> window(every: 5m) |> count(column: "ratio")`)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for res.Next() {
		got = append(got, res.Record().ValueByKey("ratio").(int64))
	}
	// Left after both deletes: cpu a at minutes 6..9, mem a at 2..9; the
	// join has rows at 6..9, all in the window [5m, 10m).
	if res.Err() != nil || len(got) != 1 || got[0] != 4 {
		t.Fatalf("windowed join counts: %v %v", got, res.Err())
	}

	// Dropping: the default database stays, others go with their data.
	if err := buckets.DeleteBucketWithID(ctx, BucketID("edgewise")); err == nil {
		t.Fatal("dropped the default database")
	}
	if err := buckets.DeleteBucket(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cat.DB("plant"); err == nil {
		t.Fatal("database still there after DeleteBucket")
	}
	if err := buckets.DeleteBucketWithID(ctx, BucketID("plant")); err == nil {
		t.Fatal("deleted a bucket twice")
	}
}

// TestV2ManagementAuth: the management routes authenticate like the other
// Influx endpoints, and answer in the v2 error shape.
func TestV2ManagementAuth(t *testing.T) {
	s := newTestServer(t, false, nil)
	for _, c := range []struct {
		method, path, body, auth string
		want                     int
	}{
		{"GET", "/api/v2/buckets", "", "", 401},
		{"GET", "/api/v2/orgs", "", "Token wrong", 401},
		{"POST", "/api/v2/buckets", `{"name": "x", "orgID": "` + orgID + `"}`, "", 401},
		{"DELETE", "/api/v2/buckets/" + BucketID("edgewise"), "", "Token wrong", 401},
		{"GET", "/api/v2/buckets?name=edgewise", "", "Token " + testToken, 200},
		{"POST", "/api/v2/buckets", `{"name": "x", "orgID": "ffffffffffffffff"}`, "Token " + testToken, 404},
		{"POST", "/api/v2/buckets", `{"name": ""}`, "Token " + testToken, 400},
		{"POST", "/api/v2/buckets", `{"name": "x", "retentionRules": [{"everySeconds": -1}]}`, "Token " + testToken, 400},
		{"PUT", "/api/v2/buckets", "", "Token " + testToken, 405},
		{"GET", "/api/v2/buckets?limit=0", "", "Token " + testToken, 400},
		{"GET", "/api/v2/orgs/0000000000000000", "", "Token " + testToken, 404},
		{"POST", "/api/v2/buckets", `{"name": "x", "orgID": "` + orgID + `"}`, "Token " + testToken, 201},
		{"DELETE", "/api/v2/buckets/" + BucketID("x"), "", "Token " + testToken, 204},
	} {
		req, _ := http.NewRequest(c.method, s.URL+c.path, strings.NewReader(c.body))
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s (%q): %d, want %d", c.method, c.path, c.auth, resp.StatusCode, c.want)
		}
		if c.want >= 400 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: error is not JSON", c.method, c.path)
		}
	}
	// Paging: limit and after.
	for _, n := range []string{"a1", "a2", "a3"} {
		if code, body := s.post(t, "/api/v2/buckets", `{"name": "`+n+`"}`, map[string]string{"Authorization": "Token " + testToken}); code != 201 {
			t.Fatalf("create %s: %d %s", n, code, body)
		}
	}
	client := influxdb2.NewClient(s.URL, testToken)
	defer client.Close()
	page, err := client.BucketsAPI().FindBucketsByOrgName(context.Background(), "any", api.PagingWithLimit(2), api.PagingWithOffset(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(*page) != 2 || (*page)[0].Name != "a2" || (*page)[1].Name != "a3" {
		t.Fatalf("page: %+v", *page)
	}
}

// TestFluxUnknownNamesHTTP: misspelt functions and arguments are 400
// {"code":"invalid"} naming them.
func TestFluxUnknownNamesHTTP(t *testing.T) {
	s := newTestServer(t, false, nil)
	hdr := map[string]string{"Authorization": "Token " + testToken, "Content-Type": "application/vnd.flux"}
	for q, want := range map[string]string{
		`from(bucket: "edgewise") |> range(start: -1h) |> window(evry: 1m)`:           `window(): unknown argument evry`,
		`from(bucket: "edgewise") |> range(start: -1h) |> movingAvg(n: 3)`:            `undefined identifier movingAvg`,
		`from(bucket: "edgewise") |> range(start: -1h) |> join(tables: {a: 1, b: 2})`: `join: on must name at least one column`,
	} {
		code, body := s.post(t, "/api/v2/query?org=o", q, hdr)
		if code != 400 || !strings.Contains(body, `"code":"invalid"`) || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s, want 400 naming %q", q, code, body, want)
		}
	}
}
