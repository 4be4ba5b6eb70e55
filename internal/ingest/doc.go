// Package ingest turns device messages into platform data. It owns the
// topic conventions of the device API and the payload formats:
//
//   - devices/{id}/telemetry: the seed's JSON form
//     {"device_id": "...", "timestamp": "...", "data": {...}} or a flat JSON
//     object {"temperature": 21.5, ...} becomes one point in the telemetry
//     measurement, tagged device_id={id} (the id from the topic, which the
//     broker's policy has already confined to the publishing thing), with one
//     field per number (float), boolean or string; nested objects are
//     flattened with "." (a.b.c); arrays and nulls are skipped.
//   - devices/{id}/state: the same envelope; its data (or the flat object)
//     is merged into the thing's reported state.
//
// Timestamps: ISO-8601 / RFC 3339 with or without a zone (a naive time is
// UTC, as Python's datetime.utcnow().isoformat() produces) or a number of
// seconds, milliseconds, microseconds or nanoseconds since the epoch (told
// apart by magnitude). A missing timestamp means arrival time.
//
// The Pipeline is the broker's publish hook: it parses a read pass's batch of
// messages and writes their points with one storage write, so a QoS 1
// PUBACK is sent only once the points are on the write-ahead log. Malformed
// payloads are counted and logged and never fail the batch: retrying them
// could not succeed.
package ingest
