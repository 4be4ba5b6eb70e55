// Package app is the composition root: the only package that imports every
// subsystem. It opens the data directory, builds the registry, the state
// store, the time-series store, the ingest pipeline, the broker and the
// HTTP API from a config.Config, wires them through their small
// interfaces, and owns the start and stop order:
//
//	start: data dir lock -> admin token -> SQLite (registry, state) -> tsdb
//	       -> ingest -> broker -> listeners (MQTT, HTTP)
//	stop:  HTTP (drain requests) -> broker (flush queues, close clients;
//	       in-flight publishes finish their store write) -> tsdb (flush the
//	       head, sync the WAL) -> state (flush) -> SQLite -> unlock
//
// Data directory layout:
//
//	DIR/LOCK          flock held while a server runs
//	DIR/admin.token   admin API token (mode 0600), unless EDGEWISE_ADMIN_TOKEN is set
//	DIR/registry.db   SQLite: things, credentials, state documents
//	DIR/tsdb/         the time-series store (wal/, blocks/)
package app
