package broker

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// receiveACL lets everyone subscribe to anything but lets a principal with
// CheckReceive receive only topics under "ok/".
type receiveACL struct{}

func (receiveACL) CanPublish(*Principal, string) bool   { return true }
func (receiveACL) CanSubscribe(*Principal, string) bool { return true }
func (receiveACL) CanReceive(_ *Principal, topic string) bool {
	return strings.HasPrefix(topic, "ok/")
}

// checkAuth makes user "r" a principal with CheckReceive, anyone else a
// plain one.
type checkAuth struct{}

func (checkAuth) Authenticate(_ context.Context, c *ConnectInfo) (*Principal, error) {
	return &Principal{Name: c.Username, CheckReceive: c.Username == "r", CertificateID: "cert-" + c.Username}, nil
}

func TestReceiverFiltersDeliveries(t *testing.T) {
	s, addr := startServer(t, Options{Authenticator: checkAuth{}, Authorizer: receiveACL{}})
	ctx := context.Background()
	if err := s.Publish(ctx, "no/retained", []byte("r"), 1, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, "ok/retained", []byte("r"), 1, true); err != nil {
		t.Fatal(err)
	}
	restricted := dialRaw(t, addr, packets.V5)
	if ca := restricted.connect(&packets.Connect{ClientID: "r1", CleanStart: true, UsernameFlag: true, Username: "r"}); ca.ReasonCode != 0 {
		t.Fatalf("connack %x", ca.ReasonCode)
	}
	free := dialRaw(t, addr, packets.V5)
	free.connect(&packets.Connect{ClientID: "f1", CleanStart: true, UsernameFlag: true, Username: "f"})
	for _, c := range []*rawClient{restricted, free} {
		c.subscribe(1, packets.Subscription{Filter: "#", QoS: 0}, packets.Subscription{Filter: "q1/#", QoS: 1})
	}
	// Retained: the restricted client gets only ok/retained.
	if p := restricted.expectPublish(); p.Topic != "ok/retained" {
		t.Fatalf("restricted got retained %q", p.Topic)
	}
	got := map[string]bool{}
	for range 2 {
		got[free.expectPublish().Topic] = true
	}
	if !got["no/retained"] || !got["ok/retained"] {
		t.Fatalf("unrestricted retained %v", got)
	}
	for _, tc := range []struct {
		topic string
		qos   byte
	}{{"no/live", 0}, {"q1/live", 1}, {"ok/live", 0}} {
		if err := s.Publish(ctx, tc.topic, []byte("x"), tc.qos, false); err != nil {
			t.Fatal(err)
		}
	}
	// The restricted client's next message is ok/live: the QoS 0 and QoS 1
	// messages outside ok/ were not delivered.
	if p := restricted.expectPublish(); p.Topic != "ok/live" {
		t.Fatalf("restricted got %q", p.Topic)
	}
	seen := map[string]bool{}
	for len(seen) < 3 {
		p := free.expectPublish()
		if p.QoS == 1 {
			free.puback(p.PacketID)
		}
		seen[p.Topic] = true
	}
	if s.Stats().Denied < 3 {
		t.Fatalf("denied deliveries counted %d, want at least 3", s.Stats().Denied)
	}
}

func TestDisconnect(t *testing.T) {
	s, addr := startServer(t, Options{Authenticator: checkAuth{}})
	a := dialRaw(t, addr, packets.V5)
	a.connect(&packets.Connect{ClientID: "a", CleanStart: true, UsernameFlag: true, Username: "a"})
	b := dialRaw(t, addr, packets.V311)
	b.connect(&packets.Connect{ClientID: "b", CleanStart: true, UsernameFlag: true, Username: "b"})
	c := dialRaw(t, addr, packets.V5)
	c.connect(&packets.Connect{ClientID: "c", CleanStart: true, UsernameFlag: true, Username: "c"})
	if !s.Disconnect("a", packets.NotAuthorized) {
		t.Fatal("a was connected")
	}
	if types := a.expectClosed(); len(types) != 1 || types[0] != packets.DISCONNECT {
		t.Fatalf("v5 client saw %v before the close, want one DISCONNECT", types)
	}
	if s.Disconnect("nobody", packets.NotAuthorized) {
		t.Fatal("unknown client reported connected")
	}
	n := s.DisconnectWhere(func(_ string, p *Principal) bool { return p.CertificateID == "cert-b" }, packets.NotAuthorized)
	if n != 1 {
		t.Fatalf("closed %d, want 1", n)
	}
	b.expectClosed()
	eventually(t, func() bool { return s.Stats().Connections == 1 }, "c stays connected")
}

// TestWebSocketTLSPassesClientCertificate: over wss:// the client
// certificate reaches the Authenticator as on the TLS listener.
func TestWebSocketTLSPassesClientCertificate(t *testing.T) {
	ca := newTestCA(t)
	_, certFile, keyFile := ca.issue(t, "127.0.0.1", 2, true)
	client, _, _ := ca.issue(t, "dev-ws", 3, false)
	cfg, err := TLSOptions{CertFile: certFile, KeyFile: keyFile, ClientAuth: ClientAuthOptional, ClientCAs: ca.pool()}.Config()
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := NewWebSocketListener(hl.Addr(), WebSocketOptions{})
	mux := http.NewServeMux()
	mux.Handle("/mqtt", wl)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: waitFor}
	go func() { _ = hs.Serve(tls.NewListener(hl, cfg)) }()
	t.Cleanup(func() { _ = hs.Close() })
	auth := &certAuth{}
	serveOn(t, Options{Authenticator: auth}, wl)
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: waitFor,
		TLSClientConfig: &tls.Config{RootCAs: ca.pool(), Certificates: []tls.Certificate{client}}}
	ws, _, err := d.Dial("wss://"+hl.Addr().String()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.BinaryMessage, packets.AppendConnect(nil, &packets.Connect{ProtocolVersion: packets.V5, ClientID: "w", CleanStart: true})); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitFor))
	if _, msg, err := ws.ReadMessage(); err != nil || len(msg) < 4 || msg[0]>>4 != packets.CONNACK || msg[3] != 0 {
		t.Fatalf("CONNACK %x %v", msg, err)
	}
	if names := auth.names(); len(names) != 1 || names[0] != "dev-ws" {
		t.Fatalf("authenticator saw %v, want the certificate's dev-ws", names)
	}
}
