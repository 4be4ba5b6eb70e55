package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// serveOn runs a server with opts on ln until the test ends.
func serveOn(t testing.TB, opts Options, ln net.Listener) *Server {
	t.Helper()
	s, err := New(opts)
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
	})
	return s
}

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for cn (a server certificate for 127.0.0.1
// when server is set, else a client certificate) and its PEM files.
func (ca *testCA) issue(t testing.TB, cn string, serial int64, server bool) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	if err := os.WriteFile(cf, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return kp, cf, kf
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func (ca *testCA) file(t testing.TB) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// certAuth names clients after their certificate's common name and
// anonymous clients "anon".
type certAuth struct {
	mu   sync.Mutex
	seen []string
}

func (a *certAuth) Authenticate(_ context.Context, c *ConnectInfo) (*Principal, error) {
	name := "anon"
	if len(c.PeerCertificates) > 0 {
		name = c.PeerCertificates[0].Subject.CommonName
	}
	a.mu.Lock()
	a.seen = append(a.seen, name)
	a.mu.Unlock()
	return &Principal{Name: name}, nil
}

func (a *certAuth) names() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// tlsListener starts a server behind a TLS Listener built from o.
func tlsListener(t testing.TB, o TLSOptions, auth Authenticator) (*Server, string) {
	t.Helper()
	cfg, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("tcp", "127.0.0.1:0", ListenerOptions{Name: "tls", TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, Options{Authenticator: auth}, ln), ln.Addr().String()
}

// dialTLSV5 connects paho.golang over TLS with an optional client
// certificate.
func dialTLSV5(t testing.TB, addr string, ca *testCA, client *tls.Certificate, id string) (*v5Client, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.pool(), ServerName: "127.0.0.1"}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	nc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	vc := &v5Client{recv: newReceived(), disconnects: make(chan *paho.Disconnect, 1)}
	vc.Client = paho.NewClient(paho.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { vc.recv.add(pr.Packet); return true, nil },
		},
		OnClientError: func(error) {},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := vc.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
		_ = nc.Close()
		return nil, err
	}
	t.Cleanup(func() { _ = vc.Disconnect(&paho.Disconnect{}) })
	return vc, nil
}

func TestTLSListenerRequiresClientCertificate(t *testing.T) {
	ca := newTestCA(t)
	_, scert, skey := ca.issue(t, "server", 2, true)
	dev, _, _ := ca.issue(t, "device-7", 3, false)
	rogueCA := newTestCA(t)
	rogue, _, _ := rogueCA.issue(t, "rogue", 4, false)
	auth := &certAuth{}
	_, addr := tlsListener(t, TLSOptions{CertFile: scert, KeyFile: skey, ClientAuth: ClientAuthRequire,
		ClientCAFile: ca.file(t)}, auth)

	c, err := dialTLSV5(t, addr, ca, &dev, "dev7")
	if err != nil {
		t.Fatalf("client with a certificate from the client CA: %v", err)
	}
	c.sub(t, paho.SubscribeOptions{Topic: "tls/echo", QoS: 1})
	c.pub(t, &paho.Publish{Topic: "tls/echo", QoS: 1, Payload: []byte("over tls")})
	if got := c.recv.next(t); string(got.Payload) != "over tls" {
		t.Fatalf("payload %q", got.Payload)
	}
	if got := auth.names(); len(got) != 1 || got[0] != "device-7" {
		t.Fatalf("authenticator saw %v, want the certificate's common name device-7", got)
	}
	if _, err := dialTLSV5(t, addr, ca, nil, "nocert"); err == nil {
		t.Fatal("client without a certificate connected to a listener that requires one")
	}
	if _, err := dialTLSV5(t, addr, ca, &rogue, "rogue"); err == nil {
		t.Fatal("client with a certificate from an unknown CA connected")
	}
	if got := auth.names(); len(got) != 1 {
		t.Fatalf("refused handshakes reached the authenticator: %v", got)
	}
}

func TestTLSListenerOptionalClientCertificateAndHook(t *testing.T) {
	ca := newTestCA(t)
	_, scert, skey := ca.issue(t, "server", 2, true)
	good, _, _ := ca.issue(t, "good", 3, false)
	revoked, _, _ := ca.issue(t, "revoked", 4, false)
	auth := &certAuth{}
	_, addr := tlsListener(t, TLSOptions{
		CertFile: scert, KeyFile: skey, ClientAuth: ClientAuthOptional, ClientCAs: ca.pool(),
		MinVersion: tls.VersionTLS13,
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			if chains[0][0].SerialNumber.Int64() == 4 {
				return errors.New("certificate revoked")
			}
			return nil
		},
	}, auth)
	if _, err := dialTLSV5(t, addr, ca, nil, "plain"); err != nil {
		t.Fatalf("client without a certificate on an optional listener: %v", err)
	}
	if _, err := dialTLSV5(t, addr, ca, &good, "good"); err != nil {
		t.Fatalf("client with a good certificate: %v", err)
	}
	if _, err := dialTLSV5(t, addr, ca, &revoked, "revoked"); err == nil {
		t.Fatal("the VerifyPeerCertificate hook did not refuse the revoked certificate")
	}
	got := auth.names()
	if len(got) != 2 || got[0] != "anon" || got[1] != "good" {
		t.Fatalf("authenticator saw %v, want [anon good]", got)
	}
	// TLS 1.2 is below the configured minimum.
	_, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool(), MaxVersion: tls.VersionTLS12})
	if err == nil {
		t.Fatal("TLS 1.2 handshake accepted with MinVersion 1.3")
	}
}

