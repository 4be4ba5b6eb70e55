package tsdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// RetentionPolicy says how long a database keeps its data. Data is dropped
// a whole partition at a time, once the partition ended more than Duration
// ago (so up to one BlockDuration more is kept).
type RetentionPolicy struct {
	Name     string        `json:"name"`     // default "autogen", as InfluxDB
	Duration time.Duration `json:"duration"` // 0 = keep forever
}

// DatabaseInfo describes one database of a Catalog.
type DatabaseInfo struct {
	Name      string          `json:"name"`
	Retention RetentionPolicy `json:"retention"`
}

// CatalogOptions configures a Catalog.
type CatalogOptions struct {
	Dir    string       // required: holds catalog.json and databases/<name>/
	Logger *slog.Logger // nil discards logs
	// DB is the template of every database's Options (Dir, Logger and
	// Retention are set per database).
	DB Options
	// DefaultDatabase is created on open when missing (default "edgewise").
	DefaultDatabase string
}

// Catalog is a set of named databases, each a DB in its own directory with
// its own retention. It is safe for concurrent use.
//
//	Dir/catalog.json               {"databases":[{"name":..,"retention":{..}}]}
//	Dir/databases/<escaped name>/  one DB (wal/, blocks/)
//
// Directory names are the database names path-escaped (url.PathEscape).
type Catalog struct {
	opts CatalogOptions
	log  *slog.Logger

	mu      sync.RWMutex
	dbs     map[string]*catalogEntry
	rollups []Rollup
	pending []rollupDelete // deletes whose rollup update is not finished
	closed  bool

	// rollupMu serialises rollup computations with the rollup updates of
	// deletes (rollup_delete.go).
	rollupMu sync.Mutex

	stopOnce   sync.Once
	jobs       chan rollupJob
	quit       chan struct{}
	workerDone chan struct{}
}

type catalogEntry struct {
	info DatabaseInfo
	db   *DB
}

type catalogFile struct {
	Databases []DatabaseInfo `json:"databases"`
	Rollups   []Rollup       `json:"rollups,omitempty"`
	// RollupDeletes are deletes of rollup sources whose rollup update was
	// interrupted; OpenCatalog finishes them.
	RollupDeletes []rollupDelete `json:"rollup_deletes,omitempty"`
}

const catalogFileName = "catalog.json"

// OpenCatalog opens every database listed in Dir/catalog.json, creating
// the default database when missing. A single-database layout of earlier
// versions (Dir/wal and Dir/blocks) is moved into the default database.
func OpenCatalog(ctx context.Context, opts CatalogOptions) (*Catalog, error) {
	if opts.Dir == "" {
		return nil, errors.New("tsdb: CatalogOptions.Dir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.DefaultDatabase == "" {
		opts.DefaultDatabase = "edgewise"
	}
	if err := validDatabaseName(opts.DefaultDatabase); err != nil {
		return nil, err
	}
	c := &Catalog{opts: opts, log: opts.Logger, dbs: make(map[string]*catalogEntry),
		jobs: make(chan rollupJob, 1024), quit: make(chan struct{}), workerDone: make(chan struct{})}
	go c.rollupWorker()
	if err := os.MkdirAll(filepath.Join(opts.Dir, "databases"), 0o755); err != nil {
		return nil, fmt.Errorf("tsdb: create catalog dir: %w", err)
	}
	var cf catalogFile
	b, err := os.ReadFile(filepath.Join(opts.Dir, catalogFileName))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &cf); err != nil {
			return nil, fmt.Errorf("tsdb: %s: %w: %v", catalogFileName, ErrCorrupt, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("tsdb: read catalog: %w", err)
	}
	if err := c.migrate(); err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(cf.Databases, func(d DatabaseInfo) bool { return d.Name == opts.DefaultDatabase }) {
		cf.Databases = append(cf.Databases, DatabaseInfo{Name: opts.DefaultDatabase, Retention: RetentionPolicy{Name: "autogen"}})
	}
	c.rollups = cf.Rollups
	c.pending = cf.RollupDeletes
	for _, info := range cf.Databases {
		db, err := c.openDB(ctx, info)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.dbs[info.Name] = &catalogEntry{info: info, db: db}
	}
	if err := c.save(); err != nil {
		c.Close()
		return nil, err
	}
	if len(c.pending) > 0 {
		c.resumeRollupDeletes(ctx)
	}
	return c, nil
}

// migrate moves Dir/wal and Dir/blocks (the layout before databases) into
// the default database's directory.
func (c *Catalog) migrate() error {
	target := c.dbDir(c.opts.DefaultDatabase)
	moved := false
	for _, sub := range []string{"wal", "blocks"} {
		old := filepath.Join(c.opts.Dir, sub)
		if _, err := os.Stat(old); err != nil {
			continue
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("tsdb: migrate: %w", err)
		}
		dst := filepath.Join(target, sub)
		if _, err := os.Stat(dst); err == nil {
			return fmt.Errorf("tsdb: migrate: both %s and %s exist; move one aside", old, dst)
		}
		if err := os.Rename(old, dst); err != nil {
			return fmt.Errorf("tsdb: migrate: %w", err)
		}
		moved = true
	}
	if moved {
		if err := syncDir(target); err != nil {
			return err
		}
		if err := syncDir(c.opts.Dir); err != nil {
			return err
		}
		c.log.Warn("tsdb: moved data of the single-database layout into the default database",
			"from", c.opts.Dir, "database", c.opts.DefaultDatabase, "to", target)
	}
	return nil
}

func (c *Catalog) dbDir(name string) string {
	return filepath.Join(c.opts.Dir, "databases", url.PathEscape(name))
}

func (c *Catalog) openDB(ctx context.Context, info DatabaseInfo) (*DB, error) {
	o := c.opts.DB
	o.Dir = c.dbDir(info.Name)
	o.Logger = c.log.With("database", info.Name)
	o.Retention = info.Retention.Duration
	o.OnBlock = c.onBlock(info.Name)
	o.OnDelete = c.onDelete(info.Name)
	db, err := Open(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("tsdb: database %q: %w", info.Name, err)
	}
	return db, nil
}

// save writes catalog.json atomically; c.mu must be held (or the catalog
// not yet shared).
func (c *Catalog) save() error {
	cf := catalogFile{Rollups: c.rollups, RollupDeletes: c.pending}
	for _, e := range c.dbs {
		cf.Databases = append(cf.Databases, e.info)
	}
	slices.SortFunc(cf.Databases, func(a, b DatabaseInfo) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return fmt.Errorf("tsdb: encode catalog: %w", err)
	}
	path := filepath.Join(c.opts.Dir, catalogFileName)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("tsdb: write catalog: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tsdb: write catalog: %w", err)
	}
	return syncDir(c.opts.Dir)
}

