// Package stream runs compiled rules over a stream of MQTT messages: it
// owns compiled rules (Compile), per-message evaluation, stream windows
// (tumbling, hopping, sliding, session and count), event time, watermarks,
// late data, idle closing on processing time, window state for restarts,
// and the ${expr} templates of actions.
//
// Event time is read from the payload's "timestamp" field (Options
// .TimestampField names another path) with the device API's rules: an
// ISO-8601 / RFC 3339 string (a time without a zone is UTC) or a number of
// seconds, milliseconds, microseconds or nanoseconds since the epoch, told
// apart by magnitude. A message without one takes its broker receive time.
//
// Windows are kept per group (the GROUP BY keys besides the window), and so
// is the watermark: the largest event time seen in the group minus
// Options.AllowedLateness. A window closes, and its row is emitted, when the
// group's watermark passes its end, or when the group has received nothing
// for Options.IdleTimeout of processing time (Tick), so a device that goes
// quiet still gets its last window. Data for a window that has closed is
// late: it is counted in RuleStats.Late and dropped, never merged into
// another window. docs/rules.md describes each window type precisely.
//
// Windowed rules bound their groups and buffered messages (Options
// .MaxGroups, .MaxBuffered); a message beyond a limit fails with ErrLimit.
// Message.Prepare validates a payload once for all the rules it fans out
// to.
//
// A Rule is not safe for concurrent use: the rule manager serialises the
// calls to each rule (Process, Tick, Stats, State, Restore). Messages given
// to Process are retained by windowed rules until their windows close; the
// caller must not modify a Message or its Payload afterwards. Templates are
// safe for concurrent use.
package stream
