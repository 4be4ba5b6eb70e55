// Package action delivers the output rows of rules to sinks: the
// time-series store (tsdb), the broker (republish), HTTP (webhook), AMQP
// 0.9.1 exchanges (amqp), NATS and JetStream (nats), PostgreSQL tables
// (postgres) and gzip NDJSON objects in a gocloud.dev/blob bucket
// (archive: file:// and s3://).
//
// An Action renders each row with its ${expr} templates (stream templates)
// into an Item, queues it without blocking (a full queue drops the item,
// counts it and reports it to the failure callback) and delivers queued
// items in batches from one goroutine. A failed batch is retried with
// exponential backoff and jitter; it leaves the queue only once the sink
// acknowledged it (HTTP 2xx, AMQP publisher confirm, JetStream ack, NATS
// flush, committed INSERT, tsdb write) or the retries are exhausted, when
// every item goes to the failure callback (the rule's error action).
// Permanent errors (HTTP 4xx other than 408 and 429, SQL data and schema
// errors, invalid points) are not retried. Sinks connect lazily and
// reconnect after failures.
//
// Queues are in memory: Close delivers what is queued (bounded by its
// context), but items queued or being retried when the process is killed
// are lost. The archive sink acknowledges items once they are in the open
// object, which is written when it reaches its size or age limit and on
// Close.
package action
