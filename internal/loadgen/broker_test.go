package loadgen

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
)

// startBroker runs Edgewise's broker on a random loopback port, using only
// its constructor, Serve and Close.
func startBroker(t *testing.T) string {
	t.Helper()
	srv, err := broker.New(broker.Options{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("broker close: %v", err)
		}
		if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestBenchEdgewiseBroker(t *testing.T) {
	runMatrix(t, startBroker(t))
}

func TestBenchConnEdgewiseBroker(t *testing.T) {
	addr := startBroker(t)
	r, err := RunBench(context.Background(), BenchOptions{Addr: addr, Scenario: ScenarioConn, Conns: 100})
	if err != nil {
		t.Fatal(err)
	}
	if r.Connected != 100 || r.Errors != 0 {
		t.Fatalf("connected %d of 100, errors %d (%s)", r.Connected, r.Errors, r.FirstError)
	}
}
