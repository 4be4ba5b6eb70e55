package broker

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// TestAutopahoReconnect drops an autopaho (v5) subscriber's connection on
// the server side and checks that it reconnects to its persistent session
// and receives every QoS 1 message published meanwhile.
func TestAutopahoReconnect(t *testing.T) {
	s, addr := startServer(t, anon())
	u, err := url.Parse("mqtt://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]bool{}
	var presents []bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         60,
		ConnectRetryDelay:             20 * time.Millisecond,
		ReconnectBackoff:              func(int) time.Duration { return 20 * time.Millisecond },
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ca *paho.Connack) {
			mu.Lock()
			presents = append(presents, ca.SessionPresent)
			first := len(presents) == 1
			mu.Unlock()
			if first {
				go func() {
					_, _ = cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "auto/#", QoS: 1}}})
				}()
			}
		},
		OnConnectError: func(error) {},
		ClientConfig: paho.ClientConfig{
			ClientID: "auto",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				mu.Lock()
				got[string(pr.Packet.Payload)] = true
				mu.Unlock()
				return true, nil
			}},
			OnClientError: func(error) {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return s.Stats().Subscriptions == 1 }, "subscribed")

	// Drop the connection under the client.
	s.mu.Lock()
	c := s.sessions["auto"].conn.Load()
	s.mu.Unlock()
	_ = c.nc.Close()

	const n = 50
	for i := range n {
		if err := s.Publish(ctx, "auto/x", fmt.Appendf(nil, "%d", i), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == n
	}, "all %d messages received", n)
	mu.Lock()
	defer mu.Unlock()
	if len(presents) < 2 || presents[0] || !presents[len(presents)-1] {
		t.Fatalf("session present flags %v", presents)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), waitFor)
	defer dcancel()
	_ = cm.Disconnect(dctx)
}
