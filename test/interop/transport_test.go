package interop

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/app"
	"github.com/edgewise-iot/edgewise/internal/config"
)

// TestTLSClientCertificatesMosquitto has mosquitto_pub and mosquitto_sub
// connect to the TLS listener with --cafile and client certificates; the
// Authenticator sees the certificate's identity; a client without a
// certificate is refused.
func TestTLSClientCertificatesMosquitto(t *testing.T) {
	need(t, "mosquitto_pub", "mosquitto_sub")
	e := start(t)
	tlsArgs := []string{"--cafile", e.pki.caFile, "--cert", e.pki.clientCert, "--key", e.pki.clientKey}
	sub := startSub(t, e, e.tls, 1, append([]string{"-t", "tls/#", "-q", "1"}, tlsArgs...)...)
	mosqPub(t, e.tls, append([]string{"-t", "tls/a", "-q", "1", "-m", "secure"}, tlsArgs...)...)
	l := sub.next(t)
	mustEqual(t, "message over TLS", []string{l.Topic, l.Payload}, []string{"tls/a", "secure"})
	mustEqual(t, "identities", e.auth.names(), []string{"sensor-42", "sensor-42"})
	if out, err := runMosq(e.tls, "mosquitto_pub", "-t", "tls/a", "-m", "x", "--cafile", e.pki.caFile); err == nil {
		t.Fatalf("mosquitto_pub without a client certificate succeeded: %s", out)
	}
	// Plain MQTT on the TLS port is not a TLS handshake and goes nowhere.
	if out, err := runMosq(e.tls, "mosquitto_pub", "-t", "tls/a", "-m", "x"); err == nil {
		t.Fatalf("plain MQTT on the TLS listener succeeded: %s", out)
	}
}

// TestWebSocketNode runs mqtt.js over ws:// to the WebSocket listener and
// exchanges messages with mosquitto over TCP.
func TestWebSocketNode(t *testing.T) {
	need(t, "mosquitto_pub", "mosquitto_sub")
	e := start(t)
	n := newNode(t)
	n.connect(e.ws, map[string]any{"clientId": "browser-like"})
	n.subscribe("ws/in", map[string]any{"qos": 1})
	sub := startSub(t, e, e.tcp, 1, "-t", "ws/out", "-q", "1")
	mosqPub(t, e.tcp, "-t", "ws/in", "-q", "1", "-m", "to browser")
	mustEqual(t, "over WebSocket", n.message()["payload"], "to browser")
	big := make([]byte, 200_000)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	n.publish("ws/out", string(big), map[string]any{"qos": 1})
	mustEqual(t, "large message from WebSocket", len(sub.next(t).Payload), len(big))
	// MQTT 3.1.1 over WebSocket works too.
	n3 := newNode(t)
	n3.connect(e.ws, map[string]any{"protocolVersion": 4})
	n3.subscribe("ws/in", nil)
	mosqPub(t, e.tcp, "-t", "ws/in", "-m", "v3")
	mustEqual(t, "3.1.1 over WebSocket", n3.message()["payload"], "v3")
}

// TestPersistentSessionSurvivesRestart queues QoS 1 messages for an
// offline mqtt.js session, restarts the whole server on the same data
// directory and resumes the session.
func TestPersistentSessionSurvivesRestart(t *testing.T) {
	need(t, "mosquitto_pub")
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.MQTT.Addr = "127.0.0.1:0"
	cfg.MQTT.AllowAnonymous = true
	cfg.MQTT.SysInterval = 0
	run := func() (*app.App, func()) {
		t.Helper()
		a, err := app.New(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		return a, func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(waitFor):
				t.Fatal("server did not stop")
			}
		}
	}
	a, stop := run()
	addr := a.MQTTAddr().String()
	cfg.MQTT.Addr = addr // same port after the restart
	opts := map[string]any{"clientId": "durable", "clean": false, "properties": map[string]any{"sessionExpiryInterval": 3600}}
	n := newNode(t)
	n.connect("mqtt://"+addr, opts)
	n.subscribe("dur/#", map[string]any{"qos": 1})
	n.do("end", map[string]any{"op": "end"})
	for i := range 3 {
		mosqPub(t, addr, "-t", "dur/q", "-q", "1", "-m", strconv.Itoa(i))
	}
	stop()
	_, stop = run()
	defer stop()
	n2 := newNode(t)
	if n2.connect("mqtt://"+addr, opts)["sessionPresent"] != true {
		t.Fatal("session not present after restarting the server on the same data directory")
	}
	for i := range 3 {
		mustEqual(t, "message queued before the restart", n2.message()["payload"], strconv.Itoa(i))
	}
}
