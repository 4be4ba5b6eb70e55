package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// soak scales the phases of the outage test: EDGEWISE_EDGE_SOAK=10m runs
// the same scenario for about ten minutes instead of about half a minute.
func soak(t *testing.T) float64 {
	v := os.Getenv("EDGEWISE_EDGE_SOAK")
	if v == "" {
		return 1
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 30*time.Second {
		t.Fatalf("EDGEWISE_EDGE_SOAK=%q: want a duration of at least 30s", v)
	}
	return d.Seconds() / 30
}

// siteDevice publishes the seed's envelope with QoS 1 at a fixed rate to
// the agent and records every message the agent acknowledged.
type siteDevice struct {
	id    string
	c     mqtt.Client
	mu    sync.Mutex
	times []time.Time // times[seq] = the message's timestamp, for acknowledged seqs
}

func newSiteDevice(t *testing.T, addr, id string) *siteDevice {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond).SetKeepAlive(5 * time.Second)
	d := &siteDevice{id: id, c: mqtt.NewClient(o)}
	if tok := d.c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s: connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(100) })
	return d
}

// run publishes every interval until ctx ends. A message is retried until
// the agent acknowledges it; only then is the next one produced, so
// acknowledged messages are exactly seq 0..n-1.
func (d *siteDevice) run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ts := time.Now().UTC().Truncate(time.Microsecond)
		payload, _ := json.Marshal(map[string]any{"device_id": d.id, "timestamp": ts.Format(time.RFC3339Nano),
			"data": map[string]any{"seq": seq, "temperature": 20 + float64(seq%10)}})
		for {
			tok := d.c.Publish("devices/"+d.id+"/telemetry", 1, false, payload)
			if tok.WaitTimeout(3*time.Second) && tok.Error() == nil {
				break
			}
			select {
			case <-ctx.Done():
				return // not acknowledged: not counted
			case <-time.After(200 * time.Millisecond):
			}
		}
		d.mu.Lock()
		d.times = append(d.times, ts)
		d.mu.Unlock()
	}
}

func (d *siteDevice) acked() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.times...)
}

