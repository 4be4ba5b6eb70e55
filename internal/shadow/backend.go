package shadow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/edgewise-iot/edgewise/internal/store"
)

// Record is a persisted shadow document.
type Record struct {
	Thing string
	// Reported is the JSON encoding of the reported object.
	Reported  []byte
	Version   int64
	UpdatedAt time.Time
	Timestamp time.Time
}

// Backend persists shadow documents. Implementations must be safe for
// concurrent use.
type Backend interface {
	// Load returns the stored document of thing; found is false if none.
	Load(ctx context.Context, thing string) (rec Record, found bool, err error)
	// Save upserts all records atomically (one transaction).
	Save(ctx context.Context, recs []Record) error
	// Delete removes the document of thing and reports whether one existed.
	Delete(ctx context.Context, thing string) (existed bool, err error)
}

// Component is the schema component name under which the shadow migrations
// are recorded.
const Component = "shadow"

// migrations is the shadow schema, append-only, in SQL that SQLite and
// PostgreSQL both accept. Timestamps are Unix microseconds. The desired and
// metadata columns and the shadow name (named shadows; the empty name is the classic
// shadow) are reserved for full shadows.
var migrations = []string{
	`CREATE TABLE shadows (
		thing      TEXT   NOT NULL,
		name       TEXT   NOT NULL DEFAULT '',
		reported   TEXT   NOT NULL DEFAULT '{}',
		desired    TEXT   NOT NULL DEFAULT '{}',
		metadata   TEXT   NOT NULL DEFAULT '{}',
		version    BIGINT NOT NULL DEFAULT 0,
		updated_at BIGINT NOT NULL,
		device_ts  BIGINT NOT NULL,
		PRIMARY KEY (thing, name)
	)`,
}

// SQLBackend is the database/sql Backend, used with SQLite.
type SQLBackend struct {
	db *sql.DB
}

var _ Backend = (*SQLBackend)(nil)

// NewSQLBackend migrates the shadow schema in db and returns a Backend over it.
func NewSQLBackend(ctx context.Context, db *sql.DB) (*SQLBackend, error) {
	if db == nil {
		return nil, errors.New("shadow: nil database")
	}
	if err := store.Migrate(ctx, db, Component, migrations); err != nil {
		return nil, fmt.Errorf("shadow: %w", err)
	}
	return &SQLBackend{db: db}, nil
}

// Load implements Backend.
func (b *SQLBackend) Load(ctx context.Context, thing string) (Record, bool, error) {
	var rec Record
	var reported string
	var updated, ts int64
	err := b.db.QueryRowContext(ctx,
		`SELECT reported, version, updated_at, device_ts FROM shadows WHERE thing = ? AND name = ''`, thing).
		Scan(&reported, &rec.Version, &updated, &ts)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("load shadow: %w", err)
	}
	rec.Thing = thing
	rec.Reported = []byte(reported)
	rec.UpdatedAt = fromMicros(updated)
	rec.Timestamp = fromMicros(ts)
	return rec, true, nil
}

// Save implements Backend.
func (b *SQLBackend) Save(ctx context.Context, recs []Record) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO shadows (thing, name, reported, version, updated_at, device_ts) VALUES (?, '', ?, ?, ?, ?)
		 ON CONFLICT (thing, name) DO UPDATE SET
		   reported = excluded.reported, version = excluded.version,
		   updated_at = excluded.updated_at, device_ts = excluded.device_ts`)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer stmt.Close()
	for _, r := range recs {
		if _, err := stmt.ExecContext(ctx, r.Thing, string(r.Reported), r.Version,
			toMicros(r.UpdatedAt), toMicros(r.Timestamp)); err != nil {
			return fmt.Errorf("save shadow %q: %w", r.Thing, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Delete implements Backend.
func (b *SQLBackend) Delete(ctx context.Context, thing string) (bool, error) {
	res, err := b.db.ExecContext(ctx, `DELETE FROM shadows WHERE thing = ? AND name = ''`, thing)
	if err != nil {
		return false, fmt.Errorf("delete shadow: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete shadow: %w", err)
	}
	return n > 0, nil
}

// toMicros maps the zero time to 0 so "no timestamp" reads back as zero.
func toMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}
