package devices_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgewise-iot/edgewise/internal/jobs"
	"github.com/edgewise-iot/edgewise/sdk/device"
)

type jobView struct {
	ID     string         `json:"id"`
	Status string         `json:"status"`
	Reason string         `json:"reason"`
	Total  int            `json:"total"`
	Counts map[string]int `json:"counts"`
}

// TestJobAbortsOverThousandDevices rolls a job out to 1,000 simulated
// devices (paho.golang clients speaking the AWS jobs topics), of which
// every tenth fails; the job aborts per its threshold and its unfinished
// executions are canceled.
func TestJobAbortsOverThousandDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("connects 1,000 clients")
	}
	const n = 1000
	e := newEnv(t, t.TempDir())
	start := time.Now()
	pws := make([]string, n)
	for i := range n {
		site := "a"
		if i%2 == 1 {
			site = "b"
		}
		pws[i] = e.createThing(fmt.Sprintf("sim-%04d", i), map[string]string{"fleet": "pumps", "site": site})
	}
	var handled, notified atomic.Int64
	clients := make([]*paho.Client, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			thing := fmt.Sprintf("sim-%04d", i)
			var c *paho.Client
			var once sync.Once
			ready := make(chan struct{})
			c = pahoClient(t, e.mqttAddr, thing, thing, pws[i], func(p *paho.Publish) {
				<-ready
				var msg struct {
					Execution *struct {
						JobID   string `json:"jobId"`
						Status  string `json:"status"`
						Version int64  `json:"versionNumber"`
					} `json:"execution"`
				}
				if json.Unmarshal(p.Payload, &msg) != nil || msg.Execution == nil || msg.Execution.Status != "QUEUED" {
					return
				}
				notified.Add(1)
				once.Do(func() {
					status := "SUCCEEDED"
					if i%10 == 0 {
						status = "FAILED"
					}
					body := fmt.Sprintf(`{"status":%q,"expectedVersion":%d,"statusDetails":{"by":"sim"}}`, status, msg.Execution.Version)
					go func() {
						if _, err := c.Publish(context.Background(), &paho.Publish{QoS: 1,
							Topic: "$aws/things/" + thing + "/jobs/" + msg.Execution.JobID + "/update", Payload: []byte(body)}); err == nil {
							handled.Add(1)
						}
					}()
				})
			})
			close(ready)
			if _, err := c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
				{Topic: "$aws/things/" + thing + "/jobs/notify-next", QoS: 1}}}); err != nil {
				t.Errorf("%s subscribe: %v", thing, err)
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	defer func() {
		for _, c := range clients {
			c.Disconnect(&paho.Disconnect{})
		}
	}()

	// Targets: the registry query selects all 1,000 (both sites); the
	// rollout releases 50 per second, the abort threshold is 5% failed
	// after 100 finished executions.
	spec := map[string]any{
		"id":                 "firmware-2-1",
		"document":           map[string]any{"op": "update", "version": "2.1"},
		"targets":            map[string]any{"query": map[string]any{"type": "sim", "attributes": map[string]string{"fleet": "pumps"}}},
		"rollout_per_minute": 3000,
		"abort":              map[string]any{"failure_percent": 5, "min_executed": 100},
	}
	var j jobView
	if code := e.call("POST", "/api/v1/jobs", spec, &j); code != 201 || j.Total != n || j.Status != "in_progress" {
		t.Fatalf("create: %d %+v", code, j)
	}
	id := j.ID
	t.Logf("%d things created and connected in %v", n, time.Since(start))
	start = time.Now()
	eventually(t, 120*time.Second, func() error {
		j = jobView{}
		e.call("GET", "/api/v1/jobs/"+id, nil, &j)
		if j.Status != "aborted" {
			return fmt.Errorf("job %+v", j)
		}
		return nil
	})
	// After the abort nothing is left running, and the counts add up.
	t.Logf("aborted %v after creation", time.Since(start))
	eventually(t, 30*time.Second, func() error {
		j = jobView{}
		e.call("GET", "/api/v1/jobs/"+id, nil, &j)
		c := j.Counts
		if c["queued"] != 0 || c["in_progress"] != 0 {
			return fmt.Errorf("unfinished executions after abort: %v", c)
		}
		if c["succeeded"]+c["failed"]+c["canceled"] != n {
			return fmt.Errorf("counts %v do not add up to %d", c, n)
		}
		return nil
	})
	c := j.Counts
	if c["canceled"] == 0 || c["failed"] == 0 || c["succeeded"] < 90 {
		t.Errorf("counts after abort: %v", c)
	}
	executed := c["succeeded"] + c["failed"]
	if executed < 100 || c["failed"]*100 < 5*executed {
		t.Errorf("aborted before the minimum: %v", c)
	}
	if j.Reason == "" {
		t.Error("abort without a reason")
	}
	t.Logf("aborted: %v (%s); %d notifications, %d updates sent", c, j.Reason, notified.Load(), handled.Load())

	// Updates after the abort are refused as invalid transitions, and
	// canceling an aborted job is a conflict.
	var x struct {
		Executions []jobs.Execution `json:"executions"`
	}
	if code := e.call("GET", "/api/v1/jobs/"+j.ID+"/executions?status=canceled", nil, &x); code != 200 || len(x.Executions) != c["canceled"] {
		t.Fatalf("executions: %d %d", code, len(x.Executions))
	}
	if code := e.call("POST", "/api/v1/jobs/"+j.ID+"/cancel", nil, nil); code != 409 {
		t.Errorf("cancel of an aborted job: %d", code)
	}
	if code := e.call("POST", "/api/v1/jobs", map[string]any{"document": map[string]any{}, "targets": map[string]any{"group": "g"}}, nil); code != 400 {
		t.Errorf("group targets: %d", code)
	}
}

