package interop

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/broker/packets"
	"github.com/edgewise-iot/edgewise/internal/testenv"
)

// waitFor bounds every wait for something that should happen.
const waitFor = 15 * time.Second

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// need skips (or, in CI, fails) the test when a command is missing.
func need(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			testenv.Missing(t, c+" is not installed (make test-deps)")
		}
	}
}

// certAuth names clients after their certificate's common name, or lets
// them in anonymously.
type certAuth struct {
	mu   sync.Mutex
	seen []string
}

func (a *certAuth) Authenticate(_ context.Context, c *broker.ConnectInfo) (*broker.Principal, error) {
	if len(c.PeerCertificates) == 0 {
		return &broker.Principal{Anonymous: true}, nil
	}
	cn := c.PeerCertificates[0].Subject.CommonName
	a.mu.Lock()
	a.seen = append(a.seen, cn)
	a.mu.Unlock()
	return &broker.Principal{Name: cn}, nil
}

func (a *certAuth) names() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// env is a broker with TCP, TLS (client certificate required) and
// WebSocket listeners on loopback.
type env struct {
	srv      *broker.Server
	auth     *certAuth
	tcp, tls string // host:port
	ws       string // ws://host:port/mqtt
	pki      *pki
}

func start(t testing.TB) *env {
	t.Helper()
	e := &env{auth: &certAuth{}, pki: newPKI(t)}
	srv, err := broker.New(broker.Options{Authenticator: e.auth, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	tcp, err := broker.Listen("tcp", "127.0.0.1:0", broker.ListenerOptions{Name: "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := broker.TLSOptions{CertFile: e.pki.serverCert, KeyFile: e.pki.serverKey,
		ClientAuth: broker.ClientAuthRequire, ClientCAFile: e.pki.caFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	tl, err := broker.Listen("tcp", "127.0.0.1:0", broker.ListenerOptions{Name: "tls", TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := broker.NewWebSocketListener(hl.Addr(), broker.WebSocketOptions{})
	mux := http.NewServeMux()
	mux.Handle("/mqtt", wl)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: waitFor}
	go func() { _ = hs.Serve(hl) }()
	var wg sync.WaitGroup
	for _, ln := range []net.Listener{tcp, tl, wl} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil {
				t.Errorf("serve: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		_ = hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		wg.Wait()
		if p := srv.Stats().Panics; p != 0 {
			t.Errorf("%d connection goroutines panicked", p)
		}
	})
	e.tcp, e.tls, e.ws = tcp.Addr().String(), tl.Addr().String(), "ws://"+hl.Addr().String()+"/mqtt"
	return e
}

// subscribed waits until the broker holds n more subscriptions than before.
func (e *env) subscribed(t testing.TB, before int64, n int64) {
	t.Helper()
	eventually(t, func() bool { return e.srv.Stats().Subscriptions >= before+n }, "subscription in place")
}

// features are what the broker's CONNACK advertises to an MQTT 5 client.
type features struct {
	qos2, topicAlias, subIDs, shared bool
}

// probe connects once with MQTT 5 and reads the CONNACK properties.
func probe(t testing.TB, addr string) features {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(waitFor))
	if _, err := nc.Write(packets.AppendConnect(nil, &packets.Connect{ProtocolVersion: packets.V5, ClientID: "probe", CleanStart: true})); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 512)
	for {
		tmp := make([]byte, 512)
		n, err := nc.Read(tmp)
		buf = append(buf, tmp[:n]...)
		h, ok, perr := packets.ParseFixedHeader(buf, 0)
		if perr != nil {
			t.Fatal(perr)
		}
		if ok && len(buf) >= h.Len+h.Remaining {
			ca, err := packets.DecodeConnack(packets.V5, h, buf[h.Len:h.Len+h.Remaining])
			if err != nil {
				t.Fatal(err)
			}
			p := ca.Properties
			_, _ = nc.Write(packets.AppendDisconnect(nil, packets.V5, &packets.Disconnect{}))
			return features{
				qos2:       p.MaximumQoS == nil || *p.MaximumQoS == 2,
				topicAlias: p.TopicAliasMaximum != nil && *p.TopicAliasMaximum > 0,
				subIDs:     p.SubIDAvailable == nil || *p.SubIDAvailable == 1,
				shared:     p.SharedSubAvailable == nil || *p.SharedSubAvailable == 1,
			}
		}
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
	}
}

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "interop CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name string, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issue := func(cn string, serial int64, server bool) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(cn+".crt", "CERTIFICATE", der), write(cn+".key", "EC PRIVATE KEY", kder)
	}
	p := &pki{caFile: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = issue("server", 2, true)
	p.clientCert, p.clientKey = issue("sensor-42", 3, false)
	return p
}

// hostPort splits addr for the mosquitto clients' -h and -p.
func hostPort(addr string) []string {
	h, p, _ := net.SplitHostPort(addr)
	return []string{"-h", h, "-p", p}
}

// mosqPub runs mosquitto_pub -V 5 against addr and fails the test when it
// fails.
func mosqPub(t testing.TB, addr string, args ...string) {
	t.Helper()
	if out, err := runMosq(addr, "mosquitto_pub", args...); err != nil {
		t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
	}
}

func runMosq(addr, cmd string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	all := append(append([]string{"-V", "5"}, hostPort(addr)...), args...)
	return exec.CommandContext(ctx, cmd, all...).CombinedOutput()
}

// subFormat is what mosqSub prints per message, split into a line.
const subFormat = "%t|%p|%q|%r|%P|%R|%D|%E|%S"

// line is one message printed by mosquitto_sub.
type line struct {
	Topic, Payload, QoS, Retain, User, ResponseTopic, Correlation, Expiry, SubID string
}

// mosqSub is a running mosquitto_sub.
type mosqSub struct {
	lines chan line
	cmd   *exec.Cmd
}

// startSub runs mosquitto_sub -V 5 and waits until its subscriptions are
// in place (n filters).
func startSub(t testing.TB, e *env, addr string, n int64, args ...string) *mosqSub {
	t.Helper()
	before := e.srv.Stats().Subscriptions
	all := append(append([]string{"-V", "5"}, hostPort(addr)...), append([]string{"-F", subFormat, "-W", "60"}, args...)...)
	cmd := exec.Command("mosquitto_sub", all...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &mosqSub{lines: make(chan line, 1000), cmd: cmd}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			f := strings.SplitN(sc.Text(), "|", 9)
			for len(f) < 9 {
				f = append(f, "")
			}
			s.lines <- line{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]}
		}
		close(s.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("mosquitto_sub stderr: %s", stderr.String())
		}
	})
	if n > 0 {
		e.subscribed(t, before, n)
	}
	return s
}

