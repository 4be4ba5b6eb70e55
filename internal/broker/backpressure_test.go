package broker

import (
	"fmt"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// publishAll writes n QoS 1 PUBLISH to topic in one go from a goroutine
// (the broker may stop reading them) and returns the write's error.
func publishAll(pub *rawClient, topic string, n int) <-chan error {
	var b []byte
	for i := range n {
		b = packets.AppendPublish(b, pub.version, &packets.Publish{Topic: topic, QoS: 1, PacketID: uint16(i + 1),
			Payload: fmt.Appendf(nil, "%d", i)})
	}
	done := make(chan error, 1)
	go func() {
		_, err := pub.nc.Write(b)
		done <- err
	}()
	return done
}

// expectPubacks reads n PUBACKs (ignoring nothing else).
func expectPubacks(t *testing.T, pub *rawClient, n int) {
	t.Helper()
	for range n {
		pub.expect(packets.PUBACK)
	}
}

// TestBackpressureLosesNothing: a publisher far faster than a QoS 1
// subscriber with a tiny queue is paused instead of losing messages: the
// subscriber gets every acknowledged message, in order, and nothing is
// dropped.
func TestBackpressureLosesNothing(t *testing.T) {
	const inflight, queued, n = 5, 20, 2000
	for _, v := range []byte{packets.V311, packets.V5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			s, addr := startServer(t, Options{AllowAnonymous: true, MaxInflight: inflight, MaxQueued: queued,
				BackpressureWait: waitFor})
			sub := dialRaw(t, addr, v)
			sub.connect(&packets.Connect{ClientID: "bp-sub", CleanStart: true})
			sub.subscribe(1, packets.Subscription{Filter: "bp/t", QoS: 1})
			pub := dialRaw(t, addr, v)
			pub.connect(&packets.Connect{ClientID: "bp-pub", CleanStart: true})
			written := publishAll(pub, "bp/t", n)

			// Take the window without acknowledging until the publisher
			// has been paused: the queue is full by then.
			var held []*packets.Publish
			for range inflight {
				held = append(held, sub.expectPublish())
			}
			eventually(t, func() bool { return s.Stats().Backpressured > 0 }, "publisher paused")
			next := 0
			check := func(p *packets.Publish) {
				t.Helper()
				if string(p.Payload) != fmt.Sprint(next) {
					t.Fatalf("message %d: got %q", next, p.Payload)
				}
				next++
				sub.puback(p.PacketID)
			}
			for _, p := range held {
				check(p)
			}
			for next < n {
				check(sub.expectPublish())
			}
			expectPubacks(t, pub, n)
			if err := <-written; err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			if st.DroppedQueue != 0 || st.BackpressureTimeouts != 0 {
				t.Fatalf("dropped %d, timeouts %d; want none", st.DroppedQueue, st.BackpressureTimeouts)
			}
		})
	}
}

// TestBackpressureDoesNotStallOthers: while a publisher waits for a
// subscriber that does not acknowledge, an unrelated publisher and
// subscriber go on at full speed; when the slow subscriber goes away the
// waiting publisher goes on and loses nothing it was acknowledged for.
func TestBackpressureDoesNotStallOthers(t *testing.T) {
	const queued, n = 10, 200
	s, addr := startServer(t, Options{AllowAnonymous: true, MaxInflight: 2, MaxQueued: queued,
		BackpressureWait: waitFor})
	slow := dialRaw(t, addr, packets.V5)
	slow.connect(&packets.Connect{ClientID: "bp-slow", CleanStart: true})
	slow.subscribe(1, packets.Subscription{Filter: "bp/slow", QoS: 1})
	other := connectV5(t, addr, "bp-other-sub", true)
	other.sub(t, paho.SubscribeOptions{Topic: "bp/other", QoS: 1})

	stuck := dialRaw(t, addr, packets.V311)
	stuck.connect(&packets.Connect{ClientID: "bp-stuck-pub", CleanStart: true})
	written := publishAll(stuck, "bp/slow", n)
	eventually(t, func() bool { return s.Stats().Backpressured > 0 }, "publisher paused")

	free := connectV5(t, addr, "bp-other-pub", true)
	for i := range n {
		free.pub(t, &paho.Publish{Topic: "bp/other", QoS: 1, Payload: fmt.Appendf(nil, "%d", i)})
	}
	for i := range n {
		if p := other.recv.next(t); string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("unrelated message %d: %q", i, p.Payload)
		}
	}
	if st := s.Stats(); st.BackpressureTimeouts != 0 || st.DroppedQueue != 0 {
		t.Fatalf("timeouts %d, dropped %d while the slow subscriber was waited for", st.BackpressureTimeouts, st.DroppedQueue)
	}

	// The slow subscriber leaves (clean session: its messages go with it);
	// the paused publisher is released and every message is acknowledged.
	_ = slow.nc.Close()
	expectPubacks(t, stuck, n)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
}

// TestBackpressureOwnSubscription: a client never waits for its own
// session (it could not read the acks that drain it); the queue policy
// applies at once.
func TestBackpressureOwnSubscription(t *testing.T) {
	const n = 100
	s, addr := startServer(t, Options{AllowAnonymous: true, MaxInflight: 1, MaxQueued: 5, BackpressureWait: waitFor})
	c := dialRaw(t, addr, packets.V311)
	c.connect(&packets.Connect{ClientID: "bp-self", CleanStart: true})
	c.subscribe(1, packets.Subscription{Filter: "bp/self", QoS: 1})
	written := publishAll(c, "bp/self", n)
	acks := 0
	for acks < n {
		h, _, err := c.read()
		if err != nil {
			t.Fatalf("after %d acks: %v", acks, err)
		}
		if h.Type == packets.PUBACK {
			acks++
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Backpressured != 0 || st.DroppedQueue != n-1-5 {
		t.Fatalf("backpressured %d, dropped %d; want 0, %d", st.Backpressured, st.DroppedQueue, n-6)
	}
}
