package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
)

// TestBadInput throws hostile and broken input at a running server and
// requires clear errors, no crash, and nothing already accepted lost.
func TestBadInput(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "--log-level", "debug")
	pass := srv.createThing("good-1")
	other := srv.createThing("other-1")
	good, _, _, err := mqttClient(t, srv.mqttAddr, "good-1", "good-1", pass)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(c *paho.Client, topic, payload string) byte {
		t.Helper()
		res, err := c.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
		if res != nil {
			return res.ReasonCode // paho also returns an error for reason codes >= 0x80
		}
		if err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
		return res.ReasonCode
	}
	if rc := publish(good, "devices/good-1/telemetry", `{"temperature": 1}`); rc != 0 {
		t.Fatalf("first publish reason 0x%x", rc)
	}

	t.Run("garbage bytes", func(t *testing.T) {
		for _, junk := range [][]byte{
			[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
			{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, // CONNECT with a 5-byte remaining length
			{0x30, 0x02, 0x00, 0x00},             // PUBLISH before CONNECT
			bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1000),
		} {
			conn, err := net.Dial("tcp", srv.mqttAddr)
			if err != nil {
				t.Fatal(err)
			}
			conn.Write(junk)
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.ReadAll(conn) // the server must close the connection
			conn.Close()
			if !closedByPeer(err) {
				t.Fatalf("server did not close after %q: %v", junk[:min(len(junk), 16)], err)
			}
		}
	})

	t.Run("oversize packet", func(t *testing.T) {
		// Raw MQTT 3.1.1 so no client library can refuse to send it.
		conn, err := net.Dial("tcp", srv.mqttAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write(rawConnectV3("good-1-big", "good-1", pass))
		ack := make([]byte, 4)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
			t.Fatalf("CONNACK %x %v", ack, err)
		}
		// PUBLISH QoS 0 with a 2 MiB remaining length (limit: 1 MiB).
		conn.Write([]byte{0x30, 0x80, 0x80, 0x80, 0x01}) // remaining length 2 MiB
		conn.Write(bytes.Repeat([]byte{'x'}, 64<<10))
		if _, err := io.ReadAll(conn); !closedByPeer(err) {
			t.Fatalf("server did not close the connection after an oversize packet: %v", err)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		_, ca, _, err := mqttClient(t, srv.mqttAddr, "good-1-x", "good-1", "not-the-password")
		if err == nil || ca == nil || ca.ReasonCode != 0x86 {
			t.Fatalf("want CONNACK 0x86, got %+v %v", ca, err)
		}
		_, ca, _, err = mqttClient(t, srv.mqttAddr, "anon", "", "")
		if err == nil || ca == nil || ca.ReasonCode != 0x87 {
			t.Fatalf("anonymous: want CONNACK 0x87, got %+v %v", ca, err)
		}
		// MQTT 3.1.1 gets return code 4 (bad user name or password).
		o := pahov3.NewClientOptions().AddBroker("tcp://" + srv.mqttAddr).SetClientID("v3-bad").
			SetUsername("good-1").SetPassword("nope").SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false)
		c3 := pahov3.NewClient(o)
		tok := c3.Connect()
		tok.WaitTimeout(10 * time.Second)
		if tok.Error() == nil || !strings.Contains(tok.Error().Error(), "user name or password") {
			t.Fatalf("v3 bad password: %v", tok.Error())
		}
	})

	t.Run("outside namespace v5", func(t *testing.T) {
		if rc := publish(good, "devices/other-1/telemetry", `{"temperature": 99}`); rc != 0x87 {
			t.Fatalf("publish to another device's topic: reason 0x%x, want 0x87", rc)
		}
		sa, err := good.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
			{Topic: "devices/+/command", QoS: 1}, {Topic: "#", QoS: 0}, {Topic: "devices/good-1/command", QoS: 1},
		}})
		if err != nil && sa == nil {
			t.Fatal(err)
		}
		if len(sa.Reasons) != 3 || sa.Reasons[0] != 0x87 || sa.Reasons[1] != 0x87 || sa.Reasons[2] != 1 {
			t.Fatalf("SUBACK reasons %v, want [0x87 0x87 1]", sa.Reasons)
		}
	})

	t.Run("outside namespace v3", func(t *testing.T) {
		o := pahov3.NewClientOptions().AddBroker("tcp://" + srv.mqttAddr).SetClientID("other-1").
			SetUsername("other-1").SetPassword(other).SetProtocolVersion(4).SetAutoReconnect(false)
		c3 := pahov3.NewClient(o)
		if tok := c3.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("v3 connect: %v", tok.Error())
		}
		defer c3.Disconnect(100)
		// Denied publish: silently dropped (3.1.1 has no negative PUBACK).
		tok := c3.Publish("devices/good-1/telemetry", 1, false, `{"temperature": -1}`)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("v3 publish: %v", tok.Error())
		}
		st := c3.Subscribe("devices/good-1/#", 1, nil)
		if !st.WaitTimeout(10 * time.Second) {
			t.Fatal("no SUBACK")
		}
		if rc := st.(*pahov3.SubscribeToken).Result()["devices/good-1/#"]; rc != 0x80 {
			t.Fatalf("v3 SUBACK code 0x%x, want 0x80", rc)
		}
	})

	t.Run("malformed JSON", func(t *testing.T) {
		for _, p := range []string{`{"temperature":`, `[1,2,3]`, "\xff\xfe", `{"timestamp":"last tuesday","data":{"t":1}}`} {
			if rc := publish(good, "devices/good-1/telemetry", p); rc != 0 {
				t.Fatalf("malformed payload %q: reason 0x%x (malformed data is acknowledged and dropped)", p, rc)
			}
		}
		if rc := publish(good, "devices/good-1/telemetry", `{"temperature": 2}`); rc != 0 {
			t.Fatalf("publish after malformed: 0x%x", rc)
		}
		var stats struct {
			Ingest struct {
				Malformed int `json:"malformed"`
			} `json:"ingest"`
		}
		if _, err := srv.api("GET", "/api/v1/stats", nil, &stats); err != nil || stats.Ingest.Malformed != 4 {
			t.Fatalf("malformed counter = %d (%v), want 4", stats.Ingest.Malformed, err)
		}
	})

	t.Run("bad HTTP requests", func(t *testing.T) {
		cases := []struct {
			method, path, body, token string
			status                    int
			code                      string
		}{
			{"GET", "/api/v1/things", "", "nope", 401, "unauthorized"},
			{"GET", "/api/v1/things/good-1/telemetry?start=soon", "", "", 400, "bad_request"},
			{"GET", "/api/v1/things/good-1/telemetry?every=0s&fn=mean", "", "", 400, "bad_request"},
			{"GET", "/api/v1/things/good-1/telemetry?every=1m&fn=avg", "", "", 400, "bad_request"},
			{"GET", "/api/v1/things/good-1/telemetry?start=-1h&stop=-2h", "", "", 400, "bad_request"},
			{"GET", "/api/v1/things/good-1/telemetry?every=1ns&start=-30d", "", "", 400, "bad_request"},
			{"GET", "/api/v1/things/good-1/telemetry?colour=blue", "", "", 400, "bad_request"},
			{"GET", "/api/v1/things/good-1/telemetry?limit=-4", "", "", 400, "bad_request"},
			{"GET", "/api/v1/things/ghost/telemetry", "", "", 404, "not_found"},
			{"POST", "/api/v1/things", `{"name":`, "", 400, "bad_request"},
			{"POST", "/api/v1/things", `{"name":"x","colour":"blue"}`, "", 400, "bad_request"},
			{"POST", "/api/v1/things", `{"name":"a#b"}`, "", 400, "bad_request"},
			{"POST", "/api/v1/things", `{"name":"good-1"}`, "", 409, "conflict"},
			{"POST", "/api/v1/things", `{"name":"big","attributes":{"x":"` + strings.Repeat("y", 2<<20) + `"}}`, "", 413, "payload_too_large"},
			{"GET", "/api/v1/nothing", "", "", 404, "not_found"},
		}
		for _, tc := range cases {
			req, _ := http.NewRequest(tc.method, srv.url(tc.path), strings.NewReader(tc.body))
			tok := srv.token
			if tc.token != "" {
				tok = tc.token
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), fmt.Sprintf(`"code":%q`, tc.code)) || !strings.Contains(string(b), `"message":`) {
				t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.code)
			}
		}
	})

	// Nothing accepted was lost and nothing denied got in: the good device
	// has exactly its two values, the other device none.
	tr, err := srv.points("good-1", "temperature", "&start=-1h")
	if err != nil || len(tr.Series) != 1 || len(tr.Series[0].Points) != 2 {
		t.Fatalf("good-1 temperature after bad input: %+v %v", tr, err)
	}
	tr, err = srv.points("other-1", "temperature", "&start=-1h")
	if err != nil || len(tr.Series) != 0 {
		t.Fatalf("other-1 must have no data: %+v %v", tr, err)
	}
	srv.stop()
}

// rawConnectV3 hand-encodes an MQTT 3.1.1 CONNECT with credentials.
func rawConnectV3(clientID, user, pass string) []byte {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	var body []byte
	body = append(body, str("MQTT")...)
	body = append(body, 4, 0xC2, 0, 30) // level 4; flags: username, password, clean session; keepalive 30s
	body = append(body, str(clientID)...)
	body = append(body, str(user)...)
	body = append(body, str(pass)...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// closedByPeer reports whether a read ended because the server closed the
// connection (EOF, or a reset when it closed with our bytes unread).
func closedByPeer(err error) bool {
	return err == nil || errors.Is(err, syscall.ECONNRESET)
}
