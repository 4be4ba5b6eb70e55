// Package rules is the rule manager: it stores rule definitions (name, SQL,
// actions, error action, enabled) in the server's SQLite database through
// internal/store migrations, compiles them with internal/rules/stream, and
// runs every enabled rule.
//
// # Dispatch
//
// The Manager is a broker.PublishHook. OnPublish matches each message's
// topic against the FROM filters of the running rules (a topics.Trie),
// copies the message once and appends it to the bounded queue of every
// matching rule. It never blocks: when a rule's queue holds
// Options.QueueSize messages, further messages for that rule are dropped
// and counted (RuleStats.Dropped). Each rule has one goroutine that owns
// its compiled rule (Process for messages, Tick every Options.TickInterval
// to close idle windows) and hands output rows to the rule's actions
// (internal/rules/action), which deliver asynchronously.
//
// # Injected messages and the loop guard
//
// Inject publishes a message that came from elsewhere (the AMQP source) as
// if a client had: to MQTT subscribers (Options.Publisher), to storage
// (Options.Ingest) and to the rules. Republish actions use the same path
// with a hop count: a rule never receives messages produced by its own
// republish actions, and a message republished more than Options.MaxHops
// times (default 8) still reaches subscribers and storage but no rule, so
// rules that republish to each other's topics cannot loop forever. Both
// cases are counted in Summary.LoopsBroken.
//
// # Errors
//
// An evaluation error, an output that an action cannot render, and an
// item an action gave up on (after its retries, on a permanent error, or
// because its queue was full) go to the rule's error action, whose row is
// {"rule", "topic", "client_id", "principal", "payload" (base64 of the
// original payload), "error" or "failures": [{"action", "error",
// "attempts"}], "timestamp"}.
//
// # Restarts
//
// Definitions are written before Create, Update, Delete or SetEnabled
// return, so they survive any restart. Close (a clean shutdown) processes
// what is queued, saves each windowed rule's open windows (stream
// Rule.State) with the SQL they belong to, and lets actions deliver what
// they hold. The next New restores the saved state once and deletes it.
// After kill -9 nothing was saved: rules start with empty windows.
//
// # Durable actions
//
// With Options.SpoolDir, durable actions (action.IsDurable) queue their
// rows in on-disk spools (internal/rules/spool) under
// SpoolDir/<rule>/<index>-<type>. For QoS 1 and 2 messages matching a rule
// with a durable action, OnPublish (and Inject, InjectBatch) wait until
// the rule has evaluated them and its rows are committed to the spools,
// so a PUBACK means the rows are on disk; such messages are never dropped
// for a full rule queue (the publisher waits instead). Spools survive
// kill -9 and are delivered first at the next start; Delete discards a
// rule's spools, and an Update discards the spools of actions that
// changed position or type. Messages queued for a rule (not yet
// evaluated) and rows of in-memory actions are lost on kill -9; a QoS 1
// publisher was not acknowledged for the former.
//
// # Secrets
//
// Rule.Redact hides action secrets for API responses; Update keeps the
// stored secret wherever a definition still carries the Redacted form.
package rules
