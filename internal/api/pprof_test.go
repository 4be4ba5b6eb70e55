package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/shadow"
	"github.com/edgewise-iot/edgewise/internal/store"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

func TestPprofBehindAdminToken(t *testing.T) {
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
	get := func(srv *httptest.Server, path string, auth bool) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer tok-0123456789abcdef")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, on := range []bool{false, true} {
		a, err := New(Options{Token: "tok-0123456789abcdef", Registry: reg, States: st, Store: ts, Pprof: on})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.Handler())
		code, body := get(srv, "/debug/pprof/goroutine?debug=1", true)
		switch {
		case !on && code != http.StatusNotFound:
			t.Errorf("pprof off: status %d, want 404", code)
		case on && (code != http.StatusOK || !strings.Contains(body, "goroutine")):
			t.Errorf("pprof on: status %d body %.80q, want a goroutine profile", code, body)
		}
		if on {
			if code, _ := get(srv, "/debug/pprof/goroutine?debug=1", false); code != http.StatusUnauthorized {
				t.Errorf("pprof without token: status %d, want 401", code)
			}
		}
		srv.Close()
	}
}
