// Package store owns the embedded metadata database: opening SQLite with the
// pragmas Edgewise relies on (WAL, synchronous=FULL, foreign keys, busy
// timeout, a small connection pool) and running versioned schema migrations.
//
// Schemas are owned by the packages that use them (the registry, the shadow
// store, ...). Each package passes its ordered list of migration steps to
// [Migrate] under its own component name; applied versions are recorded in a
// schema_migrations table so opening the same database twice is a no-op.
//
// # Durability
//
// The database runs in WAL journal mode with synchronous=FULL: every committed
// transaction is fsynced to the WAL before the commit returns. WAL with
// synchronous=NORMAL already survives a process crash (kill -9), because the
// committed frames are in the operating system's page cache; FULL additionally
// survives an operating system crash or power loss. Metadata writes
// (registering a device, resetting its credentials) are rare and are
// acknowledged to API clients, so the extra fsync per commit is the right
// trade. High-rate writers (device state) batch many changes per transaction
// and so pay the fsync once per batch.
//
// # Concurrency
//
// SQLite allows one writer at a time. Write transactions begin with BEGIN
// IMMEDIATE (taking the write lock up front, which avoids lock-upgrade
// deadlocks), and every connection waits up to the busy timeout for the lock
// instead of failing with SQLITE_BUSY. Readers run concurrently with the
// writer thanks to WAL.
package store
