// Package devices_test runs the device services end to end in process: a
// real broker on a random port, real MQTT clients (the SDK, paho.golang),
// the registry, shadow, commands and jobs services on SQLite and the HTTP
// API, composed like internal/app does (with a cheap password hash so a
// thousand things can be created quickly).
package devices_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/edgewise-iot/edgewise/internal/api"
	"github.com/edgewise-iot/edgewise/internal/auth"
	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/commands"
	"github.com/edgewise-iot/edgewise/internal/ingest"
	"github.com/edgewise-iot/edgewise/internal/jobs"
	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/shadow"
	"github.com/edgewise-iot/edgewise/internal/store"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

const token = "test-admin-token-0123456789"

type env struct {
	t        testing.TB
	dir      string
	db       *sql.DB
	reg      *registry.Registry
	states   *shadow.Store
	ts       *tsdb.DB
	shadows  *shadow.Service
	cmds     *commands.Service
	jobs     *jobs.Service
	broker   *broker.Server
	ln       net.Listener
	http     *httptest.Server
	mqttAddr string
	closed   bool
}

// stateAdapter feeds devices/{id}/state reports to the shadow service, as
// internal/app does.
type stateAdapter struct{ s *shadow.Service }

func (a stateAdapter) UpdateReported(ctx context.Context, thing string, patch map[string]any, t time.Time) error {
	return a.s.ReportState(ctx, thing, patch, t)
}

func newEnv(t testing.TB, dir string) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, dir: dir}
	var err error
	if e.db, err = store.OpenSQLite(ctx, filepath.Join(dir, "registry.db")); err != nil {
		t.Fatal(err)
	}
	if e.reg, err = registry.New(ctx, e.db, registry.Options{HashCost: bcrypt.MinCost}); err != nil {
		t.Fatal(err)
	}
	if e.states, err = shadow.New(ctx, e.db, shadow.Options{FlushInterval: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	e.shadows = shadow.NewService(e.states, nil, shadow.ServiceOptions{})
	if e.ts, err = tsdb.Open(ctx, tsdb.Options{Dir: filepath.Join(dir, "tsdb")}); err != nil {
		t.Fatal(err)
	}
	pipe, err := ingest.NewPipeline(ingest.Options{Points: e.ts, State: stateAdapter{e.shadows}})
	if err != nil {
		t.Fatal(err)
	}
	if e.cmds, err = commands.New(ctx, e.db, nil, commands.Options{SweepInterval: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if e.jobs, err = jobs.New(ctx, e.db, e.reg, nil, jobs.Options{TickInterval: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	au := auth.New(auth.Options{AdminToken: token, Things: e.reg})
	if e.broker, err = broker.New(broker.Options{Authenticator: au, Authorizer: au,
		Hook: broker.ChainHooks(pipe, e.shadows, e.cmds, e.jobs), Observer: e.cmds, MaxInflight: 1024, MaxQueued: 10000}); err != nil {
		t.Fatal(err)
	}
	e.shadows.SetPublisher(e.broker)
	e.cmds.SetPublisher(e.broker)
	e.jobs.SetPublisher(e.broker)
	a, err := api.New(api.Options{Token: token, Registry: e.reg, States: e.states, Store: e.ts,
		Shadows: e.shadows, Commands: e.cmds, Jobs: e.jobs})
	if err != nil {
		t.Fatal(err)
	}
	e.http = httptest.NewServer(a.Handler())
	if e.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	e.mqttAddr = e.ln.Addr().String()
	go e.broker.Serve(e.ln)
	t.Cleanup(e.close)
	return e
}

// close shuts everything down in the server's order (idempotent).
func (e *env) close() {
	if e.closed {
		return
	}
	e.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.http.Close()
	if err := e.broker.Close(ctx); err != nil {
		e.t.Error(err)
	}
	for _, c := range []interface{ Close(context.Context) error }{e.cmds, e.jobs, e.states} {
		if err := c.Close(ctx); err != nil {
			e.t.Error(err)
		}
	}
	if err := e.ts.Close(); err != nil {
		e.t.Error(err)
	}
	e.db.Close()
}

func (e *env) url() string { return "mqtt://" + e.mqttAddr }

func (e *env) createThing(name string, attrs map[string]string) string {
	e.t.Helper()
	_, creds, err := e.reg.CreateThing(context.Background(), registry.Thing{Name: name, Type: "sim", Attributes: attrs})
	if err != nil {
		e.t.Fatal(err)
	}
	return creds.Password
}

// call performs an API request with a JSON body (string or value) and
// decodes the answer into out; it returns the status.
func (e *env) call(method, path string, body, out any) int {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.http.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
