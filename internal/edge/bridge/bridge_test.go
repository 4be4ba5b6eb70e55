package bridge

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/broker/packets"
	"github.com/edgewise-iot/edgewise/internal/edge/spool"
	"github.com/edgewise-iot/edgewise/internal/edge/uplink"
	"github.com/edgewise-iot/edgewise/internal/edge/wanproxy"
)

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

func (r *recorder) got(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.msgs {
		if strings.HasPrefix(m, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// refuse denies publishing under forbidden/.
type refuse struct{}

func (refuse) CanPublish(_ *broker.Principal, topic string) bool {
	return !strings.HasPrefix(topic, "forbidden/")
}
func (refuse) CanSubscribe(*broker.Principal, string) bool { return true }

type cloud struct {
	srv  *broker.Server
	addr string
	rec  *recorder
}

func startCloud(t *testing.T, addr string, rec *recorder) *cloud {
	t.Helper()
	s, err := broker.New(broker.Options{AllowAnonymous: true, Authorizer: refuse{}, Hook: rec})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	c := &cloud{srv: s, addr: ln.Addr().String(), rec: rec}
	t.Cleanup(func() { c.stop() })
	return c
}

func (c *cloud) stop() { c.srv.Close(context.Background()) }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type site struct {
	bridge *Bridge
	local  *broker.Server
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

func startSite(t *testing.T, cloudAddr string, rate float64, onRules func([]byte)) *site {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := &site{done: make(chan struct{})}
	var hook lateHook
	s.local, err = broker.New(broker.Options{AllowAnonymous: true, Hook: &hook})
	if err != nil {
		t.Fatal(err)
	}
	s.bridge, err = New(Options{
		Agent:       "gw1",
		Uplink:      uplink.Options{Addr: cloudAddr, ClientID: "gw1", KeepAlive: 5 * time.Second},
		Spool:       sp,
		Forward:     []Route{{From: "devices/+/telemetry"}, {From: "forbidden/#"}, {From: "raw/+/x", To: "devices/${agent}/${2}"}},
		Inbound:     []Route{{From: "devices/${agent}/command"}},
		Local:       s.local,
		OnRules:     onRules,
		CatchUpRate: rate,
		BackoffMin:  50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	hook.h = s.bridge
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	s.addr = ln.Addr().String()
	go s.local.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { defer close(s.done); s.bridge.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
		s.local.Close(context.Background())
		sp.Close()
	})
	return s
}

type lateHook struct{ h broker.PublishHook }

func (l *lateHook) OnPublish(ctx context.Context, b []*broker.Message) error {
	return l.h.OnPublish(ctx, b)
}

// device publishes QoS 1 messages to the local broker and waits for each
// PUBACK.
func device(t *testing.T, addr, id string) func(topic, payload string) {
	t.Helper()
	c, err := uplink.Dial(context.Background(), uplink.Options{Addr: addr, ClientID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func(topic, payload string) {
		t.Helper()
		done := make(chan byte, 1)
		if err := c.Publish(context.Background(), topic, []byte(payload), 1, false, func(rc byte, err error) { done <- rc }); err != nil {
			t.Fatal(err)
		}
		if rc := <-done; rc >= 0x80 {
			t.Fatalf("local PUBACK %#x", rc)
		}
	}
}

func TestForwardThroughOutageInOrder(t *testing.T) {
	rec := &recorder{}
	c := startCloud(t, "127.0.0.1:0", rec)
	s := startSite(t, c.addr, 0, nil)
	pub := device(t, s.addr, "d1")
	eventually(t, "uplink", func() bool { return s.bridge.Stats().Connected })
	for i := 0; i < 10; i++ {
		pub("devices/d1/telemetry", fmt.Sprint(i))
	}
	pub("raw/d7/x", "remapped")
	pub("other/topic", "not forwarded")
	// Everything forwarded so far (the remapped message too) is
	// acknowledged before the outage, so the spool then holds exactly what
	// the outage adds.
	eventually(t, "first 10", func() bool {
		return len(rec.got("devices/d1/")) == 10 && s.bridge.opts.Spool.Stats().Queued == 0
	})
	c.stop()
	eventually(t, "disconnect", func() bool { return !s.bridge.Stats().Connected })
	for i := 10; i < 200; i++ { // accepted locally while the cloud is away
		pub("devices/d1/telemetry", fmt.Sprint(i))
	}
	if q := s.bridge.opts.Spool.Stats().Queued; q != 190 {
		t.Fatalf("queued during the outage: %d, want 190", q)
	}
	startCloud(t, c.addr, rec)
	eventually(t, "backlog delivered", func() bool { return len(rec.got("devices/d1/")) >= 200 })
	got := rec.got("devices/d1/")
	for i, m := range got {
		if m != fmt.Sprintf("devices/d1/telemetry %d", i) {
			t.Fatalf("cloud message %d is %q", i, m)
		}
	}
	if len(got) != 200 {
		t.Fatalf("%d messages in the cloud, want 200 (duplicates)", len(got))
	}
	if r := rec.got("devices/gw1/d7"); len(r) != 1 || r[0] != "devices/gw1/d7 remapped" {
		t.Fatalf("remapped: %q", r)
	}
	eventually(t, "spool drained", func() bool { return s.bridge.opts.Spool.Stats().Queued == 0 })
	st := s.bridge.Stats()
	if st.Reconnects == 0 || st.NotForwarded != 1 || st.Acked < 201 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestLiveDataIsNotStarvedByCatchUp(t *testing.T) {
	rec := &recorder{}
	c := startCloud(t, "127.0.0.1:0", rec)
	c.stop()
	s := startSite(t, c.addr, 20, nil) // 20 backlog messages per second
	pubA := device(t, s.addr, "a")
	pubB := device(t, s.addr, "b")
	const backlog = 100
	for i := 0; i < backlog; i++ {
		pubA("devices/a/telemetry", fmt.Sprint(i))
	}
	startCloud(t, c.addr, rec)
	eventually(t, "catch-up started", func() bool { return len(rec.got("devices/a/")) > 0 })
	pubB("devices/b/telemetry", "live")       // no backlog for b: sent at once
	pubA("devices/a/telemetry", "live-after") // behind a's own backlog
	eventually(t, "live b", func() bool { return len(rec.got("devices/b/")) == 1 })
	if n := len(rec.got("devices/a/")); n >= backlog {
		t.Fatalf("live message of b waited for the whole backlog of a (%d delivered)", n)
	}
	eventually(t, "backlog of a", func() bool { return len(rec.got("devices/a/")) == backlog+1 })
	got := rec.got("devices/a/")
	for i := 0; i < backlog; i++ {
		if got[i] != fmt.Sprintf("devices/a/telemetry %d", i) {
			t.Fatalf("a message %d is %q", i, got[i])
		}
	}
	if got[backlog] != "devices/a/telemetry live-after" {
		t.Fatalf("a's live message overtook its backlog: %q", got[backlog])
	}
	if st := s.bridge.Stats(); st.SentBacklog < backlog || st.SentLive < 1 {
		t.Fatalf("lanes: %+v", st)
	}
}

func TestRefusalsAreCountedAndDoNotBlock(t *testing.T) {
	rec := &recorder{}
	c := startCloud(t, "127.0.0.1:0", rec)
	s := startSite(t, c.addr, 0, nil)
	pub := device(t, s.addr, "d1")
	pub("forbidden/x", "no")
	pub("devices/d1/telemetry", "yes")
	eventually(t, "delivery", func() bool { return len(rec.got("devices/d1/")) == 1 })
	eventually(t, "refusal", func() bool { return s.bridge.Stats().Refused == 1 })
	st := s.bridge.Stats()
	if st.LastRefusal == nil || st.LastRefusal.Topic != "forbidden/x" || st.LastRefusal.Code != 0x87 {
		t.Fatalf("last refusal: %+v", st.LastRefusal)
	}
	eventually(t, "spool drained", func() bool { return s.bridge.opts.Spool.Stats().Queued == 0 })
}

func TestInboundRulesAndCommands(t *testing.T) {
	rec := &recorder{}
	c := startCloud(t, "127.0.0.1:0", rec)
	rulesIn := make(chan string, 4)
	s := startSite(t, c.addr, 0, func(b []byte) { rulesIn <- string(b) })
	// A retained rule set published before the agent connects.
	if err := c.srv.Publish(context.Background(), "devices/gw1/agent/rules", []byte(`{"version":3}`), 1, true); err != nil {
		t.Fatal(err)
	}
	cmds := make(chan string, 4)
	act, err := uplink.Dial(context.Background(), uplink.Options{Addr: s.addr, ClientID: "actuator",
		OnMessage: func(topic string, p []byte, _ bool) { cmds <- topic + " " + string(p) }})
	if err != nil {
		t.Fatal(err)
	}
	defer act.Close()
	if _, err := act.Subscribe(context.Background(), []packets.Subscription{{Filter: "devices/gw1/command", QoS: 1}}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-rulesIn:
		if r != `{"version":3}` {
			t.Fatalf("rules: %q", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("rule set not received")
	}
	s.bridge.SetStatus([]byte(`{"rules_version":3}`))
	eventually(t, "status", func() bool { return len(rec.got("devices/gw1/agent/status")) == 1 })
	eventually(t, "command", func() bool {
		c.srv.Publish(context.Background(), "devices/gw1/command", []byte("open"), 1, false)
		select {
		case m := <-cmds:
			return m == "devices/gw1/command open"
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
}

// TestLinkCutsMidStream drops the uplink's TCP connections (the cloud stays
// up) while a device publishes: nothing is lost, and the first arrival of
// each message in the cloud is in publish order. Messages whose PUBACK was
// lost in a cut arrive twice; the cloud's store deduplicates them by
// timestamp.
func TestLinkCutsMidStream(t *testing.T) {
	rec := &recorder{}
	c := startCloud(t, "127.0.0.1:0", rec)
	wan, err := wanproxy.Start("127.0.0.1:0", c.addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer wan.Close()
	s := startSite(t, wan.Addr(), 0, nil)
	pub := device(t, s.addr, "d1")
	const n = 600
	for i := 0; i < n; i++ {
		pub("devices/d1/telemetry", fmt.Sprint(i))
		if i%150 == 75 {
			wan.Cut()
			wan.Restore()
		}
	}
	eventually(t, "every message", func() bool {
		seen := map[string]bool{}
		for _, m := range rec.got("devices/d1/") {
			seen[m] = true
		}
		return len(seen) == n
	})
	next := 0
	seen := map[string]bool{}
	for _, m := range rec.got("devices/d1/") {
		if seen[m] {
			continue
		}
		seen[m] = true
		if m != fmt.Sprintf("devices/d1/telemetry %d", next) {
			t.Fatalf("first arrival %d is %q", next, m)
		}
		next++
	}
	if st := s.bridge.Stats(); st.Connects < 2 {
		t.Fatalf("the cuts did not reconnect the uplink: %+v", st)
	}
}
