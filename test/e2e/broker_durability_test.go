package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// rawMQTT is a minimal MQTT 5 client over the codec, so the test controls
// exactly which acknowledgements a subscriber sends before the crash.
type rawMQTT struct {
	t   *testing.T
	nc  net.Conn
	buf []byte
}

func dialMQTT(t *testing.T, addr string) *rawMQTT {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawMQTT{t: t, nc: nc}
}

func (r *rawMQTT) send(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawMQTT) read() (packets.FixedHeader, []byte) {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		h, ok, err := packets.ParseFixedHeader(r.buf, 0)
		if err != nil {
			r.t.Fatal(err)
		}
		if ok && len(r.buf) >= h.Len+h.Remaining {
			body := append([]byte(nil), r.buf[h.Len:h.Len+h.Remaining]...)
			r.buf = r.buf[h.Len+h.Remaining:]
			return h, body
		}
		tmp := make([]byte, 64<<10)
		n, err := r.nc.Read(tmp)
		r.buf = append(r.buf, tmp[:n]...)
		if err != nil && n == 0 {
			r.t.Fatalf("read: %v", err)
		}
	}
}

func (r *rawMQTT) ack(typ byte, id uint16) {
	r.send(packets.AppendAck(nil, packets.V5, &packets.Ack{Type: typ, PacketID: id}))
}

func (r *rawMQTT) connect(id, token string) *packets.Connack {
	r.t.Helper()
	exp := uint32(3600)
	r.send(packets.AppendConnect(nil, &packets.Connect{ProtocolVersion: packets.V5, ClientID: id, KeepAlive: 60,
		UsernameFlag: true, Username: "admin", PasswordFlag: true, Password: []byte(token),
		Properties: packets.Properties{SessionExpiry: &exp}}))
	h, body := r.read()
	ca, err := packets.DecodeConnack(packets.V5, h, body)
	if err != nil || h.Type != packets.CONNACK || ca.ReasonCode != 0 {
		r.t.Fatalf("connack: type %d err %v %+v", h.Type, err, ca)
	}
	return ca
}

