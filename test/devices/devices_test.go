package devices_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgewise-iot/edgewise/sdk/device"
)

type shadowDoc struct {
	State struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
		Delta    map[string]any `json:"delta"`
	} `json:"state"`
	Version int64 `json:"version"`
}

func newDevice(t *testing.T, e *env, thing, password, queueDir string) *device.Device {
	t.Helper()
	d, err := device.New(device.Config{Servers: []string{e.url()}, Thing: thing, Password: password, QueueDir: queueDir,
		Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

// TestSDKOfflineDeltaAndQueue: an SDK device goes offline, its desired
// state changes through the API, it reconnects, receives the delta,
// reports, and the delta clears. What it published while it could not
// connect (queued in a file, across a restart of the device program) is
// delivered in order.
func TestSDKOfflineDeltaAndQueue(t *testing.T) {
	e := newEnv(t, t.TempDir())
	pw := e.createThing("lamp-1", nil)
	ctx := context.Background()

	// Offline from the start: reports go to the file queue.
	qdir := t.TempDir()
	off := newDevice(t, e, "lamp-1", pw, qdir)
	for i := 1; i <= 3; i++ {
		if err := off.ReportState(ctx, map[string]any{"boot": i, "mode": "eco"}); err != nil {
			t.Fatal(err)
		}
	}
	if off.Queued() != 3 {
		t.Fatalf("queued = %d, want 3", off.Queued())
	}
	off.Close(ctx)

	// Desired state set while the device is offline.
	var acc map[string]any
	if code := e.call("POST", "/api/v1/things/lamp-1/shadow", `{"state":{"desired":{"led":"on","level":7}}}`, &acc); code != 200 {
		t.Fatalf("update: %d %v", code, acc)
	}

	// The device program restarts with the same queue and a delta handler
	// that applies the desired state and reports it.
	d := newDevice(t, e, "lamp-1", pw, qdir)
	if d.Queued() != 3 {
		t.Fatalf("queue after restart = %d, want 3", d.Queued())
	}
	deltas := make(chan device.ShadowDelta, 10)
	var reportErr atomic.Value
	d.OnShadowDelta("", func(delta device.ShadowDelta) {
		deltas <- delta
		if _, err := d.UpdateShadow(ctx, "", device.ShadowUpdate{Reported: delta.State}); err != nil {
			reportErr.Store(err)
		}
	})
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case delta := <-deltas:
		if delta.State["led"] != "on" || delta.State["level"] != 7.0 {
			t.Fatalf("delta = %+v", delta)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no delta after reconnecting")
	}
	eventually(t, 30*time.Second, func() error {
		var doc shadowDoc
		if code := e.call("GET", "/api/v1/things/lamp-1/shadow", nil, &doc); code != 200 {
			return errorf("get: %d", code)
		}
		if len(doc.State.Delta) != 0 || doc.State.Reported["led"] != "on" || doc.State.Reported["boot"] != 3.0 {
			return errorf("shadow %+v", doc.State)
		}
		return nil
	})
	// The queue entry goes when its PUBACK arrives, which may be just
	// after the server applied the message.
	eventually(t, 10*time.Second, func() error {
		if n := d.Queued(); n != 0 {
			return errorf("queue not drained: %d", n)
		}
		return nil
	})
	// A change while online arrives as a live delta.
	if code := e.call("POST", "/api/v1/things/lamp-1/shadow", `{"state":{"desired":{"led":"off"}}}`, nil); code != 200 {
		t.Fatal(code)
	}
	select {
	case delta := <-deltas:
		if delta.State["led"] != "off" || len(delta.State) != 1 {
			t.Fatalf("live delta = %+v", delta)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no live delta")
	}
	eventually(t, 30*time.Second, func() error {
		var doc shadowDoc
		e.call("GET", "/api/v1/things/lamp-1/shadow", nil, &doc)
		if len(doc.State.Delta) != 0 || doc.State.Reported["led"] != "off" {
			return errorf("shadow %+v", doc.State)
		}
		return nil
	})
	if err := reportErr.Load(); err != nil {
		t.Fatalf("report: %v", err)
	}
}

type cmdView struct {
	ID     string          `json:"id"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
}

// TestCommandsOfflineTTLAndRestart: commands sent to an offline device
// wait (surviving a server restart) and are delivered when it connects
// within the TTL; a command whose TTL passes first expires; the reply
// moves a command to succeeded or failed; wait=true answers synchronously.
func TestCommandsOfflineTTLAndRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir)
	pw := e.createThing("pump-1", nil)
	var keep, short cmdView
	if code := e.call("POST", "/api/v1/things/pump-1/commands", `{"command":"start","payload":{"rpm":1200},"ttl":"1h","timeout":"30s"}`, &keep); code != 201 || keep.Status != "queued" {
		t.Fatalf("send: %d %+v", code, keep)
	}
	if code := e.call("POST", "/api/v1/things/pump-1/commands", `{"command":"purge","ttl":"200ms"}`, &short); code != 201 {
		t.Fatalf("send: %d", code)
	}
	eventually(t, 30*time.Second, func() error {
		var c cmdView
		e.call("GET", "/api/v1/things/pump-1/commands/"+short.ID, nil, &c)
		if c.Status != "expired" {
			return errorf("short command is %s", c.Status)
		}
		return nil
	})
	// Restart the server: the queued command survives.
	e.close()
	e = newEnv(t, dir)

	got := make(chan device.Command, 10)
	d := newDevice(t, e, "pump-1", pw, "")
	d.OnCommand(func(ctx context.Context, c device.Command) (any, error) {
		got <- c
		if c.Name == "explode" {
			return nil, errors.New("refused")
		}
		return map[string]any{"rpm": c.Payload["rpm"]}, nil
	})
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-got:
		if c.ID != keep.ID || c.Name != "start" || c.Payload["rpm"] != 1200.0 {
			t.Fatalf("device got %+v", c)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("queued command not delivered on connect")
	}
	eventually(t, 30*time.Second, func() error {
		var c cmdView
		e.call("GET", "/api/v1/things/pump-1/commands/"+keep.ID, nil, &c)
		if c.Status != "succeeded" || string(c.Result) != `{"rpm":1200}` {
			return errorf("command %+v", c)
		}
		return nil
	})
	// Synchronous mode, both outcomes.
	var sync1, sync2 cmdView
	if code := e.call("POST", "/api/v1/things/pump-1/commands", `{"command":"start","payload":{"rpm":5},"wait":true}`, &sync1); code != 200 || sync1.Status != "succeeded" {
		t.Fatalf("wait: %d %+v", code, sync1)
	}
	if code := e.call("POST", "/api/v1/things/pump-1/commands?wait=20s", `{"command":"explode"}`, &sync2); code != 200 || sync2.Status != "failed" || sync2.Error != "refused" {
		t.Fatalf("wait failed: %d %+v", code, sync2)
	}
	var list struct {
		Commands []cmdView `json:"commands"`
	}
	if code := e.call("GET", "/api/v1/things/pump-1/commands", nil, &list); code != 200 || len(list.Commands) != 4 {
		t.Fatalf("list: %d %+v", code, list)
	}
	if list.Commands[0].ID != sync2.ID || list.Commands[3].ID != keep.ID {
		t.Errorf("list order: %+v", list.Commands)
	}
	// Bad input.
	for _, body := range []string{`{"payload":{"command_id":"x"}}`, `{"ttl":"soon"}`, `{"timeout":"-1s"}`, `{"payload":[1]}`, `{"nope":1}`} {
		var er map[string]any
		if code := e.call("POST", "/api/v1/things/pump-1/commands", body, &er); code != 400 || er["error"] == nil {
			t.Errorf("%s: %d %v", body, code, er)
		}
	}
	if code := e.call("POST", "/api/v1/things/ghost/commands", `{}`, nil); code != 404 {
		t.Errorf("command to unknown thing: %d", code)
	}
}

// TestShadowStaleVersionsRejected: concurrent conditional updates with the
// same expected version: exactly one wins, the others get 409.
func TestShadowStaleVersionsRejected(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.createThing("cfg-1", nil)
	var doc shadowDoc
	if code := e.call("POST", "/api/v1/things/cfg-1/shadow?name=config", `{"state":{"desired":{"n":0}}}`, &doc); code != 200 {
		t.Fatal(code)
	}
	for round := 1; round <= 5; round++ {
		var ok, conflict atomic.Int32
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := fmt.Sprintf(`{"state":{"desired":{"n":%d}},"version":%d}`, w, round)
				switch code := e.call("POST", "/api/v1/things/cfg-1/shadow?name=config", body, nil); code {
				case 200:
					ok.Add(1)
				case 409:
					conflict.Add(1)
				default:
					t.Errorf("update: %d", code)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || conflict.Load() != 7 {
			t.Fatalf("round %d: %d accepted, %d conflicts", round, ok.Load(), conflict.Load())
		}
	}
	if code := e.call("GET", "/api/v1/things/cfg-1/shadow?name=config", nil, &doc); code != 200 || doc.Version != 6 {
		t.Fatalf("version %d (%d)", doc.Version, code)
	}
	if code := e.call("GET", "/api/v1/things/cfg-1/shadow", nil, nil); code != 404 {
		t.Errorf("classic shadow: %d", code)
	}
	if code := e.call("GET", "/api/v1/things/cfg-1/shadow?name=bad/name", nil, nil); code != 400 {
		t.Errorf("bad name: %d", code)
	}
}

// pahoClient connects a paho.golang v5 client.
func pahoClient(t testing.TB, addr, clientID, user, pass string, onMsg func(*paho.Publish)) *paho.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: clientID,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			if onMsg != nil {
				onMsg(pr.Packet)
			}
			return true, nil
		}}})
	ca, err := c.Connect(context.Background(), &paho.Connect{ClientID: clientID, KeepAlive: 60, CleanStart: true,
		UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(pass)})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %+v", clientID, err, ca)
	}
	return c
}

// TestConfinement: a thing reaches its own shadow topics and nobody else's.
func TestConfinement(t *testing.T) {
	e := newEnv(t, t.TempDir())
	pw := e.createThing("a1", nil)
	e.createThing("b1", nil)
	c := pahoClient(t, e.mqttAddr, "a1", "a1", pw, nil)
	defer c.Disconnect(&paho.Disconnect{})
	cases := map[string]bool{
		"$aws/things/a1/shadow/#":              true,
		"$edgewise/things/a1/jobs/notify-next": true,
		"devices/a1/command":                   true,
		"$aws/things/b1/shadow/update/delta":   false,
		"$aws/things/+/shadow/update/delta":    false,
		"$aws/#":                               false,
		"devices/+/command":                    false,
	}
	for filter, want := range cases {
		sa, err := c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		if err != nil && sa == nil {
			t.Fatalf("%s: %v", filter, err)
		}
		if got := sa.Reasons[0] < 0x80; got != want {
			t.Errorf("subscribe %q: reason %#x, want allowed=%v", filter, sa.Reasons[0], want)
		}
	}
	pr, err := c.Publish(context.Background(), &paho.Publish{Topic: "$aws/things/b1/shadow/update", QoS: 1, Payload: []byte(`{"state":{"desired":{"x":1}}}`)})
	if err == nil && pr.ReasonCode < 0x80 {
		t.Fatalf("publish to another thing's shadow accepted: %+v", pr)
	}
	if code := e.call("GET", "/api/v1/things/b1/shadow", nil, nil); code != 404 {
		t.Fatalf("b1 shadow exists after a denied update: %d", code)
	}
}