func TestTLSOptionsErrors(t *testing.T) {
	ca := newTestCA(t)
	_, scert, skey := ca.issue(t, "server", 2, true)
	for name, o := range map[string]TLSOptions{
		"no files":       {},
		"missing cert":   {CertFile: filepath.Join(t.TempDir(), "nope.crt"), KeyFile: skey},
		"require no CA":  {CertFile: scert, KeyFile: skey, ClientAuth: ClientAuthRequire},
		"bad policy":     {CertFile: scert, KeyFile: skey, ClientAuth: "sometimes"},
		"old version":    {CertFile: scert, KeyFile: skey, MinVersion: tls.VersionTLS11},
		"CA file is key": {CertFile: scert, KeyFile: skey, ClientAuth: ClientAuthOptional, ClientCAFile: skey},
	} {
		if _, err := o.Config(); !errors.Is(err, ErrTLSConfig) {
			t.Errorf("%s: err = %v, want ErrTLSConfig", name, err)
		}
	}
	if _, err := ParseTLSVersion("1.1"); err == nil {
		t.Error("ParseTLSVersion accepted 1.1")
	}
}

func TestTLSCertificateReload(t *testing.T) {
	ca := newTestCA(t)
	_, scert, skey := ca.issue(t, "server", 2, true)
	cfg, err := TLSOptions{CertFile: scert, KeyFile: skey, CertCheckInterval: time.Nanosecond}.Config()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("tcp", "127.0.0.1:0", ListenerOptions{TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, anon(), ln)
	serial := func() int64 {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 2 {
		t.Fatalf("serial %d, want 2", s)
	}
	_, ncert, nkey := ca.issue(t, "server", 99, true)
	for src, dst := range map[string]string{ncert: scert, nkey: skey} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func() bool { return serial() == 99 }, "renewed certificate served")
}

// closedSoon reports whether the server closes nc without sending anything.
func closedSoon(t testing.TB, nc net.Conn) bool {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(waitFor))
	n, err := nc.Read(make([]byte, 1))
	return n == 0 && err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestListenerMaxConnections(t *testing.T) {
	ln, err := Listen("tcp", "127.0.0.1:0", ListenerOptions{Limits: Limits{MaxConnections: 2}})
	if err != nil {
		t.Fatal(err)
	}
	s := serveOn(t, anon(), ln)
	addr := ln.Addr().String()
	a := dialRaw(t, addr, packets.V5)
	a.connect(&packets.Connect{ProtocolVersion: packets.V5, ClientID: "a", CleanStart: true})
	b := dialRaw(t, addr, packets.V5)
	b.connect(&packets.Connect{ProtocolVersion: packets.V5, ClientID: "b", CleanStart: true})
	third := dialRaw(t, addr, packets.V5)
	if !closedSoon(t, third.nc) {
		t.Fatal("third connection was not refused at accept")
	}
	st := ln.Stats()
	if st.RefusedMaxConnections != 1 || st.Accepted != 2 || st.Connections != 2 {
		t.Fatalf("stats %+v", st)
	}
	_ = a.nc.Close()
	eventually(t, func() bool { return ln.Stats().Connections == 1 && s.Stats().Connections == 1 }, "slot freed")
	c := dialRaw(t, addr, packets.V5)
	if ca := c.connect(&packets.Connect{ProtocolVersion: packets.V5, ClientID: "c", CleanStart: true}); ca.ReasonCode != 0 {
		t.Fatalf("connack 0x%02X after a slot was freed", ca.ReasonCode)
	}
}

func TestListenerConnectRate(t *testing.T) {
	// A refill this slow adds no token during the test: exactly the burst
	// is admitted.
	ln, err := Listen("tcp", "127.0.0.1:0", ListenerOptions{Limits: Limits{ConnectRate: 0.0001, ConnectBurst: 2}})
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, anon(), ln)
	for i := range 2 {
		c := dialRaw(t, ln.Addr().String(), packets.V311)
		c.connect(&packets.Connect{ProtocolVersion: packets.V311, ClientID: string(rune('a' + i)), CleanStart: true})
		_ = c.nc.Close()
	}
	c := dialRaw(t, ln.Addr().String(), packets.V311)
	if !closedSoon(t, c.nc) {
		t.Fatal("connection above the connect rate was not refused")
	}
	if st := ln.Stats(); st.RefusedRate != 1 || st.Accepted != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLimiterRefills(t *testing.T) {
	l := newLimiter(Limits{ConnectRate: 10, ConnectBurst: 1})
	t0 := time.Unix(1000, 0)
	if l.admit(t0) != refusedNone {
		t.Fatal("first connection refused")
	}
	if l.admit(t0.Add(50*time.Millisecond)) != refusedRate {
		t.Fatal("second connection within 100ms admitted at 10/s")
	}
	if l.admit(t0.Add(150*time.Millisecond)) != refusedNone {
		t.Fatal("connection after the refill refused")
	}
}

// wsServer serves a WebSocketListener on /mqtt of a loopback HTTP server.
func wsServer(t testing.TB, opts Options, wo WebSocketOptions) (*Server, *WebSocketListener, string) {
	t.Helper()
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := NewWebSocketListener(hl.Addr(), wo)
	mux := http.NewServeMux()
	mux.Handle("/mqtt", wl)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: waitFor}
	go func() { _ = hs.Serve(hl) }()
	t.Cleanup(func() { _ = hs.Close() })
	s := serveOn(t, opts, wl)
	return s, wl, "ws://" + hl.Addr().String() + "/mqtt"
}

