package broker

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

func TestSysLoadAverages(t *testing.T) {
	y := newSysState(time.Unix(0, 0), "v1")
	now := time.Unix(100, 0)
	values := func(msgs []sysMsg) map[string]string {
		m := map[string]string{}
		for _, x := range msgs {
			m[strings.TrimPrefix(x.topic, SysPrefix)] = string(x.payload)
		}
		return m
	}
	first := values(y.sample(Stats{MessagesIn: 1000}, []ListenerStats{{Name: "tls", RefusedRate: 3}}, now))
	for topic, want := range map[string]string{
		"version": "edgewise v1", "uptime": "100 seconds", "messages/received": "1000",
		"load/messages/received/1min": "0.00", "listeners/tls/refused/rate": "3",
	} {
		if first[topic] != want {
			t.Errorf("%s = %q, want %q", topic, first[topic], want)
		}
	}
	// A steady 600 messages per 10 s is 3600/min; after one 10 s step
	// the 1-minute average moved 1-e^(-1/6) of the way there.
	second := values(y.sample(Stats{MessagesIn: 1600}, []ListenerStats{{Name: "tls", RefusedRate: 3}}, now.Add(10*time.Second)))
	want := 3600 * (1 - math.Exp(-10.0/60))
	got, err := strconv.ParseFloat(second["load/messages/received/1min"], 64)
	if err != nil || math.Abs(got-want) > 0.01 {
		t.Fatalf("1min load %v (%v), want %.2f", second["load/messages/received/1min"], err, want)
	}
	if _, ok := second["version"]; ok {
		t.Error("unchanged version republished")
	}
	if _, ok := second["listeners/tls/refused/rate"]; ok {
		t.Error("unchanged listener counter republished")
	}
	if second["uptime"] != "110 seconds" {
		t.Errorf("uptime %q", second["uptime"])
	}
	// Long after the traffic stopped the averages decay towards zero.
	for i := range 200 {
		y.sample(Stats{MessagesIn: 1600}, nil, now.Add(time.Duration(20+10*i)*time.Second))
	}
	if l := y.loads[0].avg; l[0] > 0.01 || l[2] > 5 || l[2] < l[0] {
		t.Fatalf("loads %.2f after 33 idle minutes: the 1min average must be ~0, the 15min one lag behind", l)
	}
}

// TestSysTopicsNotMatchedByWildcards publishes $SYS statistics and checks
// that they are readable through $SYS filters but never reach subscribers
// of "#" or "+/...", neither retained on subscribe nor live.
func TestSysTopicsNotMatchedByWildcards(t *testing.T) {
	s, addr := startServer(t, anon())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- s.RunSys(ctx, SysOptions{Interval: 10 * time.Millisecond, Version: "test",
			Listeners: func() []ListenerStats { return []ListenerStats{{Name: "tcp", Accepted: 1}} }})
	}()
	eventually(t, func() bool { return s.Stats().Retained > 20 }, "$SYS retained messages")

	all := connectV5(t, addr, "all", true)
	all.sub(t, paho.SubscribeOptions{Topic: "#"}, paho.SubscribeOptions{Topic: "+/broker/#"})
	sys := connectV5(t, addr, "sys", true)
	sys.sub(t, paho.SubscribeOptions{Topic: "$SYS/#"})
	seen := map[string]string{}
	for !(seen[SysPrefix+"version"] != "" && seen[SysPrefix+"clients/connected"] == "2") {
		p := sys.recv.next(t)
		seen[p.Topic] = string(p.Payload)
	}
	if seen[SysPrefix+"version"] != "edgewise test" || seen[SysPrefix+"listeners/tcp/accepted"] != "1" {
		t.Fatalf("version %q, listener %q", seen[SysPrefix+"version"], seen[SysPrefix+"listeners/tcp/accepted"])
	}
	var st Stats
	if err := json.Unmarshal([]byte(seen[SysPrefix+"stats"]), &st); err != nil {
		t.Fatalf("stats JSON: %v", err)
	}
	// Let more live $SYS updates happen, then mark the end with a plain
	// message: the wildcard subscriber must have received only that.
	out := s.Stats().MessagesOut
	eventually(t, func() bool { return s.Stats().MessagesOut > out+20 }, "live $SYS updates")
	all.pub(t, &paho.Publish{Topic: "plain/marker", Payload: []byte("x")})
	if p := all.recv.next(t); p.Topic != "plain/marker" {
		t.Fatalf("wildcard subscriber received %q", p.Topic)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
