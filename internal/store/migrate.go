package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrSchemaTooNew reports that the database holds more migrations for a
// component than the running binary knows: it was written by a newer version
// of Edgewise and must not be modified by this one.
var ErrSchemaTooNew = errors.New("store: database schema is newer than this binary")

// ErrMigrate reports that a migration step failed; the transaction was rolled
// back and no step of the failed run was recorded.
var ErrMigrate = errors.New("store: migration failed")

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	component  TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	applied_at BIGINT  NOT NULL,
	PRIMARY KEY (component, version)
)`

// Migrate brings component's schema up to date. steps is the component's
// complete, append-only list of migrations: steps[i] is version i+1 and may
// hold several SQL statements separated by semicolons. Steps already recorded
// in the schema_migrations table are skipped, so calling Migrate again (for
// example on every start) is a no-op. All pending steps run in one
// transaction: either all are applied and recorded, or none is.
//
// Never edit or reorder a released step; append a new one instead.
func Migrate(ctx context.Context, db *sql.DB, component string, steps []string) error {
	if component == "" {
		return fmt.Errorf("%w: empty component name", ErrMigrate)
	}
	if _, err := db.ExecContext(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("%w: %s: create schema_migrations: %w", ErrMigrate, component, err)
	}
	// The write transaction (BEGIN IMMEDIATE, see OpenSQLite) serializes
	// concurrent migrators, so reading the current version inside it is safe.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: %s: begin: %w", ErrMigrate, component, err)
	}
	defer func() { _ = tx.Rollback() }()

	var current int
	err = tx.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?`, component).Scan(&current)
	if err != nil {
		return fmt.Errorf("%w: %s: read version: %w", ErrMigrate, component, err)
	}
	if current > len(steps) {
		return fmt.Errorf("%w: %s is at version %d, this binary knows %d", ErrSchemaTooNew, component, current, len(steps))
	}
	if current == len(steps) {
		return nil
	}
	now := time.Now().UnixNano()
	for i := current; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("%w: %s version %d: %w", ErrMigrate, component, i+1, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)`,
			component, i+1, now); err != nil {
			return fmt.Errorf("%w: %s version %d: record: %w", ErrMigrate, component, i+1, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: %s: commit: %w", ErrMigrate, component, err)
	}
	return nil
}

// Version reports the highest migration version applied for component, or 0
// when none has been.
func Version(ctx context.Context, db *sql.DB, component string) (int, error) {
	if _, err := db.ExecContext(ctx, createMigrationsTable); err != nil {
		return 0, fmt.Errorf("store: create schema_migrations: %w", err)
	}
	var v int
	err := db.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?`, component).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("store: read %s version: %w", component, err)
	}
	return v, nil
}
