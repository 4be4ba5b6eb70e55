package broker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

type recordingObserver struct {
	mu     sync.Mutex
	events []string
}

func (o *recordingObserver) add(e string) {
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
}

func (o *recordingObserver) OnConnect(c ClientInfo) { o.add("connect " + c.ClientID) }
func (o *recordingObserver) OnSubscribe(c ClientInfo, f string) {
	o.add("subscribe " + c.ClientID + " " + f)
}
func (o *recordingObserver) OnDisconnect(c ClientInfo) { o.add("disconnect " + c.ClientID) }

func (o *recordingObserver) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.events)
}

func TestObserverSeesLifecycle(t *testing.T) {
	obs := &recordingObserver{}
	opts := anon()
	opts.Observer = obs
	opts.Authorizer = denyTopic("forbidden/#")
	_, addr := startServer(t, opts)

	c := connectV5(t, addr, "obs-1", true)
	c.sub(t, paho.SubscribeOptions{Topic: "a/+", QoS: 1}, paho.SubscribeOptions{Topic: "forbidden/#"})
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"connect obs-1", "subscribe obs-1 a/+", "disconnect obs-1"}
	eventually(t, func() bool { return slices.Equal(obs.snapshot(), want) }, "events %v, want %v", obs.snapshot(), want)

}

// denyTopic allows everything except subscribing under prefix.
type denyTopic string

func (d denyTopic) CanPublish(*Principal, string) bool { return true }
func (d denyTopic) CanSubscribe(_ *Principal, f string) bool {
	return !matchesPrefix(f, string(d))
}

func matchesPrefix(f, pattern string) bool {
	return len(pattern) > 1 && len(f) >= len(pattern)-1 && f[:len(pattern)-1] == pattern[:len(pattern)-1]
}

type hookFunc func(context.Context, []*Message) error

func (f hookFunc) OnPublish(ctx context.Context, b []*Message) error { return f(ctx, b) }

func TestChainHooks(t *testing.T) {
	if ChainHooks(nil, nil) != nil {
		t.Fatal("a chain of nil hooks is not nil")
	}
	var calls []string
	a := hookFunc(func(context.Context, []*Message) error { calls = append(calls, "a"); return nil })
	boom := errors.New("boom")
	b := hookFunc(func(context.Context, []*Message) error { calls = append(calls, "b"); return boom })
	c := hookFunc(func(context.Context, []*Message) error { calls = append(calls, "c"); return nil })
	if err := ChainHooks(a, nil, b, c).OnPublish(context.Background(), nil); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if !slices.Equal(calls, []string{"a", "b"}) {
		t.Fatalf("calls = %v, want a then b", calls)
	}
}
