package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestRulesSpoolSurvivesKill9: a rule's webhook is down while a device
// publishes N QoS 1 messages; every PUBACK means the webhook's item is on
// disk, so after kill -9 and a restart with the webhook back, all N arrive
// (duplicates allowed, counted).
func TestRulesSpoolSurvivesKill9(t *testing.T) {
	var up atomic.Bool
	var mu sync.Mutex
	seen := map[float64]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !up.Load() {
			http.Error(w, "sink down", http.StatusServiceUnavailable)
			return
		}
		var row struct{ N float64 }
		if err := json.Unmarshal(b, &row); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen[row.N]++
		mu.Unlock()
	}))
	defer hook.Close()

	dir := t.TempDir()
	srv := startServer(t, dir, "127.0.0.1:0")
	pass := srv.createThing("meter-1")
	if out, errOut, code := srv.cli("rules", "create", "forward",
		"--sql", "SELECT data.n AS n FROM 'devices/+/telemetry'",
		"--action", "type=webhook,url="+hook.URL+",max_retries=-1,retry_backoff=20ms,max_backoff=200ms"); code != 0 {
		t.Fatalf("rules create: %d %q %q", code, out, errOut)
	}
	dev, _, _, err := mqttClient(t, srv.mqttAddr, "meter-1", "meter-1", pass)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := range n {
		payload := fmt.Sprintf(`{"device_id":"meter-1","timestamp":%q,"data":{"n":%d}}`, time.Now().UTC().Format(time.RFC3339Nano), i)
		if _, err := dev.Publish(context.Background(), &paho.Publish{Topic: "devices/meter-1/telemetry", QoS: 1, Payload: []byte(payload)}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	out, _, _ := srv.cli("rules", "stats", "forward")
	if !strings.Contains(out, `"durable": true`) || !strings.Contains(out, `"delivered": 0`) {
		t.Fatalf("stats before the kill: %s", out)
	}
	srv.kill()
	if segs, _ := filepath.Glob(filepath.Join(dir, "rules", "spool", "forward", "0-webhook", "*.seg")); len(segs) == 0 {
		t.Fatal("no spool segment after kill -9")
	}

	up.Store(true)
	srv = startServer(t, dir, "127.0.0.1:0")
	eventually(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != n {
			return fmt.Errorf("%d of %d distinct items delivered", len(seen), n)
		}
		return nil
	})
	mu.Lock()
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	mu.Unlock()
	t.Logf("all %d items delivered after kill -9; %d duplicates", n, dups)
	eventually(t, 20*time.Second, func() error {
		out, _, _ := srv.cli("rules", "stats", "forward")
		if !strings.Contains(out, fmt.Sprintf(`"recovered": %d`, n)) || !strings.Contains(out, `"queued": 0`) {
			return fmt.Errorf("stats after restart: %s", out)
		}
		return nil
	})
	srv.stop()
}