// TestJobWithSDKAndCancel: SDK devices run a job through their job
// handler; a second job is canceled while one device is offline.
func TestJobWithSDKAndCancel(t *testing.T) {
	e := newEnv(t, t.TempDir())
	pw1 := e.createThing("act-1", nil)
	e.createThing("act-2", nil)
	ran := make(chan string, 4)
	d := newDevice(t, e, "act-1", pw1, "")
	d.OnJob(func(ctx context.Context, j device.Job) (map[string]string, error) {
		ran <- j.ID
		return map[string]string{"version": fmt.Sprint(j.Document["version"])}, nil
	})
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var j jobView
	if code := e.call("POST", "/api/v1/jobs", map[string]any{"id": "cal-1", "document": map[string]any{"version": "3"},
		"targets": map[string]any{"things": []string{"act-1"}}}, &j); code != 201 {
		t.Fatalf("create: %d", code)
	}
	select {
	case id := <-ran:
		if id != "cal-1" {
			t.Fatalf("ran %s", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("job not run")
	}
	eventually(t, 30*time.Second, func() error {
		j = jobView{}
		e.call("GET", "/api/v1/jobs/cal-1", nil, &j)
		if j.Status != "completed" || j.Counts["succeeded"] != 1 {
			return fmt.Errorf("job %+v", j)
		}
		return nil
	})
	var x struct {
		Executions []jobs.Execution `json:"executions"`
	}
	e.call("GET", "/api/v1/jobs/cal-1/executions", nil, &x)
	if len(x.Executions) != 1 || x.Executions[0].StatusDetails["version"] != "3" {
		t.Fatalf("executions %+v", x.Executions)
	}
	// act-2 never connects: cancel leaves its execution canceled.
	if code := e.call("POST", "/api/v1/jobs", map[string]any{"id": "cal-2", "document": map[string]any{"version": "4"},
		"targets": map[string]any{"things": []string{"act-2"}}}, nil); code != 201 {
		t.Fatal(code)
	}
	if code := e.call("POST", "/api/v1/jobs/cal-2/cancel", map[string]any{"reason": "wrong version"}, &j); code != 200 || j.Status != "canceled" || j.Counts["canceled"] != 1 {
		t.Fatalf("cancel: %d %+v", code, j)
	}
	if code := e.call("POST", "/api/v1/jobs", map[string]any{"id": "cal-2", "document": map[string]any{}, "targets": map[string]any{"things": []string{"act-2"}}}, nil); code != 409 {
		t.Errorf("duplicate id: %d", code)
	}
	if code := e.call("POST", "/api/v1/jobs", map[string]any{"document": map[string]any{}, "targets": map[string]any{"things": []string{"ghost"}}}, nil); code != 400 {
		t.Errorf("unknown target: %d", code)
	}
	var list struct {
		Jobs []jobView `json:"jobs"`
	}
	if code := e.call("GET", "/api/v1/jobs", nil, &list); code != 200 || len(list.Jobs) != 2 || list.Jobs[0].ID != "cal-2" {
		t.Fatalf("list: %d %+v", code, list)
	}
}
