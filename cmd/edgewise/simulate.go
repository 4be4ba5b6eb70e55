package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/apiclient"
	"github.com/edgewise-iot/edgewise/internal/loadgen"
	"github.com/edgewise-iot/edgewise/internal/registry"
)

func newSimulateCmd() *cobra.Command {
	var (
		o         loadgen.SimOptions
		qos       int
		anonymous bool
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Run simulated devices that publish telemetry over MQTT",
		Long: `Simulate creates N things through the API (resetting the credentials of
things that already exist), then runs N devices, each a real MQTT client
connecting with its thing's credentials (client id = thing name). Every
device subscribes to devices/{id}/command, publishes telemetry JSON on
devices/{id}/telemetry and reports state on devices/{id}/state.

The total rate is spread evenly over the devices. Every report interval and
at the end it prints messages sent, acknowledged (QoS 1), errors, the
achieved rate and, for QoS 1, the publish-to-PUBACK latency. It exits with
status 1 when nothing could be sent. --duration 0 runs until interrupted.`,
		Example: `  edgewise simulate --devices 100 --rate 1000 --duration 30s --mqtt 127.0.0.1:1883
  edgewise simulate --devices 10 --qos 1 --anonymous --mqtt 127.0.0.1:1883`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if qos < 0 || qos > 1 {
				return usageError(fmt.Errorf("--qos must be 0 or 1, got %d", qos))
			}
			if o.Devices <= 0 {
				return usageError(fmt.Errorf("--devices must be positive, got %d", o.Devices))
			}
			o.QoS = byte(qos)
			if !anonymous {
				c, err := clientFromCmd(cmd)
				if err != nil {
					return err
				}
				o.Registry = apiRegistry{c}
			}
			ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			o.OnReport = func(r loadgen.SimReport) { fmt.Fprintln(out, r) }
			o.OnConnected = func(connected, devices int, took time.Duration) {
				fmt.Fprintf(out, "connected %d of %d devices in %s\n", connected, devices, took.Round(time.Millisecond))
			}
			rate := o.Rate
			if rate == 0 {
				rate = float64(o.Devices)
			}
			dur := "until interrupted"
			if o.Duration > 0 {
				dur = "for " + o.Duration.String()
			}
			fmt.Fprintf(out, "simulating %d devices at %.0f msgs/s (QoS %d) against %s %s\n", o.Devices, rate, o.QoS, o.Broker, dur)
			_, err := loadgen.RunSimulation(ctx, o)
			if errors.Is(err, loadgen.ErrNothingSent) {
				return &exitError{code: 1, err: err}
			}
			if errors.Is(err, loadgen.ErrBadOptions) {
				return usageError(err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.Devices, "devices", "n", 10, "number of simulated devices")
	f.Float64Var(&o.Rate, "rate", 0, "total telemetry messages per second over all devices (default: 1 per device)")
	f.DurationVar(&o.Duration, "duration", 0, "how long to publish; 0 runs until Ctrl-C")
	f.StringVar(&o.Broker, "mqtt", "127.0.0.1:1883", "MQTT broker host:port")
	f.IntVar(&qos, "qos", 0, "MQTT QoS for telemetry and state: 0 or 1")
	f.StringVar(&o.Prefix, "prefix", "sim-", "thing name prefix (names are prefix + 0001, 0002, ...)")
	f.StringVar(&o.Type, "type", "sensor", "thing type of the created things")
	f.DurationVar(&o.ReportInterval, "interval-report", time.Second, "how often to print progress")
	f.IntVar(&o.StateEvery, "state-every", 60, "telemetry messages between state reports of a device")
	f.IntVar(&o.ConnectConcurrency, "connect-concurrency", 50, "connection attempts (and API calls) in progress at once")
	f.IntVar(&o.Inflight, "inflight", 16, "QoS 1 publishes awaiting PUBACK per device")
	f.BoolVar(&anonymous, "anonymous", false, "do not provision things; connect without credentials (broker must allow anonymous clients)")
	return cmd
}

// cmdContext returns the command's context, or a background one.
func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// apiRegistry provisions simulated devices through the HTTP API.
type apiRegistry struct{ c *apiclient.Client }

func (r apiRegistry) CreateThing(ctx context.Context, name, typ string, attrs map[string]string) (loadgen.Credentials, error) {
	_, cr, err := r.c.CreateThing(ctx, registry.Thing{Name: name, Type: typ, Attributes: attrs})
	if err != nil {
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			return loadgen.Credentials{}, fmt.Errorf("create thing %s: %w: %w", name, loadgen.ErrThingExists, err)
		}
		return loadgen.Credentials{}, fmt.Errorf("create thing %s: %w", name, err)
	}
	return loadgen.Credentials{Username: cr.Username, Password: cr.Password}, nil
}

func (r apiRegistry) ResetCredentials(ctx context.Context, name string) (loadgen.Credentials, error) {
	cr, err := r.c.ResetCredentials(ctx, name)
	if err != nil {
		return loadgen.Credentials{}, fmt.Errorf("reset credentials of %s: %w", name, err)
	}
	return loadgen.Credentials{Username: cr.Username, Password: cr.Password}, nil
}
