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
// # Durable actions
//
// When Options.SpoolDir is set and the spec is durable (IsDurable: by
// default tsdb, webhook, amqp, postgres, archive and nats with jetstream;
// "durable": true|false overrides), the queue is an internal/rules/spool
// on disk instead of a channel: Do appends the rendered item, Sync makes it
// durable (the rule calls it before its publish hook returns), and the
// delivery goroutine reads the spool in order and acknowledges an item
// only after the sink did (or after it was reported as failed). Items found
// in the spool at New, left by a crash or a stop, are delivered first; the
// ones delivered but not yet acknowledged when the process died come again
// (at least once). A full spool (Spool.MaxBytes) drops new items, counts
// them (Stats.Dropped) and reports them like a full queue. Close delivers
// what the sink accepts and stops at the first failure, leaving the rest
// spooled for the next start.
//
// In-memory queues (no SpoolDir, or durable: false): Close delivers what
// is queued (bounded by its context), but items queued or being retried
// when the process is killed are lost.
//
// The archive sink counts items as delivered, and lets a durable action
// acknowledge them, only once the object holding them is written; while
// the bucket fails it holds at most two sealed objects and then refuses
// new items (they are retried, and stay in the spool).
package action
