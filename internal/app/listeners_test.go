package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgewise-iot/edgewise/internal/config"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and returns
// the cert and key file names and a pool trusting it.
func selfSigned(t *testing.T) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	_ = os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return cf, kf, pool
}

// TestServeAllListeners runs the whole server with TCP, TLS, WebSocket on
// its own address and on the API, and $SYS; the admin reads $SYS over
// WebSocket, a client publishes over TLS, and the API reports every
// listener.
func TestServeAllListeners(t *testing.T) {
	cert, key, pool := selfSigned(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.MQTT.Addr = "127.0.0.1:0"
	cfg.MQTT.AllowAnonymous = true
	cfg.MQTT.SysInterval = config.Duration(100 * time.Millisecond)
	cfg.MQTT.TLS = config.MQTTTLS{Addr: "127.0.0.1:0", CertFile: cert, KeyFile: key, MinVersion: "1.2", ClientAuth: "none",
		ListenerLimits: config.ListenerLimits{MaxConnections: 5}}
	cfg.MQTT.WebSocket = config.MQTTWebSocket{Addr: "127.0.0.1:0", Path: "/mqtt", OnHTTP: true}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	got := make(chan *paho.Publish, 100)
	connect := func(u string, tlsCfg *tls.Config, user string, pass []byte) *autopaho.ConnectionManager {
		t.Helper()
		pu, _ := url.Parse(u)
		cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
			ServerUrls: []*url.URL{pu}, TlsCfg: tlsCfg, KeepAlive: 30, CleanStartOnInitialConnection: true,
			ConnectUsername: user, ConnectPassword: pass, OnConnectError: func(error) {},
			ClientConfig: paho.ClientConfig{
				OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
					got <- pr.Packet
					return true, nil
				}},
				OnClientError: func(error) {},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := cm.AwaitConnection(ctx); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		t.Cleanup(func() { _ = cm.Disconnect(context.Background()) })
		return cm
	}
	admin := connect("ws://"+a.WebSocketAddr().String()+"/mqtt", nil, "admin", []byte(a.AdminToken()))
	if _, err := admin.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "$SYS/broker/listeners/tls/connections"}, {Topic: "fleet/#", QoS: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	dev := connect("tls://"+a.TLSAddr().String(), &tls.Config{RootCAs: pool}, "", nil)
	connect("ws://"+a.HTTPAddr().String()+"/mqtt", nil, "", nil)
	if _, err := dev.Publish(ctx, &paho.Publish{Topic: "fleet/1", QoS: 1, Payload: []byte("tls")}); err != nil {
		t.Fatal(err)
	}
	sawTLS, sawMsg := false, false
	for !(sawTLS && sawMsg) {
		select {
		case p := <-got:
			sawTLS = sawTLS || (p.Topic == "$SYS/broker/listeners/tls/connections" && string(p.Payload) == "1")
			sawMsg = sawMsg || (p.Topic == "fleet/1" && string(p.Payload) == "tls")
		case <-ctx.Done():
			t.Fatalf("timed out: $SYS tls connections seen %v, message over TLS seen %v", sawTLS, sawMsg)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr().String()+"/api/v1/stats", nil)
	req.Header.Set("Authorization", "Bearer "+a.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		MQTT struct {
			Listeners []struct {
				Name        string `json:"name"`
				Connections int    `json:"connections"`
			} `json:"listeners"`
		} `json:"mqtt"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	conns := map[string]int{}
	for _, l := range body.MQTT.Listeners {
		conns[l.Name] = l.Connections
	}
	if len(conns) != 3 || conns["tls"] != 1 || conns["ws"] != 2 {
		t.Fatalf("listener stats %+v", body.MQTT.Listeners)
	}
}
