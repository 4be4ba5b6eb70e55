package action

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpSink publishes to an exchange with publisher confirms and persistent
// delivery; it (re)connects lazily, so a broker that is down when the rule
// is created or goes away later only delays delivery.
type amqpSink struct {
	url      string
	exchange string

	mu   sync.Mutex
	conn *amqp.Connection
	ch   *amqp.Channel
}

func (s *amqpSink) channel() (*amqp.Channel, error) {
	if s.ch != nil && !s.ch.IsClosed() && s.conn != nil && !s.conn.IsClosed() {
		return s.ch, nil
	}
	s.reset()
	conn, err := amqp.DialConfig(s.url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second), Properties: amqp.Table{"connection_name": "edgewise-rules"}})
	if err != nil {
		return nil, fmt.Errorf("amqp: connect: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("amqp: open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		conn.Close()
		return nil, fmt.Errorf("amqp: enable publisher confirms: %w", err)
	}
	s.conn, s.ch = conn, ch
	return ch, nil
}

func (s *amqpSink) reset() {
	if s.conn != nil {
		_ = s.conn.Close()
	}
	s.conn, s.ch = nil, nil
}

func (s *amqpSink) deliver(ctx context.Context, batch []*Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channel()
	if err != nil {
		return err
	}
	confs := make([]*amqp.DeferredConfirmation, 0, len(batch))
	for _, it := range batch {
		c, err := ch.PublishWithDeferredConfirmWithContext(ctx, s.exchange, it.Key, false, false, amqp.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			Timestamp:    it.Time,
			Body:         it.Body,
		})
		if err != nil {
			s.reset()
			return fmt.Errorf("amqp: publish to exchange %q: %w", s.exchange, err)
		}
		confs = append(confs, c)
	}
	for _, c := range confs {
		ok, err := c.WaitContext(ctx)
		if err != nil {
			s.reset()
			return fmt.Errorf("amqp: wait for confirm: %w", err)
		}
		if !ok {
			return fmt.Errorf("amqp: exchange %q: broker nacked the message", s.exchange)
		}
	}
	return nil
}

func (s *amqpSink) close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reset()
	return nil
}

// natsSink publishes to NATS subjects; with JetStream it waits for the
// stream's acks.
type natsSink struct {
	url string
	js  bool

	mu     sync.Mutex
	nc     *nats.Conn
	stream jetstream.JetStream
}

func (s *natsSink) connect() error {
	if s.nc != nil && !s.nc.IsClosed() {
		return nil
	}
	nc, err := nats.Connect(s.url, nats.Name("edgewise-rules"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return fmt.Errorf("nats: connect: %w", err)
	}
	s.nc = nc
	if s.js {
		if s.stream, err = jetstream.New(nc); err != nil {
			nc.Close()
			s.nc = nil
			return fmt.Errorf("nats: jetstream: %w", err)
		}
	}
	return nil
}

func (s *natsSink) deliver(ctx context.Context, batch []*Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.connect(); err != nil {
		return err
	}
	if !s.js {
		for _, it := range batch {
			if err := s.nc.Publish(it.Key, it.Body); err != nil {
				return fmt.Errorf("nats: publish %q: %w", it.Key, err)
			}
		}
		// Flush makes the server acknowledge that it read everything.
		if err := s.nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("nats: flush: %w", err)
		}
		return nil
	}
	futs := make([]jetstream.PubAckFuture, 0, len(batch))
	for _, it := range batch {
		f, err := s.stream.PublishAsync(it.Key, it.Body)
		if err != nil {
			return fmt.Errorf("nats: jetstream publish %q: %w", it.Key, err)
		}
		futs = append(futs, f)
	}
	var errs []error
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
				err = fmt.Errorf("%w (is there a stream for subject %q?)", err, f.Msg().Subject)
			}
			errs = append(errs, err)
		case <-ctx.Done():
			return fmt.Errorf("nats: jetstream ack: %w", ctx.Err())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("nats: jetstream: %d of %d not acknowledged: %w", len(errs), len(batch), errs[0])
	}
	return nil
}

func (s *natsSink) close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nc != nil {
		s.nc.Close()
		s.nc = nil
	}
	return nil
}
