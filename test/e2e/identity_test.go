package e2e

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
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// tlsAddr waits for the server's "serving MQTT over TLS" log line.
func (s *server) tlsAddr() string {
	s.t.Helper()
	var addr string
	eventually(s.t, 20*time.Second, func() error {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "edgewise serving MQTT over TLS" {
				addr, _ = rec["addr"].(string)
				return nil
			}
		}
		return errors.New("no TLS listener logged yet")
	})
	return addr
}

// certDir holds cert.pem, key.pem and ca.pem of one device.
type certDir string

func (d certDir) file(name string) string { return filepath.Join(string(d), name) }

// tlsMQTT connects a paho.golang client over TLS with the device
// certificate in dir (none when dir is empty), verifying the server with
// ca. Messages go to msgs; a server DISCONNECT's reason code to gone.
type tlsMQTT struct {
	c    *paho.Client
	msgs chan *paho.Publish
	gone chan byte
}

func connectTLS(t *testing.T, addr string, ca []byte, dir certDir, clientID string) (*tlsMQTT, *paho.Connack, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if dir != "" {
		kp, err := tls.LoadX509KeyPair(dir.file("cert.pem"), dir.file("key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, nil, err
	}
	m := &tlsMQTT{msgs: make(chan *paho.Publish, 1000), gone: make(chan byte, 1)}
	m.c = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			m.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case m.gone <- d.ReasonCode:
			default:
			}
		},
		OnClientError: func(error) {
			select {
			case m.gone <- 0xFF: // connection lost without a DISCONNECT
			default:
			}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca2, err := m.c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
	if err != nil {
		conn.Close()
		return nil, ca2, err
	}
	t.Cleanup(func() { _ = m.c.Disconnect(&paho.Disconnect{}) })
	return m, ca2, nil
}

// byoCA is a certificate authority of the user's own.
type byoCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newBYOCA(t *testing.T, dir, name string) *byoCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return &byoCA{cert: c, key: key}
}

