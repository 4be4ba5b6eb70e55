package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DriverName is the database/sql driver name of the embedded SQLite driver.
const DriverName = "sqlite"

// Connection pool and locking parameters of [OpenSQLite].
const (
	// MaxOpenConns bounds the SQLite connection pool. SQLite has a single
	// writer; a few extra connections let readers proceed during a write.
	MaxOpenConns = 4
	// BusyTimeout is how long a connection waits for the write lock before
	// failing with SQLITE_BUSY.
	BusyTimeout = 10 * time.Second
)

// ErrOpen reports that the database could not be opened or configured.
var ErrOpen = errors.New("store: cannot open database")

// OpenSQLite opens the SQLite database at path, creating the file if needed,
// and configures it for Edgewise: WAL journal mode, synchronous=FULL (see the
// package documentation for why), foreign keys enforced, a busy timeout, write
// transactions that begin IMMEDIATE, and a pool of at most [MaxOpenConns]
// connections.
//
// The path ":memory:" opens a private in-memory database (useful in tests);
// its pool is limited to one connection so that every query sees the same
// database.
//
// The caller owns the returned *sql.DB and must Close it.
func OpenSQLite(ctx context.Context, path string) (*sql.DB, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrOpen)
	}
	memory := path == ":memory:"
	params := []string{
		"_pragma=busy_timeout(" + fmt.Sprint(BusyTimeout.Milliseconds()) + ")",
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(FULL)",
		"_txlock=immediate",
	}
	var dsn string
	if memory {
		dsn = "file::memory:?" + strings.Join(params, "&")
	} else {
		params = append(params, "_pragma=journal_mode(WAL)")
		dsn = "file:" + escapeURIPath(filepath.Clean(path)) + "?" + strings.Join(params, "&")
	}

	db, err := sql.Open(DriverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrOpen, path, err)
	}
	if memory {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
	} else {
		db.SetMaxOpenConns(MaxOpenConns)
		db.SetMaxIdleConns(MaxOpenConns)
	}
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	if err := checkPragmas(ctx, db, memory); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%w %q: %w", ErrOpen, path, err)
	}
	return db, nil
}

// checkPragmas verifies that the connection came up with the settings the
// rest of the system assumes; a silent fallback (for example a file system
// without shared memory refusing WAL) must not go unnoticed.
func checkPragmas(ctx context.Context, db *sql.DB, memory bool) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if !memory && !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	var fk int
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", err)
	}
	if fk != 1 {
		return errors.New("foreign keys are not enabled")
	}
	var sync int
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("read synchronous: %w", err)
	}
	if sync != 2 {
		return fmt.Errorf("synchronous is %d, want 2 (FULL)", sync)
	}
	return nil
}

// escapeURIPath escapes the characters that would end or corrupt the path
// part of an SQLite file: URI.
func escapeURIPath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '%', '?', '#':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
