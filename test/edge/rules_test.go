package edge

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

type agentView struct {
	Name         string `json:"name"`
	RulesVersion int64  `json:"rules_version"`
	InSync       bool   `json:"in_sync"`
	Status       *struct {
		RulesVersion    int64    `json:"rules_version"`
		Rules           []string `json:"rules"`
		RejectedVersion int64    `json:"rejected_version"`
		RulesError      string   `json:"rules_error"`
	} `json:"status"`
}

// TestCentralRulesAndThingIdentity runs an agent that logs in as its own
// thing with the certificate the platform issued for it (no password): the
// cloud pushes its rule set, the agent runs it and reports the version,
// forwards its own namespace, and, with only the default policy, the
// cloud's refusal of a child device's topic is visible in the agent's
// stats.
func TestCentralRulesAndThingIdentity(t *testing.T) {
	c := newCloud(t)
	id := c.thingWithCert("site-1")
	a := newAgent(t, fmt.Sprintf(`
name: site-1
data_dir: $DATA
mqtt:
  addr: "$MQTT"
  users: [{username: sensor-1, password: s1}, {username: valve-1, password: v1}, {username: child-9, password: c9}]
http: {addr: "$HTTP"}
uplink:
  broker: tls://%s
  ca_file: %s
  cert_file: %s
  key_file: %s
  gateway: true
  reconnect_max: 1s
`, c.tlsAddr, id.CAFile(), id.CertFile(), id.KeyFile()))
	eventually(t, 30*time.Second, "uplink connected", func() error {
		st, err := a.stats()
		if err != nil {
			return err
		}
		if up, _ := st["uplink"].(map[string]any); up["connected"] != true {
			return fmt.Errorf("uplink: %v", up)
		}
		return nil
	})

	// Invalid SQL is refused by the cloud with a sentence (exit code 1).
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - name: broken\n    sql: SELEKT nothing\n    actions: [{type: republish, topic: x}]\n"), 0o600)
	if out, code := c.cli("agents", "rules", "set", "site-1", "-f", bad); code != 1 || !strings.Contains(out, "sql") {
		t.Fatalf("invalid rule set: exit %d: %s", code, out)
	}

	// Version 1: the seed's threshold rule, pushed from the cloud.
	good := filepath.Join(dir, "rules.yaml")
	os.WriteFile(good, []byte(`rules:
  - name: hot
    sql: |
      SELECT topic(2) AS device, data.temperature AS value, 30 AS threshold
        FROM 'devices/+/telemetry' WHERE data.temperature > 30
    actions:
      - {type: republish, topic: "devices/${device}/alerts", qos: 1}
`), 0o600)
	if out, code := c.cli("agents", "rules", "set", "site-1", "-f", good); code != 0 || !strings.Contains(out, "version 1") {
		t.Fatalf("rules set: exit %d: %s", code, out)
	}
	eventually(t, 30*time.Second, "agent runs version 1", func() error {
		var v agentView
		if _, err := c.api("GET", "/api/v1/agents/site-1", nil, &v); err != nil {
			return err
		}
		if !v.InSync || v.Status == nil || v.Status.RulesVersion != 1 || len(v.Status.Rules) != 1 {
			return fmt.Errorf("agent view: %+v status %+v", v, v.Status)
		}
		return nil
	})

	// The pushed rule runs at the edge: a hot reading reaches the local
	// actuator.
	alerts := make(chan string, 10)
	valve := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + a.mqttAddr).SetClientID("valve-1").
		SetUsername("valve-1").SetPassword("v1"))
	if tok := valve.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("actuator connect: %v", tok.Error())
	}
	defer valve.Disconnect(100)
	if tok := valve.Subscribe("devices/+/alerts", 1, func(_ mqtt.Client, m mqtt.Message) { alerts <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("actuator subscribe: %v", tok.Error())
	}
	sensor := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + a.mqttAddr).SetClientID("sensor-1").
		SetUsername("sensor-1").SetPassword("s1"))
	if tok := sensor.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("sensor connect: %v", tok.Error())
	}
	defer sensor.Disconnect(100)
	sensor.Publish("devices/sensor-1/telemetry", 1, false, `{"device_id":"sensor-1","data":{"temperature":35.5}}`).Wait()
	select {
	case m := <-alerts:
		if !strings.Contains(m, `"value":35.5`) || !strings.Contains(m, `"device":"sensor-1"`) {
			t.Fatalf("alert: %s", m)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no local alert from the pushed rule")
	}

	// The agent's own namespace is forwarded and stored under its thing.
	since := time.Now().Add(-time.Minute)
	sensor.Publish("devices/site-1/telemetry", 1, false, `{"uplink_check":7}`).Wait()
	eventually(t, 30*time.Second, "agent telemetry in the cloud", func() error {
		pts, err := c.telemetry("site-1", "uplink_check", since)
		if err != nil || len(pts) != 1 {
			return fmt.Errorf("points %v, %v", pts, err)
		}
		return nil
	})
	// A child's topic is refused by the cloud's default policy for this
	// thing (it owns devices/site-1/ only): the agent drops it, counts it
	// and says why.
	child := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + a.mqttAddr).SetClientID("child-9").
		SetUsername("child-9").SetPassword("c9"))
	if tok := child.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("child connect: %v", tok.Error())
	}
	defer child.Disconnect(100)
	child.Publish("devices/child-9/telemetry", 1, false, `{"temperature":1}`).Wait()
	eventually(t, 30*time.Second, "refusal visible", func() error {
		st, err := a.stats()
		if err != nil {
			return err
		}
		if up, _ := st["uplink"].(map[string]any); num(st, "uplink.refused") < 1 || num(st, "uplink.last_refusal.code") != 0x87 ||
			fmt.Sprint(up["last_refusal"].(map[string]any)["topic"]) != "devices/child-9/telemetry" {
			return fmt.Errorf("uplink: %v", st["uplink"])
		}
		return nil
	})

	// Version 2 passes the cloud's checks but not the agent's (a republish
	// without a topic): the agent keeps version 1 and reports why.
	os.WriteFile(good, []byte("rules:\n  - name: hot2\n    sql: SELECT * FROM 'devices/+/telemetry'\n    actions: [{type: republish}]\n"), 0o600)
	if out, code := c.cli("agents", "rules", "set", "site-1", "-f", good); code != 0 {
		t.Fatalf("rules set v2: exit %d: %s", code, out)
	}
	eventually(t, 30*time.Second, "agent rejects version 2", func() error {
		var v agentView
		if _, err := c.api("GET", "/api/v1/agents/site-1", nil, &v); err != nil {
			return err
		}
		if v.Status == nil || v.Status.RejectedVersion != 2 || v.Status.RulesVersion != 1 || v.Status.RulesError == "" || v.InSync {
			return fmt.Errorf("agent view: %+v status %+v", v, v.Status)
		}
		return nil
	})

	// After a restart the agent still runs version 1 and says so.
	a.p.stop()
	a.start()
	out, code := c.cli("agents", "list")
	if code != 0 || !strings.Contains(out, "site-1") {
		t.Fatalf("agents list: exit %d: %s", code, out)
	}
	eventually(t, 30*time.Second, "rule survives restart", func() error {
		resp, err := a.stats()
		if err != nil {
			return err
		}
		if num(resp, "ruleset.rules_version") != 1 || num(resp, "rules.running") < 1 {
			return fmt.Errorf("ruleset %v rules %v", resp["ruleset"], resp["rules"])
		}
		return nil
	})
	a.p.stop()
}
