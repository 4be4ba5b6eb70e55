package rules

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/rules/action"
)

// flakyHook is a webhook endpoint that refuses (503) until up is set and
// then records the "n" field of each body.
type flakyHook struct {
	up   atomic.Bool
	mu   sync.Mutex
	seen map[string]int
	srv  *httptest.Server
}

func newFlakyHook(t *testing.T) *flakyHook {
	h := &flakyHook{seen: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !h.up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h.mu.Lock()
		h.seen[string(b)]++
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *flakyHook) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// TestDurableActionSurvivesRestart: QoS 1 messages whose webhook is down
// are on disk when OnPublish returns; a manager stopped with the sink still
// down leaves them in the spool, and the next manager delivers every one.
func TestDurableActionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	hook := newFlakyHook(t)
	db := openDB(t, dir)
	opts := Options{SpoolDir: spoolDir, CloseTimeout: 1}
	m, err := New(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Create(context.Background(), Rule{Name: "durable", Enabled: true,
		SQL: "SELECT n FROM 'dev/+/t'",
		Actions: []action.Spec{
			{Type: "webhook", URL: hook.srv.URL, MaxRetries: -1, RetryBackoff: action.Duration(1e6), MaxBackoff: action.Duration(5e6)},
		}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		bm := msg("dev/a/t", fmt.Sprintf(`{"n":%d}`, i))
		bm.QoS = 1
		if err := m.OnPublish(context.Background(), []*broker.Message{bm}); err != nil {
			t.Fatal(err)
		}
	}
	// OnPublish returned: every output is in the spool already.
	st, _ := m.Stats(context.Background(), "durable")
	if a := st.Actions[0]; !a.Durable || a.Queued != n || a.Delivered != 0 {
		t.Fatalf("after publishing: %+v", a)
	}
	segs, _ := filepath.Glob(filepath.Join(spoolDir, "durable", "0-webhook", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no spool segment on disk")
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	hook.up.Store(true)
	m2 := newManager(t, db, opts)
	eventually(t, func() bool { return hook.distinct() == n }, "all %d items delivered after restart (got %d)", n, hook.distinct())
	eventually(t, func() bool {
		st, _ := m2.Stats(context.Background(), "durable")
		return st.Actions[0].Queued == 0
	}, "spool drained")
	st, _ = m2.Stats(context.Background(), "durable")
	if a := st.Actions[0]; a.Recovered != n || a.Delivered < n {
		t.Fatalf("after restart: %+v", a)
	}

	// Deleting the rule removes its spool.
	if err := m2.Delete(context.Background(), "durable"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(spoolDir, "durable")); !os.IsNotExist(err) {
		t.Fatalf("spool of a deleted rule kept: %v", err)
	}
}

// TestDurableOptOutAndPrune: durable: false keeps the queue in memory,
// and updating a rule so an action disappears discards that action's spool.
func TestDurableOptOutAndPrune(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	hook := newFlakyHook(t)
	hook.up.Store(true)
	m := newManager(t, openDB(t, dir), Options{SpoolDir: spoolDir})
	no := false
	r := Rule{Name: "r", Enabled: true, SQL: "SELECT n FROM 'dev/+/t'", Actions: []action.Spec{
		{Type: "webhook", URL: hook.srv.URL},
		{Type: "webhook", URL: hook.srv.URL, Durable: &no},
	}}
	if _, err := m.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	st, _ := m.Stats(context.Background(), "r")
	if !st.Actions[0].Durable || st.Actions[1].Durable {
		t.Fatalf("durable flags: %+v", st.Actions)
	}
	if _, err := os.Stat(filepath.Join(spoolDir, "r", "1-webhook")); !os.IsNotExist(err) {
		t.Fatal("non-durable action got a spool")
	}
	r.Actions = r.Actions[1:]
	if _, err := m.Update(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(spoolDir, "r", "0-webhook")); !os.IsNotExist(err) {
		t.Fatal("spool of a removed action kept")
	}
}
