package loadgen

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestProfileBroker runs the generator against an in-process Edgewise
// broker so that one CPU profile covers both; it is for profiling the
// broker, not a check, and runs only when EDGEWISE_PROFILE_BROKER names a
// scenario (p2p, fanout, ...):
//
//	EDGEWISE_PROFILE_BROKER=p2p go test -run TestProfileBroker -cpuprofile cpu.out ./internal/loadgen/
//	go tool pprof -top -focus 'internal/broker' loadgen.test cpu.out
func TestProfileBroker(t *testing.T) {
	scenario := os.Getenv("EDGEWISE_PROFILE_BROKER")
	if scenario == "" {
		t.Skip("set EDGEWISE_PROFILE_BROKER=p2p|fanout|... to profile the broker")
	}
	addr := startBroker(t)
	r, err := RunBench(context.Background(), BenchOptions{
		Addr: addr, Scenario: Scenario(scenario), Size: 64, Duration: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	_ = r.WriteText(&sb)
	t.Logf("\n%s", sb.String())
}
