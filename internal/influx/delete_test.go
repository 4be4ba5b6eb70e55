package influx

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func countRows(t *testing.T, s *testServer, q string) map[string]int {
	t.Helper()
	var body struct {
		Results []struct {
			Series []struct {
				Name   string
				Tags   map[string]string
				Values [][]any
			}
			Error string
		}
	}
	if err := json.Unmarshal([]byte(readBack(t, s, "edgewise", q)), &body); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range body.Results {
		if r.Error != "" {
			t.Fatalf("%s: %s", q, r.Error)
		}
		for _, sr := range r.Series {
			out[sr.Name+" "+sr.Tags["host"]] = len(sr.Values)
		}
	}
	return out
}

func deleteFixture(t *testing.T) *testServer {
	t.Helper()
	s := newTestServer(t, false, nil)
	lines := []string{}
	for i := 0; i < 10; i++ {
		ts := (1577836800 + int64(i)*60)
		for _, h := range []string{"a", "b"} {
			lines = append(lines, "cpu,host="+h+" usage="+itoa(int64(i))+" "+itoa(ts))
			lines = append(lines, "mem,host="+h+" free="+itoa(int64(100+i))+" "+itoa(ts))
		}
	}
	if code, resp := s.post(t, "/write?db=edgewise&precision=s", strings.Join(lines, "\n"),
		map[string]string{"Authorization": "Token " + testToken}); code != 204 {
		t.Fatalf("write: %d %s", code, resp)
	}
	return s
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// POST /api/v2/delete removes the samples of the matching series in the
// inclusive range, and nothing else; bad requests get InfluxDB's errors.
func TestDeleteV2(t *testing.T) {
	s := deleteFixture(t)
	auth := map[string]string{"Authorization": "Token " + testToken, "Content-Type": "application/json"}
	del := func(body string) (int, string) {
		return s.post(t, "/api/v2/delete?org=any&bucket=edgewise", body, auth)
	}
	// cpu of host a from minute 2 to minute 5, both ends included.
	if code, resp := del(`{"start":"2020-01-01T00:02:00Z","stop":"2020-01-01T00:05:00Z","predicate":"_measurement=\"cpu\" AND host=\"a\""}`); code != 204 {
		t.Fatalf("delete: %d %s", code, resp)
	}
	got := countRows(t, s, "SELECT usage FROM cpu GROUP BY host; SELECT free FROM mem GROUP BY host")
	want := map[string]int{"cpu a": 6, "cpu b": 10, "mem a": 10, "mem b": 10}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("after the cpu/a delete: %v, want %v", got, want)
			break
		}
	}
	// No _measurement: every measurement of the bucket.
	if code, resp := del(`{"start":"2020-01-01T00:00:00Z","stop":"2020-01-01T00:00:59Z","predicate":"host=\"b\""}`); code != 204 {
		t.Fatalf("delete: %d %s", code, resp)
	}
	// An empty predicate: everything in the range.
	if code, resp := del(`{"start":"2020-01-01T00:09:00Z","stop":"2020-01-01T00:09:00Z"}`); code != 204 {
		t.Fatalf("delete: %d %s", code, resp)
	}
	got = countRows(t, s, "SELECT usage FROM cpu GROUP BY host; SELECT free FROM mem GROUP BY host")
	want = map[string]int{"cpu a": 5, "cpu b": 8, "mem a": 9, "mem b": 8}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("after the other deletes: %v, want %v", got, want)
			break
		}
	}
	for _, c := range []struct {
		body string
		code int
		msg  string
	}{
		{`{"start":"2020-01-01T00:00:00Z","stop":"2020-01-01T01:00:00Z","predicate":"host=\"a\" OR host=\"b\""}`, 400, "OR is not supported"},
		{`{"start":"2020-01-01T00:00:00Z","stop":"2020-01-01T01:00:00Z","predicate":"_field=\"usage\""}`, 400, "_field"},
		{`{"start":"2020-01-01T00:00:00Z","stop":"2020-01-01T01:00:00Z","predicate":"host=a"}`, 400, "double-quoted"},
		{`{"start":"2020-01-01T00:00:00Z","stop":"2020-01-01T01:00:00Z","predicate":"host!=\"a\""}`, 400, "expected ="},
		{`{"stop":"2020-01-01T01:00:00Z"}`, 400, "RFC3339"},
		{`{"start":"2020-01-02T00:00:00Z","stop":"2020-01-01T01:00:00Z"}`, 400, "before start"},
		{`not json`, 400, "invalid delete body"},
	} {
		code, resp := del(c.body)
		var e struct{ Code, Message string }
		if code != c.code || json.Unmarshal([]byte(resp), &e) != nil || e.Code != "invalid" || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s: %d %s, want %d with %q", c.body, code, resp, c.code, c.msg)
		}
	}
	if code, _ := s.post(t, "/api/v2/delete?bucket=nope", `{"start":"2020-01-01T00:00:00Z","stop":"2020-01-01T01:00:00Z"}`, auth); code != 404 {
		t.Errorf("unknown bucket: %d", code)
	}
	if code, _ := s.post(t, "/api/v2/delete?bucket=edgewise", `{"start":"2020-01-01T00:00:00Z","stop":"2020-01-01T01:00:00Z"}`, nil); code != 401 {
		t.Errorf("no token: %d", code)
	}
}