// checkCloud requires every acknowledged message of d exactly once in the
// cloud store, in order, with its original timestamp.
func checkCloud(c *cloud, d *siteDevice, since time.Time) error {
	want := d.acked()
	pts, err := c.telemetry(d.id, "seq", since)
	if err != nil {
		return err
	}
	if len(pts) != len(want) {
		return fmt.Errorf("device %s: %d points in the cloud, %d messages acknowledged by the agent", d.id, len(pts), len(want))
	}
	for i, p := range pts {
		if v, _ := p.Value.(float64); int(v) != i || !p.Time.Equal(want[i]) {
			return fmt.Errorf("device %s: point %d is seq %v at %s, want seq %d at %s", d.id, i, p.Value,
				p.Time.Format(time.RFC3339Nano), i, want[i].Format(time.RFC3339Nano))
		}
	}
	return nil
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// gatewaySite registers a site as an operator would: the agent's thing
// (attribute child_prefix) with its certificate, in the thing group
// "gateways" to which the gateway policy of examples/ is attached, and
// the child things that only speak to the agent. It returns the agent's
// identity.
func gatewaySite(t *testing.T, c *cloud, site string, children ...string) identity {
	t.Helper()
	id := c.thingWithCert(site, "child_prefix="+site+".")
	c.must("groups", "create", "gateways")
	c.must("groups", "add", "gateways", site)
	c.must("policies", "create", "edge-gateway", "-f", filepath.Join("..", "..", "examples", "edge-gateway-policy.json"))
	c.must("policies", "attach", "edge-gateway", "--group", "gateways")
	for _, ch := range children {
		c.must("things", "create", ch, "--attr", "gateway="+site)
	}
	return id
}

// gatewayAgentConfig is the uplink of a site agent in gateway mode that
// logs in with its certificate.
func gatewayAgentConfig(c *cloud, id identity, extra string) string {
	return fmt.Sprintf(`
name: %s
data_dir: $DATA
mqtt: {addr: "$MQTT", allow_anonymous: true}
http: {addr: "$HTTP"}
uplink:
  broker: tls://%s
  ca_file: %s
  cert_file: %s
  key_file: %s
  gateway: true
  keep_alive: 5s
  reconnect_max: 1s
%s`, id.thing, c.tlsAddr, id.CAFile(), id.CertFile(), id.KeyFile(), extra)
}

// TestStoreAndForward cuts the uplink twice while child devices of a
// gateway agent publish at a known rate: once by stopping the cloud
// server, once by stopping it and killing the agent with SIGKILL during
// the outage. The agent logs in as its own thing with its certificate and
// forwards its children under their own thing names, as the gateway
// policy allows. Every message the agent acknowledged must be in the
// cloud store exactly once, in order, with its original timestamp.
func TestStoreAndForward(t *testing.T) {
	scale := soak(t)
	phase := func(s float64) time.Duration { return time.Duration(s * scale * float64(time.Second)) }
	c := newCloud(t)
	var children []string
	for i := 0; i < 5; i++ {
		children = append(children, fmt.Sprintf("site-1.sensor-%d", i))
	}
	id := gatewaySite(t, c, "site-1", children...)
	a := newAgent(t, gatewayAgentConfig(c, id, "  catch_up_rate: 300\nspool: {fsync: always}\n"))
	since := time.Now().Add(-time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var devs []*siteDevice
	var wg sync.WaitGroup
	for _, name := range children {
		d := newSiteDevice(t, a.mqttAddr, name)
		devs = append(devs, d)
		wg.Add(1)
		go func() { defer wg.Done(); d.run(ctx, 50*time.Millisecond) }() // 20 msg/s each
	}
	pause(ctx, phase(6))

	// Outage 1: the cloud stops; the agent spools.
	c.p.stop()
	pause(ctx, phase(6))
	st, err := a.stats()
	if err != nil {
		t.Fatal(err)
	}
	if num(st, "spool.queued") < 100 || num(st, "uplink.reconnects") < 1 {
		t.Fatalf("during the outage: spool %v, uplink %v", st["spool"], st["uplink"])
	}
	c.start()
	pause(ctx, phase(5))

	// Outage 2: the cloud stops, then the agent is killed with a backlog in
	// its spool and restarted; devices reconnect and resend what was not
	// acknowledged.
	c.p.stop()
	pause(ctx, phase(4))
	a.p.kill()
	pause(ctx, phase(2))
	a.start()
	pause(ctx, phase(3))
	c.start()
	pause(ctx, phase(4))
	cancel()
	wg.Wait()

	total := 0
	for _, d := range devs {
		total += len(d.acked())
	}
	if total < 500 {
		t.Fatalf("only %d messages acknowledged by the agent", total)
	}
	eventually(t, 90*time.Second, "cloud has every acknowledged message", func() error {
		for _, d := range devs {
			if err := checkCloud(c, d, since); err != nil {
				return err
			}
		}
		return nil
	})
	eventually(t, 30*time.Second, "spool drained", func() error {
		st, err := a.stats()
		if err != nil {
			return err
		}
		if q := num(st, "spool.queued"); q != 0 {
			return fmt.Errorf("spool still holds %v records", q)
		}
		return nil
	})
	st, _ = a.stats()
	if r := num(st, "uplink.refused"); r != 0 {
		t.Fatalf("the cloud refused %v messages of the gateway's children: %v", r, st["uplink"])
	}
	t.Logf("%d messages from %d devices; agent uplink: sent %v (live %v, backlog %v), acked %v, reconnects %v; spool appended %v",
		total, len(devs), num(st, "uplink.sent"), num(st, "uplink.sent_live"), num(st, "uplink.sent_backlog"),
		num(st, "uplink.acked"), num(st, "uplink.reconnects"), num(st, "spool.appended"))
	a.p.stop()
}
