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
	// AckBatch is how many injected messages one acknowledgement settles
	// (basic.ack with multiple=true; default Prefetch/2, 1 acknowledges
	// each message). Pending acknowledgements are also sent as soon as no
	// delivery is waiting, before a requeue or reject, and on shutdown.
	AckBatch int `yaml:"ack_batch" json:"ack_batch,omitempty"`
}

// Injector publishes a message as if a client had; *rules.Manager
// satisfies it.
type Injector interface {
	Inject(ctx context.Context, topic string, payload []byte, qos byte, clientID string) error
}

// BatchInjector is an Injector that also takes several messages at once
// (one storage write for all); *rules.Manager satisfies it.
type BatchInjector interface {
	InjectBatch(ctx context.Context, topics []string, payloads [][]byte, qos byte, clientID string) error
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
	Acks       uint64 `json:"acks"` // basic.ack frames sent (each may settle several messages)
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
	acks                                               atomic.Uint64
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
	if cfg.AckBatch <= 0 {
		cfg.AckBatch = max(1, cfg.Prefetch/2)
	}
	cfg.AckBatch = min(cfg.AckBatch, cfg.Prefetch)
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
	a := &acker{ch: ch, sent: &s.acks}
	defer a.flush() // best effort: unacknowledged messages are redelivered anyway
	if bi, ok := s.inj.(BatchInjector); ok && s.cfg.AckBatch > 1 {
		return s.consumeBatches(ctx, deliveries, bi, a)
	}
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
		default:
			// Nothing waiting: settle what was injected before blocking.
			if err := a.flush(); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case d, ok = <-deliveries:
			}
		}
		if !ok {
			return fmt.Errorf("source: amqp deliveries closed: %w", amqp.ErrClosed)
		}
		if err := s.handle(ctx, &d, a); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// acker acknowledges injected deliveries in groups (multiple=true).
type acker struct {
	ch   *amqp.Channel
	tag  uint64 // highest injected, unacknowledged delivery tag
	n    int
	sent *atomic.Uint64
}

func (a *acker) flush() error {
	if a.n == 0 {
		return nil
	}
	tag := a.tag
	a.n = 0
	if err := a.ch.Ack(tag, true); err != nil {
		return fmt.Errorf("source: amqp ack: %w", err)
	}
	a.sent.Add(1)
	return nil
}

// handle injects one delivery and settles it; an error ends the session.
func (s *AMQP) handle(ctx context.Context, d *amqp.Delivery, a *acker) error {
	s.received.Add(1)
	topic, err := s.render(d)
	if err != nil {
		s.rejected.Add(1)
		msg := err.Error()
		s.lastErr.Store(&msg)
		s.log.Warn("amqp message rejected", "err", err)
		if err := a.flush(); err != nil {
			return err
		}
		return d.Reject(false)
	}
	if err := s.inj.Inject(ctx, topic, d.Body, s.qos, s.cfg.ClientID); err != nil {
		s.requeued.Add(1)
		msg := err.Error()
		s.lastErr.Store(&msg)
		s.log.Warn("amqp message requeued: injection failed", "topic", topic, "err", err)
		if err := a.flush(); err != nil {
			return err
		}
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
	a.tag, a.n = d.DeliveryTag, a.n+1
	if a.n >= s.cfg.AckBatch {
		return a.flush()
	}
	return nil
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
		Requeued: s.requeued.Load(), Rejected: s.rejected.Load(), Reconnects: s.reconnects.Load(), Acks: s.acks.Load(),
	}
	if p := s.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	return st
}

// batchLinger is how long a batch waits for the next delivery.
const batchLinger = time.Millisecond

// consumeBatches takes the deliveries waiting (up to AckBatch), injects
// them with one call and settles them with one basic.ack (or requeues
// them all with one basic.nack when injection failed).
func (s *AMQP) consumeBatches(ctx context.Context, deliveries <-chan amqp.Delivery, bi BatchInjector, a *acker) error {
	var topics []string
	var payloads [][]byte
	var linger *time.Timer
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case d, ok = <-deliveries:
		}
		topics, payloads = topics[:0], payloads[:0]
		var last uint64
		for n := 0; ; {
			if !ok {
				return fmt.Errorf("source: amqp deliveries closed: %w", amqp.ErrClosed)
			}
			s.received.Add(1)
			n++
			topic, err := s.render(&d)
			if err != nil {
				s.rejected.Add(1)
				msg := err.Error()
				s.lastErr.Store(&msg)
				s.log.Warn("amqp message rejected", "err", err)
				if err := d.Reject(false); err != nil {
					return err
				}
			} else {
				topics, payloads, last = append(topics, topic), append(payloads, d.Body), d.DeliveryTag
			}
			if n >= s.cfg.AckBatch {
				break
			}
			// The client hands deliveries over one at a time: give the
			// next one a moment (batchLinger) to arrive.
			if linger == nil {
				linger = time.NewTimer(batchLinger)
			} else {
				linger.Reset(batchLinger)
			}
			select {
			case d, ok = <-deliveries:
				if !linger.Stop() {
					<-linger.C
				}
				continue
			case <-linger.C:
			}
			break
		}
		if len(topics) == 0 {
			continue
		}
		if err := bi.InjectBatch(ctx, topics, payloads, s.qos, s.cfg.ClientID); err != nil {
			s.requeued.Add(uint64(len(topics)))
			msg := err.Error()
			s.lastErr.Store(&msg)
			s.log.Warn("amqp messages requeued: injection failed", "messages", len(topics), "err", err)
			if err := a.ch.Nack(last, true, true); err != nil {
				return fmt.Errorf("source: amqp nack: %w", err)
			}
			select { // do not spin on a failing store
			case <-ctx.Done():
				return nil
			case <-time.After(s.retryMin):
			}
			continue
		}
		s.injected.Add(uint64(len(topics)))
		a.tag, a.n = last, len(topics)
		if err := a.flush(); err != nil {
			return err
		}
	}
}
