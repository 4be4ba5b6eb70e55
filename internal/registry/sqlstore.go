package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edgewise-iot/edgewise/internal/store"
)

// Store persists things and their password hashes. Implementations must be
// safe for concurrent use and return errors wrapping ErrNotFound and
// ErrExists where documented. Validation, hashing and caching are the
// Registry's job, not the Store's.
type Store interface {
	// InsertThing stores a new thing with its password hash atomically;
	// ErrExists if the name is taken.
	InsertThing(ctx context.Context, t Thing, passwordHash []byte) error
	// GetThing returns a thing; ErrNotFound if absent.
	GetThing(ctx context.Context, name string) (Thing, error)
	// ListThings returns up to limit things whose name sorts after after
	// (byte-wise), filtered by type when typ is not empty, ordered by name.
	ListThings(ctx context.Context, after, typ string, limit int) ([]Thing, error)
	// DeleteThing removes a thing and its credentials; ErrNotFound if absent.
	DeleteThing(ctx context.Context, name string) error
	// SetPassword replaces a thing's password hash; ErrNotFound if absent.
	SetPassword(ctx context.Context, name string, passwordHash []byte, at time.Time) error
	// Password returns a thing with its password hash; ErrNotFound if absent.
	Password(ctx context.Context, name string) (Thing, []byte, error)
	// UpdateThing replaces a thing's type, attributes and updated_at if its
	// stored updated_at is still prev; errStale if not, ErrNotFound if absent.
	UpdateThing(ctx context.Context, t Thing, prev time.Time) error

	// Thing types: ErrExists / ErrNotFound as above.
	InsertType(ctx context.Context, t ThingType) error
	GetType(ctx context.Context, name string) (ThingType, error)
	ListTypes(ctx context.Context, after string, limit int) ([]ThingType, error)
	UpdateType(ctx context.Context, t ThingType) error
	DeleteType(ctx context.Context, name string) error

	// Groups: ListGroups filters by parent when it is not empty. Deleting
	// a group or a thing removes its memberships.
	InsertGroup(ctx context.Context, g Group) error
	GetGroup(ctx context.Context, name string) (Group, error)
	ListGroups(ctx context.Context, after, parent string, limit int) ([]Group, error)
	UpdateGroup(ctx context.Context, g Group) error
	DeleteGroup(ctx context.Context, name string) error
	AddMember(ctx context.Context, group, thing string, at time.Time) error
	// RemoveMember returns ErrNotFound when thing was not a member.
	RemoveMember(ctx context.Context, group, thing string) error
	GroupsOfThing(ctx context.Context, thing string) ([]string, error)
	// Members lists up to limit direct members of group after the cursor.
	Members(ctx context.Context, group, after string, limit int) ([]string, error)
	Memberships(ctx context.Context, fn func(group, thing string)) error
}

// Component is the schema component name under which the registry's
// migrations are recorded.
const Component = "registry"

// migrations is the registry schema, append-only. The SQL sticks to what
// SQLite and PostgreSQL both accept. Timestamps are Unix microseconds.
var migrations = []string{
	`CREATE TABLE things (
		name       TEXT   NOT NULL PRIMARY KEY,
		type       TEXT   NOT NULL DEFAULT '',
		attributes TEXT   NOT NULL DEFAULT '{}',
		created_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL
	);
	CREATE INDEX things_type_name ON things (type, name);
	CREATE TABLE thing_passwords (
		thing      TEXT   NOT NULL PRIMARY KEY REFERENCES things (name) ON DELETE CASCADE,
		hash       TEXT   NOT NULL,
		created_at BIGINT NOT NULL
	);`,
	`CREATE TABLE thing_types (
		name          TEXT   NOT NULL PRIMARY KEY,
		description   TEXT   NOT NULL DEFAULT '',
		searchable    TEXT   NOT NULL DEFAULT '[]',
		deprecated_at BIGINT NOT NULL DEFAULT 0,
		created_at    BIGINT NOT NULL,
		updated_at    BIGINT NOT NULL
	);
	CREATE TABLE thing_groups (
		name        TEXT   NOT NULL PRIMARY KEY,
		parent      TEXT   NOT NULL DEFAULT '',
		description TEXT   NOT NULL DEFAULT '',
		attributes  TEXT   NOT NULL DEFAULT '{}',
		query       TEXT   NOT NULL DEFAULT '',
		created_at  BIGINT NOT NULL,
		updated_at  BIGINT NOT NULL
	);
	CREATE INDEX thing_groups_parent ON thing_groups (parent, name);
	CREATE TABLE thing_group_members (
		grp      TEXT   NOT NULL REFERENCES thing_groups (name) ON DELETE CASCADE,
		thing    TEXT   NOT NULL REFERENCES things (name) ON DELETE CASCADE,
		added_at BIGINT NOT NULL,
		PRIMARY KEY (grp, thing)
	);
	CREATE INDEX thing_group_members_thing ON thing_group_members (thing, grp);`,
}

