package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestKill9KeepsAcknowledged publishes telemetry at QoS 1 from several
// devices at once, kills the server with SIGKILL right after the last
// PUBACK, restarts it, and requires every acknowledged message to be there.
func TestKill9KeepsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "127.0.0.1:0")
	const devices, perDevice = 4, 250
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for d := 0; d < devices; d++ {
		name := fmt.Sprintf("crash-%d", d)
		pass := srv.createThing(name)
		c, _, _, err := mqttClient(t, srv.mqttAddr, name, name, pass)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perDevice; i++ {
				ts := base.Add(time.Duration(i) * time.Second).UTC().Format("2006-01-02T15:04:05.000000")
				payload := fmt.Sprintf(`{"device_id":%q,"timestamp":%q,"data":{"seq":%d,"temperature":%d.5}}`, name, ts, i, i)
				res, err := c.Publish(context.Background(), &paho.Publish{Topic: "devices/" + name + "/telemetry", QoS: 1, Payload: []byte(payload)})
				if err != nil {
					errs <- fmt.Errorf("%s publish %d: %w", name, i, err)
					return
				}
				if res.ReasonCode >= 0x80 {
					errs <- fmt.Errorf("%s publish %d: reason 0x%x", name, i, res.ReasonCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	srv.kill()

	srv = startServer(t, dir, "127.0.0.1:0")
	for d := 0; d < devices; d++ {
		name := fmt.Sprintf("crash-%d", d)
		tr, err := srv.points(name, "seq", "&start=-1h")
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Series) != 1 || len(tr.Series[0].Points) != perDevice {
			n := 0
			if len(tr.Series) == 1 {
				n = len(tr.Series[0].Points)
			}
			t.Fatalf("%s: %d of %d acknowledged messages survived kill -9", name, n, perDevice)
		}
		for i, p := range tr.Series[0].Points {
			if p.Value != float64(i) || !p.Time.Equal(base.Add(time.Duration(i)*time.Second)) {
				t.Fatalf("%s: point %d = %v at %v", name, i, p.Value, p.Time)
			}
		}
	}
	// And the aggregate over the recovered data is right.
	tr, err := srv.points("crash-0", "seq", "&start=-1h&every=1h&fn=sum")
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, p := range tr.Series[0].Points {
		sum += p.Value.(float64)
	}
	if want := float64(perDevice * (perDevice - 1) / 2); sum != want {
		t.Fatalf("sum after recovery = %v, want %v", sum, want)
	}
}
