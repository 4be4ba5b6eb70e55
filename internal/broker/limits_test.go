package broker

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// recordingHook records what it sees and fails while fail is set.
type recordingHook struct {
	mu      sync.Mutex
	batches [][]string // topics per call
	clients []string
	fail    bool
}

func (h *recordingHook) OnPublish(_ context.Context, batch []*Message) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var topics []string
	for _, m := range batch {
		topics = append(topics, m.Topic+"="+string(m.Payload))
		h.clients = append(h.clients, m.ClientID)
	}
	h.batches = append(h.batches, topics)
	if h.fail {
		return errors.New("storage unavailable")
	}
	return nil
}

func (h *recordingHook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, b := range h.batches {
		n += len(b)
	}
	return n
}

func TestHookBatchAndAcks(t *testing.T) {
	hook := &recordingHook{}
	_, addr := startServer(t, Options{AllowAnonymous: true, Hook: hook})
	r := dialRaw(t, addr, packets.V5)
	r.connect(&packets.Connect{ClientID: "h", CleanStart: true})
	var b []byte
	for i := range 10 {
		b = packets.AppendPublish(b, packets.V5, &packets.Publish{Topic: "h/t", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{'a' + byte(i)}})
	}
	r.send(b)
	for i := range 10 {
		h, body := r.expect(packets.PUBACK)
		var a packets.Ack
		if err := packets.DecodeAck(packets.V5, h, body, &a); err != nil || a.PacketID != uint16(i+1) || a.ReasonCode != 0 {
			t.Fatalf("ack %d: %+v %v", i, a, err)
		}
	}
	if n := hook.count(); n != 10 {
		t.Fatalf("hook saw %d messages", n)
	}
	hook.mu.Lock()
	if hook.batches[0][0] != "h/t=a" || hook.clients[0] != "h" {
		t.Fatalf("hook content %v %v", hook.batches, hook.clients)
	}
	hook.mu.Unlock()
}

func TestHookFailure(t *testing.T) {
	hook := &recordingHook{fail: true}
	_, addr := startServer(t, Options{AllowAnonymous: true, Hook: hook})
	// v5: PUBACK 0x80.
	r := dialRaw(t, addr, packets.V5)
	r.connect(&packets.Connect{ClientID: "h5", CleanStart: true})
	r.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "x", QoS: 1, PacketID: 3, Payload: []byte("p")}))
	h, body := r.expect(packets.PUBACK)
	var a packets.Ack
	if err := packets.DecodeAck(packets.V5, h, body, &a); err != nil || a.ReasonCode != packets.UnspecifiedError {
		t.Fatalf("ack %+v %v", a, err)
	}
	// 3.1.1: no PUBACK, the connection closes so the client resends.
	r3 := dialRaw(t, addr, packets.V311)
	r3.connect(&packets.Connect{ClientID: "h3", CleanStart: true})
	r3.send(packets.AppendPublish(nil, packets.V311, &packets.Publish{Topic: "x", QoS: 1, PacketID: 3, Payload: []byte("p")}))
	if got := r3.expectClosed(); len(got) != 0 {
		t.Fatalf("got %v before close", got)
	}
}

// TestSlowConsumerDrops checks that a subscriber that stops reading costs
// bounded memory and QoS 0 messages to it are dropped and counted while
// the publisher keeps going.
func TestSlowConsumerDrops(t *testing.T) {
	s, addr := startServer(t, Options{AllowAnonymous: true, MaxOutboundBytes: 64 << 10})
	slow := dialRaw(t, addr, packets.V311)
	slow.connect(&packets.Connect{ClientID: "slow", CleanStart: true})
	slow.subscribe(1, packets.Subscription{Filter: "flood"})
	// slow never reads again.
	fast := dialRaw(t, addr, packets.V311)
	fast.connect(&packets.Connect{ClientID: "fast", CleanStart: true})
	fast.subscribe(1, packets.Subscription{Filter: "flood"})
	fastDone := make(chan int)
	go func() {
		n := 0
		for {
			if _, _, err := fast.read(); err != nil {
				break
			}
			n++
		}
		fastDone <- n
	}()

	pub := dialRaw(t, addr, packets.V311)
	pub.connect(&packets.Connect{ClientID: "pub", CleanStart: true})
	payload := make([]byte, 4096)
	msg := packets.AppendPublish(nil, packets.V311, &packets.Publish{Topic: "flood", Payload: payload})
	const total = 5000 // 20 MB: more than the socket buffers hold
	var batch []byte
	for range 100 {
		batch = append(batch, msg...)
	}
	for range total / 100 {
		pub.send(batch)
	}
	pub.send(packets.AppendPingreq(nil))
	pub.expect(packets.PINGRESP)
	eventually(t, func() bool { return s.Stats().DroppedSlow > 0 }, "drops counted")
	st := s.Stats()
	if st.MessagesIn != total {
		t.Fatalf("MessagesIn = %d, want %d", st.MessagesIn, total)
	}
	_ = fast.nc.Close()
	<-fastDone
	t.Logf("dropped %d of %d for the slow consumer", st.DroppedSlow, total)
}

