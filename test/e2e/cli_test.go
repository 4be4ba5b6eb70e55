package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCLIThings(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0")

	out, errOut, code := srv.cli("things", "create", "pump-7", "--type", "actuator", "--attr", "location=plant-2", "--attr", "line=3")
	if code != 0 || !strings.Contains(out, "username: pump-7") || !strings.Contains(out, "password: ") {
		t.Fatalf("create: %d %q %q", code, out, errOut)
	}
	// Credentials are shown once: get never shows them.
	out, _, code = srv.cli("things", "get", "pump-7")
	if code != 0 || strings.Contains(out, "password") {
		t.Fatalf("get: %d %q", code, out)
	}
	var th struct {
		Name       string            `json:"name"`
		Type       string            `json:"type"`
		Attributes map[string]string `json:"attributes"`
	}
	if err := json.Unmarshal([]byte(out), &th); err != nil || th.Type != "actuator" || th.Attributes["line"] != "3" {
		t.Fatalf("get output %q: %v", out, err)
	}
	for _, n := range []string{"a-1", "a-2", "a-3"} {
		srv.createThing(n)
	}
	out, _, code = srv.cli("things", "list")
	if code != 0 || strings.Count(out, "\n") != 5 || !strings.Contains(out, "location=plant-2") {
		t.Fatalf("list: %d %q", code, out)
	}
	out, _, code = srv.cli("things", "list", "--limit", "2", "--json")
	var page []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page) != 2 {
		t.Fatalf("list --limit 2: %d %q", code, out)
	}

	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"duplicate", []string{"things", "create", "pump-7"}, 1, "409"},
		{"invalid name", []string{"things", "create", "bad/name"}, 1, "name"},
		{"wildcard name", []string{"things", "create", "dev+"}, 1, "name"},
		{"bad attr flag", []string{"things", "create", "x", "--attr", "novalue"}, 2, "KEY=VALUE"},
		{"missing arg", []string{"things", "get"}, 1, "accepts 1 arg"},
		{"unknown thing", []string{"things", "get", "nope"}, 1, "404"},
		{"bad start", []string{"query", "pump-7", "--start", "yesterday"}, 1, "start"},
		{"bad fn", []string{"query", "pump-7", "--every", "1m", "--fn", "median"}, 1, "fn"},
		{"bad every", []string{"query", "pump-7", "--every", "-5m"}, 1, "every"},
		{"query unknown thing", []string{"query", "nope"}, 1, "404"},
		{"bad token", []string{"things", "list", "--token", "wrong-token-wrong-token"}, 1, "401"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := srv.cli(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errOut, tc.msg)
			}
			if !strings.HasPrefix(errOut, "edgewise: ") && tc.code != 0 {
				t.Fatalf("error is not a sentence from edgewise: %q", errOut)
			}
		})
	}

	out, _, code = srv.cli("things", "delete", "pump-7")
	if code != 0 || !strings.Contains(out, "Deleted") {
		t.Fatalf("delete: %d %q", code, out)
	}
	if _, _, code := srv.cli("things", "get", "pump-7"); code != 1 {
		t.Fatalf("get after delete: exit %d", code)
	}
	srv.stop()
}
