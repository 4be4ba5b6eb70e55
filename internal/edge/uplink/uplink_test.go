package uplink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// onlyDevices lets anyone publish under devices/ and nothing else.
type onlyDevices struct{}

func (onlyDevices) CanPublish(_ *broker.Principal, topic string) bool {
	return strings.HasPrefix(topic, "devices/")
}
func (onlyDevices) CanSubscribe(*broker.Principal, string) bool { return true }

type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) OnPublish(_ context.Context, batch []*broker.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range batch {
		r.msgs = append(r.msgs, m.Topic+" "+string(m.Payload))
	}
	return nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

func server(t *testing.T, hook broker.PublishHook) (*broker.Server, string) {
	t.Helper()
	s, err := broker.New(broker.Options{AllowAnonymous: true, Authorizer: onlyDevices{}, Hook: hook})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, ln.Addr().String()
}

func TestPipelinedPublishesKeepOrderAndReportReasons(t *testing.T) {
	rec := &recorder{}
	_, addr := server(t, rec)
	ctx := context.Background()
	c, err := Dial(ctx, Options{Addr: addr, ClientID: "agent-1", MaxInflight: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 500
	type res struct {
		rc  byte
		err error
	}
	results := make([]chan res, n+1)
	for i := 0; i <= n; i++ {
		results[i] = make(chan res, 1)
		topic := "devices/d1/telemetry"
		if i == n {
			topic = "forbidden/topic"
		}
		ch := results[i]
		if err := c.Publish(ctx, topic, []byte(fmt.Sprint(i)), 1, false, func(rc byte, err error) { ch <- res{rc, err} }); err != nil {
			t.Fatal(err)
		}
	}
	for i, ch := range results {
		select {
		case r := <-ch:
			want := byte(0)
			if i == n {
				want = 0x87 // not authorized, reported per message
			}
			if r.err != nil || r.rc != want {
				t.Fatalf("publish %d: reason %#x err %v, want %#x", i, r.rc, r.err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no PUBACK for publish %d", i)
		}
	}
	got := rec.got()
	if len(got) != n {
		t.Fatalf("server received %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if m != fmt.Sprintf("devices/d1/telemetry %d", i) {
			t.Fatalf("message %d out of order: %q", i, m)
		}
	}
}

func TestSubscribeAndReceive(t *testing.T) {
	srv, addr := server(t, nil)
	ctx := context.Background()
	in := make(chan string, 10)
	c, err := Dial(ctx, Options{Addr: addr, ClientID: "agent-2", OnMessage: func(topic string, payload []byte, retain bool) {
		in <- fmt.Sprintf("%s %s %v", topic, payload, retain)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := srv.Publish(ctx, "devices/agent-2/agent/rules", []byte("v1"), 1, true); err != nil {
		t.Fatal(err)
	}
	codes, err := c.Subscribe(ctx, []packets.Subscription{{Filter: "devices/agent-2/#", QoS: 1}})
	if err != nil || len(codes) != 1 || codes[0] != 1 {
		t.Fatalf("suback %v, %v", codes, err)
	}
	if m := <-in; m != "devices/agent-2/agent/rules v1 true" {
		t.Fatalf("retained message: %q", m)
	}
	srv.Publish(ctx, "devices/agent-2/command", []byte("open"), 1, false)
	select {
	case m := <-in:
		if m != "devices/agent-2/command open false" {
			t.Fatalf("command: %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no command")
	}
}

func TestConnectionLossFailsPendingPublishes(t *testing.T) {
	_, addr := server(t, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	// A proxy that forwards CONNECT/CONNACK and then swallows everything.
	go func() {
		cn, err := ln.Accept()
		if err != nil {
			return
		}
		up, _ := net.Dial("tcp", addr)
		go func() { b := make([]byte, 64<<10); n, _ := up.Read(b); cn.Write(b[:n]) }()
		b := make([]byte, 64<<10)
		n, _ := cn.Read(b)
		up.Write(b[:n])
		time.Sleep(200 * time.Millisecond)
		cn.Close()
		up.Close()
	}()
	c, err := Dial(context.Background(), Options{Addr: ln.Addr().String(), ClientID: "agent-3"})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	c.Publish(context.Background(), "devices/a/t", []byte("x"), 1, false, func(_ byte, err error) { errc <- err })
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("pending publish: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pending publish not failed")
	}
	<-c.Done()
	if c.Err() == nil {
		t.Fatal("Err is nil after a lost connection")
	}
}

func TestBadCredentialsIsAConnectError(t *testing.T) {
	s, err := broker.New(broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(ln)
	defer s.Close(context.Background())
	_, err = Dial(context.Background(), Options{Addr: ln.Addr().String(), ClientID: "x"})
	var ue *Error
	if !errors.As(err, &ue) || ue.Op != "connect" || ue.Reason < 0x80 {
		t.Fatalf("dial without credentials: %v", err)
	}
}
