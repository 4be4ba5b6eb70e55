package rules

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/store"
)

const waitFor = 20 * time.Second

func eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met: "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openDB(t testing.TB, dir string) *sql.DB {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "rules.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// startBroker runs a real broker on a random port with the manager behind
// its hook (the manager is created by the caller and set through setHook).
type hookSlot struct {
	mu   sync.RWMutex
	h    broker.PublishHook
	seen atomic.Int64 // messages from clients (Server.Publish does not call hooks)
}

func (s *hookSlot) OnPublish(ctx context.Context, b []*broker.Message) error {
	s.seen.Add(int64(len(b)))
	s.mu.RLock()
	h := s.h
	s.mu.RUnlock()
	if h == nil {
		return nil
	}
	return h.OnPublish(ctx, b)
}

func (s *hookSlot) set(h broker.PublishHook) {
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
}

func startBroker(t testing.TB, hook broker.PublishHook) (*broker.Server, string) {
	t.Helper()
	s, err := broker.New(broker.Options{Hook: hook, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s, ln.Addr().String()
}

func newManager(t testing.TB, db *sql.DB, opts Options) *Manager {
	t.Helper()
	m, err := New(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// collector is a webhook endpoint recording JSON bodies.
type collector struct {
	mu     sync.Mutex
	bodies []map[string]any
	srv    *httptest.Server
}

func newCollector(t testing.TB) *collector {
	c := &collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.bodies = append(c.bodies, m)
		c.mu.Unlock()
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) got() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.bodies...)
}

func msg(topic, payload string) *broker.Message {
	return &broker.Message{Topic: topic, Payload: []byte(payload), ClientID: "c-" + topic, Received: time.Now(),
		Principal: &broker.Principal{Name: "dev"}}
}
