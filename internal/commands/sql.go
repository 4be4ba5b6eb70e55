package commands

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/store"
)

// Component is the schema component of the commands tables.
const Component = "commands"

var migrations = []string{
	`CREATE TABLE commands (
		id           TEXT   NOT NULL PRIMARY KEY,
		thing        TEXT   NOT NULL,
		name         TEXT   NOT NULL DEFAULT '',
		payload      TEXT   NOT NULL,
		status       TEXT   NOT NULL,
		timeout_ms   BIGINT NOT NULL,
		ttl_ms       BIGINT NOT NULL,
		created_at   BIGINT NOT NULL,
		expires_at   BIGINT NOT NULL,
		delivered_at BIGINT NOT NULL DEFAULT 0,
		completed_at BIGINT NOT NULL DEFAULT 0,
		result       TEXT   NOT NULL DEFAULT '',
		error        TEXT   NOT NULL DEFAULT '',
		deliveries   INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX commands_thing ON commands (thing, created_at);
	CREATE INDEX commands_open ON commands (status)`,
}

func migrate(ctx context.Context, db *sql.DB) error {
	if err := store.Migrate(ctx, db, Component, migrations); err != nil {
		return fmt.Errorf("commands: %w", err)
	}
	return nil
}

const columns = `id, thing, name, payload, status, timeout_ms, ttl_ms, created_at, expires_at, delivered_at, completed_at, result, error, deliveries`

func insert(ctx context.Context, db *sql.DB, c Command) error {
	payload, err := json.Marshal(c.Payload)
	if err != nil {
		return fmt.Errorf("%w: payload: %w", ErrInvalid, err)
	}
	_, err = db.ExecContext(ctx, `INSERT INTO commands (`+columns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, '', '', 0)`,
		c.ID, c.Thing, c.Command, string(payload), string(c.Status), time.Duration(c.Timeout).Milliseconds(),
		time.Duration(c.TTL).Milliseconds(), c.CreatedAt.UnixMilli(), c.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("commands: insert: %w", err)
	}
	return nil
}

// save writes the mutable fields of cs in one transaction.
func save(ctx context.Context, db *sql.DB, cs []Command) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("commands: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `UPDATE commands SET status = ?, delivered_at = ?, completed_at = ?, result = ?, error = ?, deliveries = ? WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("commands: prepare: %w", err)
	}
	defer stmt.Close()
	for _, c := range cs {
		if _, err := stmt.ExecContext(ctx, string(c.Status), millis(c.DeliveredAt), millis(c.CompletedAt),
			string(c.Result), c.Error, c.Deliveries, c.ID); err != nil {
			return fmt.Errorf("commands: save %s: %w", c.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commands: commit: %w", err)
	}
	return nil
}

func purge(ctx context.Context, db *sql.DB, before time.Time) error {
	_, err := db.ExecContext(ctx, `DELETE FROM commands WHERE completed_at > 0 AND completed_at < ?`, before.UnixMilli())
	return err
}

func millis(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) *time.Time {
	if ms == 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

type scanner interface{ Scan(dest ...any) error }

func scan(r scanner) (Command, error) {
	var c Command
	var payload, status, result string
	var timeout, ttl, created, expires, delivered, completed int64
	if err := r.Scan(&c.ID, &c.Thing, &c.Command, &payload, &status, &timeout, &ttl, &created, &expires,
		&delivered, &completed, &result, &c.Error, &c.Deliveries); err != nil {
		return Command{}, err
	}
	if err := json.Unmarshal([]byte(payload), &c.Payload); err != nil {
		return Command{}, fmt.Errorf("commands: stored payload of %s: %w", c.ID, err)
	}
	c.Status = Status(status)
	c.Timeout, c.TTL = Duration(time.Duration(timeout)*time.Millisecond), Duration(time.Duration(ttl)*time.Millisecond)
	c.CreatedAt, c.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
	c.DeliveredAt, c.CompletedAt = fromMillis(delivered), fromMillis(completed)
	if result != "" {
		c.Result = json.RawMessage(result)
	}
	return c, nil
}

func load(ctx context.Context, db *sql.DB, id string) (Command, error) {
	c, err := scan(db.QueryRowContext(ctx, `SELECT `+columns+` FROM commands WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Command{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Command{}, fmt.Errorf("commands: load: %w", err)
	}
	return c, nil
}

func loadOpen(ctx context.Context, db *sql.DB) ([]Command, error) {
	rows, err := db.QueryContext(ctx, `SELECT `+columns+` FROM commands WHERE status IN ('queued', 'delivered') ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("commands: load pending: %w", err)
	}
	return collect(rows)
}

func list(ctx context.Context, db *sql.DB, thing string, o ListOptions) ([]Command, error) {
	var where []string
	args := []any{thing}
	where = append(where, "thing = ?")
	if o.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(o.Status))
	}
	if o.After != "" {
		var created int64
		err := db.QueryRowContext(ctx, `SELECT created_at FROM commands WHERE id = ? AND thing = ?`, o.After, thing).Scan(&created)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: cursor %q is not a command of %q", ErrInvalid, o.After, thing)
		}
		if err != nil {
			return nil, fmt.Errorf("commands: list: %w", err)
		}
		where = append(where, "(created_at < ? OR (created_at = ? AND id < ?))")
		args = append(args, created, created, o.After)
	}
	args = append(args, o.Limit)
	rows, err := db.QueryContext(ctx, `SELECT `+columns+` FROM commands WHERE `+strings.Join(where, " AND ")+
		` ORDER BY created_at DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("commands: list: %w", err)
	}
	return collect(rows)
}

func collect(rows *sql.Rows) ([]Command, error) {
	defer rows.Close()
	out := []Command{}
	for rows.Next() {
		c, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("commands: read: %w", err)
	}
	return out, nil
}