// TestKill9KeepsBrokerSessions queues QoS 1 and QoS 2 messages for an
// offline persistent session and leaves others in flight (unanswered, and
// QoS 2 released with PUBREL sent), kills the server with SIGKILL right
// after the last acknowledgement to the publishers, restarts it and
// requires every acknowledged message to reach the session: QoS 2 exactly
// once, in-flight QoS 2 resent with its packet id, released ones finished
// with PUBREL only.
func TestKill9KeepsBrokerSessions(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "127.0.0.1:0")

	sub := dialMQTT(t, srv.mqttAddr)
	sub.connect("dur-sub", srv.token)
	sub.send(packets.AppendSubscribe(nil, packets.V5, &packets.Subscribe{PacketID: 1,
		Subscriptions: []packets.Subscription{{Filter: "dur/#", QoS: 2}}}))
	if h, body := sub.read(); h.Type != packets.SUBACK || body[len(body)-1] != 2 {
		t.Fatalf("suback type %d body %v", h.Type, body)
	}

	pubs := make([]*paho.Client, 2)
	for i := range pubs {
		c, _, _, err := mqttClient(t, srv.mqttAddr, fmt.Sprintf("dur-pub-%d", i), "admin", srv.token)
		if err != nil {
			t.Fatal(err)
		}
		pubs[i] = c
	}
	publish := func(c *paho.Client, topic string, qos byte, payload string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
		if err == nil && res != nil && res.ReasonCode >= 0x80 {
			err = fmt.Errorf("reason %#x", res.ReasonCode)
		}
		if err != nil {
			return fmt.Errorf("publish %s: %w", payload, err)
		}
		return nil
	}

	// Phase 1: in flight to the connected session, which answers only some.
	const inflight = 6
	for i := range inflight {
		if err := publish(pubs[0], "dur/q2", 2, fmt.Sprintf("inflight-q2-%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := publish(pubs[0], "dur/q1", 1, fmt.Sprintf("inflight-q1-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	sentIDs := map[string]uint16{}
	released := map[string]bool{}
	for len(sentIDs) < 2*inflight {
		h, body := sub.read()
		var p packets.Publish
		if h.Type != packets.PUBLISH || packets.DecodePublish(packets.V5, h, body, &p) != nil {
			t.Fatalf("expected PUBLISH, got type %d", h.Type)
		}
		sentIDs[string(p.Payload)] = p.PacketID
	}
	for i := 0; i < inflight; i += 2 { // release every other QoS 2 message
		payload := fmt.Sprintf("inflight-q2-%d", i)
		sub.ack(packets.PUBREC, sentIDs[payload])
		if h, _ := sub.read(); h.Type != packets.PUBREL {
			t.Fatalf("expected PUBREL, got type %d", h.Type)
		}
		released[payload] = true
	}
	sub.nc.Close()
	eventually(t, 10*time.Second, func() error {
		var st struct {
			Broker struct {
				Connections int `json:"connections"`
			} `json:"broker"`
		}
		if _, err := srv.api("GET", "/api/v1/stats", nil, &st); err != nil {
			return err
		}
		if st.Broker.Connections != len(pubs) {
			return fmt.Errorf("%d connections", st.Broker.Connections)
		}
		return nil
	})

	// Phase 2: queued for the offline session, from two publishers at once.
	const queued = 150
	var wg sync.WaitGroup
	errs := make(chan error, len(pubs))
	for i, c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queued {
				qos := byte(1 + (j+i)%2)
				if err := publish(c, fmt.Sprintf("dur/p%d", i), qos, fmt.Sprintf("queued-q%d-%d-%d", qos, i, j)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	srv.kill()

	srv = startServer(t, dir, "127.0.0.1:0")
	sub = dialMQTT(t, srv.mqttAddr)
	if ca := sub.connect("dur-sub", srv.token); !ca.SessionPresent {
		t.Fatal("session not present after kill -9")
	}
	want := map[string]bool{}
	for i := range inflight {
		want[fmt.Sprintf("inflight-q1-%d", i)] = true
		if !released[fmt.Sprintf("inflight-q2-%d", i)] {
			want[fmt.Sprintf("inflight-q2-%d", i)] = true
		}
	}
	for i := range pubs {
		for j := range queued {
			want[fmt.Sprintf("queued-q%d-%d-%d", 1+(j+i)%2, i, j)] = true
		}
	}
	got := map[string]int{}
	pubrels := 0              // PUBREL of the deliveries released before the crash
	recd := map[uint16]bool{} // QoS 2 answered with PUBREC after the restart
	pinged := false
	for {
		if !pinged && len(got) == len(want) && pubrels == len(released) {
			// Anything sent after this is a duplicate we must see.
			sub.send(packets.AppendPingreq(nil))
			pinged = true
		}
		h, body := sub.read()
		switch h.Type {
		case packets.PINGRESP:
		case packets.PUBREL:
			var a packets.Ack
			if err := packets.DecodeAck(packets.V5, h, body, &a); err != nil {
				t.Fatal(err)
			}
			if recd[a.PacketID] {
				delete(recd, a.PacketID)
			} else {
				pubrels++
			}
			sub.ack(packets.PUBCOMP, a.PacketID)
			continue
		case packets.PUBLISH:
			var p packets.Publish
			if err := packets.DecodePublish(packets.V5, h, body, &p); err != nil {
				t.Fatal(err)
			}
			payload := string(p.Payload)
			got[payload]++
			if !want[payload] {
				t.Fatalf("unexpected message %q after restart", payload)
			}
			if strings.HasPrefix(payload, "inflight-q2-") && (!p.Dup || p.PacketID != sentIDs[payload]) {
				t.Fatalf("%s resent with dup %v id %d, want dup and id %d", payload, p.Dup, p.PacketID, sentIDs[payload])
			}
			if p.QoS == 2 {
				recd[p.PacketID] = true
				sub.ack(packets.PUBREC, p.PacketID)
			} else {
				sub.ack(packets.PUBACK, p.PacketID)
			}
			continue
		default:
			t.Fatalf("unexpected packet type %d", h.Type)
		}
		break
	}
	for payload := range want {
		if got[payload] == 0 {
			t.Errorf("acknowledged message %q lost", payload)
		}
	}
	for payload, n := range got {
		if n > 1 && strings.Contains(payload, "q2") {
			t.Errorf("QoS 2 message %q delivered %d times", payload, n)
		}
	}
	if pubrels != len(released) {
		t.Errorf("%d PUBREL resent, want %d", pubrels, len(released))
	}
}
