// Command actuator is an example device that is controlled: a valve whose
// desired position comes from its shadow (set with the API or CLI, even
// while it is offline) and that also obeys tracked commands and jobs.
//
//	go run ./examples/actuator -server mqtt://127.0.0.1:1883 -thing valve-1 -password SECRET
//	edgewise shadow update valve-1 --desired '{"open":true}'
//	edgewise commands send valve-1 --command close --wait
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"os"
	"os/signal"
	"sync"

	"github.com/edgewise-iot/edgewise/sdk/device"
)

type valve struct {
	mu   sync.Mutex
	open bool
}

func (v *valve) set(open bool) {
	v.mu.Lock()
	v.open = open
	v.mu.Unlock()
	log.Printf("valve open=%v", open)
}

func main() {
	server := flag.String("server", "mqtt://127.0.0.1:1883", "broker URL")
	thing := flag.String("thing", "valve-1", "thing name")
	password := flag.String("password", os.Getenv("DEVICE_PASSWORD"), "thing password (env DEVICE_PASSWORD)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	d, err := device.New(device.Config{Servers: []string{*server}, Thing: *thing, Password: *password})
	if err != nil {
		log.Fatal(err)
	}
	v := &valve{}
	report := func() {
		v.mu.Lock()
		open := v.open
		v.mu.Unlock()
		if _, err := d.UpdateShadow(ctx, "", device.ShadowUpdate{Reported: map[string]any{"open": open}}); err != nil {
			log.Printf("report: %v", err)
		}
	}
	// Desired state: apply what differs, then report it so the delta clears.
	d.OnShadowDelta("", func(delta device.ShadowDelta) {
		if open, ok := delta.State["open"].(bool); ok {
			v.set(open)
		}
		report()
	})
	// Tracked commands: the result goes back to the caller of the API.
	d.OnCommand(func(ctx context.Context, c device.Command) (any, error) {
		switch c.Name {
		case "open", "close":
			v.set(c.Name == "open")
			go report()
			return map[string]any{"open": c.Name == "open"}, nil
		}
		return nil, errors.New("unknown command " + c.Name)
	})
	// Jobs: e.g. {"op": "calibrate"}.
	d.OnJob(func(ctx context.Context, j device.Job) (map[string]string, error) {
		if j.Document["op"] != "calibrate" {
			return nil, errors.New("unsupported job")
		}
		v.set(false)
		return map[string]string{"calibrated": "true"}, nil
	})
	if err := d.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer d.Close(context.Background())
	<-ctx.Done()
}
