// Command sensor is an example device: it publishes a temperature reading
// every few seconds and reports its state, surviving network outages with
// the SDK's offline queue.
//
//	go run ./examples/sensor -server mqtt://127.0.0.1:1883 -thing sensor-1 -password SECRET
package main

import (
	"context"
	"flag"
	"log"
	"math"
	"os"
	"os/signal"
	"time"

	"github.com/edgewise-iot/edgewise/sdk/device"
)

func main() {
	server := flag.String("server", "mqtt://127.0.0.1:1883", "broker URL")
	thing := flag.String("thing", "sensor-1", "thing name")
	password := flag.String("password", os.Getenv("DEVICE_PASSWORD"), "thing password (env DEVICE_PASSWORD)")
	queue := flag.String("queue", "", "offline queue directory (default: memory)")
	every := flag.Duration("every", 5*time.Second, "reading interval")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	d, err := device.New(device.Config{Servers: []string{*server}, Thing: *thing, Password: *password, QueueDir: *queue})
	if err != nil {
		log.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer d.Close(context.Background())
	if err := d.ReportState(ctx, map[string]any{"firmware": "1.0.0", "interval_s": every.Seconds()}); err != nil {
		log.Print(err)
	}
	t := time.NewTicker(*every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		temp := 21 + 2*math.Sin(float64(i)/10)
		if err := d.PublishTelemetry(ctx, map[string]any{"temperature": temp, "humidity": 40 + i%5}); err != nil {
			log.Printf("telemetry: %v (queued: %d)", err, d.Queued())
		}
	}
}