// TestClientMaximumPacketSize checks that messages larger than a v5
// client's Maximum Packet Size are not sent to it.
func TestClientMaximumPacketSize(t *testing.T) {
	s, addr := startServer(t, anon())
	sub := dialRaw(t, addr, packets.V5)
	sub.connect(&packets.Connect{ClientID: "small", CleanStart: true, Properties: packets.Properties{MaximumPacketSize: u32(100)}})
	sub.subscribe(1, packets.Subscription{Filter: "m", QoS: 1})
	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "pub", CleanStart: true})
	for i, size := range []int{200, 200, 10} {
		qos := byte(i % 2)
		pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "m", QoS: qos, PacketID: 1, Payload: make([]byte, size)}))
		if qos == 1 {
			pub.expect(packets.PUBACK)
		}
	}
	if p := sub.expectPublish(); len(p.Payload) != 10 {
		t.Fatalf("got %d bytes", len(p.Payload))
	}
	if got := s.Stats().DroppedTooLarge; got != 2 {
		t.Fatalf("DroppedTooLarge = %d", got)
	}
}

func TestCloseDisconnectsClients(t *testing.T) {
	s, err := New(anon())
	if err != nil {
		t.Fatal(err)
	}
	ln, addr := listen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	r5 := dialRaw(t, addr, packets.V5)
	r5.connect(&packets.Connect{ClientID: "a", CleanStart: true})
	r3 := dialRaw(t, addr, packets.V311)
	r3.connect(&packets.Connect{ClientID: "b", CleanStart: true})
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	h, body := r5.expect(packets.DISCONNECT)
	if d, err := packets.DecodeDisconnect(packets.V5, h, body); err != nil || d.ReasonCode != packets.ServerShuttingDown {
		t.Fatalf("disconnect %+v %v", d, err)
	}
	r5.expectClosed()
	r3.expectClosed()
	if err := s.Publish(context.Background(), "x", nil, 0, false); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if st := s.Stats(); st.Connections != 0 {
		t.Fatalf("connections after close: %d", st.Connections)
	}
}

// TestReceiveMaximumExceeded checks that a v5 client sending more QoS 1
// messages than the advertised Receive Maximum is disconnected with 0x93
// and a reason string.
func TestReceiveMaximumExceeded(t *testing.T) {
	_, addr := startServer(t, Options{AllowAnonymous: true, ReceiveMaximum: 2})
	r := dialRaw(t, addr, packets.V5)
	if ca := r.connect(&packets.Connect{ClientID: "rm", CleanStart: true}); *ca.Properties.ReceiveMaximum != 2 {
		t.Fatalf("receive maximum %d", *ca.Properties.ReceiveMaximum)
	}
	var b []byte
	for i := range 50 { // one write: read in one pass on loopback
		b = packets.AppendPublish(b, packets.V5, &packets.Publish{Topic: "x", QoS: 1, PacketID: uint16(i + 1)})
	}
	r.send(b)
	for {
		h, body, err := r.read()
		if err != nil {
			t.Fatal("closed without DISCONNECT")
		}
		if h.Type != packets.DISCONNECT {
			continue
		}
		d, err := packets.DecodeDisconnect(packets.V5, h, body)
		if err != nil || d.ReasonCode != packets.ReceiveMaximumExceeded || d.Properties.ReasonString == "" {
			t.Fatalf("disconnect %+v %v", d, err)
		}
		return
	}
}

// TestHookBatchBounded checks that a long read pass is handed to the hook
// in bounded batches.
func TestHookBatchBounded(t *testing.T) {
	hook := &recordingHook{}
	_, addr := startServer(t, Options{AllowAnonymous: true, Hook: hook})
	r := dialRaw(t, addr, packets.V311)
	r.connect(&packets.Connect{ClientID: "hb", CleanStart: true})
	var b []byte
	for range 1000 {
		b = packets.AppendPublish(b, packets.V311, &packets.Publish{Topic: "x", Payload: []byte("p")})
	}
	r.send(append(b, packets.AppendPingreq(nil)...))
	r.expect(packets.PINGRESP)
	hook.mu.Lock()
	defer hook.mu.Unlock()
	n := 0
	for _, batch := range hook.batches {
		if len(batch) > maxHookBatch {
			t.Fatalf("batch of %d", len(batch))
		}
		n += len(batch)
	}
	if n != 1000 {
		t.Fatalf("hook saw %d messages", n)
	}
}
