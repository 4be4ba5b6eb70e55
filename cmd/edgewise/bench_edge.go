package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/app"
	"github.com/edgewise-iot/edgewise/internal/broker/packets"
	"github.com/edgewise-iot/edgewise/internal/config"
	"github.com/edgewise-iot/edgewise/internal/edge/agent"
	"github.com/edgewise-iot/edgewise/internal/edge/uplink"
	"github.com/edgewise-iot/edgewise/internal/edge/wanproxy"
	"github.com/edgewise-iot/edgewise/internal/rules"
)

// edgeLatency is one measured path at one WAN delay.
type edgeLatency struct {
	DelayMS  float64 `json:"wan_delay_ms"` // one way
	Path     string  `json:"path"`         // edge or cloud
	Messages int     `json:"messages"`
	Received int     `json:"received"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
	MaxMS    float64 `json:"max_ms"`
}

const benchAlertSQL = `SELECT topic(2) AS device, data.temperature AS value, data.sent AS sent
  FROM 'devices/+/telemetry' WHERE data.temperature > 30`

func newBenchEdgeCmd() *cobra.Command {
	var (
		delays   []time.Duration
		messages int
		rate     float64
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "edge",
		Short: "Threshold alert latency: local rule on the agent vs. the cloud round trip over a delayed WAN",
		Long: `Bench edge measures the seed's edge latency claim on this machine. It runs
a cloud server and an agent in this process, with a TCP proxy that adds a
one-way delay in each direction between the site and the cloud, and the
same threshold rule (temperature > 30, republished to devices/{id}/alerts)
in both:

  edge   device -> agent broker -> local rule -> republish -> actuator on the agent
  cloud  device -> WAN -> cloud broker -> cloud rule -> republish -> WAN -> actuator

Devices and actuators use MQTT 5 with QoS 1; the agent and the cloud store
with their default fsync policy (always). Latency is from the device's
publish to the actuator's receipt; p50, p99 and max per path and delay.`,
		Example: `  edgewise bench edge --delay 0 --delay 20ms --delay 50ms --messages 500 --rate 20`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if messages < 10 || rate <= 0 {
				return usageError(fmt.Errorf("--messages must be at least 10 and --rate positive"))
			}
			var out []edgeLatency
			for _, d := range delays {
				res, err := benchEdgeOnce(cmd.Context(), d, messages, rate)
				if err != nil {
					return err
				}
				out = append(out, res...)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WAN DELAY (one way)\tPATH\tMESSAGES\tRECEIVED\tP50\tP99\tMAX\tP50 EDGE/CLOUD")
			for i, r := range out {
				ratio := ""
				if r.Path == "edge" && i+1 < len(out) && out[i+1].P50MS > 0 {
					ratio = fmt.Sprintf("%.2f", r.P50MS/out[i+1].P50MS)
				}
				fmt.Fprintf(tw, "%gms\t%s\t%d\t%d\t%.2fms\t%.2fms\t%.2fms\t%s\n", r.DelayMS, r.Path, r.Messages, r.Received, r.P50MS, r.P99MS, r.MaxMS, ratio)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.DurationSliceVar(&delays, "delay", []time.Duration{0, 20 * time.Millisecond, 50 * time.Millisecond}, "one-way WAN delay (repeatable)")
	f.IntVar(&messages, "messages", 300, "hot readings per path")
	f.Float64Var(&rate, "rate", 20, "hot readings per second")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func benchEdgeOnce(ctx context.Context, delay time.Duration, messages int, rate float64) ([]edgeLatency, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	dir, err := os.MkdirTemp("", "edgewise-bench-edge")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rulesFile := filepath.Join(dir, "rules.yaml")
	ruleYAML := "rules:\n  - name: hot\n    sql: |\n      " + strings.ReplaceAll(benchAlertSQL, "\n", "\n      ") +
		"\n    actions: [{type: republish, topic: \"devices/${device}/alerts\", qos: 1}]\n"
	if err := os.WriteFile(rulesFile, []byte(ruleYAML), 0o600); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)

	// The cloud.
	cc := config.Default()
	cc.DataDir, cc.MQTT.Addr, cc.HTTP.Addr = filepath.Join(dir, "cloud"), "127.0.0.1:0", "127.0.0.1:0"
	cc.MQTT.AllowAnonymous, cc.MQTT.SysInterval, cc.Rules.Files = true, 0, []string{rulesFile}
	cc.AdminToken = "bench-edge-admin-token-0123456789"
	cloud, err := app.New(ctx, cc, quiet)
	if err != nil {
		return nil, fmt.Errorf("bench edge: cloud: %w", err)
	}
	cctx, stopCloud := context.WithCancel(context.Background())
	cdone := make(chan error, 1)
	go func() { cdone <- cloud.Run(cctx) }()
	defer func() { stopCloud(); <-cdone }()
	wan, err := wanproxy.Start("127.0.0.1:0", cloud.MQTTAddr().String(), delay)
	if err != nil {
		return nil, err
	}
	defer wan.Close()

	// The agent, bridged to the cloud over the same WAN.
	defs, err := rules.ParseFile([]byte(ruleYAML))
	if err != nil {
		return nil, err
	}
	ac := agent.Default()
	ac.Name, ac.DataDir, ac.MQTT.Addr, ac.HTTP.Addr = "bench-site", filepath.Join(dir, "agent"), "127.0.0.1:0", "127.0.0.1:0"
	ac.MQTT.AllowAnonymous, ac.Rules.Local = true, defs
	ac.Uplink.Broker, ac.Uplink.Username, ac.Uplink.Password = "tcp://"+wan.Addr(), "admin", cc.AdminToken
	ag, err := agent.New(ctx, ac, quiet)
	if err != nil {
		return nil, fmt.Errorf("bench edge: agent: %w", err)
	}
	actx, stopAgent := context.WithCancel(context.Background())
	adone := make(chan error, 1)
	go func() { adone <- ag.Run(actx) }()
	defer func() { stopAgent(); <-adone }()

	edge, err := measureAlerts(ctx, "edge", ag.MQTTAddr().String(), ag.MQTTAddr().String(), "", messages, rate)
	if err != nil {
		return nil, err
	}
	cloudRes, err := measureAlerts(ctx, "cloud", wan.Addr(), wan.Addr(), cc.AdminToken, messages, rate)
	if err != nil {
		return nil, err
	}
	ms := float64(delay) / float64(time.Millisecond)
	edge.DelayMS, cloudRes.DelayMS = ms, ms
	return []edgeLatency{edge, cloudRes}, nil
}

// measureAlerts publishes hot readings to devAddr and times the alerts an
// actuator subscribed at actAddr receives.
func measureAlerts(ctx context.Context, path, devAddr, actAddr, password string, messages int, rate float64) (edgeLatency, error) {
	res := edgeLatency{Path: path, Messages: messages}
	var mu sync.Mutex
	var lat []time.Duration
	got := make(chan struct{}, messages)
	id := fmt.Sprintf("bench-%s-%d", path, time.Now().UnixNano())
	opts := func(cid string) uplink.Options {
		o := uplink.Options{Addr: actAddr, ClientID: cid, CleanStart: true}
		if password != "" {
			o.Username, o.Password = "admin", []byte(password)
		}
		return o
	}
	ao := opts(id + "-actuator")
	ao.OnMessage = func(_ string, payload []byte, _ bool) {
		var row struct {
			Sent int64 `json:"sent"`
		}
		if json.Unmarshal(payload, &row) != nil || row.Sent == 0 {
			return
		}
		d := time.Since(time.Unix(0, row.Sent))
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		got <- struct{}{}
	}
	act, err := uplink.Dial(ctx, ao)
	if err != nil {
		return res, fmt.Errorf("bench edge: %s actuator: %w", path, err)
	}
	defer act.Close()
	if _, err := act.Subscribe(ctx, []packets.Subscription{{Filter: "devices/" + id + "/alerts", QoS: 1}}); err != nil {
		return res, err
	}
	do := opts(id)
	do.Addr = devAddr
	dev, err := uplink.Dial(ctx, do)
	if err != nil {
		return res, fmt.Errorf("bench edge: %s device: %w", path, err)
	}
	defer dev.Close()
	// Warm up the path (rule compiled, connections and caches hot).
	for i := 0; i < 5; i++ {
		dev.Publish(ctx, "devices/"+id+"/telemetry", []byte(`{"data":{"temperature":35,"sent":0}}`), 1, false, func(byte, error) {})
	}
	time.Sleep(500 * time.Millisecond)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := 0; i < messages; i++ {
		<-tick.C
		p := fmt.Sprintf(`{"device_id":%q,"data":{"temperature":35.5,"seq":%d,"sent":%d}}`, id, i, time.Now().UnixNano())
		if err := dev.Publish(ctx, "devices/"+id+"/telemetry", []byte(p), 1, false, func(byte, error) {}); err != nil {
			return res, err
		}
	}
	deadline := time.After(30 * time.Second)
	for n := 0; n < messages; n++ {
		select {
		case <-got:
		case <-deadline:
			n = messages
		}
	}
	mu.Lock()
	defer mu.Unlock()
	res.Received = len(lat)
	if len(lat) == 0 {
		return res, fmt.Errorf("bench edge: %s: no alert arrived", path)
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	res.P50MS, res.P99MS, res.MaxMS = q(0.5), q(0.99), q(1)
	return res, nil
}