// next returns the next printed message.
func (s *mosqSub) next(t testing.TB) line {
	t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			t.Fatal("mosquitto_sub exited")
		}
		return l
	case <-time.After(waitFor):
		t.Fatal("mosquitto_sub received nothing")
	}
	return line{}
}

// node is one mqtt.js client driven through node/driver.js.
type node struct {
	t      testing.TB
	in     io.WriteCloser
	events chan map[string]any
	msgs   chan map[string]any
}

func newNode(t testing.TB) *node {
	t.Helper()
	need(t, "node")
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "mqtt", "package.json")); err != nil {
		testenv.Missing(t, "the mqtt npm package is not installed in test/interop/node (make test-deps)")
	}
	cmd := exec.Command("node", filepath.Join(dir, "driver.js"))
	cmd.Dir = dir
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, in: in, events: make(chan map[string]any, 100), msgs: make(chan map[string]any, 1000)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				continue
			}
			if ev["ev"] == "message" {
				n.msgs <- ev
			} else {
				n.events <- ev
			}
		}
		close(n.events)
	}()
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("node stderr: %s", stderr.String())
		}
	})
	return n
}

// do sends one command and waits for the event want (an "error" event
// fails the test unless want is "error").
func (n *node) do(want string, cmd map[string]any) map[string]any {
	n.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := n.in.Write(append(b, '\n')); err != nil {
		n.t.Fatalf("node: %v", err)
	}
	deadline := time.After(waitFor)
	for {
		select {
		case ev, ok := <-n.events:
			if !ok {
				n.t.Fatalf("node exited waiting for %s", want)
			}
			if ev["ev"] == want {
				return ev
			}
			if ev["ev"] == "error" {
				n.t.Fatalf("node %v: %v", cmd["op"], ev["message"])
			}
		case <-deadline:
			n.t.Fatalf("node: no %s after %v", want, cmd)
		}
	}
}

// connect connects with MQTT 5 and extra mqtt.js options.
func (n *node) connect(url string, opts map[string]any) map[string]any {
	n.t.Helper()
	o := map[string]any{"protocolVersion": 5, "clean": true}
	for k, v := range opts {
		o[k] = v
	}
	return n.do("connect", map[string]any{"op": "connect", "url": url, "opts": o})
}

func (n *node) subscribe(topic string, opts map[string]any) []any {
	n.t.Helper()
	return n.do("suback", map[string]any{"op": "subscribe", "topic": topic, "opts": opts})["granted"].([]any)
}

func (n *node) publish(topic, payload string, opts map[string]any) {
	n.t.Helper()
	n.do("published", map[string]any{"op": "publish", "topic": topic, "payload": payload, "opts": opts})
}

// message returns the next message received.
func (n *node) message() map[string]any {
	n.t.Helper()
	select {
	case m := <-n.msgs:
		return m
	case <-time.After(waitFor):
		n.t.Fatal("node received nothing")
	}
	return nil
}

// until returns the messages received before one on topic marker.
func (n *node) until(marker string) []map[string]any {
	n.t.Helper()
	var before []map[string]any
	for {
		m := n.message()
		if m["topic"] == marker {
			return before
		}
		before = append(before, m)
	}
}

func props(m map[string]any) map[string]any {
	p, _ := m["properties"].(map[string]any)
	if p == nil {
		p = map[string]any{}
	}
	return p
}

func mustEqual(t testing.TB, what string, got, want any) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}
