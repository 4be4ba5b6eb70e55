package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/store"
)

func TestOpenSQLitePragmas(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		path func(t *testing.T) string
		wal  bool
	}{
		{"file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "meta.db") }, true},
		{"path with uri characters", func(t *testing.T) string { return filepath.Join(t.TempDir(), "a?b#c%d.db") }, true},
		{"memory", func(t *testing.T) string { return ":memory:" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path(t)
			db, err := store.OpenSQLite(ctx, path)
			if err != nil {
				t.Fatalf("OpenSQLite: %v", err)
			}
			defer db.Close()
			var mode string
			if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
				t.Fatal(err)
			}
			if tc.wal && mode != "wal" {
				t.Errorf("journal_mode = %q, want wal", mode)
			}
			var fk, sync, busy int
			if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
				t.Fatal(err)
			}
			if fk != 1 || sync != 2 || busy != int(store.BusyTimeout.Milliseconds()) {
				t.Errorf("foreign_keys=%d synchronous=%d busy_timeout=%d", fk, sync, busy)
			}
			if _, err := db.ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
				t.Fatal(err)
			}
			if !tc.wal {
				return
			}
			// The file must really be at path (escaping must not rename it).
			db.Close()
			db2, err := store.OpenSQLite(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
			if _, err := db2.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
				t.Fatalf("table missing after reopen: %v", err)
			}
		})
	}
}

func TestOpenSQLiteErrors(t *testing.T) {
	ctx := context.Background()
	for _, path := range []string{"", filepath.Join(t.TempDir(), "missing-dir", "x.db")} {
		db, err := store.OpenSQLite(ctx, path)
		if err == nil {
			db.Close()
			t.Errorf("OpenSQLite(%q) succeeded", path)
			continue
		}
		if !errors.Is(err, store.ErrOpen) {
			t.Errorf("OpenSQLite(%q) = %v, want ErrOpen", path, err)
		}
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	steps := []string{
		`CREATE TABLE a (id INTEGER PRIMARY KEY); CREATE TABLE b (id INTEGER PRIMARY KEY)`,
		`ALTER TABLE a ADD COLUMN name TEXT`,
	}
	tests := []struct {
		name      string
		component string
		steps     []string
		want      int
		wantErr   error
	}{
		{"fresh", "comp", steps[:1], 1, nil},
		{"idempotent", "comp", steps[:1], 1, nil},
		{"append step", "comp", steps, 2, nil},
		{"idempotent again", "comp", steps, 2, nil},
		{"other component is independent", "other", []string{`CREATE TABLE c (id INTEGER)`}, 1, nil},
		{"binary older than schema", "comp", steps[:1], 2, store.ErrSchemaTooNew},
		{"failing step rolls back", "bad", []string{`CREATE TABLE d (id INTEGER)`, `NOT SQL`}, 0, store.ErrMigrate},
		{"empty component", "", steps, 0, store.ErrMigrate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Reopen every time: migrations must survive and be idempotent across opens.
			db, err := store.OpenSQLite(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = store.Migrate(ctx, db, tc.component, tc.steps)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Migrate = %v, want %v", err, tc.wantErr)
			}
			if tc.component == "" {
				return
			}
			v, err := store.Version(ctx, db, tc.component)
			if err != nil {
				t.Fatal(err)
			}
			if v != tc.want {
				t.Errorf("version = %d, want %d", v, tc.want)
			}
		})
	}
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The failed run must not have left table d behind.
	if _, err := db.ExecContext(ctx, "SELECT * FROM d"); err == nil {
		t.Error("table d exists after a failed migration")
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO a (id, name) VALUES (1, 'x')"); err != nil {
		t.Errorf("migrated schema unusable: %v", err)
	}
}

func TestMigrateConcurrent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	steps := []string{`CREATE TABLE a (id INTEGER)`, `CREATE TABLE b (id INTEGER)`}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := store.OpenSQLite(ctx, path)
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			errs <- store.Migrate(ctx, db, "comp", steps)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
}