// issue writes a device certificate signed by ca into a new directory.
func (ca *byoCA) issue(t *testing.T, dir, cn string, notBefore, notAfter time.Time) certDir {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	d, _ := os.MkdirTemp(dir, cn+"-")
	os.WriteFile(filepath.Join(d, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(d, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	return certDir(d)
}

func expectRefused(t *testing.T, what string, ca *paho.Connack, err error, code byte, why string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: connected, want refusal 0x%02x", what, code)
	}
	if ca == nil || ca.ReasonCode != code || !strings.Contains(ca.Properties.ReasonString, why) {
		t.Fatalf("%s: connack %+v (%v), want 0x%02x with reason string containing %q", what, ca, err, code, why)
	}
}

// TestIdentityTLS runs `edgewise serve --mqtt-tls-addr` with no other TLS
// setting, issues device certificates with the CLI and connects real TLS
// clients (paho.golang, mosquitto_pub/sub in MQTT 3.1.1 and 5, Python
// paho): accepted, unknown, revoked (dropping a live connection), expired,
// wrong-thing and wrong-CA certificates, just-in-time registration, and
// policies that keep a device away from other devices' topics.
func TestIdentityTLS(t *testing.T) {
	_, mosqErr := exec.LookPath("mosquitto_pub")
	requirePeer(t, mosqErr == nil, "mosquitto_pub/mosquitto_sub (Debian mosquitto-clients)")
	requirePeer(t, exec.Command("/usr/bin/python3", "-c", "import paho.mqtt.client").Run() == nil, "python3-paho-mqtt")
	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "data"), "127.0.0.1:0", "--mqtt-tls-addr", "127.0.0.1:0")
	tlsAddr := srv.tlsAddr()
	for _, n := range []string{"d1", "d2", "d3", "d4"} {
		srv.createThing(n)
	}

	// certs create writes cert.pem, key.pem (0600) and ca.pem and prints the id.
	certs := map[string]certDir{}
	ids := map[string]string{}
	for _, n := range []string{"d1", "d2", "d3"} {
		d := certDir(filepath.Join(dir, n))
		out, errOut, code := srv.cli("certs", "create", n, "--out", string(d))
		if code != 0 {
			t.Fatalf("certs create %s: %d %s", n, code, errOut)
		}
		ids[n], certs[n] = strings.TrimSpace(out), d
		if fi, err := os.Stat(d.file("key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key.pem: %v %v", fi, err)
		}
	}
	if _, _, code := srv.cli("certs", "create", "d1"); code != 2 {
		t.Fatalf("certs create without --out: exit %d, want 2", code)
	}
	if _, errOut, code := srv.cli("certs", "create", "nobody", "--out", filepath.Join(dir, "x")); code != 1 || !strings.Contains(errOut, "thing not found") {
		t.Fatalf("certs create for an unknown thing: %d %q", code, errOut)
	}
	if out, _, _ := srv.cli("certs", "list"); !strings.Contains(out, ids["d1"]) || !strings.Contains(out, "ACTIVE") {
		t.Fatalf("certs list:\n%s", out)
	}
	ca, err := os.ReadFile(certs["d1"].file("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}

	// paho.golang: accepted, wrong thing, no certificate.
	d1, _, err := connectTLS(t, tlsAddr, ca, certs["d1"], "d1")
	if err != nil {
		t.Fatalf("d1 with its certificate: %v", err)
	}
	_, cack, err := connectTLS(t, tlsAddr, ca, certs["d1"], "d2")
	expectRefused(t, "d1's certificate as d2", cack, err, 0x87, "not attached")
	_, cack, err = connectTLS(t, tlsAddr, ca, "", "d1")
	expectRefused(t, "no certificate, no password", cack, err, 0x87, "")

	admin, _, _, err := mqttClient(t, srv.mqttAddr, "ops", "admin", srv.token)
	if err != nil {
		t.Fatal(err)
	}
	adminSub, _, adminMsgs, err := mqttClient(t, srv.mqttAddr, "ops-sub", "admin", srv.token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adminSub.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "devices/+/telemetry", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	publish := func(topic, payload string) {
		t.Helper()
		if _, err := admin.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	waitTelemetry := func(topic, payload string) {
		t.Helper()
		for {
			select {
			case p := <-adminMsgs:
				if p.Topic == topic && string(p.Payload) == payload {
					return
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("no %s %q", topic, payload)
			}
		}
	}

	// mosquitto_sub (MQTT 5) and mosquitto_pub (3.1.1 and 5) with certificates.
	host, port := "127.0.0.1", tlsAddr[strings.LastIndex(tlsAddr, ":")+1:]
	tlsArgs := func(d certDir, id string) []string {
		return []string{"-h", host, "-p", port, "--cafile", d.file("ca.pem"), "--cert", d.file("cert.pem"), "--key", d.file("key.pem"), "-i", id}
	}
	sub := exec.Command("stdbuf", append(append([]string{"-oL", "mosquitto_sub"}, tlsArgs(certs["d2"], "d2")...),
		"-V", "5", "-d", "-q", "1", "-t", "devices/d2/command", "-C", "1", "-W", "60")...)
	subOut := &syncBuffer{}
	sub.Stdout, sub.Stderr = subOut, subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait() })
	eventually(t, 30*time.Second, func() error {
		if !strings.Contains(strings.ToLower(subOut.String()), "received suback") {
			return fmt.Errorf("mosquitto_sub has not subscribed: %s", subOut.String())
		}
		return nil
	})
	publish("devices/d2/command", "reboot")
	if err := sub.Wait(); err != nil || !strings.Contains(subOut.String(), "reboot") {
		t.Fatalf("mosquitto_sub -V 5 over mTLS: %v\n%s", err, subOut.String())
	}
	for _, v := range []string{"311", "5"} {
		msg := "mosquitto-v" + v
		out, err := exec.Command("mosquitto_pub", append(tlsArgs(certs["d2"], "d2"), "-V", v, "-q", "1", "-t", "devices/d2/telemetry", "-m", msg)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub -V %s: %v %s", v, err, out)
		}
		waitTelemetry("devices/d2/telemetry", msg)
	}

	// Python paho with tls_set.
	python := func(d certDir, id, topic string) string {
		t.Helper()
		script := `
import sys, time, threading
import paho.mqtt.client as mqtt
host, port, ca, cert, key, cid, topic = sys.argv[1:8]
done = threading.Event()
result = {}
def on_connect(c, u, flags, rc):
    result["rc"] = rc
    if rc == 0:
        c.publish(topic, "python", qos=1)
    else:
        done.set()
def on_publish(c, u, mid):
    done.set()
c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311)
c.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
c.on_connect = on_connect
c.on_publish = on_publish
try:
    c.connect(host, int(port), 30)
except Exception as e:
    print("error", type(e).__name__, e)
    sys.exit(0)
c.loop_start()
done.wait(20)
c.loop_stop()
print("rc", result.get("rc"))
`
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "/usr/bin/python3", "-c", script, host, port, d.file("ca.pem"), d.file("cert.pem"), d.file("key.pem"), id, topic).CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out := python(certs["d3"], "d3", "devices/d3/telemetry"); out != "rc 0" {
		t.Fatalf("python paho with its certificate: %s", out)
	}
	waitTelemetry("devices/d3/telemetry", "python")

	// Revocation: the connected d1 is dropped, new connections are refused.
	if out, errOut, code := srv.cli("certs", "revoke", ids["d1"]); code != 0 || !strings.Contains(out, "REVOKED") {
		t.Fatalf("certs revoke: %d %s %s", code, out, errOut)
	}
	select {
	case rc := <-d1.gone:
		if rc != 0x87 {
			t.Fatalf("revoked client disconnected with 0x%02x, want 0x87", rc)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the revoked certificate's connection stayed up")
	}
	_, cack, err = connectTLS(t, tlsAddr, ca, certs["d1"], "d1")
	expectRefused(t, "revoked", cack, err, 0x87, "revoked")
	if _, errOut, code := srv.cli("certs", "activate", ids["d1"]); code != 1 || !strings.Contains(errOut, "final") {
		t.Fatalf("re-activating a revoked certificate: %d %s", code, errOut)
	}
	if out, err := exec.Command("mosquitto_pub", append(tlsArgs(certs["d1"], "d1"), "-q", "1", "-t", "devices/d1/telemetry", "-m", "x")...).CombinedOutput(); err == nil || !strings.Contains(strings.ToLower(string(out)), "not authori") {
		t.Fatalf("mosquitto_pub with a revoked certificate: %v %s", err, out)
	}
	if _, _, code := srv.cli("certs", "deactivate", ids["d3"]); code != 0 {
		t.Fatal("deactivate d3")
	}
	if out := python(certs["d3"], "d3", "devices/d3/telemetry"); out != "rc 5" {
		t.Fatalf("python paho with an inactive certificate: %s (want CONNACK 5, not authorised)", out)
	}
	if _, _, code := srv.cli("certs", "activate", ids["d3"]); code != 0 {
		t.Fatal("activate d3")
	}
	if out := python(certs["d3"], "d3", "devices/d3/telemetry"); out != "rc 0" {
		t.Fatalf("python paho after re-activation: %s", out)
	}

	// Bring your own CA: unknown until registered; wrong CA fails the handshake.
	acme := newBYOCA(t, dir, "acme")
	now := time.Now()
	stranger := acme.issue(t, dir, "d4", now.Add(-time.Hour), now.Add(time.Hour))
	os.WriteFile(stranger.file("ca.pem"), ca, 0o644)
	if _, _, err := connectTLS(t, tlsAddr, ca, stranger, "d4"); err == nil {
		t.Fatal("a certificate of an unregistered CA connected")
	}
	if out, err := exec.Command("mosquitto_pub", append(tlsArgs(stranger, "d4"), "-t", "devices/d4/telemetry", "-m", "x")...).CombinedOutput(); err == nil {
		t.Fatalf("mosquitto_pub with a wrong-CA certificate succeeded: %s", out)
	}
	if out, errOut, code := srv.cli("cas", "register", filepath.Join(dir, "acme.pem")); code != 0 || len(strings.TrimSpace(out)) != 64 {
		t.Fatalf("cas register: %d %q %q", code, out, errOut)
	}
	_, cack, err = connectTLS(t, tlsAddr, ca, stranger, "d4")
	expectRefused(t, "unknown certificate of a registered CA", cack, err, 0x86, "unknown")

	// JITR: a second CA with auto-registration; expired certificates are refused.
	fleet := newBYOCA(t, dir, "fleet")
	if _, errOut, code := srv.cli("cas", "register", filepath.Join(dir, "fleet.pem"), "--auto-register"); code != 0 {
		t.Fatalf("cas register --auto-register: %s", errOut)
	}
	expired := fleet.issue(t, dir, "d4", now.Add(-24*time.Hour), now.Add(-time.Hour))
	_, cack, err = connectTLS(t, tlsAddr, ca, expired, "d4")
	expectRefused(t, "expired", cack, err, 0x86, "expired")
	fresh := fleet.issue(t, dir, "d4", now.Add(-time.Hour), now.Add(time.Hour))
	d4, _, err := connectTLS(t, tlsAddr, ca, fresh, "d4")
	if err != nil {
		t.Fatalf("JITR: %v", err)
	}
	if out, _, _ := srv.cli("certs", "list", "--thing", "d4", "--json"); strings.Count(out, `"id"`) != 2 {
		t.Fatalf("JITR should have recorded both d4 certificates:\n%s", out)
	}

	// Default policy: d4 cannot subscribe to other devices' topics at all.
	sa, err := d4.c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "devices/#", QoS: 1}, {Topic: "+/d2/command", QoS: 1}, {Topic: "$share/g/devices/d2/#", QoS: 1}, {Topic: "devices/d4/#", QoS: 1},
	}})
	if err != nil && sa == nil {
		t.Fatal(err)
	}
	if want := []byte{0x87, 0x87, 0x87, 1}; string(sa.Reasons) != string(want) {
		t.Fatalf("default policy SUBACK %x, want %x", sa.Reasons, want)
	}

	// A policy with variables: subscribe to anything, but receive and
	// publish only under the own name, and Deny overrides Allow.
	pol := filepath.Join(dir, "policy.json")
	os.WriteFile(pol, []byte(`{"Version": "2012-10-17", "Statement": [
	  {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
	  {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*"},
	  {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/*"},
	  {"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/devices/*/firmware"}]}`), 0o600)
	if _, errOut, code := srv.cli("policies", "create", "own-topics", "-f", pol); code != 0 {
		t.Fatalf("policies create: %s", errOut)
	}
	if _, errOut, code := srv.cli("policies", "attach", "own-topics", "--thing", "d4"); code != 0 {
		t.Fatalf("policies attach: %s", errOut)
	}
	if _, _, code := srv.cli("policies", "attach", "own-topics"); code != 2 {
		t.Fatal("policies attach without a target must be a usage error")
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"Statement": [{"Effect": "Allow", "Action": "iot:Teleport", "Resource": "*"}]}`), 0o600)
	if _, errOut, code := srv.cli("policies", "create", "bad", "-f", bad); code != 1 || !strings.Contains(errOut, "Statement[0].Action[0]") {
		t.Fatalf("bad policy: %d %s", code, errOut)
	}
	// The attached policy applies to the live connection at once.
	sa, err = d4.c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "devices/#", QoS: 1}, {Topic: "+/d2/command", QoS: 1}, {Topic: "$share/g/devices/d2/#", QoS: 1},
	}})
	if err != nil || string(sa.Reasons) != "\x01\x01\x01" {
		t.Fatalf("policy SUBACK %v %v", sa, err)
	}
	publish("devices/d2/command", "not for d4")
	publish("devices/d1/telemetry", "not for d4")
	publish("devices/d4/command", "for d4")
	select {
	case p := <-d4.msgs:
		if p.Topic != "devices/d4/command" {
			t.Fatalf("d4 received %s %q from another device's topics", p.Topic, p.Payload)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("d4 got nothing")
	}
	pr, err := d4.c.Publish(context.Background(), &paho.Publish{Topic: "devices/d4/firmware", QoS: 1, Payload: []byte("x")})
	if err == nil && (pr == nil || pr.ReasonCode != 0x87) {
		t.Fatalf("Deny must override Allow: %+v", pr)
	}
	if pr, err = d4.c.Publish(context.Background(), &paho.Publish{Topic: "devices/d4/telemetry", QoS: 1, Payload: []byte("ok")}); err != nil || pr.ReasonCode != 0 {
		t.Fatalf("allowed publish: %+v %v", pr, err)
	}
	waitTelemetry("devices/d4/telemetry", "ok")
	if _, errOut, code := srv.cli("policies", "delete", "own-topics"); code != 1 || !strings.Contains(errOut, "attached") {
		t.Fatalf("deleting an attached policy: %d %s", code, errOut)
	}
	if !strings.Contains(srv.logs.String(), "certificate refused") {
		t.Fatal("refusals were not logged")
	}
	srv.stop()
}
