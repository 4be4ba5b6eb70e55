package loadgen

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// mosquittoAddr returns the address of a Mosquitto broker to test against,
// or skips the test.
func mosquittoAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("EDGEWISE_TEST_MOSQUITTO")
	if addr == "" {
		t.Skip("set EDGEWISE_TEST_MOSQUITTO=127.0.0.1:1883 to run against a Mosquitto broker")
	}
	return addr
}

// checkSane verifies a pub/sub result's internal consistency; at QoS 1
// nothing may be lost.
func checkSane(t *testing.T, r *BenchResult) {
	t.Helper()
	var sb strings.Builder
	_ = r.WriteText(&sb)
	t.Logf("\n%s", sb.String())
	if r.Errors != 0 {
		t.Errorf("errors: %d (first: %s)", r.Errors, r.FirstError)
	}
	if r.Sent == 0 {
		t.Fatal("nothing sent")
	}
	if r.Expected != r.Sent*uint64(r.Fanout) {
		t.Errorf("expected %d != sent %d * fanout %d", r.Expected, r.Sent, r.Fanout)
	}
	if r.QoS == 1 {
		if r.Received != r.Expected {
			t.Errorf("QoS 1: received %d, want sent*fanout = %d", r.Received, r.Expected)
		}
		if r.Acked != r.Sent {
			t.Errorf("QoS 1: acked %d, want %d", r.Acked, r.Sent)
		}
	}
	if r.Received > r.Expected {
		t.Errorf("received %d more than expected %d", r.Received, r.Expected)
	}
	if r.TargetRate > 0 && r.Received > 0 && (r.ArrivedRate < 0.5*r.ReceivedRate || r.ArrivedRate > 1.5*r.ReceivedRate) {
		// Paced and light: arrivals in the period track what was sent in it.
		t.Errorf("arrivals %.0f/s far from receptions %.0f/s at a paced load", r.ArrivedRate, r.ReceivedRate)
	}
	if r.Latency.Count != r.Received {
		t.Errorf("latency samples %d != received %d", r.Latency.Count, r.Received)
	}
	if r.Received > 0 && (r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max) {
		t.Errorf("implausible latency %+v", r.Latency)
	}
}

func benchMatrix() []BenchOptions {
	// Paced: a broker may drop QoS 1 messages when a subscriber's queue
	// overflows (Mosquitto's max_queued_messages is 1000), which is a
	// broker measurement, not what these tests check.
	short := BenchOptions{Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond, Rate: 3000}
	with := func(f func(*BenchOptions)) BenchOptions { o := short; f(&o); return o }
	return []BenchOptions{
		with(func(o *BenchOptions) { o.Scenario = ScenarioP2P; o.QoS = 1 }),
		with(func(o *BenchOptions) { o.Scenario = ScenarioP2P; o.QoS = 1; o.Version = 5 }),
		with(func(o *BenchOptions) { o.Scenario = ScenarioP2P; o.QoS = 0; o.Size = 1024 }),
		with(func(o *BenchOptions) { o.Scenario = ScenarioFanout; o.QoS = 1; o.Pubs = 1; o.Subs = 3 }),
		with(func(o *BenchOptions) { o.Scenario = ScenarioFanin; o.QoS = 1; o.Pubs = 3; o.Subs = 2; o.Size = 256 }),
	}
}

func runMatrix(t *testing.T, addr string) {
	for _, o := range benchMatrix() {
		o.Addr = addr
		name := string(o.Scenario) + "/qos" + string('0'+o.QoS) + "/v" + string('0'+max(o.Version, 4))
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := RunBench(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			checkSane(t, r)
			if r.Received != r.Expected {
				// Paced, light load on loopback: nothing should be dropped.
				t.Errorf("at %v msgs/s: received %d of %d", o.Rate, r.Received, r.Expected)
			}
		})
	}
}

func TestBenchMosquitto(t *testing.T) {
	runMatrix(t, mosquittoAddr(t))
}

func TestBenchConnMosquitto(t *testing.T) {
	addr := mosquittoAddr(t)
	held := -1
	r, err := RunBench(context.Background(), BenchOptions{
		Addr: addr, Scenario: ScenarioConn, Conns: 200, Hold: 50 * time.Millisecond,
		OnHeld: func(n int) { held = n },
	})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	_ = r.WriteText(&sb)
	t.Logf("\n%s", sb.String())
	if r.Connected != 200 || held != 200 || r.Held != 200 || r.Errors != 0 {
		t.Fatalf("connected %d, held %d/%d, errors %d (%s)", r.Connected, held, r.Held, r.Errors, r.FirstError)
	}
}

func TestBenchOptionsValidation(t *testing.T) {
	tests := []struct {
		name string
		o    BenchOptions
	}{
		{"no addr", BenchOptions{}},
		{"bad scenario", BenchOptions{Addr: "x:1", Scenario: "mesh"}},
		{"tiny payload", BenchOptions{Addr: "x:1", Size: 4}},
		{"qos 2", BenchOptions{Addr: "x:1", QoS: 2}},
		{"version 3", BenchOptions{Addr: "x:1", Version: 3}},
		{"negative rate", BenchOptions{Addr: "x:1", Rate: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := RunBench(context.Background(), tt.o); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
}

func TestBenchTopology(t *testing.T) {
	tests := []struct {
		o          BenchOptions
		pubs, subs int
		fanout     int
		firstSub   []string
	}{
		{BenchOptions{Scenario: ScenarioP2P, Pubs: 3}, 3, 3, 1, []string{"bench/p2p/0"}},
		{BenchOptions{Scenario: ScenarioFanout, Pubs: 2, Subs: 4}, 2, 4, 4, []string{"bench/fanout/0", "bench/fanout/1"}},
		{BenchOptions{Scenario: ScenarioFanin, Pubs: 5, Subs: 2}, 5, 2, 2, []string{"bench/fanin/+"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.o.Scenario), func(t *testing.T) {
			tt.o.Addr = "x:1"
			o, err := tt.o.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			pt, sf, fan := o.topology()
			if len(pt) != tt.pubs || len(sf) != tt.subs || fan != tt.fanout || strings.Join(sf[0], ",") != strings.Join(tt.firstSub, ",") {
				t.Fatalf("topology = %v %v %d", pt, sf, fan)
			}
		})
	}
}

func TestLoopbackSpreadDial(t *testing.T) {
	tests := []struct {
		addr   string
		i      int
		wantIP string // "" = no binding
	}{
		{"127.0.0.1:1883", 0, "127.9.8.1"},
		{"127.0.0.1:1883", connsPerSourceIP, "127.9.8.2"},
		{"localhost:1883", 0, ""}, // not an IP literal
		{"10.0.0.1:1883", 0, ""},
		{"[::1]:1883", 0, ""},
		{"127.0.0.1:1883", 254 * connsPerSourceIP, ""},
	}
	for _, tt := range tests {
		dial := loopbackSpreadDial(tt.addr, [2]byte{9, 8}, tt.i)
		if (dial == nil) != (tt.wantIP == "") {
			t.Errorf("%s #%d: dial set = %v, want binding %q", tt.addr, tt.i, dial != nil, tt.wantIP)
		}
	}
	// The binding really works on this host's loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := loopbackSpreadDial(ln.Addr().String(), [2]byte{9, 8}, connsPerSourceIP)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "127.9.8.2" {
		t.Fatalf("source address %s, want 127.9.8.2", got)
	}
}
