package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestSeedDevice runs the seed's Python IoTDevice class (python3-paho-mqtt)
// against `edgewise serve`: it connects with its thing's credentials,
// publishes telemetry and state, receives a command from an admin client,
// and the data comes back from the API and the CLI, also after a clean
// restart.
func TestSeedDevice(t *testing.T) {
	_, err := exec.LookPath("/usr/bin/python3")
	requirePeer(t, err == nil && exec.Command("/usr/bin/python3", "-c", "import paho.mqtt.client").Run() == nil, "python3 with paho-mqtt (Debian python3-paho-mqtt)")
	// The seed hard-codes port 1883; serve it on a loopback address where
	// that port is free.
	host := os.Getenv("EDGEWISE_TEST_SEED_HOST")
	if host == "" {
		host = "127.0.0.2"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "1883"))
	requirePeer(t, err == nil, "a free port 1883 on "+host+" (set EDGEWISE_TEST_SEED_HOST)")
	ln.Close()

	dir := t.TempDir()
	srv := startServer(t, dir, net.JoinHostPort(host, "1883"))
	const dev = "seed-sensor-1"
	pass := srv.createThing(dev, "--type", "sensor", "--attr", "location=lab")

	const count = 25
	py := exec.Command("/usr/bin/python3", "testdata/run_seed_device.py", dev, host, dev, pass, fmt.Sprint(count))
	stdout, err := py.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	py.Stderr = os.Stderr
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
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
		timeout := time.After(30 * time.Second)
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
				t.Fatalf("device did not print %q in 30s", prefix)
			}
		}
	}
	waitLine("Connected: " + dev)
	waitLine("PUBLISHED")

	// An admin client commands the device on the seed's command topic,
	// repeating until the device has subscribed and answered.
	admin, _, _, err := mqttClient(t, srv.mqttAddr, "admin-console", "admin", srv.token)
	if err != nil {
		t.Fatal(err)
	}
	cmdPayload := `{"action":"reboot","delay":5}`
	gotCmd := make(chan string, 1)
	go func() { gotCmd <- waitLine("COMMAND") }()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	var cmdLine string
wait:
	for {
		select {
		case cmdLine = <-gotCmd:
			break wait
		case <-tick.C:
			if _, err := admin.Publish(context.Background(), &paho.Publish{Topic: "devices/" + dev + "/command", QoS: 1, Payload: []byte(cmdPayload)}); err != nil {
				t.Fatalf("admin publish: %v", err)
			}
		case <-deadline:
			t.Fatal("device never received the command")
		}
	}
	if cmdLine != `COMMAND {"action": "reboot", "delay": 5}` {
		t.Fatalf("command arrived as %q", cmdLine)
	}
	waitLine("DONE")
	if err := py.Wait(); err != nil {
		t.Fatalf("device exit: %v", err)
	}

	check := func(when string) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			tr, err := srv.points(dev, "temperature", "&start=-1h")
			if err != nil {
				return err
			}
			if len(tr.Series) != 1 || len(tr.Series[0].Points) != count {
				return fmt.Errorf("%s: want %d temperature points, got %+v", when, count, tr.Series)
			}
			for i, p := range tr.Series[0].Points {
				if p.Value != 20.0+float64(i) {
					return fmt.Errorf("%s: point %d = %v", when, i, p.Value)
				}
			}
			return nil
		})
		// Nested objects are flattened, booleans and strings kept.
		for _, f := range []string{"location.lat", "door_open", "firmware", "humidity"} {
			tr, err := srv.points(dev, f, "&start=-1h")
			if err != nil || len(tr.Series) != 1 || len(tr.Series[0].Points) != count {
				t.Fatalf("%s: field %s: %+v %v", when, f, tr, err)
			}
		}
		// State reports travel apart from telemetry (the shadow applies
		// them on its own path), so they may land a moment later.
		eventually(t, 10*time.Second, func() error {
			var st struct {
				Reported map[string]any `json:"reported"`
			}
			if code, err := srv.api("GET", "/api/v1/things/"+dev+"/state", nil, &st); err != nil || code != 200 {
				return fmt.Errorf("%s: state: %d %v", when, code, err)
			}
			led, _ := st.Reported["led"].(map[string]any)
			if st.Reported["mode"] != "eco" || led["on"] != true {
				return fmt.Errorf("%s: reported state %v", when, st.Reported)
			}
			return nil
		})
		out, errOut, code := srv.cli("query", dev, "--field", "temperature", "--start", "-1h", "--every", "1h", "--fn", "count", "--json")
		if code != 0 {
			t.Fatalf("%s: query CLI exit %d: %s", when, code, errOut)
		}
		var q telemetryResp
		if err := json.Unmarshal([]byte(out), &q); err != nil {
			t.Fatal(err)
		}
		var total float64
		for _, s := range q.Series {
			for _, p := range s.Points {
				total += p.Value.(float64)
			}
		}
		if total != count {
			t.Fatalf("%s: CLI count over windows = %v, want %d (%s)", when, total, count, out)
		}
	}
	check("before restart")
	srv.stop()
	srv = startServer(t, dir, net.JoinHostPort(host, "1883"))
	check("after restart")
}
