// Package source feeds messages from outside MQTT into the server: an AMQP
// source consumes a RabbitMQ queue and injects each message as if a client
// had published it on a topic rendered from a template (so MQTT
// subscribers, storage and the rules all see it).
//
// Messages are consumed with manual acknowledgements and a prefetch
// window. A message is acknowledged only after the injection succeeded
// (the broker routed it and storage accepted it); when injection fails it
// is requeued, after a pause, for another attempt. A message whose topic
// cannot be rendered (a missing header, an invalid topic) is rejected
// without requeue, so a dead-letter exchange on the queue receives it.
// The source reconnects with exponential backoff and jitter whenever the
// connection or channel closes.
package source
