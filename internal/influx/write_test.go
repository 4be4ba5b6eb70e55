package influx

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/edgewise-iot/edgewise/internal/influx/lineproto"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

const testToken = "0123456789abcdef-token"

type testServer struct {
	*httptest.Server
	cat *tsdb.Catalog
}

func newTestServer(t *testing.T, anonymous bool, mod func(*Options)) *testServer {
	t.Helper()
	cat, err := tsdb.OpenCatalog(context.Background(), tsdb.CatalogOptions{
		Dir: t.TempDir(), DB: tsdb.Options{Fsync: tsdb.FsyncNever, FlushInterval: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Catalog: cat, Auth: StaticToken(testToken), AllowAnonymous: anonymous}
	if mod != nil {
		mod(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); cat.Close() })
	return &testServer{Server: srv, cat: cat}
}

func (s *testServer) post(t *testing.T, path, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *testServer) samples(t *testing.T, db, meas string, q tsdb.Query) []tsdb.Series {
	t.Helper()
	d, err := s.cat.DB(db)
	if err != nil {
		t.Fatal(err)
	}
	q.Measurement = meas
	res, err := d.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

var tokenHdr = map[string]string{"Authorization": "Token " + testToken}

func TestWriteV1AndV2(t *testing.T) {
	s := newTestServer(t, false, nil)
	code, body := s.post(t, "/write?db=edgewise&precision=s", "cpu,host=a usage=1.5,n=3i,ok=true,msg=\"hi\" 1700000000\ncpu,host=b usage=2 1700000001", tokenHdr)
	if code != http.StatusNoContent {
		t.Fatalf("v1 write: %d %s", code, body)
	}
	code, body = s.post(t, "/api/v2/write?org=any&bucket=edgewise&precision=ms", "cpu,host=a usage=3 1700000002000", map[string]string{"Authorization": "Bearer " + testToken})
	if code != http.StatusNoContent {
		t.Fatalf("v2 write: %d %s", code, body)
	}
	res := s.samples(t, "edgewise", "cpu", tsdb.Query{Tags: []tsdb.Tag{{Key: "host", Value: "a"}}, Field: "usage"})
	if len(res) != 1 || len(res[0].Samples) != 2 || res[0].Samples[1].Time != 1700000002000000000 {
		t.Fatalf("stored %+v", res)
	}
	fk, _ := func() ([]tsdb.FieldInfo, error) {
		d, _ := s.cat.DB("edgewise")
		return d.FieldKeys(context.Background(), "cpu")
	}()
	want := []tsdb.FieldInfo{{Key: "msg", Type: tsdb.String}, {Key: "n", Type: tsdb.Integer}, {Key: "ok", Type: tsdb.Boolean}, {Key: "usage", Type: tsdb.Float}}
	if len(fk) != 4 || fk[0] != want[0] || fk[3] != want[3] {
		t.Fatalf("field keys %+v", fk)
	}
}

func TestWriteGzipAndLimits(t *testing.T) {
	s := newTestServer(t, true, func(o *Options) { o.MaxBodyBytes = 2048 })
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte("m v=1 1\nm v=2 2\n"))
	zw.Close()
	code, body := s.post(t, "/write?db=edgewise", zb.String(), map[string]string{"Content-Encoding": "gzip"})
	if code != http.StatusNoContent {
		t.Fatalf("gzip write: %d %s", code, body)
	}
	if res := s.samples(t, "edgewise", "m", tsdb.Query{}); len(res) != 1 || len(res[0].Samples) != 2 {
		t.Fatalf("gzip stored %+v", res)
	}
	code, body = s.post(t, "/write?db=edgewise", "not gzip", map[string]string{"Content-Encoding": "gzip"})
	if code != http.StatusBadRequest || !strings.Contains(body, "gzip") {
		t.Fatalf("bad gzip: %d %s", code, body)
	}
	big := strings.Repeat("m v=1 3\n", 400)
	code, body = s.post(t, "/write?db=edgewise", big, nil)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"error"`) {
		t.Fatalf("too large: %d %s", code, body)
	}
	code, body = s.post(t, "/api/v2/write?bucket=edgewise", big, nil)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"code":"request too large"`) {
		t.Fatalf("too large v2: %d %s", code, body)
	}
	code, body = s.post(t, "/write?db=edgewise&precision=d", "m v=1", nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "precision") {
		t.Fatalf("bad precision: %d %s", code, body)
	}
}

