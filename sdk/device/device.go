package device

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// ErrNotConnected is returned by request/response calls (shadow get and
// update) while the device is offline.
var ErrNotConnected = errors.New("device: not connected")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("device: closed")

// Config configures a Device. Thing and Servers are required.
type Config struct {
	// Servers are broker URLs tried in turn: mqtt://host:1883,
	// tls://host:8883 (or mqtts://, ssl://), ws:// or wss://.
	Servers []string
	// Thing is the thing (device) name: it names the topics
	// devices/{Thing}/... and $aws/things/{Thing}/....
	Thing string
	// ClientID defaults to Thing.
	ClientID string
	// Username defaults to Thing when Password is set; Password is the
	// thing's password. Leave both empty with client certificates.
	Username string
	Password string
	// TLS configures tls:// servers; put a client certificate in
	// TLS.Certificates to authenticate with it.
	TLS *tls.Config
	// KeepAlive in seconds; default 30.
	KeepAlive uint16
	// Backoff is the wait before reconnection attempt n (1, 2, ...);
	// default exponential from 250 ms to 30 s with jitter.
	Backoff func(attempt int) time.Duration
	// QueueDir persists the offline queue there (a file queue.log and
	// its read position queue.pos); empty keeps it in memory only.
	QueueDir string
	// QueueMax bounds the offline queue (messages); default 10000.
	QueueMax int
	// QueueSync fsyncs every queued message (survives power loss, costs a
	// disk sync per message while offline).
	QueueSync bool
	// RequestTimeout bounds shadow requests; default 10 s.
	RequestTimeout time.Duration
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// OnConnect is called (in its own goroutine) after every connection.
	OnConnect func()
}

// Device is a connected device: the seed's IoTDevice done right. Create it
// with New, register handlers, then Start it. Its methods are safe for
// concurrent use.
type Device struct {
	cfg   Config
	log   *slog.Logger
	queue *queue
	cmp   atomic.Pointer[autopaho.ConnectionManager]

	mu            sync.Mutex
	onCommand     CommandHandler
	onJob         JobHandler
	deltaHandlers map[string]func(ShadowDelta)
	pending       map[string]chan response // clientToken -> reply
	jobRunning    map[string]bool
	lastCallback  chan struct{}
	connected     atomic.Bool
	started       bool

	kick     chan struct{}
	stop     chan struct{}
	drained  chan struct{}
	attempts atomic.Int64
	closed   atomic.Bool
}

