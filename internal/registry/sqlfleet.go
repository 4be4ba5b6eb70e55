package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// UpdateThing implements Store.
func (s *SQLStore) UpdateThing(ctx context.Context, t Thing, prev time.Time) error {
	attrs, err := encodeAttrs(t.Attributes)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE things SET type = ?, attributes = ?, updated_at = ? WHERE name = ? AND updated_at = ?`,
		t.Type, attrs, t.UpdatedAt.UnixMicro(), t.Name, prev.UnixMicro())
	if err != nil {
		return fmt.Errorf("update thing: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update thing: %w", err)
	} else if n == 0 {
		if _, err := s.GetThing(ctx, t.Name); err != nil {
			return err
		}
		return errStale
	}
	return nil
}

func insertOrExists(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("insert %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("insert %s: %w", what, err)
	}
	if n == 0 {
		return ErrExists
	}
	return nil
}

const typeColumns = `name, description, searchable, deprecated_at, created_at, updated_at`

// InsertType implements Store.
func (s *SQLStore) InsertType(ctx context.Context, t ThingType) error {
	sa, err := json.Marshal(nonNilStrings(t.SearchableAttributes))
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO thing_types (`+typeColumns+`) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		t.Name, t.Description, string(sa), deprecatedMicros(t), t.CreatedAt.UnixMicro(), t.UpdatedAt.UnixMicro())
	return insertOrExists(res, err, "thing type")
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func deprecatedMicros(t ThingType) int64 {
	if t.Deprecated && t.DeprecatedAt != nil {
		return t.DeprecatedAt.UnixMicro()
	}
	return 0
}

func scanType(sc scanner) (ThingType, error) {
	var t ThingType
	var sa string
	var dep, created, updated int64
	if err := sc.Scan(&t.Name, &t.Description, &sa, &dep, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ThingType{}, ErrNotFound
		}
		return ThingType{}, fmt.Errorf("read thing type: %w", err)
	}
	if err := json.Unmarshal([]byte(sa), &t.SearchableAttributes); err != nil {
		return ThingType{}, fmt.Errorf("read thing type %q: %w", t.Name, err)
	}
	if len(t.SearchableAttributes) == 0 {
		t.SearchableAttributes = nil
	}
	if dep != 0 {
		at := time.UnixMicro(dep).UTC()
		t.Deprecated, t.DeprecatedAt = true, &at
	}
	t.CreatedAt, t.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return t, nil
}

// GetType implements Store.
func (s *SQLStore) GetType(ctx context.Context, name string) (ThingType, error) {
	return scanType(s.db.QueryRowContext(ctx, `SELECT `+typeColumns+` FROM thing_types WHERE name = ?`, name))
}

// ListTypes implements Store.
func (s *SQLStore) ListTypes(ctx context.Context, after string, limit int) ([]ThingType, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+typeColumns+` FROM thing_types WHERE name > ? ORDER BY name LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("query thing types: %w", err)
	}
	defer rows.Close()
	var out []ThingType
	for rows.Next() {
		t, err := scanType(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// UpdateType implements Store.
func (s *SQLStore) UpdateType(ctx context.Context, t ThingType) error {
	sa, err := json.Marshal(nonNilStrings(t.SearchableAttributes))
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE thing_types SET description = ?, searchable = ?, deprecated_at = ?, updated_at = ? WHERE name = ?`,
		t.Description, string(sa), deprecatedMicros(t), t.UpdatedAt.UnixMicro(), t.Name)
	if err != nil {
		return fmt.Errorf("update thing type: %w", err)
	}
	return expectOneRow(res)
}

// DeleteType implements Store.
func (s *SQLStore) DeleteType(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM thing_types WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete thing type: %w", err)
	}
	return expectOneRow(res)
}

const groupColumns = `name, parent, description, attributes, query, created_at, updated_at`

// InsertGroup implements Store.
func (s *SQLStore) InsertGroup(ctx context.Context, g Group) error {
	attrs, err := encodeAttrs(g.Attributes)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO thing_groups (`+groupColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		g.Name, g.Parent, g.Description, attrs, g.Query, g.CreatedAt.UnixMicro(), g.UpdatedAt.UnixMicro())
	return insertOrExists(res, err, "group")
}

func scanGroup(sc scanner) (Group, error) {
	var g Group
	var attrs string
	var created, updated int64
	if err := sc.Scan(&g.Name, &g.Parent, &g.Description, &attrs, &g.Query, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Group{}, ErrNotFound
		}
		return Group{}, fmt.Errorf("read group: %w", err)
	}
	if attrs != "" && attrs != "{}" {
		if err := json.Unmarshal([]byte(attrs), &g.Attributes); err != nil {
			return Group{}, fmt.Errorf("read group %q: attributes: %w", g.Name, err)
		}
	}
	g.CreatedAt, g.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return g, nil
}

