package access_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/access"
	"github.com/edgewise-iot/edgewise/internal/store"
)

const admin = "0123456789abcdef0123456789abcdef"

func open(t *testing.T, path string, now func() time.Time) *access.Service {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := access.New(ctx, db, access.Options{AdminToken: admin, Now: now, AuditMaxEntries: 1500})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := open(t, path, clock)

	p, err := s.Authenticate(ctx, admin)
	if err != nil || !p.Allows(access.Admin) || p.Actor() != "admin" {
		t.Fatalf("admin: %+v %v", p, err)
	}
	for _, bad := range []string{"", "x", admin + "x", "ewt_nope"} {
		if _, err := s.Authenticate(ctx, bad); !errors.Is(err, access.ErrUnauthorized) {
			t.Errorf("Authenticate(%q) = %v", bad, err)
		}
	}
	ro, roSecret, err := s.Create(ctx, access.CreateRequest{Name: "grafana", Scopes: access.ReadOnly}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(roSecret, access.TokenPrefix) || len(roSecret) < 40 || ro.CreatedBy != "admin" {
		t.Fatalf("token %+v %q", ro, roSecret)
	}
	p, err = s.Authenticate(ctx, roSecret)
	if err != nil || p.TokenID != ro.ID || !p.Allows(access.ThingsRead) || p.Allows(access.ThingsWrite) || p.Allows(access.Admin) {
		t.Fatalf("read-only principal %+v %v", p, err)
	}
	_, wSecret, err := s.Create(ctx, access.CreateRequest{Name: "ci", Scopes: []string{access.ThingsWrite, access.ThingsWrite}, ExpiresIn: "1h"}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	p, _ = s.Authenticate(ctx, wSecret)
	if !p.Allows(access.ThingsRead) || !p.Allows(access.ThingsWrite) || p.Allows(access.RulesRead) || len(p.Scopes) != 1 {
		t.Fatalf("write principal %+v", p)
	}
	for _, bad := range []access.CreateRequest{{Name: "", Scopes: []string{"admin"}}, {Name: "x"}, {Name: "x", Scopes: []string{"root"}}, {Name: "x", Scopes: []string{"admin"}, ExpiresIn: "-1h"}} {
		if _, _, err := s.Create(ctx, bad, "admin"); !errors.Is(err, access.ErrInvalid) {
			t.Errorf("Create(%+v) = %v", bad, err)
		}
	}
	// Expiry.
	now = now.Add(2 * time.Hour)
	if _, err := s.Authenticate(ctx, wSecret); !errors.Is(err, access.ErrUnauthorized) {
		t.Fatalf("expired token accepted: %v", err)
	}
	// Revocation, at once and after a restart.
	if _, err := s.Revoke(ctx, ro.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, roSecret); !errors.Is(err, access.ErrUnauthorized) {
		t.Fatalf("revoked token accepted: %v", err)
	}
	if _, err := s.Revoke(ctx, "nope"); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	_, keep, _ := s.Create(ctx, access.CreateRequest{Name: "keep", Scopes: []string{access.RulesWrite}}, "admin")
	s2 := open(t, path, clock)
	if _, err := s2.Authenticate(ctx, roSecret); err == nil {
		t.Fatal("revoked token accepted after restart")
	}
	if p, err := s2.Authenticate(ctx, keep); err != nil || !p.Allows(access.RulesRead) {
		t.Fatalf("token lost on restart: %v", err)
	}
	ts, next, err := s2.List(ctx, 2, "")
	if err != nil || len(ts) != 2 || next == "" {
		t.Fatalf("list page 1: %v %q %v", ts, next, err)
	}
	ts, next, _ = s2.List(ctx, 2, next)
	if len(ts) != 1 || next != "" {
		t.Fatalf("list page 2: %v %q", ts, next)
	}
}

func TestAudit(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "a.db"), nil)
	for i := range 2100 {
		st := 201
		if i%2 == 1 {
			st = 403
		}
		if err := s.Record(ctx, access.Entry{Actor: "admin", Action: "POST /api/v1/things", Target: "/api/v1/things", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	es, next, err := s.Audit(ctx, access.AuditFilter{Limit: 3})
	if err != nil || len(es) != 3 || next != es[2].ID || es[0].ID <= es[1].ID {
		t.Fatalf("page: %+v %d %v", es, next, err)
	}
	if es[0].Result != "denied" || es[1].Result != "ok" {
		t.Fatalf("results %q %q", es[0].Result, es[1].Result)
	}
	// Trimmed to 1500 at the 2000th record.
	var total int
	cur := int64(0)
	for {
		es, n, err := s.Audit(ctx, access.AuditFilter{Limit: 1000, Before: cur})
		if err != nil {
			t.Fatal(err)
		}
		total += len(es)
		if n == 0 {
			break
		}
		cur = n
	}
	if total != 1600 {
		t.Fatalf("%d entries kept, want 1500 after the trim plus 100 since", total)
	}
	if es, _, _ := s.Audit(ctx, access.AuditFilter{Target: "/api/v1/rules"}); len(es) != 0 {
		t.Fatalf("target filter: %d", len(es))
	}
}

func TestRouteScope(t *testing.T) {
	cases := map[string]string{
		"GET /api/v1/things":                       access.ThingsRead,
		"POST /api/v1/things":                      access.ThingsWrite,
		"DELETE /api/v1/things/{name}/shadow":      access.ThingsWrite,
		"GET /api/v1/things/{name}/telemetry":      access.TelemetryRead,
		"GET /api/v1/search/things":                access.ThingsRead,
		"PUT /api/v1/thing-groups/{name}/things/x": access.ThingsWrite,
		"POST /api/v1/rules/apply":                 access.RulesWrite,
		"GET /api/v1/jobs/{id}":                    access.JobsRead,
		"GET /api/v1/stats":                        "",
		"GET /api/v1/tokens":                       access.Admin,
		"GET /api/v1/audit":                        access.Admin,
		"POST /api/v1/apply":                       access.Admin,
		"POST /api/v1/certificates":                access.Admin,
	}
	for pattern, want := range cases {
		if got := access.RouteScope(pattern); got != want {
			t.Errorf("RouteScope(%q) = %q, want %q", pattern, got, want)
		}
	}
}
