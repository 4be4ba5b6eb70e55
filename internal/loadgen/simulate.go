package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// ErrThingExists is what a Registry returns (wrapped) from CreateThing when
// a thing of that name already exists; the simulator then resets its
// credentials instead.
var ErrThingExists = errors.New("thing already exists")

// ErrNothingSent is returned by RunSimulation when no message at all could
// be published.
var ErrNothingSent = errors.New("no message could be sent")

// Credentials are the MQTT username and password of a provisioned device.
type Credentials struct {
	Username, Password string
}

// Registry provisions simulated devices. The edgewise command adapts the
// HTTP API client to it.
type Registry interface {
	// CreateThing creates a thing and returns its new credentials, or an
	// error wrapping ErrThingExists.
	CreateThing(ctx context.Context, name, thingType string, attrs map[string]string) (Credentials, error)
	// ResetCredentials issues new credentials for an existing thing.
	ResetCredentials(ctx context.Context, name string) (Credentials, error)
}

// SimOptions configures RunSimulation. The zero value (plus Broker)
// simulates 10 anonymous devices sending one telemetry message per second
// each at QoS 0 until the context ends.
type SimOptions struct {
	Broker   string        // MQTT broker host:port (required)
	Devices  int           // default 10
	Rate     float64       // total telemetry messages/s over all devices; default 1 per device
	Duration time.Duration // publishing time; 0 runs until ctx ends
	QoS      byte          // 0 or 1
	Prefix   string        // thing name prefix; default "sim-"
	Type     string        // thing type; default "sensor"

	// Registry provisions the things; nil connects anonymously with client
	// ids only (for brokers that allow it).
	Registry Registry

	// OnConnected, if set, is called once every device has made its first
	// connection attempt, just before publishing (and Duration) starts.
	OnConnected func(connected, devices int, took time.Duration)

	ReportInterval time.Duration   // default 1 s
	OnReport       func(SimReport) // called every ReportInterval and once at the end
	StateEvery     int             // telemetry messages between state reports; default 60
	KeepAlive      uint16          // seconds; default 60
	Inflight       int             // QoS 1 publishes in flight per device; default 16
	Seed           uint64          // sensor seed base
	Dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger         *slog.Logger // nil discards
	// ConnectConcurrency bounds simultaneous connection attempts (and
	// provisioning calls); default 50.
	ConnectConcurrency int
}

