package devices_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// BenchmarkDevices connects a fleet (EDGEWISE_BENCH_DEVICES, default
// 1000) of paho.golang clients, each subscribed to its shadow replies and
// its command topic and answering commands at once, then measures
//
//   - shadow_update: reported-state updates published by the devices on
//     $aws/things/{t}/shadow/update (at most 1000 in flight)
//     until each one's /update/accepted reply arrived, from 8 publishing
//     goroutines: updates/s;
//   - command_roundtrip: POST /api/v1/things/{t}/commands with wait=true
//     from 8 concurrent API callers until the device's reply completed
//     it: p50 and p99 milliseconds.
func BenchmarkDevices(b *testing.B) {
	n := 1000
	if s := os.Getenv("EDGEWISE_BENCH_DEVICES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("EDGEWISE_BENCH_DEVICES=%q", s)
		}
		n = v
	}
	e := newEnv(b, b.TempDir())
	names := make([]string, n)
	clients := make([]*paho.Client, n)
	var accepted atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	start := time.Now()
	for i := range n {
		names[i] = fmt.Sprintf("bench-%05d", i)
		pw := e.createThing(names[i], nil)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			thing := names[i]
			var c *paho.Client
			ready := make(chan struct{})
			c = pahoClient(b, e.mqttAddr, thing, thing, pw, func(p *paho.Publish) {
				<-ready
				if strings.HasSuffix(p.Topic, "/update/accepted") {
					accepted.Add(1)
					return
				}
				var m struct {
					ID string `json:"command_id"`
				}
				if json.Unmarshal(p.Payload, &m) == nil && m.ID != "" {
					go c.Publish(context.Background(), &paho.Publish{QoS: 1, Topic: "devices/" + thing + "/command/response",
						Payload: []byte(`{"command_id":"` + m.ID + `","status":"succeeded","result":{"ok":true}}`)})
				}
			})
			close(ready)
			if _, err := c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
				{Topic: "$aws/things/" + thing + "/shadow/update/accepted", QoS: 0},
				{Topic: "devices/" + thing + "/command", QoS: 1}}}); err != nil {
				b.Errorf("subscribe: %v", err)
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	b.Logf("%d devices created, connected and subscribed in %v", n, time.Since(start))
	defer func() {
		for _, c := range clients {
			c.Disconnect(&paho.Disconnect{})
		}
	}()

	b.Run("shadow_update", func(b *testing.B) {
		accepted.Store(0)
		// 8 publishers over disjoint devices, at most 1000 updates in flight.
		const window, workers = 1000, 8
		var sent atomic.Int64
		var pw sync.WaitGroup
		b.ResetTimer()
		t0 := time.Now()
		for w := range workers {
			pw.Add(1)
			go func() {
				defer pw.Done()
				for i := w; i < b.N; i += workers {
					for sent.Load()-accepted.Load() >= window {
						time.Sleep(50 * time.Microsecond)
					}
					sent.Add(1)
					body := `{"state":{"reported":{"seq":` + strconv.Itoa(i) + `,"temp":21.5}}}`
					if _, err := clients[i%n].Publish(context.Background(), &paho.Publish{Topic: "$aws/things/" + names[i%n] + "/shadow/update", Payload: []byte(body)}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		pw.Wait()
		deadline := time.Now().Add(60 * time.Second)
		for accepted.Load() < int64(b.N) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d updates accepted", accepted.Load(), b.N)
			}
			time.Sleep(100 * time.Microsecond)
		}
		b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "updates/s")
		b.ReportMetric(float64(n), "devices")
	})

	b.Run("command_roundtrip", func(b *testing.B) {
		lat := make([]time.Duration, b.N)
		var next atomic.Int64
		var cw sync.WaitGroup
		b.ResetTimer()
		for range 8 {
			cw.Add(1)
			go func() {
				defer cw.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= b.N {
						return
					}
					req, _ := http.NewRequest("POST", e.http.URL+"/api/v1/things/"+names[(i*7919)%n]+"/commands",
						strings.NewReader(`{"command":"ping","wait":true,"timeout":"10s"}`))
					req.Header.Set("Authorization", "Bearer "+token)
					t0 := time.Now()
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					var c cmdView
					json.NewDecoder(resp.Body).Decode(&c)
					resp.Body.Close()
					lat[i] = time.Since(t0)
					if resp.StatusCode != 200 || c.Status != "succeeded" {
						b.Errorf("command %d: %d %+v", i, resp.StatusCode, c)
						return
					}
				}
			}()
		}
		cw.Wait()
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(n), "devices")
	})
}