func TestPartialWrites(t *testing.T) {
	s := newTestServer(t, true, nil)
	code, body := s.post(t, "/write?db=edgewise", "m v=1 1\nm v= 2\nm v=3 3\nm,x v=4 4\n", nil)
	if code != http.StatusBadRequest {
		t.Fatalf("partial: %d %s", code, body)
	}
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatal(err)
	}
	if e.Error != "unable to parse 'm v= 2': missing field value\nunable to parse 'm,x v=4 4': missing tag value" {
		t.Fatalf("message %q", e.Error)
	}
	if res := s.samples(t, "edgewise", "m", tsdb.Query{}); len(res) != 1 || len(res[0].Samples) != 2 {
		t.Fatalf("valid lines not stored: %+v", res)
	}
	// Field type conflict: the other points are stored.
	code, body = s.post(t, "/write?db=edgewise", "m v=5i 5\nm v=6 6\nm,h=x v=7i 7", nil)
	if code != http.StatusBadRequest || !strings.Contains(body, `partial write: field type conflict: field \"v\" is float, got integer on measurement \"m\" dropped=1`) {
		t.Fatalf("conflict v1: %d %s", code, body)
	}
	if res := s.samples(t, "edgewise", "m", tsdb.Query{}); len(res) != 2 || len(res[0].Samples) != 3 || len(res[1].Samples) != 1 {
		t.Fatalf("conflict stored %+v", res)
	}
	code, body = s.post(t, "/api/v2/write?bucket=edgewise", "m v=8i 8", nil)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `"code":"unprocessable entity"`) {
		t.Fatalf("conflict v2: %d %s", code, body)
	}
	code, body = s.post(t, "/api/v2/write?bucket=edgewise", "m v=\n", nil)
	if code != http.StatusBadRequest || !strings.Contains(body, `"code":"invalid"`) || !strings.Contains(body, "unable to parse 'm v='") {
		t.Fatalf("parse v2: %d %s", code, body)
	}
}

