package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/edgewise-iot/edgewise/internal/rules/stream"
)

// ErrInvalid is wrapped by configuration errors.
var ErrInvalid = errors.New("source: invalid configuration")

// Config configures one AMQP source.
type Config struct {
	// URL of the AMQP 0.9.1 server, e.g. amqp://user:pass@host:5672/vhost.
	URL string `yaml:"url" json:"url"`
	// Queue to consume; it must exist (declare and bind it in RabbitMQ).
	Queue string `yaml:"queue" json:"queue"`
	// Topic is the MQTT topic template. Its row has the columns
	// routing_key, exchange, headers (the AMQP headers), message_id,
	// correlation_id, content_type, type, app_id and payload (the body,
	// decoded when it is JSON), e.g. "devices/${headers.device_id}/telemetry"
	// or "amqp/${routing_key}".
	Topic string `yaml:"topic" json:"topic"`
	// Prefetch is how many unacknowledged messages the server may send
	// (default 100).
	Prefetch int `yaml:"prefetch" json:"prefetch,omitempty"`
	// QoS of the injected MQTT message (0 or 1, default 1).
	QoS *byte `yaml:"qos" json:"qos,omitempty"`
	// ClientID the injected messages carry (default "amqp:<queue>").
	ClientID string `yaml:"client_id" json:"client_id,omitempty"`
}

// Injector publishes a message as if a client had; *rules.Manager
// satisfies it.
type Injector interface {
	Inject(ctx context.Context, topic string, payload []byte, qos byte, clientID string) error
}

// Stats are a source's counters.
type Stats struct {
	Queue      string `json:"queue"`
	Connected  bool   `json:"connected"`
	Received   uint64 `json:"received"`
	Injected   uint64 `json:"injected"`
	Requeued   uint64 `json:"requeued"`
	Rejected   uint64 `json:"rejected"`
	Reconnects uint64 `json:"reconnects"`
	LastError  string `json:"last_error,omitempty"`
}

// AMQP consumes one queue.
type AMQP struct {
	cfg      Config
	topic    *stream.Template
	qos      byte
	inj      Injector
	log      *slog.Logger
	retryMin time.Duration
	retryMax time.Duration

	connected                                          atomic.Bool
	received, injected, requeued, rejected, reconnects atomic.Uint64
	lastErr                                            atomic.Pointer[string]
}

// NewAMQP validates cfg; Run consumes.
func NewAMQP(cfg Config, inj Injector, log *slog.Logger) (*AMQP, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !strings.HasPrefix(cfg.URL, "amqp://") && !strings.HasPrefix(cfg.URL, "amqps://") {
		return nil, fmt.Errorf("%w: amqp source url must start with amqp:// or amqps://", ErrInvalid)
	}
	if cfg.Queue == "" || cfg.Topic == "" {
		return nil, fmt.Errorf("%w: amqp source needs queue and topic", ErrInvalid)
	}
	t, err := stream.ParseTemplate(cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("%w: amqp source topic %q: %w", ErrInvalid, cfg.Topic, err)
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 100
	}
	qos := byte(1)
	if cfg.QoS != nil {
		qos = *cfg.QoS
	}
	if qos > 1 {
		return nil, fmt.Errorf("%w: amqp source qos %d: only 0 and 1 are supported", ErrInvalid, qos)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "amqp:" + cfg.Queue
	}
	return &AMQP{cfg: cfg, topic: t, qos: qos, inj: inj, log: log.With("source", "amqp", "queue", cfg.Queue),
		retryMin: 100 * time.Millisecond, retryMax: 30 * time.Second}, nil
}

// Run consumes until ctx ends, reconnecting with backoff.
func (s *AMQP) Run(ctx context.Context) error {
	wait := s.retryMin
	for {
		err := s.consume(ctx)
		s.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			msg := err.Error()
			s.lastErr.Store(&msg)
			s.log.Warn("amqp source disconnected; reconnecting", "err", err, "in", wait)
		}
		d := wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		wait = min(wait*2, s.retryMax)
		s.reconnects.Add(1)
	}
}