// New validates cfg and opens the offline queue.
func New(cfg Config) (*Device, error) {
	if cfg.Thing == "" || strings.ContainsAny(cfg.Thing, "/+#") {
		return nil, fmt.Errorf("device: Thing %q must be a non-empty name without '/', '+' or '#'", cfg.Thing)
	}
	if len(cfg.Servers) == 0 {
		return nil, errors.New("device: at least one server URL is required")
	}
	if cfg.ClientID == "" {
		cfg.ClientID = cfg.Thing
	}
	if cfg.Username == "" && cfg.Password != "" {
		cfg.Username = cfg.Thing
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 30
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.QueueMax <= 0 {
		cfg.QueueMax = 10000
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	q, err := openQueue(cfg.QueueDir, cfg.QueueMax, cfg.QueueSync)
	if err != nil {
		return nil, err
	}
	return &Device{cfg: cfg, log: cfg.Logger, queue: q, deltaHandlers: map[string]func(ShadowDelta){},
		pending: map[string]chan response{}, jobRunning: map[string]bool{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), drained: make(chan struct{})}, nil
}

// DefaultBackoff waits 250 ms * 2^(n-1), at most 30 s, with ±20% jitter.
func DefaultBackoff(attempt int) time.Duration {
	d := 250 * time.Millisecond * time.Duration(math.Pow(2, float64(min(attempt-1, 7))))
	d = min(d, 30*time.Second)
	return time.Duration(float64(d) * (0.8 + 0.4*mrand.Float64()))
}

// Thing returns the device's thing name.
func (d *Device) Thing() string { return d.cfg.Thing }

// Connected reports whether the device is connected now.
func (d *Device) Connected() bool { return d.connected.Load() }

// Queued reports how many messages wait in the offline queue.
func (d *Device) Queued() int { return d.queue.len() }

// Start connects in the background and keeps reconnecting until Close.
// Handlers must be registered before Start.
func (d *Device) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return errors.New("device: already started")
	}
	d.started = true
	d.mu.Unlock()
	urls := make([]*url.URL, 0, len(d.cfg.Servers))
	for _, s := range d.cfg.Servers {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("device: server %q: %w", s, err)
		}
		switch u.Scheme {
		case "mqtt", "tcp", "tls", "ssl", "mqtts", "ws", "wss":
		default:
			return fmt.Errorf("device: server %q: scheme must be mqtt, tls, ws or wss", s)
		}
		urls = append(urls, u)
	}
	cc := autopaho.ClientConfig{
		ServerUrls:                    urls,
		TlsCfg:                        d.cfg.TLS,
		KeepAlive:                     d.cfg.KeepAlive,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff: func(n int) time.Duration {
			d.attempts.Add(1)
			if n == 0 {
				return 0
			}
			return d.cfg.Backoff(n)
		},
		ConnectTimeout:   10 * time.Second,
		OnConnectionUp:   d.onUp,
		OnConnectionDown: func() bool { d.connected.Store(false); d.log.Info("device: disconnected"); return true },
		OnConnectError:   func(err error) { d.log.Debug("device: connect failed", "err", err) },
		ClientConfig: paho.ClientConfig{
			ClientID:          d.cfg.ClientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){d.onMessage},
		},
	}
	if d.cfg.Username != "" || d.cfg.Password != "" {
		cc.ConnectUsername, cc.ConnectPassword = d.cfg.Username, []byte(d.cfg.Password)
	}
	cm, err := autopaho.NewConnection(context.WithoutCancel(ctx), cc)
	if err != nil {
		return fmt.Errorf("device: %w", err)
	}
	d.cmp.Store(cm)
	go d.drain()
	return nil
}

// AwaitConnection waits until the device is connected.
func (d *Device) AwaitConnection(ctx context.Context) error {
	cm := d.cmp.Load()
	if cm == nil {
		return errors.New("device: not started")
	}
	return cm.AwaitConnection(ctx)
}

// Close disconnects and closes the offline queue; queued messages stay in
// QueueDir for the next run.
func (d *Device) Close(ctx context.Context) error {
	if !d.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(d.stop)
	var err error
	if cm := d.cmp.Load(); cm != nil {
		<-d.drained
		err = cm.Disconnect(ctx)
		if errors.Is(err, autopaho.ConnectionDownError) {
			err = nil
		}
	}
	d.queue.close()
	return err
}

// onUp subscribes and resynchronizes after every (re)connection.
func (d *Device) onUp(cm *autopaho.ConnectionManager, _ *paho.Connack) {
	d.cmp.Store(cm)
	d.log.Info("device: connected", "thing", d.cfg.Thing)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d.cfg.RequestTimeout)
		defer cancel()
		t := d.cfg.Thing
		subs := []paho.SubscribeOptions{{Topic: "$aws/things/" + t + "/shadow/#", QoS: 1}}
		d.mu.Lock()
		if d.onCommand != nil {
			subs = append(subs, paho.SubscribeOptions{Topic: "devices/" + t + "/command", QoS: 1})
		}
		if d.onJob != nil {
			subs = append(subs, paho.SubscribeOptions{Topic: "$aws/things/" + t + "/jobs/#", QoS: 1})
		}
		names := make([]string, 0, len(d.deltaHandlers))
		for n := range d.deltaHandlers {
			names = append(names, n)
		}
		d.mu.Unlock()
		if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
			d.log.Warn("device: subscribe failed", "err", err)
			return
		}
		d.connected.Store(true)
		d.signal()
		if d.onJob != nil {
			d.publishRaw(ctx, "$aws/things/"+t+"/jobs/$next/get", []byte(`{}`))
		}
		// Catch up with desired state changed while offline.
		for _, n := range names {
			doc, err := d.GetShadow(ctx, n)
			if err == nil && len(doc.State.Delta) > 0 {
				d.dispatchDelta(n, ShadowDelta{Version: doc.Version, State: doc.State.Delta})
			}
		}
		if d.cfg.OnConnect != nil {
			d.cfg.OnConnect()
		}
	}()
}