// validDatabaseName rejects names that cannot be a database.
func validDatabaseName(name string) error {
	if name == "" || len(name) > 255 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: invalid database name %q (1-255 printable characters)", ErrInvalidQuery, name)
	}
	return nil
}

// DefaultDatabase is the name of the database created on open.
func (c *Catalog) DefaultDatabase() string { return c.opts.DefaultDatabase }

// DB returns the named database (ErrDatabaseNotFound when absent).
func (c *Catalog) DB(name string) (*DB, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, ErrClosed
	}
	e := c.dbs[name]
	if e == nil {
		return nil, fmt.Errorf("%w: %q", ErrDatabaseNotFound, name)
	}
	return e.db, nil
}

// CreateDatabase creates a database, or returns the existing one (then
// rp is applied when its Duration differs; rp.Name "" keeps the old name).
func (c *Catalog) CreateDatabase(ctx context.Context, name string, rp RetentionPolicy) (*DB, error) {
	if err := validDatabaseName(name); err != nil {
		return nil, err
	}
	if rp.Duration < 0 {
		return nil, fmt.Errorf("%w: negative retention %v", ErrInvalidQuery, rp.Duration)
	}
	if rp.Name == "" {
		rp.Name = "autogen"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if e := c.dbs[name]; e != nil {
		if e.info.Retention.Duration != rp.Duration {
			e.info.Retention = rp
			e.db.setRetention(rp.Duration)
			if err := c.save(); err != nil {
				return nil, err
			}
		}
		return e.db, nil
	}
	info := DatabaseInfo{Name: name, Retention: rp}
	db, err := c.openDB(ctx, info)
	if err != nil {
		return nil, err
	}
	c.dbs[name] = &catalogEntry{info: info, db: db}
	if err := c.save(); err != nil {
		delete(c.dbs, name)
		db.Close()
		return nil, err
	}
	c.log.Info("tsdb: database created", "database", name, "retention", rp.Duration)
	return db, nil
}

// Databases lists the databases sorted by name.
func (c *Catalog) Databases() []DatabaseInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]DatabaseInfo, 0, len(c.dbs))
	for _, e := range c.dbs {
		out = append(out, e.info)
	}
	slices.SortFunc(out, func(a, b DatabaseInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// DropDatabase closes a database and deletes its data. Dropping the
// default database is refused; dropping a missing one returns
// ErrDatabaseNotFound.
func (c *Catalog) DropDatabase(ctx context.Context, name string) error {
	if name == c.opts.DefaultDatabase {
		return fmt.Errorf("%w: the default database %q cannot be dropped", ErrInvalidQuery, name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	e := c.dbs[name]
	if e == nil {
		return fmt.Errorf("%w: %q", ErrDatabaseNotFound, name)
	}
	delete(c.dbs, name)
	oldRollups := c.rollups
	c.rollups = slices.DeleteFunc(slices.Clone(c.rollups), func(r Rollup) bool { return r.Source == name || r.Target == name })
	if err := c.save(); err != nil {
		c.dbs[name] = e
		c.rollups = oldRollups
		return err
	}
	if err := e.db.Close(); err != nil {
		c.log.Warn("tsdb: closing dropped database", "database", name, "err", err)
	}
	if err := os.RemoveAll(c.dbDir(name)); err != nil {
		return fmt.Errorf("tsdb: drop database %q: %w", name, err)
	}
	c.log.Info("tsdb: database dropped", "database", name)
	return ctx.Err()
}

// Stats returns each database's counters by name.
func (c *Catalog) Stats() map[string]Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]Stats, len(c.dbs))
	for n, e := range c.dbs {
		out[n] = e.db.Stats()
	}
	return out
}

// Close closes every database. It is idempotent.
func (c *Catalog) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.stopOnce.Do(func() {
		close(c.quit)
		<-c.workerDone
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for _, e := range c.dbs {
		if err := e.db.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
