package loadgen

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// sharedRun is a light, paced shared-subscription run: nothing should be
// lost on loopback.
func sharedRun(t *testing.T, addr string) *BenchResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := RunBench(ctx, BenchOptions{
		Addr: addr, Scenario: ScenarioShared, Pubs: 2, Subs: 3, QoS: 1, Version: 5,
		Rate: 2000, Duration: 500 * time.Millisecond, Warmup: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkSane(t, r)
	if r.Received != r.Expected || r.Errors != 0 {
		t.Fatalf("received %d of %d, errors %d (%s)", r.Received, r.Expected, r.Errors, r.FirstError)
	}
	return r
}

func TestBenchSharedMosquitto(t *testing.T) {
	r := sharedRun(t, mosquittoAddr(t))
	if r.Fanout != 1 || r.Note != "" {
		t.Fatalf("Mosquitto shares: fanout %d, note %q", r.Fanout, r.Note)
	}
}

func TestBenchSharedFallsBack(t *testing.T) {
	addr := startBroker(t)
	probe := sharedRun(t, addr)
	if probe.Note == "" {
		// The target shares: each message reaches one member.
		if probe.Fanout != 1 {
			t.Fatalf("fanout %d with shared subscriptions", probe.Fanout)
		}
		return
	}
	if probe.Fanout != 3 || !strings.Contains(probe.Note, "plain subscriptions") {
		t.Fatalf("fallback: fanout %d, note %q", probe.Fanout, probe.Note)
	}
	var sb strings.Builder
	_ = probe.WriteText(&sb)
	if !strings.Contains(sb.String(), "note ") {
		t.Fatalf("report lacks the note:\n%s", sb.String())
	}
}

func TestBenchSlowDevices(t *testing.T) {
	addr := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The broker runs in this process, so our own RSS is the target's.
	r, err := RunBench(ctx, BenchOptions{
		Addr: addr, Scenario: ScenarioSlow, Conns: 50, Interval: 100 * time.Millisecond,
		Duration: time.Second, PID: os.Getpid(),
	})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	_ = r.WriteText(&sb)
	t.Logf("\n%s", sb.String())
	// 50 devices x 10 slots, give or take the slots at the edge.
	if r.Connected != 50 || r.Errors != 0 || r.Sent < 400 || r.Acked != r.Sent {
		t.Fatalf("connected %d, sent %d, acked %d, errors %d (%s)", r.Connected, r.Sent, r.Acked, r.Errors, r.FirstError)
	}
	if r.AckLatency == nil || r.AckLatency.Count != r.Acked || r.TargetRSSAfter <= 0 {
		t.Fatalf("ack latency %+v, RSS %d", r.AckLatency, r.TargetRSSAfter)
	}
	if !strings.Contains(sb.String(), "target RSS") || !strings.Contains(sb.String(), "puback") {
		t.Fatalf("report:\n%s", sb.String())
	}
}

func TestReadRSS(t *testing.T) {
	v, err := ReadRSS(os.Getpid())
	if err != nil || v < 1<<20 {
		t.Fatalf("RSS %d, %v", v, err)
	}
	if _, err := ReadRSS(1 << 30); err == nil {
		t.Fatal("RSS of a missing process")
	}
}