func TestWriteTargetsAndAuth(t *testing.T) {
	s := newTestServer(t, false, nil)
	cases := []struct {
		path string
		hdr  map[string]string
		code int
		body string
	}{
		{"/write?db=edgewise", nil, 401, `{"error":"unable to parse authentication credentials`},
		{"/api/v2/write?bucket=edgewise", nil, 401, `{"code":"unauthorized"`},
		{"/write?db=edgewise", map[string]string{"Authorization": "Token wrong"}, 401, `{"error":"authorization failed"}`},
		{"/write?db=edgewise&u=x&p=wrong", nil, 401, `authorization failed`},
		{"/write?db=edgewise&u=admin&p=" + testToken, nil, 204, ``},
		{"/write?db=edgewise", map[string]string{"Authorization": "Basic YWRtaW46MDEyMzQ1Njc4OWFiY2RlZi10b2tlbg=="}, 204, ``},
		{"/write?db=nope", tokenHdr, 404, `{"error":"database not found: \"nope\""}`},
		{"/api/v2/write?bucket=nope", tokenHdr, 404, `{"code":"not found","message":"bucket \"nope\" not found"}`},
		{"/write", tokenHdr, 400, `{"error":"database is required"}`},
		{"/api/v2/write?org=o", tokenHdr, 400, `bucket is required`},
		{"/write?db=edgewise&rp=other", tokenHdr, 404, `retention policy not found: other`},
		{"/api/v2/write?bucket=edgewise/autogen", tokenHdr, 204, ``},
	}
	for _, c := range cases {
		code, body := s.post(t, c.path, "auth v=1 1", c.hdr)
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("%s %v: %d %s, want %d %s", c.path, c.hdr, code, body, c.code, c.body)
		}
	}
	// Another database created through the catalog accepts writes.
	if _, err := s.cat.CreateDatabase(context.Background(), "other", tsdb.RetentionPolicy{}); err != nil {
		t.Fatal(err)
	}
	if code, body := s.post(t, "/write?db=other", "x v=1 1", tokenHdr); code != 204 {
		t.Fatalf("write other db: %d %s", code, body)
	}
	resp, err := http.Get(s.URL + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("X-Influxdb-Version") == "" {
		t.Fatalf("ping %d %v", resp.StatusCode, resp.Header)
	}
	resp, err = http.Get(s.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"pass"`) {
		t.Fatalf("health %d %s", resp.StatusCode, b)
	}
}

// TestOfficialGoClient writes with github.com/influxdata/influxdb-client-go/v2:
// the blocking write API with the seed's Point("telemetry").tag(...).field(...)
// shape, line protocol records, and its error reporting.
func TestOfficialGoClient(t *testing.T) {
	s := newTestServer(t, false, nil)
	client := influxdb2.NewClient(s.URL, testToken)
	defer client.Close()
	wapi := client.WriteAPIBlocking("my-org", "edgewise")
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	var pts []*write.Point
	for k, v := range map[string]any{"temperature": 21.5, "humidity": int64(40), "door_open": false, "fw": "1.2.3", "count": uint64(7)} {
		pts = append(pts, influxdb2.NewPointWithMeasurement("telemetry").AddTag("device_id", "dev-1").AddField(k, v).SetTime(now))
	}
	if err := wapi.WritePoint(ctx, pts...); err != nil {
		t.Fatal(err)
	}
	if err := wapi.WriteRecord(ctx, `telemetry,device_id=dev\ 2 temperature=19.25 `+strconv.FormatInt(now.UnixNano(), 10)); err != nil {
		t.Fatal(err)
	}
	res := s.samples(t, "edgewise", "telemetry", tsdb.Query{})
	got := map[string]string{}
	for _, r := range res {
		got[r.Tags[0].Value+"/"+r.Field] = r.Samples[0].Value.String()
		if r.Samples[0].Time != now.UnixNano() {
			t.Errorf("%s time %d want %d", r.Field, r.Samples[0].Time, now.UnixNano())
		}
	}
	want := map[string]string{"dev-1/temperature": "21.5", "dev-1/humidity": "40", "dev-1/door_open": "false",
		"dev-1/fw": "1.2.3", "dev-1/count": "7", "dev 2/temperature": "19.25"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all %v)", k, got[k], v, got)
		}
	}
	err := wapi.WriteRecord(ctx, "telemetry,device_id=dev-1 temperature=\"hot\"")
	if err == nil || !strings.Contains(err.Error(), "field type conflict") {
		t.Fatalf("conflict through the client: %v", err)
	}
	bad := influxdb2.NewClient(s.URL, "wrong-token")
	defer bad.Close()
	if err := bad.WriteAPIBlocking("o", "edgewise").WriteRecord(ctx, "x v=1"); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("wrong token: %v", err)
	}
	if ok, err := client.Ping(ctx); !ok || err != nil {
		t.Fatalf("client ping: %v %v", ok, err)
	}
}

// TestPointsSparseFields: lines of one series that leave out, reorder or
// add fields keep their own keys (the parser looks keys up per series from
// an expected position).
func TestPointsSparseFields(t *testing.T) {
	body := "m,k=v a=1,b=2,c=3 1\nm,k=v a=4,c=6 2\nm,k=v c=9,a=7 3\nm,k=v b=8 4\nm,k=v d=1,a=2,b=3,c=4 5\nm,k=v a=5,b=6,c=7 6\n"
	pts, bad := Points([]byte(body), lineproto.Nanosecond, 0)
	if len(bad) > 0 || len(pts) != 6 {
		t.Fatalf("%d points, bad %v", len(pts), bad)
	}
	want := []string{"a=1 b=2 c=3", "a=4 c=6", "c=9 a=7", "b=8", "d=1 a=2 b=3 c=4", "a=5 b=6 c=7"}
	for i, p := range pts {
		var got []string
		for _, f := range p.Fields {
			got = append(got, f.Key+"="+f.Value.String())
		}
		if g := strings.Join(got, " "); g != want[i] {
			t.Errorf("line %d: %s, want %s", i+1, g, want[i])
		}
	}
}