func TestWebSocketAutopahoAndPaho3(t *testing.T) {
	s, wl, wsURL := wsServer(t, anon(), WebSocketOptions{})
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	got := make(chan string, 10)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		OnConnectError: func(error) {},
		ClientConfig: paho.ClientConfig{
			ClientID: "ws5",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				got <- string(pr.Packet.Payload)
				return true, nil
			}},
			OnClientError: func(error) {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cm.Disconnect(context.Background()) }()
	if err := cm.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ws/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	// A 3.1.1 client over WebSocket publishes a payload larger than one
	// frame buffer; the v5 client receives it.
	c3, err := connectV3(t, "", "ws3", true, func(o *mqtt3.ClientOptions) {
		o.Servers = nil
		o.AddBroker(wsURL)
	})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 100_000)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	wait3(t, c3.Publish("ws/big", 1, false, big))
	wait3(t, c3.Publish("ws/small", 0, false, "hello"))
	for _, want := range []string{string(big), "hello"} {
		select {
		case p := <-got:
			if p != want {
				t.Fatalf("received %d bytes, want %d", len(p), len(want))
			}
		case <-ctx.Done():
			t.Fatal("message not delivered over WebSocket")
		}
	}
	if st := wl.Stats(); st.Connections != 2 || st.Accepted != 2 {
		t.Fatalf("listener stats %+v", st)
	}
	c3.Disconnect(0)
	eventually(t, func() bool { return wl.Stats().Connections == 1 && s.Stats().Connections == 1 }, "ws close counted")
}

