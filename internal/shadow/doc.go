// Package shadow owns device shadows: per thing, a classic and any number
// of named JSON documents holding the desired and the reported state, with
// per-field metadata timestamps and a version, in the shapes of AWS IoT
// device shadows. [Store] keeps and persists them; [Service] speaks the
// shadow protocol on the MQTT topics $aws/things/{thing}/shadow[/name/{n}]/
// update|get|delete (and their $edgewise/things/... mirror), serves the HTTP
// API, and publishes /delta and /documents after every accepted change (see
// docs/devices.md for topics and payloads).
//
// # Semantics
//
// [Store.Update] deep-merges patches into the desired and/or reported
// sections: a nil (JSON null) value deletes the key, nested objects merge
// key by key, every other value (including arrays) replaces the old one;
// Update.ClearDesired/ClearReported empty a section. The delta is the
// desired fields that differ from the reported ones. Every update bumps the
// version by one, even an empty patch; Update.Version makes it conditional
// (ErrVersionConflict). [Store.UpdateReported] is the reported-only form
// used for devices/{id}/state reports. Numbers are float64, as
// encoding/json decodes them, so a document reads the same before and after a
// restart. The encoded document is limited to Options.MaxDocumentBytes
// (ErrTooLarge; desired plus reported, metadata excluded) and Options.MaxDepth levels of nesting (ErrInvalid).
//
// Updates of one thing are serialized; updates of different things run in
// parallel. State is "last value wins" in arrival order: a report carrying an
// older device timestamp still replaces a newer one.
//
// # Durability
//
// Device state arrives at high rates (thousands of reports per second) and
// only its latest value matters, so the Store keeps current documents in
// memory and writes the changed ones to the database in one transaction every
// Options.FlushInterval (100 ms by default), and on [Store.Close]. Several
// reports of the same thing within one interval cost one row write.
//
// A report is acknowledged when it is merged in memory. A crash (kill -9,
// power loss) loses the reports of at most the last flush interval, plus the
// time the flush transaction takes; after a restart each document is at the
// version of the last successful flush. A failed flush is retried on the next
// tick. [Store.Delete] writes through: it is durable when it returns.
//
// Documents are loaded from the database on first use and stay cached; when
// more than Options.MaxCachedDocuments are cached, unchanged ones are evicted
// after a flush.
//
// # Storage
//
// Persistence goes through the small [Backend] interface. [New] uses the SQL
// backend over database/sql (SQLite today, see internal/store), which owns
// the "shadow" schema and migrates it on start; a PostgreSQL backend can
// implement the same interface and be passed to [NewWithBackend]. A cluster
// needs more than a backend (documents are cached per process); that comes
// with cluster mode.
package shadow
