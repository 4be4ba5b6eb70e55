// Command gateway is an example gateway: it reads child devices that cannot
// speak MQTT themselves (here: simulated serial sensors) and publishes for
// each of them under its own identity, one SDK connection per child, so
// the server's confinement (a thing may use only its own topics) holds.
//
//	go run ./examples/gateway -server mqtt://127.0.0.1:1883 -children children.txt
//
// children.txt has one "name password" pair per line.
package main

import (
	"bufio"
	"context"
	"flag"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/sdk/device"
)

func main() {
	server := flag.String("server", "mqtt://127.0.0.1:1883", "broker URL")
	children := flag.String("children", "children.txt", "file of \"name password\" lines")
	queue := flag.String("queue", "", "offline queue root directory (one subdirectory per child)")
	every := flag.Duration("every", 5*time.Second, "polling interval")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	f, err := os.Open(*children)
	if err != nil {
		log.Fatal(err)
	}
	var devs []*device.Device
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, pw, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		cfg := device.Config{Servers: []string{*server}, Thing: name, Password: strings.TrimSpace(pw)}
		if *queue != "" {
			cfg.QueueDir = filepath.Join(*queue, name)
		}
		d, err := device.New(cfg)
		if err != nil {
			log.Fatal(err)
		}
		if err := d.Start(ctx); err != nil {
			log.Fatal(err)
		}
		defer d.Close(context.Background())
		devs = append(devs, d)
	}
	f.Close()
	if len(devs) == 0 {
		log.Fatalf("no children in %s", *children)
	}
	t := time.NewTicker(*every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, d := range devs {
			reading := map[string]any{"temperature": 18 + 6*rand.Float64(), "via": "gateway"}
			if err := d.PublishTelemetry(ctx, reading); err != nil {
				log.Printf("%s: %v", d.Thing(), err)
			}
		}
	}
}