func TestWebSocketRefusals(t *testing.T) {
	_, wl, wsURL := wsServer(t, anon(), WebSocketOptions{Limits: Limits{MaxConnections: 1}})
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: waitFor}
	ws, resp, err := d.Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if resp.Header.Get("Sec-WebSocket-Protocol") != "mqtt" {
		t.Fatalf("subprotocol %q, want mqtt", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	_, resp, err = d.Dial(wsURL, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second connection over the limit: err %v resp %v", err, resp)
	}
	if st := wl.Stats(); st.RefusedMaxConnections != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A plain HTTP request is told what the endpoint is.
	r, err := http.Get("http" + wsURL[2:])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest || len(body) == 0 {
		t.Fatalf("plain GET: %d %s", r.StatusCode, body)
	}
	// MQTT over a text frame is refused with a close frame.
	if err := ws.WriteMessage(websocket.TextMessage, packets.AppendConnect(nil, &packets.Connect{ProtocolVersion: packets.V5, ClientID: "t", CleanStart: true})); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitFor))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseUnsupportedData {
		t.Fatalf("text frame: %v, want close 1003", err)
	}
	eventually(t, func() bool { return wl.Stats().Connections == 0 }, "slot released")
}

// TestWebSocketTLSClientCertificate: over wss:// the verified client
// certificate reaches the Authenticator as on the TLS listener; a client
// without one authenticates without a chain.
func TestWebSocketTLSClientCertificate(t *testing.T) {
	ca := newTestCA(t)
	_, scert, skey := ca.issue(t, "server", 2, true)
	dev, _, _ := ca.issue(t, "device-ws", 3, false)
	cfg, err := TLSOptions{CertFile: scert, KeyFile: skey, ClientAuth: ClientAuthOptional, ClientCAs: ca.pool()}.Config()
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := NewWebSocketListener(hl.Addr(), WebSocketOptions{})
	hs := &http.Server{Handler: wl, ReadHeaderTimeout: waitFor}
	go func() { _ = hs.Serve(tls.NewListener(hl, cfg)) }()
	t.Cleanup(func() { _ = hs.Close() })
	auth := &certAuth{}
	serveOn(t, Options{Authenticator: auth}, wl)
	u, err := url.Parse("wss://" + hl.Addr().String() + "/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	connect := func(id string, cert *tls.Certificate) {
		t.Helper()
		tc := &tls.Config{RootCAs: ca.pool(), ServerName: "127.0.0.1"}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
			ServerUrls: []*url.URL{u}, TlsCfg: tc, KeepAlive: 30, CleanStartOnInitialConnection: true,
			OnConnectError: func(error) {},
			ClientConfig:   paho.ClientConfig{ClientID: id, OnClientError: func(error) {}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := cm.AwaitConnection(ctx); err != nil {
			t.Fatalf("%s over wss: %v", id, err)
		}
		_ = cm.Disconnect(ctx)
	}
	connect("ws-dev", &dev)
	connect("ws-plain", nil)
	if got := auth.names(); len(got) != 2 || got[0] != "device-ws" || got[1] != "anon" {
		t.Fatalf("authenticator saw %v, want [device-ws anon]", got)
	}
}