// SimReport is a snapshot of a running simulation. Counters are totals
// since the start; rates and latencies cover the last interval, or the
// whole run in the final report.
type SimReport struct {
	Final     bool          `json:"final"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	Period    time.Duration `json:"period_ns"` // what Rate and AckLatency cover
	Devices   int           `json:"devices"`   // provisioned (or configured, when anonymous)
	Connected int           `json:"connected"` // currently connected

	Sent     uint64 `json:"sent"`     // telemetry messages written
	States   uint64 `json:"states"`   // state reports written
	Acked    uint64 `json:"acked"`    // QoS 1 PUBACKs
	Missed   uint64 `json:"missed"`   // scheduled sends skipped (device behind or disconnected)
	Commands uint64 `json:"commands"` // commands received
	Errors   uint64 `json:"errors"`

	Rate       float64 `json:"msgs_per_sec"`   // telemetry messages/s
	ValuesRate float64 `json:"values_per_sec"` // sensor values/s
	AckLatency Latency `json:"ack_latency"`    // QoS 1 publish to PUBACK
	FirstError string  `json:"first_error,omitempty"`
}

// valuesPerMessage is the number of sensor values in one telemetry message.
const valuesPerMessage = 4

// String formats r on one line.
func (r SimReport) String() string {
	var b strings.Builder
	label := "t=" + r.Elapsed.Round(time.Second).String()
	if r.Final {
		label = "total " + r.Elapsed.Round(time.Millisecond).String()
	}
	fmt.Fprintf(&b, "%s  devices %d/%d  sent %d  acked %d  states %d  commands %d  missed %d  errors %d  rate %.1f msgs/s (%.1f values/s)",
		label, r.Connected, r.Devices, r.Sent, r.Acked, r.States, r.Commands, r.Missed, r.Errors, r.Rate, r.ValuesRate)
	if r.AckLatency.Count > 0 {
		fmt.Fprintf(&b, "  puback p50 %s p99 %s", fmtDur(r.AckLatency.P50), fmtDur(r.AckLatency.P99))
	}
	if r.Final && r.FirstError != "" {
		fmt.Fprintf(&b, "\nfirst error: %s", r.FirstError)
	}
	return b.String()
}

func (o SimOptions) withDefaults() (SimOptions, error) {
	if o.Broker == "" {
		return o, fmt.Errorf("simulate: broker address required: %w", ErrBadOptions)
	}
	if o.Devices == 0 {
		o.Devices = 10
	}
	if o.Devices < 0 || o.Rate < 0 || o.Duration < 0 {
		return o, fmt.Errorf("simulate: negative devices, rate or duration: %w", ErrBadOptions)
	}
	if o.Rate == 0 {
		o.Rate = float64(o.Devices)
	}
	if o.QoS > 1 {
		return o, fmt.Errorf("simulate: QoS %d not supported (0 or 1): %w", o.QoS, ErrBadOptions)
	}
	if o.Prefix == "" {
		o.Prefix = "sim-"
	}
	if o.Type == "" {
		o.Type = "sensor"
	}
	if o.ReportInterval <= 0 {
		o.ReportInterval = time.Second
	}
	if o.StateEvery <= 0 {
		o.StateEvery = 60
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 60
	}
	if o.Inflight <= 0 {
		o.Inflight = 16
	}
	if o.ConnectConcurrency <= 0 {
		o.ConnectConcurrency = 50
	}
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = d.DialContext
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o, nil
}

// DeviceName returns the thing name of device i (0-based) of n devices:
// prefix followed by i+1, zero-padded to at least four digits.
func DeviceName(prefix string, i, n int) string {
	width := max(4, len(strconv.Itoa(n)))
	s := strconv.Itoa(i + 1)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return prefix + s
}

// simStats are the shared counters of a simulation.
type simStats struct {
	sent, states, acked, missed, commands, connected atomic.Uint64
	errs                                             errorLog

	mu       sync.Mutex
	interval Histogram // PUBACK latency since the last report
	total    Histogram
}

func (s *simStats) recordAck(d time.Duration) {
	s.acked.Add(1)
	s.mu.Lock()
	s.interval.RecordDuration(d)
	s.total.RecordDuration(d)
	s.mu.Unlock()
}

// simDevice is one simulated device.
type simDevice struct {
	name   string
	creds  *Credentials // nil: anonymous
	sensor *Sensor
	slot   time.Duration // offset of this device's sends in the schedule
	cmds   chan string
	start  time.Time
}

// RunSimulation provisions opts.Devices things (unless Registry is nil),
// connects one MQTT client per device and publishes telemetry at
// opts.Rate until opts.Duration has passed or ctx ends. Connections are
// set up (ConnectConcurrency at a time) before the schedule and the
// duration start. It returns the final report; the error wraps
// ErrNothingSent when no message went out.
func RunSimulation(ctx context.Context, opts SimOptions) (SimReport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return SimReport{}, err
	}
	var st simStats
	devices, err := provision(ctx, &o, &st)
	if err != nil {
		return SimReport{Errors: st.errs.n.Load(), FirstError: st.errs.firstString()}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Each device sends every interval; device i is offset by i/N of it,
	// so the whole fleet's stream is evenly spaced.
	interval := time.Duration(float64(len(devices)) / o.Rate * float64(time.Second))
	connSem := make(chan struct{}, o.ConnectConcurrency)
	gate := &startGate{open: make(chan struct{})}
	var wg, attempted sync.WaitGroup
	connectStart := time.Now()
	for i, d := range devices {
		d.slot = time.Duration(int64(interval) * int64(i) / int64(len(devices)))
		wg.Add(1)
		attempted.Add(1)
		go func() {
			defer wg.Done()
			d.run(runCtx, &o, &st, gate, interval, connSem, attempted.Done)
		}()
	}
	// The schedule and the duration start once every device has made its
	// first connection attempt; devices that failed keep retrying.
	allTried := make(chan struct{})
	go func() { attempted.Wait(); close(allTried) }()
	select {
	case <-allTried:
	case <-ctx.Done():
	}
	begin := time.Now()
	gate.begin = begin
	close(gate.open)
	if o.OnConnected != nil {
		o.OnConnected(int(st.connected.Load()), len(devices), begin.Sub(connectStart))
	}
	if o.Duration > 0 {
		stopAt := time.AfterFunc(o.Duration, cancel)
		defer stopAt.Stop()
	}

	report := func(final bool, prev *SimReport, last time.Time) SimReport {
		now := time.Now()
		r := SimReport{
			Final:     final,
			Elapsed:   now.Sub(begin),
			Devices:   len(devices),
			Connected: int(st.connected.Load()),
			Sent:      st.sent.Load(),
			States:    st.states.Load(),
			Acked:     st.acked.Load(),
			Missed:    st.missed.Load(),
			Commands:  st.commands.Load(),
			Errors:    st.errs.n.Load(),
		}
		st.mu.Lock()
		if final {
			r.Period = r.Elapsed
			r.AckLatency = st.total.Summary()
		} else {
			r.Period = now.Sub(last)
			r.AckLatency = st.interval.Summary()
			st.interval.Reset()
		}
		st.mu.Unlock()
		sent := r.Sent
		if !final && prev != nil {
			sent -= prev.Sent
		}
		if s := r.Period.Seconds(); s > 0 {
			r.Rate = float64(sent) / s
			r.ValuesRate = r.Rate * valuesPerMessage
		}
		r.FirstError = st.errs.firstString()
		return r
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(o.ReportInterval)
	defer tick.Stop()
	var prev SimReport
	last := begin
loop:
	for {
		select {
		case <-tick.C:
			r := report(false, &prev, last)
			prev, last = r, time.Now()
			if o.OnReport != nil {
				o.OnReport(r)
			}
		case <-done:
			break loop
		}
	}
	final := report(true, nil, begin)
	// Devices stop when runCtx ends; the final period is the publishing time.
	if o.Duration > 0 && final.Elapsed > o.Duration && ctx.Err() == nil {
		final.Period = o.Duration
		if s := final.Period.Seconds(); s > 0 {
			final.Rate = float64(final.Sent) / s
			final.ValuesRate = final.Rate * valuesPerMessage
		}
	}
	if o.OnReport != nil {
		o.OnReport(final)
	}
	if final.Sent == 0 {
		return final, fmt.Errorf("simulate: %w (errors: %d, first: %s)", ErrNothingSent, final.Errors, final.FirstError)
	}
	return final, nil
}

// provision creates (or resets) the things and returns the devices that
// have credentials. Per-device failures are counted; it fails only when
// no device could be provisioned.
func provision(ctx context.Context, o *SimOptions, st *simStats) ([]*simDevice, error) {
	all := make([]*simDevice, o.Devices)
	for i := range all {
		all[i] = &simDevice{
			name:   DeviceName(o.Prefix, i, o.Devices),
			sensor: NewSensor(o.Seed + uint64(i)),
			cmds:   make(chan string, 1),
		}
	}
	if o.Registry == nil {
		return all, nil
	}
	attrs := map[string]string{"simulated": "true"}
	o.Logger.Info("provisioning things", "count", len(all))
	_ = forEach(ctx, len(all), o.ConnectConcurrency, func(ctx context.Context, i int) error {
		d := all[i]
		c, err := o.Registry.CreateThing(ctx, d.name, o.Type, attrs)
		if errors.Is(err, ErrThingExists) {
			c, err = o.Registry.ResetCredentials(ctx, d.name)
		}
		if err != nil {
			st.errs.add(fmt.Errorf("provision %s: %w", d.name, err))
			return nil
		}
		d.creds = &c
		return nil
	})
	var ok []*simDevice
	for _, d := range all {
		if d.creds != nil {
			ok = append(ok, d)
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("simulate: provisioning: %w", ctx.Err())
	}
	if len(ok) == 0 && len(all) > 0 {
		return nil, fmt.Errorf("simulate: no thing could be provisioned (%s): %w", st.errs.firstString(), ErrNothingSent)
	}
	return ok, nil
}

// startGate holds devices back until the fleet's schedule begins.
type startGate struct {
	open  chan struct{}
	begin time.Time // written before open is closed
}

// run keeps the device connected and publishing until ctx ends. It calls
// tried once, after the first connection attempt.
func (d *simDevice) run(ctx context.Context, o *SimOptions, st *simStats, gate *startGate, interval time.Duration, connSem chan struct{}, tried func()) {
	d.start = time.Now()
	var once sync.Once
	defer once.Do(tried)
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		cli, err := d.connect(ctx, o, st, connSem)
		if err != nil {
			once.Do(tried)
			if ctx.Err() != nil {
				return
			}
			st.errs.add(err)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 250 * time.Millisecond
		// Count the connection before reporting the attempt, so
		// OnConnected sees every device that made it.
		st.connected.Add(1)
		once.Do(tried)
		select {
		case <-gate.open:
			d.publishLoop(ctx, cli, o, st, gate.begin, interval)
		case <-ctx.Done():
		case <-cli.Done():
		}
		st.connected.Add(^uint64(0))
		select {
		case <-cli.Done():
			if ctx.Err() == nil {
				st.errs.add(fmt.Errorf("device %s: connection lost", d.name))
			}
		default:
			_ = cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connect dials, connects and subscribes to the device's command topic,
// holding a slot of connSem so only so many handshakes run at once.
func (d *simDevice) connect(ctx context.Context, o *SimOptions, st *simStats, connSem chan struct{}) (*paho.Client, error) {
	select {
	case connSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-connSem }()
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	nc, err := o.Dial(hctx, "tcp", o.Broker)
	if err != nil {
		return nil, fmt.Errorf("device %s: dial: %w", d.name, err)
	}
	cmdTopic := "devices/" + d.name + "/command"
	cli := paho.NewClient(paho.ClientConfig{
		ClientID: d.name,
		Conn:     nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				if pr.Packet.Topic != cmdTopic {
					return false, nil
				}
				st.commands.Add(1)
				select {
				case d.cmds <- commandName(pr.Packet.Payload):
				default: // a state report is already pending
				}
				return true, nil
			},
		},
		OnClientError: func(error) {},
	})
	cp := &paho.Connect{ClientID: d.name, KeepAlive: o.KeepAlive, CleanStart: true}
	if d.creds != nil {
		cp.Username, cp.UsernameFlag = d.creds.Username, d.creds.Username != ""
		cp.Password, cp.PasswordFlag = []byte(d.creds.Password), d.creds.Password != ""
	}
	ca, err := cli.Connect(hctx, cp)
	if err != nil {
		_ = nc.Close()
		if ca != nil {
			return nil, fmt.Errorf("device %s: connect: reason 0x%02X: %w", d.name, ca.ReasonCode, ErrRefused)
		}
		return nil, fmt.Errorf("device %s: connect: %w", d.name, err)
	}
	if _, err := cli.Subscribe(hctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: cmdTopic, QoS: 1}}}); err != nil {
		_ = cli.Disconnect(&paho.Disconnect{})
		return nil, fmt.Errorf("device %s: subscribe %s: %w", d.name, cmdTopic, err)
	}
	return cli, nil
}

// commandName extracts a command's name from its payload: the "command"
// (or "action") field of a JSON object, else the payload itself, trimmed.
func commandName(payload []byte) string {
	var m map[string]any
	if json.Unmarshal(payload, &m) == nil {
		for _, k := range []string{"command", "action", "cmd"} {
			if s, ok := m[k].(string); ok {
				return truncate(s, 64)
			}
		}
	}
	return truncate(strings.TrimSpace(string(payload)), 64)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// publishLoop sends telemetry on the device's schedule until ctx ends or
// the connection is lost.
func (d *simDevice) publishLoop(ctx context.Context, cli *paho.Client, o *SimOptions, st *simStats, begin time.Time, interval time.Duration) {
	telemetry := "devices/" + d.name + "/telemetry"
	stateTopic := "devices/" + d.name + "/state"
	var inflight chan struct{}
	if o.QoS == 1 {
		inflight = make(chan struct{}, o.Inflight)
	}
	var pubs sync.WaitGroup
	defer pubs.Wait()

	publish := func(topic string, payload []byte, counter *atomic.Uint64) bool {
		if o.QoS == 0 {
			if _, err := cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: 0, Payload: payload}); err != nil {
				if ctx.Err() == nil {
					st.errs.add(fmt.Errorf("device %s: publish: %w", d.name, err))
				}
				return false
			}
			counter.Add(1)
			return true
		}
		select {
		case inflight <- struct{}{}:
		default:
			st.missed.Add(1) // PUBACKs are not keeping up with the schedule
			return true
		}
		counter.Add(1)
		pubs.Add(1)
		go func() {
			defer func() { <-inflight; pubs.Done() }()
			t0 := time.Now()
			// Not ctx: a message already handed over waits for its PUBACK.
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, err := cli.Publish(pctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload}); err != nil {
				st.errs.add(fmt.Errorf("device %s: publish: %w", d.name, err))
				return
			}
			st.recordAck(time.Since(t0))
		}()
		return true
	}
	state := func(lastCmd string, r Reading) bool {
		now := time.Now()
		p := AppendState(nil, d.name, now, DeviceState{
			Status: "online", Firmware: "1.0.0", Battery: r.Battery,
			Uptime: now.Sub(d.start), LastCommand: lastCmd,
		})
		return publish(stateTopic, p, &st.states)
	}

	now := time.Now()
	last := d.sensor.Next(now)
	if !state("", last) {
		return
	}
	// Next slot at or after now on this device's schedule.
	k := int64(0)
	if el := now.Sub(begin) - d.slot; el > 0 && interval > 0 {
		k = int64(el/interval) + 1
	}
	sinceState := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := begin.Add(d.slot + time.Duration(k)*interval)
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-cli.Done():
			return
		case cmd := <-d.cmds:
			if !state(cmd, last) {
				return
			}
			continue
		case <-timer.C:
		}
		now := time.Now()
		last = d.sensor.Next(now)
		if !publish(telemetry, AppendTelemetry(make([]byte, 0, 160), d.name, now, last), &st.sent) {
			return
		}
		if sinceState++; sinceState >= o.StateEvery {
			sinceState = 0
			if !state("", last) {
				return
			}
		}
		k++
		// Behind by more than one slot (slow broker, busy machine): skip
		// the missed slots rather than bursting to catch up.
		if behind := time.Since(begin.Add(d.slot + time.Duration(k)*interval)); behind > interval {
			skip := int64(behind / interval)
			st.missed.Add(uint64(skip))
			k += skip
		}
	}
}
