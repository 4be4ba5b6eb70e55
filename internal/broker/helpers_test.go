package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// waitFor bounds how long a test waits for something that should happen.
const waitFor = 15 * time.Second

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met: "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testLogger logs at debug level when BROKER_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("BROKER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// startServer runs a server on a random loopback port.
func startServer(t testing.TB, opts Options) (*Server, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if p := s.Stats().Panics; p != 0 {
			t.Errorf("%d connection goroutines panicked", p)
		}
	})
	return s, ln.Addr().String()
}

func anon() Options { return Options{AllowAnonymous: true} }

// received collects messages delivered to a v5 client.
type received struct {
	mu   sync.Mutex
	msgs []*paho.Publish
	ch   chan *paho.Publish
}

func newReceived() *received { return &received{ch: make(chan *paho.Publish, 10000)} }

func (r *received) add(p *paho.Publish) {
	r.mu.Lock()
	r.msgs = append(r.msgs, p)
	r.mu.Unlock()
	select {
	case r.ch <- p:
	default:
	}
}

func (r *received) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// next waits for the next message.
func (r *received) next(t testing.TB) *paho.Publish {
	t.Helper()
	select {
	case p := <-r.ch:
		return p
	case <-time.After(waitFor):
		t.Fatal("no message received")
		return nil
	}
}

// v5Client is a paho.golang client with its received messages.
type v5Client struct {
	*paho.Client
	recv        *received
	disconnects chan *paho.Disconnect
	connack     *paho.Connack
}

func dialV5(t testing.TB, addr string, cp *paho.Connect) (*v5Client, error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	vc := &v5Client{recv: newReceived(), disconnects: make(chan *paho.Disconnect, 1)}
	vc.Client = paho.NewClient(paho.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { vc.recv.add(pr.Packet); return true, nil },
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case vc.disconnects <- d:
			default:
			}
		},
		OnClientError: func(error) {},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ca, err := vc.Connect(ctx, cp)
	vc.connack = ca
	if err != nil {
		_ = nc.Close()
		return vc, err
	}
	t.Cleanup(func() { _ = vc.Disconnect(&paho.Disconnect{}) })
	return vc, nil
}

// connectV5 connects a v5 client and fails the test on error.
func connectV5(t testing.TB, addr, id string, clean bool) *v5Client {
	t.Helper()
	c, err := dialV5(t, addr, &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30})
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

func (c *v5Client) sub(t testing.TB, opts ...paho.SubscribeOptions) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if err != nil && sa == nil {
		t.Fatalf("subscribe: %v", err)
	}
	return sa.Reasons
}

func (c *v5Client) pub(t testing.TB, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil && r == nil {
		t.Fatalf("publish: %v", err)
	}
	return r
}

// connectV3 connects a paho.mqtt.golang (3.1.1) client.
func connectV3(t testing.TB, addr, id string, clean bool, configure func(*mqtt3.ClientOptions)) (mqtt3.Client, error) {
	t.Helper()
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).
		SetProtocolVersion(4).SetConnectTimeout(waitFor).SetOrderMatters(false)
	if configure != nil {
		configure(o)
	}
	c := mqtt3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(waitFor) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func wait3(t testing.TB, tok mqtt3.Token) {
	t.Helper()
	if !tok.WaitTimeout(waitFor) {
		t.Fatal("token timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
}

// rawClient speaks MQTT over TCP with the codec, for byte-exact tests.
type rawClient struct {
	t       testing.TB
	nc      net.Conn
	version byte
	buf     []byte
}

func dialRaw(t testing.TB, addr string, version byte) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, nc: nc, version: version}
}

func (r *rawClient) send(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet, or an error (io.EOF when the server closed).
func (r *rawClient) read() (packets.FixedHeader, []byte, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(waitFor))
	for {
		h, ok, err := packets.ParseFixedHeader(r.buf, 0)
		if err != nil {
			return h, nil, err
		}
		if ok && len(r.buf) >= h.Len+h.Remaining {
			body := append([]byte(nil), r.buf[h.Len:h.Len+h.Remaining]...)
			r.buf = r.buf[h.Len+h.Remaining:]
			return h, body, nil
		}
		tmp := make([]byte, 4096)
		n, err := r.nc.Read(tmp)
		r.buf = append(r.buf, tmp[:n]...)
		if err != nil && n == 0 {
			return h, nil, err
		}
	}
}

// expect reads the next packet and fails unless it has type typ.
func (r *rawClient) expect(typ byte) (packets.FixedHeader, []byte) {
	r.t.Helper()
	h, body, err := r.read()
	if err != nil {
		r.t.Fatalf("expected %s: %v", packets.TypeName(typ), err)
	}
	if h.Type != typ {
		r.t.Fatalf("expected %s, got %s", packets.TypeName(typ), packets.TypeName(h.Type))
	}
	return h, body
}

func (r *rawClient) expectPublish() *packets.Publish {
	r.t.Helper()
	h, body := r.expect(packets.PUBLISH)
	var p packets.Publish
	if err := packets.DecodePublish(r.version, h, body, &p); err != nil {
		r.t.Fatal(err)
	}
	return &p
}

// expectClosed reads until the server closes and returns the packet types
// seen before.
func (r *rawClient) expectClosed() []byte {
	r.t.Helper()
	var types []byte
	for {
		h, _, err := r.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatal("connection not closed by the server")
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				r.t.Logf("read error: %v", err)
			}
			return types
		}
		types = append(types, h.Type)
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe)
}

// connect sends CONNECT and returns the CONNACK.
func (r *rawClient) connect(cp *packets.Connect) *packets.Connack {
	r.t.Helper()
	if cp.ProtocolVersion == 0 {
		cp.ProtocolVersion = r.version
	}
	r.send(packets.AppendConnect(nil, cp))
	h, body := r.expect(packets.CONNACK)
	ca, err := packets.DecodeConnack(r.version, h, body)
	if err != nil {
		r.t.Fatal(err)
	}
	return ca
}

func (r *rawClient) subscribe(id uint16, subs ...packets.Subscription) *packets.Suback {
	r.t.Helper()
	r.send(packets.AppendSubscribe(nil, r.version, &packets.Subscribe{PacketID: id, Subscriptions: subs}))
	h, body := r.expect(packets.SUBACK)
	sa, err := packets.DecodeSuback(r.version, h, body)
	if err != nil {
		r.t.Fatal(err)
	}
	return sa
}

func (r *rawClient) puback(id uint16) {
	r.send(packets.AppendAck(nil, r.version, &packets.Ack{Type: packets.PUBACK, PacketID: id}))
}

func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }
func u8(v byte) *byte      { return &v }

func uniq(t testing.TB, s string) string { return fmt.Sprintf("%s-%s", s, t.Name()) }

func listen(t testing.TB) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, ln.Addr().String()
}
