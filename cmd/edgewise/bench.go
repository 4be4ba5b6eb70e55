package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/loadgen"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Edgewise components (and their peers) under load",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchBrokerCmd())
	cmd.AddCommand(newBenchTSDBCmd())
	cmd.AddCommand(newBenchEdgeCmd())
	return cmd
}

func newBenchBrokerCmd() *cobra.Command {
	var (
		o            loadgen.BenchOptions
		scenario     string
		qos, version int
		asJSON       bool
		useTLS       bool
		tlsOpts      loadgen.TLSOptions
	)
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Benchmark an MQTT broker with raw MQTT over TCP",
		Long: `Bench broker is a raw MQTT load generator: it speaks MQTT directly over TCP
with Edgewise's own codec, so the same generator measures Edgewise's broker
and any other broker (Mosquitto, ...) on the same machine.

Scenarios:
  p2p     P publishers, each on bench/p2p/{i} with a subscriber of its own
  fanout  P publishers on bench/fanout/{i}; S subscribers each subscribed to every topic
  fanin   P publishers on bench/fanin/{i}; S subscribers on bench/fanin/+
  shared  P publishers on bench/shared/{i}; S subscribers sharing
          $share/bench/bench/shared/+ (each message to one of them); a target
          that refuses shared subscriptions is measured with plain ones (noted)
  conn    connection storm: open --conns connections (CONNECT + SUBSCRIBE each),
          report connects/s and CONNACK latency, then hold them idle for --hold
          so memory per connection can be measured (--pid reads the target's RSS)
  slow    many slow devices: --conns connections, each publishing one QoS 1
          message every --interval on its own topic; reports PUBACK latency

Every payload carries its send time in its first 8 bytes; subscribers compute
end-to-end latency from it. All connections and subscriptions are in place
before publishing starts; the warm-up is not measured; loss is counted after
a drain period.`,
		Example: `  edgewise bench broker --addr 127.0.0.1:1883 --scenario p2p --pubs 4 --duration 10s
  edgewise bench broker --addr 127.0.0.1:1883 --scenario fanout --subs 16 --qos 1 --json
  edgewise bench broker --addr 127.0.0.1:1883 --scenario conn --conns 10000 --hold 30s --pid $(pgrep -x mosquitto)
  edgewise bench broker --addr 127.0.0.1:1883 --scenario slow --conns 10000 --interval 5s --duration 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if qos < 0 || qos > 1 {
				return usageError(fmt.Errorf("--qos must be 0 or 1, got %d", qos))
			}
			if version != 4 && version != 5 {
				return usageError(fmt.Errorf("--version must be 4 (MQTT 3.1.1) or 5, got %d", version))
			}
			o.Scenario = loadgen.Scenario(scenario)
			if useTLS {
				dial, err := loadgen.TLSDial(tlsOpts)
				if err != nil {
					return usageError(err)
				}
				o.Dial = dial
			} else if tlsOpts != (loadgen.TLSOptions{}) {
				return usageError(fmt.Errorf("--cafile, --cert, --key and --tls-server-name need --tls"))
			}
			o.QoS = byte(qos)
			o.Version = byte(version)
			if o.Warmup == 0 {
				o.Warmup = -1 // --warmup 0 means none
			}
			ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			status := cmd.ErrOrStderr()
			o.OnHeld = func(n int) {
				if o.Hold > 0 {
					fmt.Fprintf(status, "holding %d connections for %s (Ctrl-C to release)\n", n, o.Hold)
				}
			}
			res, err := loadgen.RunBench(ctx, o)
			if errors.Is(err, loadgen.ErrBadOptions) {
				return usageError(err)
			}
			if res == nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if werr := enc.Encode(res); werr != nil {
					return werr
				}
			} else if werr := res.WriteText(out); werr != nil {
				return werr
			}
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if o.Scenario != loadgen.ScenarioConn && res.Sent == 0 && res.Connected == 0 {
				return &exitError{code: 1, err: fmt.Errorf("bench: nothing was sent (errors: %d)", res.Errors)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Addr, "addr", "127.0.0.1:1883", "broker host:port")
	f.StringVar(&scenario, "scenario", "p2p", "p2p, fanout, fanin, shared, conn or slow")
	f.IntVar(&o.Pubs, "pubs", 0, "publishers (default: p2p 2, fanout 1, fanin 8, shared 4)")
	f.IntVar(&o.Subs, "subs", 0, "subscribers (default: fanout 8, fanin 1, shared 4; p2p has one per publisher)")
	f.IntVar(&o.Size, "size", 64, "payload size in bytes (at least 8)")
	f.IntVar(&qos, "qos", 0, "QoS of publishes and subscriptions: 0 or 1")
	f.IntVar(&version, "version", 4, "MQTT protocol version: 4 (3.1.1) or 5")
	f.DurationVar(&o.Duration, "duration", 10*time.Second, "measured publishing time")
	f.DurationVar(&o.Warmup, "warmup", time.Second, "publishing time before measuring starts")
	f.DurationVar(&o.Drain, "drain", 2*time.Second, "longest wait for messages in flight after publishing stops")
	f.Float64Var(&o.Rate, "rate", 0, "total messages per second over all publishers; 0 = as fast as possible")
	f.IntVar(&o.Window, "window", 128, "QoS 1 messages in flight per publisher")
	f.IntVar(&o.Batch, "batch", 64, "QoS 0 messages written per flush")
	f.StringVar(&o.Username, "username", "", "MQTT username")
	f.StringVar(&o.TopicPrefix, "topic-prefix", "bench/", "prefix of every topic and filter (e.g. devices/NAME/ for an authenticated device)")
	f.StringVar(&o.Password, "password", "", "MQTT password")
	f.IntVar(&o.Conns, "conns", 1000, "connections to open (scenarios conn and slow)")
	f.DurationVar(&o.Interval, "interval", 5*time.Second, "time between one device's publishes (scenario slow)")
	f.IntVar(&o.PID, "pid", 0, "process id of the target broker: report its RSS before and after connecting")
	f.DurationVar(&o.Hold, "hold", 0, "how long to hold the connections idle (scenario conn)")
	f.IntVar(&o.ConnectConcurrency, "connect-concurrency", 100, "connection handshakes in progress at once")
	f.BoolVar(&useTLS, "tls", false, "speak MQTT over TLS (a full handshake per connection)")
	f.StringVar(&tlsOpts.CAFile, "cafile", "", "with --tls: PEM CA that verifies the server (the platform's ca.pem)")
	f.StringVar(&tlsOpts.CertFile, "cert", "", "with --tls: client certificate")
	f.StringVar(&tlsOpts.KeyFile, "key", "", "with --tls: client private key")
	f.StringVar(&tlsOpts.ServerName, "tls-server-name", "", "with --tls: name expected in the server certificate (default: the --addr host)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
