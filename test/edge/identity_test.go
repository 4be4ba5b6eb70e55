package edge

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// localClient connects a paho client to the agent's broker.
func localClient(t *testing.T, addr, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c mqtt.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func uplinkOf(st map[string]any) map[string]any {
	up, _ := st["uplink"].(map[string]any)
	return up
}

// lastRefusal is the topic of the agent's last refused message.
func lastRefusal(st map[string]any) string {
	r, _ := uplinkOf(st)["last_refusal"].(map[string]any)
	if r == nil {
		return ""
	}
	return fmt.Sprint(r["topic"])
}

// values are the numbers of one field of a thing in the cloud store.
func (c *cloud) values(thing, field string, since time.Time) ([]float64, error) {
	pts, err := c.telemetry(thing, field, since)
	var vs []float64
	for _, p := range pts {
		v, _ := p.Value.(float64)
		vs = append(vs, v)
	}
	return vs, err
}

// TestGatewayPolicyAndRevocation shows what the platform's identity model
// does to a gateway agent, step by step on one running site:
//   - with only the default policy the cloud refuses the children's topics
//     (visible in the agent's stats) and the subscription to their
//     commands;
//   - the gateway policy, attached to the agent's thing group, lets the
//     children's telemetry in under their own thing names at once, while
//     a device outside the agent's child_prefix stays refused;
//   - revoking the agent's certificate cuts the uplink and keeps it cut;
//     what the site publishes meanwhile is spooled, not lost;
//   - a new certificate written over the old files is picked up at the
//     next attempt: the backlog drains, the commands subscription is back
//     and a command reaches the child, while another device's command is
//     not delivered to the gateway.
func TestGatewayPolicyAndRevocation(t *testing.T) {
	c := newCloud(t)
	id := c.thingWithCert("site-2", "child_prefix=site-2.")
	c.must("things", "create", "site-2.pump", "--attr", "gateway=site-2")
	c.must("groups", "create", "gateways")
	c.must("groups", "add", "gateways", "site-2")
	a := newAgent(t, gatewayAgentConfig(c, id, ""))
	connected := func(want bool) func() error {
		return func() error {
			st, err := a.stats()
			if err != nil {
				return err
			}
			if uplinkOf(st)["connected"] != want {
				return fmt.Errorf("uplink: %v", uplinkOf(st))
			}
			return nil
		}
	}
	eventually(t, 30*time.Second, "uplink connected", connected(true))
	since := time.Now().Add(-time.Minute)
	pump := localClient(t, a.mqttAddr, "site-2.pump")

	// 1. Default policy: the agent owns devices/site-2/ only.
	publish(t, pump, "devices/site-2.pump/telemetry", `{"flow":1}`)
	eventually(t, 30*time.Second, "child refused under the default policy", func() error {
		st, err := a.stats()
		if err != nil {
			return err
		}
		if num(st, "uplink.refused") != 1 || num(st, "uplink.last_refusal.code") != 0x87 || lastRefusal(st) != "devices/site-2.pump/telemetry" {
			return fmt.Errorf("uplink: %v", uplinkOf(st))
		}
		return nil
	})
	st, _ := a.stats()
	if errs := fmt.Sprint(uplinkOf(st)["subscribe_errors"]); !strings.Contains(errs, "devices/+/command") {
		t.Fatalf("the refused commands subscription is not reported: %v", uplinkOf(st))
	}

	// 2. The gateway policy on the group: the live connection is re-judged
	// at once, without reconnecting.
	c.must("policies", "create", "edge-gateway", "-f", filepath.Join("..", "..", "examples", "edge-gateway-policy.json"))
	c.must("policies", "attach", "edge-gateway", "--group", "gateways")
	publish(t, pump, "devices/site-2.pump/telemetry", `{"flow":2}`)
	eventually(t, 30*time.Second, "child telemetry under its own thing name", func() error {
		vs, err := c.values("site-2.pump", "flow", since)
		if err != nil || !slices.Equal(vs, []float64{2}) {
			return fmt.Errorf("flow points %v, %v", vs, err)
		}
		return nil
	})
	other := localClient(t, a.mqttAddr, "other-7")
	publish(t, other, "devices/other-7/telemetry", `{"flow":7}`)
	eventually(t, 30*time.Second, "device outside child_prefix refused", func() error {
		st, err := a.stats()
		if err != nil {
			return err
		}
		if num(st, "uplink.refused") != 2 || lastRefusal(st) != "devices/other-7/telemetry" {
			return fmt.Errorf("uplink: %v", uplinkOf(st))
		}
		return nil
	})

	// 3. Revocation drops the live uplink; every later attempt is refused.
	st, _ = a.stats()
	reconnects := num(st, "uplink.reconnects")
	if out := c.must("certs", "revoke", id.certID); !strings.Contains(out, "REVOKED") {
		t.Fatalf("certs revoke: %s", out)
	}
	eventually(t, 30*time.Second, "uplink cut and refused again and again", func() error {
		st, err := a.stats()
		if err != nil {
			return err
		}
		if up := uplinkOf(st); up["connected"] != false || num(st, "uplink.reconnects") < reconnects+3 {
			return fmt.Errorf("uplink: %v", up)
		}
		return nil
	})
	st, _ = a.stats()
	if e := fmt.Sprint(uplinkOf(st)["last_error"]); !strings.Contains(e, "not authorized") || !strings.Contains(e, "revoked") {
		t.Fatalf("the agent does not say why the uplink is refused: last_error %q", e)
	}
	if !strings.Contains(c.p.logs.String(), "revoked") {
		t.Fatalf("the cloud does not log the revoked certificate:\n%s", tail(c.p.logs.String(), 3000))
	}
	publish(t, pump, "devices/site-2.pump/telemetry", `{"flow":3}`)
	eventually(t, 30*time.Second, "spooled while cut", func() error {
		st, err := a.stats()
		if err != nil {
			return err
		}
		if num(st, "spool.queued") != 1 || uplinkOf(st)["connected"] != false {
			return fmt.Errorf("spool %v uplink %v", st["spool"], uplinkOf(st))
		}
		return nil
	})
	if vs, err := c.values("site-2.pump", "flow", since); err != nil || !slices.Equal(vs, []float64{2}) {
		t.Fatalf("with a revoked certificate the cloud has flow points %v, %v", vs, err)
	}

	// 4. A new certificate over the old files: the agent reconnects with it.
	newID := strings.TrimSpace(c.must("certs", "create", "site-2", "--out", id.dir))
	if newID == id.certID || newID == "" {
		t.Fatalf("new certificate id %q", newID)
	}
	eventually(t, 60*time.Second, "uplink back with the new certificate", connected(true))
	eventually(t, 30*time.Second, "backlog delivered", func() error {
		vs, err := c.values("site-2.pump", "flow", since)
		if err != nil || !slices.Equal(vs, []float64{2, 3}) {
			return fmt.Errorf("flow points %v, %v", vs, err)
		}
		st, err := a.stats()
		if err != nil {
			return err
		}
		if num(st, "spool.queued") != 0 || uplinkOf(st)["subscribe_errors"] != nil {
			return fmt.Errorf("spool %v uplink %v", st["spool"], uplinkOf(st))
		}
		return nil
	})

	// Commands: the cloud's admin client publishes one for a device the
	// gateway does not represent, then one for its child. Deliveries reach
	// the site in order, so once the child's command is there the other
	// one would have arrived before it.
	var mu sync.Mutex
	var got []string
	local := localClient(t, a.mqttAddr, "observer")
	if tok := local.Subscribe("devices/+/command", 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		got = append(got, m.Topic())
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("observer subscribe: %v", tok.Error())
	}
	admin := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + c.mqttAddr).SetClientID("ops").
		SetUsername("admin").SetPassword(c.token))
	if tok := admin.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cloud admin connect: %v", tok.Error())
	}
	defer admin.Disconnect(100)
	publish(t, admin, "devices/other-7/command", `{"action":"stop"}`)
	publish(t, admin, "devices/site-2.pump/command", `{"action":"start"}`)
	eventually(t, 30*time.Second, "child's command at the site", func() error {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(got, "devices/site-2.pump/command") {
			return fmt.Errorf("commands at the site: %v", got)
		}
		if slices.Contains(got, "devices/other-7/command") {
			return fmt.Errorf("another device's command reached the gateway: %v", got)
		}
		return nil
	})
	a.p.stop()
}