// InfluxQL DELETE and DROP SERIES go to the same tombstones.
func TestDeleteInfluxQL(t *testing.T) {
	s := deleteFixture(t)
	exec := func(q string) string {
		t.Helper()
		code, body := s.post(t, "/query?db=edgewise&q="+url.QueryEscape(q), "", map[string]string{"Authorization": "Token " + testToken})
		if code != 200 {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		return body
	}
	if out := exec("DELETE FROM cpu WHERE host = 'b' AND time < '2020-01-01T00:04:00Z'"); strings.Contains(out, "error") {
		t.Fatal(out)
	}
	if out := exec("DROP SERIES FROM mem WHERE host = 'a'"); strings.Contains(out, "error") {
		t.Fatal(out)
	}
	if out := exec("DELETE WHERE time >= '2020-01-01T00:08:00Z'"); strings.Contains(out, "error") {
		t.Fatal(out)
	}
	got := countRows(t, s, "SELECT usage FROM cpu GROUP BY host; SELECT free FROM mem GROUP BY host")
	want := map[string]int{"cpu a": 8, "cpu b": 4, "mem b": 8}
	if len(got) != len(want) || got["cpu a"] != 8 || got["cpu b"] != 4 || got["mem b"] != 8 {
		t.Errorf("after DELETE and DROP SERIES: %v, want %v", got, want)
	}
	for q, msg := range map[string]string{
		"DELETE FROM cpu WHERE usage > 1":       "fields not supported",
		"DROP SERIES FROM cpu WHERE time > 0":   "doesn't support time",
		"DELETE FROM cpu WHERE host = 'a' OR x": "fields not supported",
	} {
		if out := exec(q); !strings.Contains(out, msg) {
			t.Errorf("%s: %s, want an error with %q", q, out, msg)
		}
	}
	if code, body := s.post(t, "/query?db=edgewise&q=DELETE", "", map[string]string{"Authorization": "Token " + testToken}); code != 400 ||
		!strings.Contains(body, "FROM or WHERE") {
		t.Errorf("bare DELETE: %d %s", code, body)
	}
}

// FuzzDeletePredicate: the v2 delete predicate parser never panics, and
// what it accepts names only equality matchers on non-empty keys.
func FuzzDeletePredicate(f *testing.F) {
	for _, s := range []string{``, `_measurement="cpu"`, `_measurement="cpu" AND host="a b"`, `"my tag"="v\"q"`,
		`host="a" OR host="b"`, `host=a`, `a="1" and b="2" AND c="3"`, `x="` + "\xff" + `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, ms, err := ParseDeletePredicate(s)
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Key == "" {
				t.Fatalf("%q: matcher with an empty key", s)
			}
		}
	})
}
