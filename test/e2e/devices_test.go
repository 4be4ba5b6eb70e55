package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSeedDeviceTrackedCommands: the seed's Python IoTDevice receives
// tracked commands sent with the CLI and the API on its command topic and
// its replies complete them (synchronous mode).
func TestSeedDeviceTrackedCommands(t *testing.T) {
	_, err := exec.LookPath("/usr/bin/python3")
	requirePeer(t, err == nil && exec.Command("/usr/bin/python3", "-c", "import paho.mqtt.client").Run() == nil, "python3 with paho-mqtt (Debian python3-paho-mqtt)")
	host := os.Getenv("EDGEWISE_TEST_SEED_HOST")
	if host == "" {
		host = "127.0.0.3"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "1883"))
	requirePeer(t, err == nil, "a free port 1883 on "+host+" (set EDGEWISE_TEST_SEED_HOST)")
	ln.Close()
	srv := startServer(t, t.TempDir(), net.JoinHostPort(host, "1883"))
	const dev = "seed-valve-1"
	pass := srv.createThing(dev, "--type", "actuator")

	py := exec.Command("/usr/bin/python3", "testdata/run_seed_command_device.py", dev, host, dev, pass, "2")
	stdout, err := py.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	py.Stderr = os.Stderr
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	defer py.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine := func(prefix string) string {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("device exited before printing %q", prefix)
				}
				t.Logf("device: %s", l)
				if strings.HasPrefix(l, "ERROR") {
					t.Fatalf("device: %s", l)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-timeout:
				t.Fatalf("device did not print %q", prefix)
			}
		}
	}
	waitLine("READY")

	out, errOut, code := srv.cli("commands", "send", dev, "--command", "reboot", "--payload", `{"delay":5}`, "--wait", "--timeout", "20s")
	if code != 0 {
		t.Fatalf("commands send: exit %d: %s", code, errOut)
	}
	var c struct {
		ID     string         `json:"id"`
		Status string         `json:"status"`
		Result map[string]any `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if c.Status != "succeeded" || c.Result["done"] != "reboot" || c.Result["delay"] != 5.0 {
		t.Fatalf("command after wait: %s", out)
	}
	line := waitLine("COMMAND")
	want := fmt.Sprintf(`COMMAND {"command": "reboot", "command_id": %q, "delay": 5}`, c.ID)
	if line != want {
		t.Fatalf("device got %q, want %q", line, want)
	}
	var failed struct {
		Status string `json:"status"`
	}
	if code, err := srv.api("POST", "/api/v1/things/"+dev+"/commands", strings.NewReader(`{"command":"explode","wait":true,"timeout":"20s"}`), &failed); err != nil || code != 200 || failed.Status != "failed" {
		t.Fatalf("failing command: %d %v %+v", code, err, failed)
	}
	waitLine("DONE")
	out, errOut, code = srv.cli("commands", "list", dev)
	if code != 0 || !strings.Contains(out, c.ID) || !strings.Contains(out, "succeeded") || !strings.Contains(out, "failed") {
		t.Fatalf("commands list: exit %d %s %s", code, out, errOut)
	}
	if _, errOut, code := srv.cli("commands", "send", dev, "--payload", "[1]"); code != 2 {
		t.Errorf("bad payload: exit %d (%s)", code, errOut)
	}
}

// mosquittoSub starts mosquitto_sub for filters and waits until the
// broker acknowledged the subscription; messages arrive as "topic payload"
// lines.
func mosquittoSub(t *testing.T, addr, user, pass string, count int, filters ...string) (<-chan string, *exec.Cmd) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-d", "-h", host, "-p", port, "-u", user, "-P", pass, "-q", "1", "-v", "-C", fmt.Sprint(count), "-W", "60"}
	for _, f := range filters {
		args = append(args, "-t", f)
	}
	// mosquitto_sub writes through stdio: make its pipe line buffered so
	// the SUBACK line arrives before it exits.
	cmd := exec.Command("stdbuf", append([]string{"-oL", "mosquitto_sub"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	msgs := make(chan string, 16)
	subscribed := make(chan struct{})
	go func() {
		r := bufio.NewReader(stdout)
		once := false
		for {
			l, err := r.ReadString('\n')
			l = strings.TrimRight(l, "\n")
			if strings.Contains(strings.ToLower(l), "received suback") && !once {
				once = true
				close(subscribed)
			} else if strings.HasPrefix(l, "$") {
				msgs <- l
			}
			if err == io.EOF || err != nil {
				close(msgs)
				return
			}
		}
	}()
	select {
	case <-subscribed:
	case <-time.After(30 * time.Second):
		t.Fatal("mosquitto_sub did not subscribe")
	}
	return msgs, cmd
}

func mosquittoPub(t *testing.T, addr, user, pass, topic, msg string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-u", user, "-P", pass, "-q", "1", "-t", topic, "-m", msg).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub %s: %v %s", topic, err, out)
	}
}

func nextMsg(t *testing.T, msgs <-chan string) (string, map[string]any) {
	t.Helper()
	select {
	case l, ok := <-msgs:
		if !ok {
			t.Fatal("mosquitto_sub ended")
		}
		topic, payload, _ := strings.Cut(l, " ")
		var m map[string]any
		if err := json.Unmarshal([]byte(payload), &m); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		return topic, m
	case <-time.After(30 * time.Second):
		t.Fatal("no message")
	}
	return "", nil
}

// TestShadowByHandWithMosquitto drives the shadow topics with
// mosquitto_pub/mosquitto_sub exactly as docs/devices.md shows.
func TestShadowByHandWithMosquitto(t *testing.T) {
	_, err := exec.LookPath("mosquitto_sub")
	_, err2 := exec.LookPath("stdbuf")
	requirePeer(t, err == nil && err2 == nil, "mosquitto_sub/mosquitto_pub (Debian mosquitto-clients) and stdbuf (coreutils)")
	srv := startServer(t, t.TempDir(), "127.0.0.1:0")
	const th = "lamp-7"
	pw := srv.createThing(th)
	base := "$aws/things/" + th + "/shadow/"

	msgs, _ := mosquittoSub(t, srv.mqttAddr, th, pw, 4, base+"update/accepted", base+"update/delta", base+"get/accepted")
	mosquittoPub(t, srv.mqttAddr, th, pw, base+"update", `{"state":{"desired":{"color":"green","brightness":80}},"clientToken":"by-hand"}`)
	got := map[string]map[string]any{}
	for range 2 {
		topic, m := nextMsg(t, msgs)
		got[topic] = m
	}
	acc, delta := got[base+"update/accepted"], got[base+"update/delta"]
	if acc == nil || acc["clientToken"] != "by-hand" || acc["version"] != 1.0 {
		t.Fatalf("accepted: %v", got)
	}
	if delta == nil || delta["state"].(map[string]any)["color"] != "green" {
		t.Fatalf("delta: %v", got)
	}
	// The device reports through the seed's state topic; the delta clears.
	mosquittoPub(t, srv.mqttAddr, th, pw, "devices/"+th+"/state", `{"device_id":"lamp-7","timestamp":"2024-05-01T10:00:00","data":{"color":"green","brightness":80}}`)
	var st map[string]any
	eventually(t, 10*time.Second, func() error {
		var doc struct {
			State struct {
				Reported map[string]any `json:"reported"`
				Delta    map[string]any `json:"delta"`
			} `json:"state"`
		}
		if code, err := srv.api("GET", "/api/v1/things/"+th+"/shadow", nil, &doc); err != nil || code != 200 {
			return fmt.Errorf("get: %d %v", code, err)
		}
		if doc.State.Delta != nil || doc.State.Reported["color"] != "green" {
			return fmt.Errorf("shadow %+v", doc.State)
		}
		return nil
	})
	mosquittoPub(t, srv.mqttAddr, th, pw, base+"get", `{"clientToken":"g1"}`)
	topic, m := nextMsg(t, msgs)
	if topic != base+"get/accepted" || m["clientToken"] != "g1" || m["version"] != 2.0 {
		t.Fatalf("get: %s %v", topic, m)
	}
	st = m["state"].(map[string]any)
	if st["delta"] != nil || st["desired"].(map[string]any)["brightness"] != 80.0 {
		t.Fatalf("get state: %v", st)
	}
	// A stale version is rejected with 409.
	rej, _ := mosquittoSub(t, srv.mqttAddr, th, pw, 1, base+"update/rejected")
	mosquittoPub(t, srv.mqttAddr, th, pw, base+"update", `{"state":{"desired":{"color":"red"}},"version":1}`)
	if topic, m := nextMsg(t, rej); topic != base+"update/rejected" || m["code"] != 409.0 {
		t.Fatalf("stale update: %s %v", topic, m)
	}
	// The CLI reads and writes the same document.
	out, errOut, code := srv.cli("shadow", "update", th, "--desired", `{"color":null}`, "--version", "2")
	if code != 0 || !strings.Contains(out, `"version": 3`) {
		t.Fatalf("shadow update CLI: %d %s %s", code, out, errOut)
	}
	out, _, code = srv.cli("shadow", "get", th)
	if code != 0 || strings.Contains(out, `"color": "green"`) && strings.Contains(out, `"delta"`) {
		t.Fatalf("shadow get CLI: %d %s", code, out)
	}
	if _, _, code := srv.cli("shadow", "update", th, "--desired", `[1]`); code != 2 {
		t.Errorf("bad --desired: exit %d", code)
	}
	if _, _, code := srv.cli("shadow", "get", "nobody"); code != 1 {
		t.Errorf("get of unknown thing: exit %d", code)
	}
}
