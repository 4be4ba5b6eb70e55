package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// PublishWithProperties is Publish with MQTT 5 properties (Response Topic,
// Correlation Data, Message Expiry, Content Type, User Properties), which
// v5 subscribers receive and 3.1.1 subscribers do not. The properties are
// copied; the caller may reuse props.
func (s *Server) PublishWithProperties(ctx context.Context, topic string, payload []byte, qos byte, retain bool, props packets.Properties) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("broker: publish: %w", err)
	}
	if s.closing.Load() {
		return ErrServerClosed
	}
	if !packets.ValidTopicName(topic) {
		return fmt.Errorf("broker: publish %q: %w", topic, ErrInvalidTopic)
	}
	if qos > 2 {
		return fmt.Errorf("broker: publish %q qos %d: %w", topic, qos, ErrInvalidQoS)
	}
	p := packets.Publish{QoS: qos, Retain: retain, Topic: topic, Payload: payload, Properties: props}
	r := s.routers.Get().(*router)
	s.stats.messagesIn.Add(1)
	s.route(r, nil, &p, time.Now())
	seq := r.seq
	r.reset()
	s.routers.Put(r)
	if seq > 0 && qos > 0 {
		if err := s.store.Sync(ctx, seq); err != nil {
			return fmt.Errorf("broker: publish %q: %w", topic, err)
		}
	}
	return nil
}
