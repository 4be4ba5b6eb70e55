package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/rules"
	"github.com/edgewise-iot/edgewise/internal/shadow"
	"github.com/edgewise-iot/edgewise/internal/store"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

func rulesServer(t *testing.T) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(ctx, db, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := shadow.New(ctx, db, shadow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(ctx) })
	ts, err := tsdb.Open(ctx, tsdb.Options{Dir: filepath.Join(dir, "ts")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	m, err := rules.New(ctx, db, rules.Options{Points: ts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	a, err := New(Options{Token: "tok-0123456789abcdef", Registry: reg, States: st, Store: ts, Rules: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok-0123456789abcdef")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object", method, path, b)
		}
	}
	return resp.StatusCode, out
}

func TestRulesAPI(t *testing.T) {
	srv := rulesServer(t)
	const hot = `{"name":"hot","sql":"SELECT data.temp AS temp, topic(2) AS device FROM 'devices/+/telemetry' WHERE data.temp > 50",
		"actions":[{"type":"tsdb","measurement":"alerts","tags":{"device":"${device}"}}]}`
	steps := []struct {
		method, path, body string
		status             int
		check              func(map[string]any) bool
	}{
		{"POST", "/api/v1/rules", hot, 201, func(m map[string]any) bool { return m["name"] == "hot" && m["enabled"] == true }},
		{"POST", "/api/v1/rules", hot, 409, nil},
		{"POST", "/api/v1/rules", `{"name":"bad","sql":"SELECT a\nFROM 'x' WHERE (","actions":[{"type":"tsdb"}]}`, 400, func(m map[string]any) bool {
			e := m["error"].(map[string]any)
			return e["code"] == "invalid_sql" && e["line"] == 2.0 && e["column"].(float64) > 1
		}},
		{"POST", "/api/v1/rules", `{"name":"bad","sql":"SELECT * FROM 'x'","actions":[{"type":"tsdb","colour":"red"}]}`, 400, nil},
		{"POST", "/api/v1/rules", `{"name":"bad","sql":"SELECT * FROM 'x'","actions":[{"type":"webhook"}]}`, 400, func(m map[string]any) bool {
			return strings.Contains(m["error"].(map[string]any)["message"].(string), "url")
		}},
		{"GET", "/api/v1/rules", "", 200, func(m map[string]any) bool { return len(m["rules"].([]any)) == 1 }},
		{"GET", "/api/v1/rules/hot", "", 200, func(m map[string]any) bool { return m["sql"] != "" }},
		{"GET", "/api/v1/rules/nope", "", 404, nil},
		{"PUT", "/api/v1/rules/hot", `{"name":"other","sql":"SELECT * FROM 'x'","actions":[{"type":"tsdb"}]}`, 400, nil},
		{"PUT", "/api/v1/rules/hot", `{"sql":"SELECT * FROM 'x/#'","actions":[{"type":"tsdb"}],"enabled":false}`, 200, func(m map[string]any) bool {
			return m["sql"] == "SELECT * FROM 'x/#'" && m["enabled"] == false
		}},
		{"POST", "/api/v1/rules/hot/enable", "", 200, func(m map[string]any) bool { return m["enabled"] == true }},
		{"GET", "/api/v1/rules/hot/stats", "", 200, func(m map[string]any) bool { return m["running"] == true && m["matched"] == 0.0 }},
		{"POST", "/api/v1/rules/hot/disable", "", 200, func(m map[string]any) bool { return m["enabled"] == false }},
		{"POST", "/api/v1/rules/apply", `{"rules":[{"name":"hot","sql":"SELECT * FROM 'x/#'","actions":[{"type":"tsdb"}],"enabled":false},{"name":"b","sql":"SELECT * FROM 'y'","actions":[{"type":"tsdb"}]}]}`, 200, func(m map[string]any) bool {
			return len(m["created"].([]any)) == 1 && len(m["unchanged"].([]any)) == 1
		}},
		{"DELETE", "/api/v1/rules/hot", "", 204, nil},
		{"DELETE", "/api/v1/rules/hot", "", 404, nil},
		{"GET", "/api/v1/rules/hot/stats", "", 404, nil},
	}
	for _, s := range steps {
		status, body := call(t, srv, s.method, s.path, s.body)
		if status != s.status || (s.check != nil && !s.check(body)) {
			t.Fatalf("%s %s: %d %v, want %d", s.method, s.path, status, body, s.status)
		}
	}
}

// TestRulesAPIRedactsSecrets: action secrets never come back from the API,
// and a rule read back and sent again keeps them.
func TestRulesAPIRedactsSecrets(t *testing.T) {
	srv := rulesServer(t)
	body := `{"name":"hook","sql":"SELECT * FROM 'a/#'","options":{"event_time":"processing"},
		"actions":[{"type":"webhook","url":"https://u:s3cret@h.example.com/p?token=t0k","bearer_token":"b34rer","headers":{"Authorization":"Basic eA=="}}]}`
	for _, step := range []struct{ method, path, body string }{
		{"POST", "/api/v1/rules", body},
		{"GET", "/api/v1/rules/hook", ""},
		{"GET", "/api/v1/rules", ""},
	} {
		code, m := call(t, srv, step.method, step.path, step.body)
		js, _ := json.Marshal(m)
		if code >= 300 || !strings.Contains(string(js), rules.Redacted) {
			t.Fatalf("%s %s: %d %s", step.method, step.path, code, js)
		}
		for _, secret := range []string{"s3cret", "t0k", "b34rer", "eA=="} {
			if strings.Contains(string(js), secret) {
				t.Fatalf("%s %s shows %q: %s", step.method, step.path, secret, js)
			}
		}
		if step.method == "GET" && step.path == "/api/v1/rules/hook" {
			// Send what GET returned back with PUT: accepted, still redacted.
			back, _ := json.Marshal(map[string]any{"sql": m["sql"], "actions": m["actions"], "options": m["options"]})
			if code, m2 := call(t, srv, "PUT", "/api/v1/rules/hook", string(back)); code != 200 || m2["options"].(map[string]any)["event_time"] != "processing" {
				t.Fatalf("PUT back: %d %v", code, m2)
			}
		}
	}
}
