package rules

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edgewise-iot/edgewise/internal/store"
)

// Component is the schema component name of the rules tables.
const Component = "rules"

// migrations is the rules schema, append-only, in SQL that SQLite and
// PostgreSQL both accept.
var migrations = []string{
	`CREATE TABLE rules (
		name       TEXT PRIMARY KEY,
		definition TEXT NOT NULL,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	);
	CREATE TABLE rule_state (
		name     TEXT PRIMARY KEY,
		state    BLOB NOT NULL,
		sql_text TEXT NOT NULL,
		saved_at TEXT NOT NULL
	)`,
}

// ruleStore persists rule definitions and window state.
type ruleStore struct{ db *sql.DB }

func newRuleStore(ctx context.Context, db *sql.DB) (*ruleStore, error) {
	if err := store.Migrate(ctx, db, Component, migrations); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return &ruleStore{db: db}, nil
}

func (s *ruleStore) list(ctx context.Context) ([]Rule, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT definition, created_at, updated_at FROM rules ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("rules: list: %w", err)
	}
	defer rows.Close()
	var out []Rule
	for rows.Next() {
		var def, c, u string
		if err := rows.Scan(&def, &c, &u); err != nil {
			return nil, fmt.Errorf("rules: list: %w", err)
		}
		var r Rule
		if err := json.Unmarshal([]byte(def), &r); err != nil {
			return nil, fmt.Errorf("rules: stored definition is not JSON: %w", err)
		}
		r.CreatedAt, _ = time.Parse(time.RFC3339Nano, c)
		r.UpdatedAt, _ = time.Parse(time.RFC3339Nano, u)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *ruleStore) insert(ctx context.Context, r Rule) error {
	def, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("rules: encode: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO rules (name, definition, created_at, updated_at) VALUES (?, ?, ?, ?)`,
		r.Name, string(def), r.CreatedAt.UTC().Format(time.RFC3339Nano), r.UpdatedAt.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("rules: insert %s: %w", r.Name, err)
	}
	return nil
}

func (s *ruleStore) update(ctx context.Context, r Rule) error {
	def, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("rules: encode: %w", err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE rules SET definition = ?, updated_at = ? WHERE name = ?`,
		string(def), r.UpdatedAt.UTC().Format(time.RFC3339Nano), r.Name)
	if err != nil {
		return fmt.Errorf("rules: update %s: %w", r.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %q", ErrNotFound, r.Name)
	}
	return nil
}

func (s *ruleStore) delete(ctx context.Context, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rules: delete %s: %w", name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM rule_state WHERE name = ?`, name); err != nil {
		return fmt.Errorf("rules: delete %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM rules WHERE name = ?`, name); err != nil {
		return fmt.Errorf("rules: delete %s: %w", name, err)
	}
	return tx.Commit()
}

// saveState keeps a rule's window state with the SQL it belongs to.
func (s *ruleStore) saveState(ctx context.Context, name, sqlText string, state []byte) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO rule_state (name, state, sql_text, saved_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET state = excluded.state, sql_text = excluded.sql_text, saved_at = excluded.saved_at`,
		name, state, sqlText, time.Now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("rules: save state of %s: %w", name, err)
	}
	return nil
}

// takeState returns and deletes a rule's saved state, so a state is
// restored at most once (a crash after the restore starts empty rather
// than replaying an old state).
func (s *ruleStore) takeState(ctx context.Context, name string) (state []byte, sqlText string, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT state, sql_text FROM rule_state WHERE name = ?`, name).Scan(&state, &sqlText)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("rules: load state of %s: %w", name, err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM rule_state WHERE name = ?`, name); err != nil {
		return nil, "", fmt.Errorf("rules: load state of %s: %w", name, err)
	}
	return state, sqlText, nil
}
