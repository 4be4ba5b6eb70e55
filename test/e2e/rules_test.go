package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestRulesEndToEnd: rules created with the CLI act on a device's MQTT
// telemetry, survive a clean restart and a kill -9, and bad input gets
// the documented exit codes.
func TestRulesEndToEnd(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "127.0.0.1:0")
	pass := srv.createThing("boiler-1")

	out, errOut, code := srv.cli("rules", "create", "hot",
		"--sql", "SELECT topic(2) AS device, data.temperature AS value FROM 'devices/+/telemetry' WHERE data.temperature > 30",
		"--action", "type=republish,topic=alerts/${device},qos=1",
		"--action", "type=tsdb,measurement=alerts,tags.device=${device},fields.value=${value}")
	if code != 0 || !strings.Contains(out, "Created rule hot") {
		t.Fatalf("rules create: %d %q %q", code, out, errOut)
	}
	if _, errOut, code = srv.cli("rules", "create", "bad", "--sql", "SELECT x\nFROM 'a' WHERE ((", "--action", "type=tsdb"); code != 1 || !strings.Contains(errOut, "line 2, column") {
		t.Fatalf("bad SQL: exit %d %q", code, errOut)
	}
	if _, errOut, code = srv.cli("rules", "create", "bad", "--sql", "SELECT * FROM 'a'", "--action", "tpye=tsdb"); code != 2 {
		t.Fatalf("bad --action: exit %d %q", code, errOut)
	}
	rulesFile := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesFile, []byte(`rules:
  - name: avg
    sql: SELECT topic(2) AS device, avg(data.temperature) AS t FROM 'devices/+/telemetry' GROUP BY topic(2), TUMBLINGWINDOW(mi, 1)
    actions: [{type: tsdb, measurement: avg}]
`), 0o600)
	if out, errOut, code = srv.cli("rules", "apply", "-f", rulesFile); code != 0 || !strings.Contains(out, "rule avg created") {
		t.Fatalf("apply: %d %q %q", code, out, errOut)
	}
	if out, _, _ = srv.cli("rules", "apply", "-f", rulesFile); !strings.Contains(out, "rule avg unchanged") {
		t.Fatalf("second apply: %q", out)
	}

	admin, _, alerts, err := mqttClient(t, srv.mqttAddr, "ops", "admin", srv.token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "alerts/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	dev, _, _, err := mqttClient(t, srv.mqttAddr, "boiler-1", "boiler-1", pass)
	if err != nil {
		t.Fatal(err)
	}
	for _, temp := range []float64{21.5, 35.25} {
		payload := fmt.Sprintf(`{"device_id":"boiler-1","timestamp":%q,"data":{"temperature":%v}}`, time.Now().UTC().Format(time.RFC3339Nano), temp)
		if _, err := dev.Publish(context.Background(), &paho.Publish{Topic: "devices/boiler-1/telemetry", QoS: 1, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case p := <-alerts:
		if p.Topic != "alerts/boiler-1" || string(p.Payload) != `{"device":"boiler-1","value":35.25}` {
			t.Fatalf("alert %s %s", p.Topic, p.Payload)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no alert\n%s", srv.logs.String())
	}
	eventually(t, 20*time.Second, func() error {
		out, _, _ := srv.cli("rules", "stats", "hot")
		if !strings.Contains(out, `"matched": 2`) || !strings.Contains(out, `"delivered": 1`) {
			return fmt.Errorf("stats %s", out)
		}
		return nil
	})

	srv.stop()
	srv = startServer(t, dir, "127.0.0.1:0")
	out, _, code = srv.cli("rules", "list")
	if code != 0 || !strings.Contains(out, "hot") || !strings.Contains(out, "avg") {
		t.Fatalf("rules after clean restart: %q", out)
	}
	if _, _, code = srv.cli("rules", "disable", "hot"); code != 0 {
		t.Fatal("disable failed")
	}
	srv.kill()
	srv = startServer(t, dir, "127.0.0.1:0")
	out, _, _ = srv.cli("rules", "list")
	if !strings.Contains(out, "hot   false") && !strings.Contains(out, "hot  false") {
		t.Fatalf("rules after kill -9: %q", out)
	}
	if out, _, code = srv.cli("rules", "delete", "avg"); code != 0 {
		t.Fatalf("delete: %q", out)
	}
	if _, _, code = srv.cli("rules", "get", "avg"); code != 1 {
		t.Fatalf("get deleted rule: exit %d", code)
	}
	srv.stop()
}
