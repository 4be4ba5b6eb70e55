package app

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestTokensAndAudit checks scoped tokens on API routes and on the
// Influx-compatible write and query endpoints, revocation, and the audit
// log of changes.
func TestTokensAndAudit(t *testing.T) {
	s := startTestServer(t, t.TempDir())
	type created struct {
		Token struct {
			ID     string   `json:"id"`
			Scopes []string `json:"scopes"`
		} `json:"token"`
		Secret string `json:"secret"`
	}
	var ro, writer, tele created
	s.must("POST", "/api/v1/tokens", map[string]any{"name": "dashboard", "read_only": true}, &ro, 201)
	s.must("POST", "/api/v1/tokens", map[string]any{"name": "provisioner", "scopes": []string{"things:write"}}, &writer, 201)
	s.must("POST", "/api/v1/tokens", map[string]any{"name": "gateway", "scopes": []string{"telemetry:write"}}, &tele, 201)
	s.must("POST", "/api/v1/tokens", map[string]any{"name": "bad", "scopes": []string{"root"}}, nil, 400)

	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	// Read-only: reads work, writes get 403 with a clear message.
	if st := s.call("GET", "/api/v1/things", nil, nil, ro.Secret); st != 200 {
		t.Fatalf("read-only GET things: %d", st)
	}
	if st := s.call("POST", "/api/v1/things", map[string]any{"name": "d1"}, &e, ro.Secret); st != 403 || !strings.Contains(e.Error.Message, "things:write") || !strings.Contains(e.Error.Message, "read-only") {
		t.Fatalf("read-only POST things: %d %+v", st, e)
	}
	if st := s.call("GET", "/api/v1/tokens", nil, nil, ro.Secret); st != 403 {
		t.Fatalf("read-only GET tokens: %d", st)
	}
	// things:write creates things but cannot manage rules or tokens.
	if st := s.call("POST", "/api/v1/things", map[string]any{"name": "d1"}, nil, writer.Secret); st != 201 {
		t.Fatalf("writer POST things: %d", st)
	}
	if st := s.call("GET", "/api/v1/rules", nil, nil, writer.Secret); st != 403 {
		t.Fatalf("writer GET rules: %d", st)
	}
	// Influx endpoints: telemetry:write may write, a read-only token may
	// query but not write.
	influxReq := func(method, path, ctype, body, tok string) int {
		req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Token "+tok)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	influx := func(method, path, body, tok string) int { return influxReq(method, path, "", body, tok) }
	if st := influx("POST", "/api/v2/write?bucket=edgewise&precision=s", "telemetry,device_id=d1 temperature=21 1700000000", tele.Secret); st != 204 {
		t.Fatalf("influx write with telemetry:write: %d", st)
	}
	if st := influx("POST", "/api/v2/write?bucket=edgewise&precision=s", "telemetry,device_id=d1 temperature=22 1700000001", ro.Secret); st != 401 && st != 403 {
		t.Fatalf("influx write with read-only token: %d", st)
	}
	if st := influx("GET", "/query?db=edgewise&q=SELECT+*+FROM+telemetry", "", ro.Secret); st != 200 {
		t.Fatalf("influx query with read-only token: %d", st)
	}
	if st := influx("GET", "/query?db=edgewise&q=SELECT+*+FROM+telemetry", "", tele.Secret); st != 200 {
		t.Fatalf("influx query with telemetry:write token: %d", st)
	}
	if st := influx("GET", "/query?db=edgewise&q=SELECT+*+FROM+telemetry", "", writer.Secret); st != 401 && st != 403 {
		t.Fatalf("influx query with things:write token: %d", st)
	}
	// v2 management: a read-only token lists buckets but neither creates
	// nor drops them, nor deletes points; telemetry:write deletes points
	// but manages no buckets; the admin token does both.
	if st := influx("GET", "/api/v2/buckets?name=edgewise", "", ro.Secret); st != 200 {
		t.Fatalf("read-only bucket list: %d", st)
	}
	if st := influx("POST", "/api/v2/buckets", `{"name": "ro-made"}`, ro.Secret); st != 401 && st != 403 {
		t.Fatalf("read-only bucket create: %d", st)
	}
	if st := influx("POST", "/api/v2/buckets", `{"name": "gw-made"}`, tele.Secret); st != 401 && st != 403 {
		t.Fatalf("telemetry:write bucket create: %d", st)
	}
	delBody := `{"start": "2023-01-01T00:00:00Z", "stop": "2024-01-01T00:00:00Z", "predicate": "_measurement=\"telemetry\""}`
	if st := influx("POST", "/api/v2/delete?org=o&bucket=edgewise", delBody, ro.Secret); st != 401 && st != 403 {
		t.Fatalf("read-only delete: %d", st)
	}
	if st := influx("POST", "/api/v2/delete?org=o&bucket=edgewise", delBody, tele.Secret); st != 204 {
		t.Fatalf("telemetry:write delete: %d", st)
	}
	if st := influx("POST", "/api/v2/buckets", `{"name": "admin-made"}`, s.token); st != 201 {
		t.Fatalf("admin bucket create: %d", st)
	}
	if st := influx("DELETE", "/api/v2/buckets/"+influxBucketID(t, s, "admin-made"), "", ro.Secret); st != 401 && st != 403 {
		t.Fatalf("read-only bucket drop: %d", st)
	}
	if st := influx("DELETE", "/api/v2/buckets/"+influxBucketID(t, s, "admin-made"), "", s.token); st != 204 {
		t.Fatalf("admin bucket drop: %d", st)
	}
	// InfluxQL through /query: statements that change points need
	// telemetry:write, statements that manage databases admin, also when
	// sent as a POST form.
	q := func(method, stmt, tok string) int {
		form := url.Values{"db": {"edgewise"}, "q": {stmt}}.Encode()
		if method == "GET" {
			return influxReq("GET", "/query?"+form, "", "", tok)
		}
		return influxReq("POST", "/query", "application/x-www-form-urlencoded", form, tok)
	}
	for _, c := range []struct {
		stmt, method, tok string
		ok                bool
	}{
		{"CREATE DATABASE ro_made", "GET", ro.Secret, false},
		{"CREATE DATABASE ro_made", "POST", ro.Secret, false},
		{"CREATE DATABASE tele_made", "POST", tele.Secret, false},
		{"DROP DATABASE edgewise", "POST", tele.Secret, false},
		{"DELETE FROM telemetry WHERE time < 0", "POST", ro.Secret, false},
		{"DROP SERIES FROM telemetry WHERE device_id = 'none'", "GET", ro.Secret, false},
		{"SELECT * INTO copy FROM telemetry", "POST", ro.Secret, false},
		{"SELECT * FROM telemetry; DELETE FROM telemetry WHERE time < 0", "POST", ro.Secret, false},
		{"DELETE FROM telemetry WHERE time < 0", "POST", tele.Secret, true},
		{"CREATE DATABASE admin_made_ql", "POST", s.token, true},
		{"DROP DATABASE admin_made_ql", "GET", s.token, true},
	} {
		st := q(c.method, c.stmt, c.tok)
		if c.ok && st != 200 || !c.ok && st != 401 && st != 403 {
			t.Fatalf("%s %q: %d (allowed: %v)", c.method, c.stmt, st, c.ok)
		}
	}
	// Revocation takes effect at once; the admin token keeps working.
	s.must("DELETE", "/api/v1/tokens/"+writer.Token.ID, nil, nil, 200)
	if st := s.call("GET", "/api/v1/things", nil, nil, writer.Secret); st != 401 {
		t.Fatalf("revoked token: %d", st)
	}
	s.must("DELETE", "/api/v1/tokens/nope", nil, nil, 404)
	var list struct {
		Tokens []struct {
			Name      string  `json:"name"`
			RevokedAt *string `json:"revoked_at"`
		} `json:"tokens"`
	}
	s.must("GET", "/api/v1/tokens", nil, &list, 200)
	if len(list.Tokens) != 3 {
		t.Fatalf("tokens %+v", list.Tokens)
	}
	// The audit log has every change, who made it and how it ended.
	var audit struct {
		Entries []struct {
			ID                            int64
			Actor, Action, Target, Result string
			Status                        int
		} `json:"entries"`
		Next string `json:"next"`
	}
	s.must("GET", "/api/v1/audit?limit=1000", nil, &audit, 200)
	var lines []string
	for _, en := range audit.Entries {
		lines = append(lines, en.Actor+" "+en.Action+" "+en.Target+" "+en.Result)
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"admin DELETE /api/v1/tokens/{id} /api/v1/tokens/nope error",
		"token:provisioner (" + writer.Token.ID + ") POST /api/v1/things /api/v1/things ok",
		"token:dashboard (" + ro.Token.ID + ") POST /api/v1/things /api/v1/things denied",
		"admin POST /api/v1/tokens /api/v1/tokens ok",
		"admin POST /api/v1/tokens /api/v1/tokens error",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("audit lacks %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "GET ") || strings.Contains(got, "/api/v2/write") {
		t.Errorf("audit records reads or telemetry writes:\n%s", got)
	}
	s.must("GET", "/api/v1/audit?limit=2", nil, &audit, 200)
	last := audit.Entries[1].ID
	s.must("GET", "/api/v1/audit?limit=2&next="+audit.Next, nil, &audit, 200)
	if len(audit.Entries) != 2 || audit.Entries[0].ID >= last || audit.Entries[1].ID >= audit.Entries[0].ID {
		t.Fatalf("audit page 2 after id %d: %+v", last, audit.Entries)
	}
}

// influxBucketID looks a bucket's ID up through GET /api/v2/buckets.
func influxBucketID(t *testing.T, s *testServer, name string) string {
	t.Helper()
	var list struct {
		Buckets []struct{ ID, Name string } `json:"buckets"`
	}
	s.must("GET", "/api/v2/buckets?name="+name, nil, &list, 200)
	if len(list.Buckets) != 1 || list.Buckets[0].Name != name {
		t.Fatalf("bucket %s: %+v", name, list)
	}
	return list.Buckets[0].ID
}