func (d *Device) signal() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// drain sends the offline queue in order whenever connected.
func (d *Device) drain() {
	defer close(d.drained)
	for {
		select {
		case <-d.stop:
			return
		case <-d.kick:
		case <-time.After(time.Second):
		}
		for d.connected.Load() {
			m, ok := d.queue.peek()
			if !ok {
				break
			}
			ctx, cancel := context.WithTimeout(context.Background(), d.cfg.RequestTimeout)
			_, err := d.cmp.Load().Publish(ctx, &paho.Publish{Topic: m.topic, Payload: m.payload, QoS: 1})
			cancel()
			if err != nil {
				d.log.Debug("device: queued publish failed; retrying after reconnect", "err", err)
				break
			}
			if err := d.queue.pop(); err != nil {
				d.log.Warn("device: queue", "err", err)
			}
			select {
			case <-d.stop:
				return
			default:
			}
		}
	}
}

// Publish sends payload on topic with QoS 1. While the device is offline,
// or older messages still wait, it is queued (ErrQueueFull when the queue
// is full) and sent in order after reconnecting.
func (d *Device) Publish(ctx context.Context, topic string, payload []byte) error {
	if d.closed.Load() {
		return ErrClosed
	}
	if d.connected.Load() && d.queue.len() == 0 {
		_, err := d.cmp.Load().Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: 1})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
	}
	if err := d.queue.push(message{topic: topic, payload: payload}); err != nil {
		return err
	}
	d.signal()
	return nil
}

// publishRaw is a best-effort QoS 1 publish that is not queued (protocol
// requests that only make sense online).
func (d *Device) publishRaw(ctx context.Context, topic string, payload []byte) error {
	if !d.connected.Load() {
		return ErrNotConnected
	}
	_, err := d.cmp.Load().Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: 1})
	return err
}

// envelope is the seed's payload: {"device_id", "timestamp", "data"}.
func (d *Device) envelope(data any) ([]byte, error) {
	return json.Marshal(map[string]any{
		"device_id": d.cfg.Thing,
		"timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000000"),
		"data":      data,
	})
}

// PublishTelemetry publishes data on devices/{thing}/telemetry in the
// seed's envelope (stored as time series by the server).
func (d *Device) PublishTelemetry(ctx context.Context, data map[string]any) error {
	b, err := d.envelope(data)
	if err != nil {
		return fmt.Errorf("device: telemetry: %w", err)
	}
	return d.Publish(ctx, "devices/"+d.cfg.Thing+"/telemetry", b)
}

// ReportState publishes data on devices/{thing}/state: the server merges
// it into the reported state of the classic shadow.
func (d *Device) ReportState(ctx context.Context, data map[string]any) error {
	b, err := d.envelope(data)
	if err != nil {
		return fmt.Errorf("device: state: %w", err)
	}
	return d.Publish(ctx, "devices/"+d.cfg.Thing+"/state", b)
}

// onMessage routes incoming messages.
func (d *Device) onMessage(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	t := d.cfg.Thing
	switch {
	case p.Topic == "devices/"+t+"/command":
		d.handleCommand(p)
	case strings.HasPrefix(p.Topic, "$aws/things/"+t+"/shadow/"):
		d.handleShadow(strings.TrimPrefix(p.Topic, "$aws/things/"+t+"/shadow/"), p.Payload)
	case strings.HasPrefix(p.Topic, "$aws/things/"+t+"/jobs/"):
		d.handleJobs(strings.TrimPrefix(p.Topic, "$aws/things/"+t+"/jobs/"), p.Payload)
	default:
		return false, nil
	}
	return true, nil
}

func newToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