func (s *AMQP) consume(ctx context.Context) error {
	conn, err := amqp.DialConfig(s.cfg.URL, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second), Properties: amqp.Table{"connection_name": "edgewise-source " + s.cfg.Queue}})
	if err != nil {
		return fmt.Errorf("source: amqp connect: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("source: amqp channel: %w", err)
	}
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("source: amqp qos: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, s.cfg.Queue, "edgewise-"+s.cfg.ClientID, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("source: amqp consume %q: %w", s.cfg.Queue, err)
	}
	s.connected.Store(true)
	s.log.Info("amqp source consuming")
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("source: amqp deliveries closed: %w", amqp.ErrClosed)
			}
			if err := s.handle(ctx, &d); err != nil {
				return err
			}
		}
	}
}

// handle injects one delivery and settles it; an error ends the session.
func (s *AMQP) handle(ctx context.Context, d *amqp.Delivery) error {
	s.received.Add(1)
	topic, err := s.render(d)
	if err != nil {
		s.rejected.Add(1)
		msg := err.Error()
		s.lastErr.Store(&msg)
		s.log.Warn("amqp message rejected", "err", err)
		return d.Reject(false)
	}
	if err := s.inj.Inject(ctx, topic, d.Body, s.qos, s.cfg.ClientID); err != nil {
		s.requeued.Add(1)
		msg := err.Error()
		s.lastErr.Store(&msg)
		s.log.Warn("amqp message requeued: injection failed", "topic", topic, "err", err)
		if nerr := d.Nack(false, true); nerr != nil {
			return nerr
		}
		select { // do not spin on a failing store
		case <-ctx.Done():
		case <-time.After(s.retryMin):
		}
		return nil
	}
	s.injected.Add(1)
	return d.Ack(false)
}

func (s *AMQP) render(d *amqp.Delivery) (string, error) {
	headers := make(map[string]any, len(d.Headers))
	for k, v := range d.Headers {
		headers[k] = plain(v)
	}
	var payload any = string(d.Body)
	var js any
	if json.Unmarshal(d.Body, &js) == nil {
		payload = plain(js)
	}
	row := stream.Row{
		Columns: []string{"routing_key", "exchange", "headers", "message_id", "correlation_id", "content_type", "type", "app_id", "payload"},
		Values:  []any{d.RoutingKey, d.Exchange, headers, d.MessageId, d.CorrelationId, d.ContentType, d.Type, d.AppId, payload},
	}
	topic, err := s.topic.Render(&stream.Output{Row: row, ClientID: s.cfg.ClientID, EventTime: time.Now()})
	if err != nil {
		return "", fmt.Errorf("source: topic: %w", err)
	}
	if topic == "" || strings.ContainsAny(topic, "+#\x00") || strings.HasPrefix(topic, "$") || len(topic) > 65535 {
		return "", fmt.Errorf("source: rendered topic %q is not a valid topic name", topic)
	}
	return topic, nil
}

// plain converts AMQP and JSON values to the row value types.
func plain(v any) any {
	switch x := v.(type) {
	case nil, bool, string, int64, float64:
		return x
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case float32:
		return float64(x)
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case amqp.Table:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = plain(e)
		}
		return m
	case map[string]any:
		for k, e := range x {
			x[k] = plain(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = plain(e)
		}
		return x
	default:
		return fmt.Sprint(x)
	}
}

// Stats returns the source's counters.
func (s *AMQP) Stats() Stats {
	st := Stats{
		Queue: s.cfg.Queue, Connected: s.connected.Load(), Received: s.received.Load(), Injected: s.injected.Load(),
		Requeued: s.requeued.Load(), Rejected: s.rejected.Load(), Reconnects: s.reconnects.Load(),
	}
	if p := s.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	return st
}
