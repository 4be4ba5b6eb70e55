package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// memRegistry is an in-memory Registry recording what was asked of it.
type memRegistry struct {
	mu      sync.Mutex
	things  map[string]string // name -> type
	resets  []string
	failFor string
}

func (r *memRegistry) CreateThing(_ context.Context, name, typ string, _ map[string]string) (Credentials, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == r.failFor {
		return Credentials{}, errors.New("boom")
	}
	if _, ok := r.things[name]; ok {
		return Credentials{}, fmt.Errorf("create %s: %w", name, ErrThingExists)
	}
	r.things[name] = typ
	return Credentials{Username: name, Password: "pw-" + name}, nil
}

func (r *memRegistry) ResetCredentials(_ context.Context, name string) (Credentials, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resets = append(r.resets, name)
	return Credentials{Username: name, Password: "new-" + name}, nil
}

// watcher subscribes to all device topics and checks every message.
type watcher struct {
	telemetry, states atomic.Int64
	bad               atomic.Value // first problem, string
	lastCommand       atomic.Value // string
}

func watch(t *testing.T, addr string) (*watcher, *rawConn) {
	t.Helper()
	ctx := context.Background()
	c, err := dialMQTT(ctx, connectConfig{addr: addr, clientID: "watcher", version: packets.V311})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.subscribe(ctx, 1, 1, "devices/+/telemetry", "devices/+/state"); err != nil {
		t.Fatal(err)
	}
	w := &watcher{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var p packets.Publish
		for {
			if c.br.Buffered() == 0 {
				_ = c.bw.Flush()
			}
			h, body, err := c.readPacket()
			if err != nil {
				return
			}
			if h.Type != packets.PUBLISH || packets.DecodePublish(c.version, h, body, &p) != nil {
				continue
			}
			if p.QoS == 1 {
				_, _ = c.bw.Write(packets.AppendAck(nil, c.version, &packets.Ack{Type: packets.PUBACK, PacketID: p.PacketID}))
			}
			var doc struct {
				DeviceID  string         `json:"device_id"`
				Timestamp string         `json:"timestamp"`
				Data      map[string]any `json:"data"`
			}
			parts := strings.Split(p.Topic, "/")
			if err := json.Unmarshal(p.Payload, &doc); err != nil || len(parts) != 3 || doc.DeviceID != parts[1] {
				w.bad.CompareAndSwap(nil, fmt.Sprintf("bad message on %s: %s", p.Topic, p.Payload))
				continue
			}
			if _, err := time.Parse("2006-01-02T15:04:05.999999", doc.Timestamp); err != nil {
				w.bad.CompareAndSwap(nil, "bad timestamp "+doc.Timestamp)
			}
			switch parts[2] {
			case "telemetry":
				for _, k := range []string{"temperature", "humidity", "pressure", "battery"} {
					if _, ok := doc.Data[k].(float64); !ok {
						w.bad.CompareAndSwap(nil, "telemetry without "+k)
					}
				}
				w.telemetry.Add(1)
			case "state":
				if lc, ok := doc.Data["last_command"].(string); ok {
					w.lastCommand.Store(lc)
				}
				w.states.Add(1)
			}
		}
	}()
	t.Cleanup(func() { c.nc.Close(); <-done })
	return w, c
}

func TestSimulateEdgewiseBroker(t *testing.T) {
	addr := startBroker(t)
	w, _ := watch(t, addr)
	reg := &memRegistry{things: map[string]string{"sim-0002": "sensor"}}

	// A commander sends one command once the devices are up.
	cmdr, err := dialMQTT(context.Background(), connectConfig{addr: addr, clientID: "commander"})
	if err != nil {
		t.Fatal(err)
	}
	defer cmdr.nc.Close()

	var reports []SimReport
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		r   SimReport
		err error
	}
	out := make(chan outcome, 1)
	go func() {
		r, err := RunSimulation(ctx, SimOptions{
			Broker: addr, Devices: 4, Rate: 40, QoS: 1, Registry: reg,
			ReportInterval: 100 * time.Millisecond, StateEvery: 5,
			OnConnected: func(c, n int, _ time.Duration) {
				if c != 4 || n != 4 {
					t.Errorf("OnConnected(%d, %d), want 4 of 4", c, n)
				}
			},
			OnReport: func(r SimReport) { mu.Lock(); reports = append(reports, r); mu.Unlock() },
		})
		out <- outcome{r, err}
	}()
	eventually(t, "telemetry from the devices", func() bool { return w.telemetry.Load() >= 8 })
	cmd := packets.AppendPublish(nil, packets.V311, &packets.Publish{Topic: "devices/sim-0001/command", Payload: []byte(`{"command": "reboot"}`)})
	if _, err := cmdr.nc.Write(cmd); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a state report answering the command", func() bool { return w.lastCommand.Load() == "reboot" })
	cancel()
	o := <-out
	if o.err != nil {
		t.Fatalf("RunSimulation: %v", o.err)
	}
	r := o.r
	t.Logf("final: %s", r)
	if !r.Final || r.Devices != 4 || r.Errors != 0 || r.Commands != 1 {
		t.Fatalf("unexpected final report %+v", r)
	}
	if r.Acked != r.Sent+r.States {
		t.Errorf("QoS 1: acked %d, want sent %d + states %d", r.Acked, r.Sent, r.States)
	}
	eventually(t, "every telemetry message at the watcher", func() bool { return uint64(w.telemetry.Load()) == r.Sent })
	eventually(t, "every state message at the watcher", func() bool { return uint64(w.states.Load()) == r.States })
	if bad := w.bad.Load(); bad != nil {
		t.Fatal(bad)
	}
	// Paced, not bursting: never more than the schedule allows.
	if limit := 40*r.Elapsed.Seconds() + 4; float64(r.Sent) > limit {
		t.Errorf("sent %d in %s, schedule allows %.0f", r.Sent, r.Elapsed, limit)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.things) != 4 || len(reg.resets) != 1 || reg.resets[0] != "sim-0002" {
		t.Errorf("registry: things %v, resets %v", reg.things, reg.resets)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) == 0 || !reports[len(reports)-1].Final {
		t.Errorf("reports: %d, last final = %v", len(reports), len(reports) > 0 && reports[len(reports)-1].Final)
	}
}