// GetGroup implements Store.
func (s *SQLStore) GetGroup(ctx context.Context, name string) (Group, error) {
	return scanGroup(s.db.QueryRowContext(ctx, `SELECT `+groupColumns+` FROM thing_groups WHERE name = ?`, name))
}

// ListGroups implements Store.
func (s *SQLStore) ListGroups(ctx context.Context, after, parent string, limit int) ([]Group, error) {
	var rows *sql.Rows
	var err error
	if parent == "" {
		rows, err = s.db.QueryContext(ctx, `SELECT `+groupColumns+` FROM thing_groups WHERE name > ? ORDER BY name LIMIT ?`, after, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, `SELECT `+groupColumns+` FROM thing_groups WHERE parent = ? AND name > ? ORDER BY name LIMIT ?`, parent, after, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("query groups: %w", err)
	}
	defer rows.Close()
	var out []Group
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// UpdateGroup implements Store.
func (s *SQLStore) UpdateGroup(ctx context.Context, g Group) error {
	attrs, err := encodeAttrs(g.Attributes)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE thing_groups SET description = ?, attributes = ?, query = ?, updated_at = ? WHERE name = ?`,
		g.Description, attrs, g.Query, g.UpdatedAt.UnixMicro(), g.Name)
	if err != nil {
		return fmt.Errorf("update group: %w", err)
	}
	return expectOneRow(res)
}

// DeleteGroup implements Store.
func (s *SQLStore) DeleteGroup(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM thing_groups WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	return expectOneRow(res)
}

// AddMember implements Store.
func (s *SQLStore) AddMember(ctx context.Context, group, thing string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO thing_group_members (grp, thing, added_at) VALUES (?, ?, ?) ON CONFLICT (grp, thing) DO NOTHING`,
		group, thing, at.UnixMicro())
	if err != nil {
		return fmt.Errorf("add member: %w", err)
	}
	return nil
}

// RemoveMember implements Store.
func (s *SQLStore) RemoveMember(ctx context.Context, group, thing string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM thing_group_members WHERE grp = ? AND thing = ?`, group, thing)
	if err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	return expectOneRow(res)
}

func (s *SQLStore) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// GroupsOfThing implements Store.
func (s *SQLStore) GroupsOfThing(ctx context.Context, thing string) ([]string, error) {
	return s.strings(ctx, `SELECT grp FROM thing_group_members WHERE thing = ? ORDER BY grp`, thing)
}

// Members implements Store.
func (s *SQLStore) Members(ctx context.Context, group, after string, limit int) ([]string, error) {
	return s.strings(ctx, `SELECT thing FROM thing_group_members WHERE grp = ? AND thing > ? ORDER BY thing LIMIT ?`, group, after, limit)
}

// Memberships implements Store.
func (s *SQLStore) Memberships(ctx context.Context, fn func(group, thing string)) error {
	rows, err := s.db.QueryContext(ctx, `SELECT grp, thing FROM thing_group_members`)
	if err != nil {
		return fmt.Errorf("query memberships: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var g, t string
		if err := rows.Scan(&g, &t); err != nil {
			return fmt.Errorf("query memberships: %w", err)
		}
		fn(g, t)
	}
	return rows.Err()
}