// SQLStore is the database/sql implementation of Store, used with SQLite.
type SQLStore struct {
	db *sql.DB
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore migrates the registry schema in db and returns a Store over it.
func NewSQLStore(ctx context.Context, db *sql.DB) (*SQLStore, error) {
	if db == nil {
		return nil, errors.New("registry: nil database")
	}
	if err := store.Migrate(ctx, db, Component, migrations); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &SQLStore{db: db}, nil
}

// InsertThing implements Store.
func (s *SQLStore) InsertThing(ctx context.Context, t Thing, passwordHash []byte) error {
	attrs, err := encodeAttrs(t.Attributes)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx,
		`INSERT INTO things (name, type, attributes, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		 ON CONFLICT (name) DO NOTHING`,
		t.Name, t.Type, attrs, t.CreatedAt.UnixMicro(), t.UpdatedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("insert thing: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("insert thing: %w", err)
	} else if n == 0 {
		return ErrExists
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO thing_passwords (thing, hash, created_at) VALUES (?, ?, ?)`,
		t.Name, string(passwordHash), t.CreatedAt.UnixMicro()); err != nil {
		return fmt.Errorf("insert password: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

const thingColumns = `t.name, t.type, t.attributes, t.created_at, t.updated_at`

// GetThing implements Store.
func (s *SQLStore) GetThing(ctx context.Context, name string) (Thing, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+thingColumns+` FROM things t WHERE t.name = ?`, name)
	t, err := scanThing(row)
	if err != nil {
		return Thing{}, err
	}
	return t, nil
}

// ListThings implements Store.
func (s *SQLStore) ListThings(ctx context.Context, after, typ string, limit int) ([]Thing, error) {
	var rows *sql.Rows
	var err error
	if typ == "" {
		rows, err = s.db.QueryContext(ctx,
			`SELECT `+thingColumns+` FROM things t WHERE t.name > ? ORDER BY t.name LIMIT ?`, after, limit)
	} else {
		rows, err = s.db.QueryContext(ctx,
			`SELECT `+thingColumns+` FROM things t WHERE t.type = ? AND t.name > ? ORDER BY t.name LIMIT ?`, typ, after, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("query things: %w", err)
	}
	defer rows.Close()
	things := make([]Thing, 0, min(limit, 128))
	for rows.Next() {
		t, err := scanThing(rows)
		if err != nil {
			return nil, err
		}
		things = append(things, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query things: %w", err)
	}
	return things, nil
}

// DeleteThing implements Store.
func (s *SQLStore) DeleteThing(ctx context.Context, name string) error {
	// thing_passwords rows go with it (ON DELETE CASCADE).
	res, err := s.db.ExecContext(ctx, `DELETE FROM things WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete thing: %w", err)
	}
	return expectOneRow(res)
}

// SetPassword implements Store.
func (s *SQLStore) SetPassword(ctx context.Context, name string, passwordHash []byte, at time.Time) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE thing_passwords SET hash = ?, created_at = ? WHERE thing = ?`, string(passwordHash), at.UnixMicro(), name)
	if err != nil {
		return fmt.Errorf("update password: %w", err)
	}
	return expectOneRow(res)
}

// Password implements Store.
func (s *SQLStore) Password(ctx context.Context, name string) (Thing, []byte, error) {
	row := s.db.QueryRowContext(ctx,
		`SELECT `+thingColumns+`, p.hash FROM things t JOIN thing_passwords p ON p.thing = t.name WHERE t.name = ?`, name)
	var hash string
	t, err := scanThing(row, &hash)
	if err != nil {
		return Thing{}, nil, err
	}
	return t, []byte(hash), nil
}

type scanner interface{ Scan(dest ...any) error }

func scanThing(sc scanner, extra ...any) (Thing, error) {
	var t Thing
	var attrs string
	var created, updated int64
	dest := append([]any{&t.Name, &t.Type, &attrs, &created, &updated}, extra...)
	if err := sc.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Thing{}, ErrNotFound
		}
		return Thing{}, fmt.Errorf("read thing: %w", err)
	}
	if attrs != "" && attrs != "{}" {
		if err := json.Unmarshal([]byte(attrs), &t.Attributes); err != nil {
			return Thing{}, fmt.Errorf("read thing %q: attributes: %w", t.Name, err)
		}
	}
	t.CreatedAt = time.UnixMicro(created).UTC()
	t.UpdatedAt = time.UnixMicro(updated).UTC()
	return t, nil
}

func encodeAttrs(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode attributes: %w", err)
	}
	return string(b), nil
}

func expectOneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("rows affected: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