func TestSimulateMosquitto(t *testing.T) {
	addr := mosquittoAddr(t)
	w, _ := watch(t, addr)
	r, err := RunSimulation(context.Background(), SimOptions{
		Broker: addr, Devices: 20, Rate: 100, QoS: 0, Duration: time.Second, Prefix: "simtest-",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("final: %s", r)
	if r.Sent == 0 || r.Errors != 0 {
		t.Fatalf("final report %+v", r)
	}
	eventually(t, "telemetry at the watcher", func() bool { return uint64(w.telemetry.Load()) >= r.Sent })
	if bad := w.bad.Load(); bad != nil {
		t.Fatal(bad)
	}
}

func TestSimulateNothingSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	r, err := RunSimulation(context.Background(), SimOptions{Broker: addr, Devices: 2, Duration: 300 * time.Millisecond})
	if !errors.Is(err, ErrNothingSent) {
		t.Fatalf("err = %v, want ErrNothingSent", err)
	}
	if r.Errors == 0 || r.FirstError == "" {
		t.Fatalf("connection errors not reported: %+v", r)
	}
}

func TestProvisionFailures(t *testing.T) {
	reg := &memRegistry{things: map[string]string{}, failFor: "x-0002"}
	o, err := SimOptions{Broker: "x:1", Devices: 3, Prefix: "x-", Registry: reg}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var st simStats
	devs, err := provision(context.Background(), &o, &st)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || st.errs.n.Load() != 1 || !strings.Contains(st.errs.firstString(), "x-0002") {
		t.Fatalf("devices %d, errors %d (%s)", len(devs), st.errs.n.Load(), st.errs.firstString())
	}
	for _, d := range devs {
		if d.creds == nil || d.creds.Password != "pw-"+d.name {
			t.Fatalf("device %s credentials %+v", d.name, d.creds)
		}
	}
	reg.failFor = ""
	reg.things = map[string]string{}
	o.Devices = 1
	o.Registry = failing{}
	if _, err := provision(context.Background(), &o, &simStats{}); !errors.Is(err, ErrNothingSent) {
		t.Fatalf("all failing: err = %v", err)
	}
}

type failing struct{}

func (failing) CreateThing(context.Context, string, string, map[string]string) (Credentials, error) {
	return Credentials{}, errors.New("unauthorized")
}
func (failing) ResetCredentials(context.Context, string) (Credentials, error) {
	return Credentials{}, errors.New("unauthorized")
}

func TestDeviceName(t *testing.T) {
	tests := []struct {
		prefix string
		i, n   int
		want   string
	}{
		{"sim-", 0, 10, "sim-0001"},
		{"sim-", 9, 10, "sim-0010"},
		{"d", 41, 100000, "d000042"},
		{"", 0, 1, "0001"},
	}
	for _, tt := range tests {
		if got := DeviceName(tt.prefix, tt.i, tt.n); got != tt.want {
			t.Errorf("DeviceName(%q, %d, %d) = %q, want %q", tt.prefix, tt.i, tt.n, got, tt.want)
		}
	}
}

func TestCommandName(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"command": "reboot"}`, "reboot"},
		{`{"action": "open", "x": 1}`, "open"},
		{` restart `, "restart"},
		{`{"other": 1}`, `{"other": 1}`},
		{strings.Repeat("a", 100), strings.Repeat("a", 64)},
	}
	for _, tt := range tests {
		if got := commandName([]byte(tt.in)); got != tt.want {
			t.Errorf("commandName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSimOptionsValidation(t *testing.T) {
	for _, o := range []SimOptions{{}, {Broker: "x:1", QoS: 2}, {Broker: "x:1", Rate: -1}} {
		if _, err := RunSimulation(context.Background(), o); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%+v: err = %v, want ErrBadOptions", o, err)
		}
	}
}
