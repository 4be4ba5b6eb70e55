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
	// Name is the shadow's name, empty for the classic shadow.
	Name string
	// Reported and Desired are the JSON encodings of the two state objects.
	Reported []byte
	Desired  []byte
	// Metadata is the JSON object {"desired": {...}, "reported": {...}} of
	// per-field timestamps.
	Metadata  []byte
	Version   int64
	UpdatedAt time.Time
	Timestamp time.Time
}

// Backend persists shadow documents. Implementations must be safe for
// concurrent use.
type Backend interface {
	// Load returns the stored shadow (thing, name); found is false if none.
	Load(ctx context.Context, thing, name string) (rec Record, found bool, err error)
	// Save upserts all records atomically (one transaction).
	Save(ctx context.Context, recs []Record) error
	// Delete removes the shadow (thing, name) and reports whether one existed.
	Delete(ctx context.Context, thing, name string) (existed bool, err error)
	// Names lists the names of thing's named shadows, sorted.
	Names(ctx context.Context, thing string) ([]string, error)
}

// Component is the schema component name under which the shadow migrations
// are recorded.
const Component = "shadow"

// migrations is the shadow schema, append-only, in SQL that SQLite and
// PostgreSQL both accept. Timestamps are Unix microseconds. The empty name
// is the classic shadow.
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
func (b *SQLBackend) Load(ctx context.Context, thing, name string) (Record, bool, error) {
	var rec Record
	var reported, desired, meta string
	var updated, ts int64
	err := b.db.QueryRowContext(ctx,
		`SELECT reported, desired, metadata, version, updated_at, device_ts FROM shadows WHERE thing = ? AND name = ?`, thing, name).
		Scan(&reported, &desired, &meta, &rec.Version, &updated, &ts)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("load shadow: %w", err)
	}
	rec.Thing, rec.Name = thing, name
	rec.Reported, rec.Desired, rec.Metadata = []byte(reported), []byte(desired), []byte(meta)
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
		`INSERT INTO shadows (thing, name, reported, desired, metadata, version, updated_at, device_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (thing, name) DO UPDATE SET
		   reported = excluded.reported, desired = excluded.desired, metadata = excluded.metadata, version = excluded.version,
		   updated_at = excluded.updated_at, device_ts = excluded.device_ts`)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer stmt.Close()
	for _, r := range recs {
		desired, meta := string(r.Desired), string(r.Metadata)
		if desired == "" {
			desired = "{}"
		}
		if meta == "" {
			meta = "{}"
		}
		if _, err := stmt.ExecContext(ctx, r.Thing, r.Name, string(r.Reported), desired, meta, r.Version,
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
func (b *SQLBackend) Delete(ctx context.Context, thing, name string) (bool, error) {
	res, err := b.db.ExecContext(ctx, `DELETE FROM shadows WHERE thing = ? AND name = ?`, thing, name)
	if err != nil {
		return false, fmt.Errorf("delete shadow: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete shadow: %w", err)
	}
	return n > 0, nil
}

// Names implements Backend.
func (b *SQLBackend) Names(ctx context.Context, thing string) ([]string, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT name FROM shadows WHERE thing = ? AND name <> '' ORDER BY name`, thing)
	if err != nil {
		return nil, fmt.Errorf("list shadows: %w", err)
	}
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list shadows: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list shadows: %w", err)
	}
	return names, nil
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
