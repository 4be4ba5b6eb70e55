package shadow

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Sentinel errors, tested with errors.Is; returned errors wrap them with the
// operation and thing.
var (
	// ErrNotFound reports that the thing never reported state (or its
	// state was deleted).
	ErrNotFound = errors.New("shadow: no reported state")
	// ErrTooLarge reports that applying an update would make the document
	// exceed Options.MaxDocumentBytes; the document is unchanged.
	ErrTooLarge = errors.New("shadow: document too large")
	// ErrInvalid reports an unusable thing name or patch (nesting too
	// deep, a number that JSON cannot hold, a value that is not JSON).
	ErrInvalid = errors.New("shadow: invalid update")
	// ErrClosed reports a call after Close.
	ErrClosed = errors.New("shadow: store closed")
	// ErrVersionConflict reports an update whose expected version is not
	// the shadow's current version (optimistic locking); nothing changed.
	ErrVersionConflict = errors.New("shadow: version conflict")
)

// State is a thing's reported state (the reported section of its classic
// shadow), the view the ingest pipeline and GET /things/{name}/state use.
type State struct {
	Thing    string         `json:"thing"`
	Reported map[string]any `json:"reported"`
	Version  int64          `json:"version"`
	// UpdatedAt is the server time of the last update.
	UpdatedAt time.Time `json:"updated_at"`
	// Timestamp is the device's timestamp of the last report; zero when
	// that report carried none.
	Timestamp time.Time `json:"timestamp"`
}

// Defaults and bounds of Options.
const (
	DefaultMaxDocumentBytes   = 8192
	DefaultMaxDepth           = 16
	DefaultFlushInterval      = 100 * time.Millisecond
	DefaultMaxCachedDocuments = 100_000
	// MaxThingLen bounds thing names (the registry allows 128 characters).
	MaxThingLen = 128
	// MaxNameLen bounds named shadows' names (as in AWS IoT).
	MaxNameLen = 64
)

// Options configures a Store. The zero value is usable.
type Options struct {
	// Logger receives operational messages (failed background flushes);
	// nil discards them.
	Logger *slog.Logger
	// MaxDocumentBytes bounds the JSON encoding of a shadow's state (the
	// desired plus the reported object, metadata excluded, as AWS IoT
	// counts it); 0 means DefaultMaxDocumentBytes.
	MaxDocumentBytes int
	// MaxDepth bounds the nesting of objects and arrays in a document (the
	// top-level object is depth 1); 0 means DefaultMaxDepth.
	MaxDepth int
	// FlushInterval is how often changed documents are written to the
	// database; 0 means DefaultFlushInterval. It bounds what a crash loses.
	FlushInterval time.Duration
	// MaxCachedDocuments is how many documents are kept in memory before
	// unchanged ones are evicted; 0 means DefaultMaxCachedDocuments.
	MaxCachedDocuments int
}

const numShards = 64

// Store holds the reported state of every thing. It is safe for concurrent
// use. Close it to flush pending changes.
type Store struct {
	backend   Backend
	log       *slog.Logger
	maxBytes  int
	maxDepth  int
	maxCached int
	interval  time.Duration
	now       func() time.Time
	seed      maphash.Seed

	shards [numShards]shard

	// flushMu serializes flushes, evictions and deletes, so a delete never
	// races with an in-flight batch that still holds the old document.
	flushMu sync.Mutex

	// closeMu is held shared by every update and exclusively by Close, so
	// no update can slip in after the final flush.
	closeMu sync.RWMutex
	closed  bool

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type shard struct {
	mu    sync.Mutex
	m     map[key]*entry
	dirty map[*entry]struct{}
}

// key names one shadow: Name is empty for the classic shadow.
type key struct{ thing, name string }

// entry is one shadow. Fields below mu are guarded by it; queued is guarded
// by the shard's mutex. The maps are never mutated once stored: updates
// copy on write.
type entry struct {
	thing, name string

	mu        sync.Mutex
	loaded    bool // the fields reflect the database (plus later updates)
	evicted   bool // removed from the shard map; look the shadow up again
	exists    bool
	doc       map[string]any // reported
	raw       []byte         // JSON encoding of doc
	desired   map[string]any
	rawDes    []byte // JSON encoding of desired
	metaRep   map[string]any
	metaDes   map[string]any
	version   int64
	persisted int64 // version known to be in the database
	updatedAt time.Time
	ts        time.Time

	queued bool
}

// New returns a Store persisting to db (see internal/store.OpenSQLite). It
// migrates the shadow schema first and starts the background flusher.
func New(ctx context.Context, db *sql.DB, opts Options) (*Store, error) {
	b, err := NewSQLBackend(ctx, db)
	if err != nil {
		return nil, err
	}
	return NewWithBackend(b, opts)
}

// NewWithBackend returns a Store persisting to b and starts the background
// flusher.
func NewWithBackend(b Backend, opts Options) (*Store, error) {
	if b == nil {
		return nil, errors.New("shadow: nil backend")
	}
	s := &Store{
		backend:   b,
		log:       opts.Logger,
		maxBytes:  opts.MaxDocumentBytes,
		maxDepth:  opts.MaxDepth,
		maxCached: opts.MaxCachedDocuments,
		interval:  opts.FlushInterval,
		now:       time.Now,
		seed:      maphash.MakeSeed(),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxDocumentBytes
	}
	if s.maxDepth <= 0 {
		s.maxDepth = DefaultMaxDepth
	}
	if s.maxCached <= 0 {
		s.maxCached = DefaultMaxCachedDocuments
	}
	if s.interval <= 0 {
		s.interval = DefaultFlushInterval
	}
	for i := range s.shards {
		s.shards[i].m = make(map[key]*entry)
		s.shards[i].dirty = make(map[*entry]struct{})
	}
	go s.run()
	return s, nil
}

// UpdateReported merges patch into the reported state of thing's classic
// shadow (see the package documentation for the merge rules), bumps the
// version and returns the new state. deviceTime is the device's own
// timestamp of the report, or the zero time. The change is durable after
// the next flush.
func (s *Store) UpdateReported(ctx context.Context, thing string, patch map[string]any, deviceTime time.Time) (State, error) {
	if patch == nil {
		patch = map[string]any{}
	}
	res, err := s.Update(ctx, thing, "", Update{Reported: patch}, deviceTime)
	if err != nil {
		return State{}, err
	}
	return res.Current.State(), nil
}

// Get returns the reported state of thing's classic shadow; ErrNotFound if
// it has none.
func (s *Store) Get(ctx context.Context, thing string) (State, error) {
	d, err := s.GetShadow(ctx, thing, "")
	if err != nil {
		return State{}, err
	}
	return d.State(), nil
}

// Delete removes thing's classic shadow, durably, and resets its version: a
// later update starts again at version 1. ErrNotFound if there was none.
func (s *Store) Delete(ctx context.Context, thing string) error {
	_, err := s.DeleteShadow(ctx, thing, "")
	return err
}

// Update applies u to the shadow (thing, name) (name "" is the classic
// shadow), creating it if needed, and returns the shadow before and after.
// It fails with ErrVersionConflict when u.Version is set and differs from
// the current version, ErrTooLarge when the state would exceed
// Options.MaxDocumentBytes and ErrInvalid for bad names or values; a failed
// update changes nothing.
func (s *Store) Update(ctx context.Context, thing, name string, u Update, deviceTime time.Time) (Result, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return Result{}, fmt.Errorf("shadow: update %s: %w", quote(thing), ErrClosed)
	}
	if err := validKey(thing, name); err != nil {
		return Result{}, fmt.Errorf("shadow: update: %w", err)
	}
	var normD, normR map[string]any
	var err error
	if u.Desired != nil {
		if normD, err = normalizePatch(u.Desired, s.maxDepth); err != nil {
			return Result{}, fmt.Errorf("shadow: update %q desired: %w", thing, err)
		}
	}
	if u.Reported != nil {
		if normR, err = normalizePatch(u.Reported, s.maxDepth); err != nil {
			return Result{}, fmt.Errorf("shadow: update %q: %w", thing, err)
		}
	}
	e := s.lockEntry(key{thing, name})
	defer e.mu.Unlock()
	if err := s.load(ctx, e); err != nil {
		return Result{}, fmt.Errorf("shadow: update %q: %w", thing, err)
	}
	if u.Version != 0 && u.Version != e.version {
		return Result{}, fmt.Errorf("shadow: update %q: %w: expected version %d, current version %d", thing, ErrVersionConflict, u.Version, e.version)
	}
	prev := e.document()
	now := s.now().UTC().Truncate(time.Microsecond)
	ts := float64(now.Unix())
	des, rep, mDes, mRep := e.desired, e.doc, e.metaDes, e.metaRep
	if u.ClearDesired {
		des, mDes = nil, nil
	}
	if u.ClearReported {
		rep, mRep = nil, nil
	}
	if normD != nil {
		mDes = mergeMeta(mDes, normD, ts)
		des = merge(des, normD)
	}
	if normR != nil {
		mRep = mergeMeta(mRep, normR, ts)
		rep = merge(rep, normR)
	}
	rawR, err := encode(rep)
	if err != nil {
		return Result{}, fmt.Errorf("shadow: update %q: %w: %w", thing, ErrInvalid, err)
	}
	rawD, err := encode(des)
	if err != nil {
		return Result{}, fmt.Errorf("shadow: update %q: %w: %w", thing, ErrInvalid, err)
	}
	size := len(rawR)
	if len(des) > 0 {
		size += len(rawD)
	}
	if size > s.maxBytes {
		return Result{}, fmt.Errorf("shadow: update %q: %w: %d bytes, limit %d", thing, ErrTooLarge, size, s.maxBytes)
	}
	e.doc, e.raw, e.desired, e.rawDes, e.metaDes, e.metaRep, e.exists = rep, rawR, des, rawD, mDes, mRep, true
	e.version++
	e.updatedAt = now
	if normR != nil || u.ClearReported {
		e.ts = time.Time{}
		if !deviceTime.IsZero() {
			e.ts = deviceTime.UTC().Truncate(time.Microsecond)
		}
	}
	s.markDirty(e)
	return Result{Previous: prev, Current: e.document(), Existed: prev.Version > 0}, nil
}

// GetShadow returns the shadow (thing, name); ErrNotFound if it does not
// exist.
func (s *Store) GetShadow(ctx context.Context, thing, name string) (Document, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return Document{}, fmt.Errorf("shadow: get %s: %w", quote(thing), ErrClosed)
	}
	if validKey(thing, name) != nil {
		return Document{}, fmt.Errorf("shadow: get %s: %w", quote(thing), ErrNotFound)
	}
	e := s.lockEntry(key{thing, name})
	defer e.mu.Unlock()
	if err := s.load(ctx, e); err != nil {
		return Document{}, fmt.Errorf("shadow: get %q: %w", thing, err)
	}
	if !e.exists {
		return Document{}, fmt.Errorf("shadow: get %q %s: %w", thing, shadowLabel(name), ErrNotFound)
	}
	return e.document(), nil
}

// DeleteShadow removes the shadow (thing, name), durably, and returns it as
// it was. Its version is reset: a later update starts again at version 1.
// ErrNotFound if there was none.
func (s *Store) DeleteShadow(ctx context.Context, thing, name string) (Document, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return Document{}, fmt.Errorf("shadow: delete %s: %w", quote(thing), ErrClosed)
	}
	if validKey(thing, name) != nil {
		return Document{}, fmt.Errorf("shadow: delete %s: %w", quote(thing), ErrNotFound)
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	e := s.lockEntry(key{thing, name})
	defer e.mu.Unlock()
	if err := s.load(ctx, e); err != nil {
		return Document{}, fmt.Errorf("shadow: delete %q: %w", thing, err)
	}
	old := e.document()
	existed, err := s.backend.Delete(ctx, thing, name)
	if err != nil {
		return Document{}, fmt.Errorf("shadow: delete %q: %w", thing, err)
	}
	existed = existed || e.exists
	// The entry stays cached as "no shadow", so a concurrent update cannot
	// reload the old row.
	e.loaded, e.exists = true, false
	e.doc, e.raw, e.desired, e.rawDes, e.metaDes, e.metaRep = nil, nil, nil, nil, nil, nil
	e.version, e.persisted = 0, 0
	e.updatedAt, e.ts = time.Time{}, time.Time{}
	if !existed {
		return Document{}, fmt.Errorf("shadow: delete %q %s: %w", thing, shadowLabel(name), ErrNotFound)
	}
	return old, nil
}

// Names lists the named shadows of thing that are persisted or changed
// since the last flush, sorted (the classic shadow is not listed).
func (s *Store) Names(ctx context.Context, thing string) ([]string, error) {
	if err := s.Flush(ctx); err != nil {
		return nil, err
	}
	names, err := s.backend.Names(ctx, thing)
	if err != nil {
		return nil, fmt.Errorf("shadow: list %q: %w", thing, err)
	}
	return names, nil
}

// Flush writes every changed document to the database in one transaction.
// The background flusher calls it every Options.FlushInterval; call it to
// make all acknowledged updates durable now.
func (s *Store) Flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	return s.flushLocked(ctx)
}

// Close stops the background flusher and flushes pending changes. Calls
// made after Close fail with ErrClosed. It does not close the database.
func (s *Store) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.stop)
	})
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("shadow: close: %w", ctx.Err())
	}
	if err := s.Flush(ctx); err != nil {
		return fmt.Errorf("shadow: close: %w", err)
	}
	return nil
}

func (s *Store) run() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.flushMu.Lock()
			if err := s.flushLocked(context.Background()); err != nil {
				s.log.Warn("shadow flush failed; retrying on the next tick", slog.Any("err", err))
			}
			s.evictLocked()
			s.flushMu.Unlock()
		}
	}
}

func (s *Store) shardOf(k key) *shard {
	return &s.shards[(maphash.String(s.seed, k.thing)+maphash.String(s.seed, k.name))%numShards]
}

// lockEntry returns k's entry, created if needed, with its mutex held.
func (s *Store) lockEntry(k key) *entry {
	sh := s.shardOf(k)
	for {
		sh.mu.Lock()
		e := sh.m[k]
		if e == nil {
			// Names may alias a connection's read buffer (the broker hook
			// hands out topic slices): the map keeps its own copies.
			k = key{strings.Clone(k.thing), strings.Clone(k.name)}
			e = &entry{thing: k.thing, name: k.name}
			sh.m[k] = e
		}
		sh.mu.Unlock()
		e.mu.Lock()
		if !e.evicted {
			return e
		}
		e.mu.Unlock()
	}
}

// load reads e from the backend unless already loaded. e.mu is held.
func (s *Store) load(ctx context.Context, e *entry) error {
	if e.loaded {
		return nil
	}
	rec, found, err := s.backend.Load(ctx, e.thing, e.name)
	if err != nil {
		return err
	}
	if !found {
		e.loaded = true
		return nil
	}
	doc, err := decode(rec.Reported)
	if err != nil {
		return fmt.Errorf("stored document: %w", err)
	}
	des, err := decodeOptional(rec.Desired)
	if err != nil {
		return fmt.Errorf("stored desired state: %w", err)
	}
	var meta struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	}
	if len(rec.Metadata) > 0 {
		if err := json.Unmarshal(rec.Metadata, &meta); err != nil {
			return fmt.Errorf("stored metadata: %w", err)
		}
	}
	e.loaded, e.exists = true, true
	e.doc, e.raw = doc, rec.Reported
	e.desired, e.metaDes, e.metaRep = des, meta.Desired, meta.Reported
	if e.rawDes, err = encode(des); err != nil {
		return fmt.Errorf("stored desired state: %w", err)
	}
	e.version, e.persisted = rec.Version, rec.Version
	e.updatedAt, e.ts = rec.UpdatedAt, rec.Timestamp
	return nil
}

// markDirty queues e for the next flush. e.mu is held.
func (s *Store) markDirty(e *entry) {
	sh := s.shardOf(key{e.thing, e.name})
	sh.mu.Lock()
	if !e.queued {
		e.queued = true
		sh.dirty[e] = struct{}{}
	}
	sh.mu.Unlock()
}

func (s *Store) flushLocked(ctx context.Context) error {
	var batch []*entry
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for e := range sh.dirty {
			e.queued = false
			batch = append(batch, e)
		}
		clear(sh.dirty)
		sh.mu.Unlock()
	}
	if len(batch) == 0 {
		return nil
	}
	recs := make([]Record, 0, len(batch))
	written := batch[:0]
	for _, e := range batch {
		e.mu.Lock()
		if e.exists && e.version != e.persisted {
			meta, err := encodeMeta(e.metaDes, e.metaRep)
			if err != nil {
				e.mu.Unlock()
				return fmt.Errorf("shadow: flush %q: %w", e.thing, err)
			}
			recs = append(recs, Record{Thing: e.thing, Name: e.name, Reported: e.raw, Desired: e.rawDes, Metadata: meta,
				Version: e.version, UpdatedAt: e.updatedAt, Timestamp: e.ts})
			written = append(written, e)
		}
		e.mu.Unlock()
	}
	if len(recs) == 0 {
		return nil
	}
	if err := s.backend.Save(ctx, recs); err != nil {
		for _, e := range written {
			e.mu.Lock()
			s.markDirty(e)
			e.mu.Unlock()
		}
		return fmt.Errorf("shadow: flush %d documents: %w", len(recs), err)
	}
	for i, e := range written {
		e.mu.Lock()
		e.persisted = recs[i].Version
		e.mu.Unlock()
	}
	return nil
}

// evictLocked drops unchanged documents from memory while more than
// maxCached are cached. flushMu is held.
func (s *Store) evictLocked() {
	total := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		total += len(sh.m)
		sh.mu.Unlock()
	}
	over := total - s.maxCached
	for i := 0; i < numShards && over > 0; i++ {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if over <= 0 {
				break
			}
			if e.queued || !e.mu.TryLock() {
				continue
			}
			if e.version == e.persisted {
				e.evicted = true
				delete(sh.m, k)
				over--
			}
			e.mu.Unlock()
		}
		sh.mu.Unlock()
	}
}

// cached reports how many documents are in memory (for tests).
func (s *Store) cached() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// document returns a copy of e that the caller may modify. e.mu is held.
func (e *entry) document() Document {
	if !e.exists {
		return Document{Thing: e.thing, Name: e.name}
	}
	return Document{
		Thing:            e.thing,
		Name:             e.name,
		Desired:          cloneMap(e.desired),
		Reported:         cloneMap(e.doc),
		DesiredMetadata:  cloneMap(e.metaDes),
		ReportedMetadata: cloneMap(e.metaRep),
		Version:          e.version,
		UpdatedAt:        e.updatedAt,
		Timestamp:        e.ts,
	}
}

func validKey(thing, name string) error {
	if err := validThing(thing); err != nil {
		return err
	}
	return ValidName(name)
}

// ValidName checks a named shadow's name: 1 to 64 characters of
// a-z, A-Z, 0-9, ':', '_' and '-' (AWS IoT's rule); "" is the classic
// shadow.
func ValidName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: shadow name longer than %d characters", ErrInvalid, MaxNameLen)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-') {
			return fmt.Errorf("%w: shadow name %q may contain only letters, digits, ':', '_' and '-'", ErrInvalid, name)
		}
	}
	return nil
}

func shadowLabel(name string) string {
	if name == "" {
		return "classic shadow"
	}
	return fmt.Sprintf("shadow %q", name)
}

func validThing(thing string) error {
	if thing == "" || len(thing) > MaxThingLen {
		return fmt.Errorf("%w: thing name must be 1 to %d bytes, got %d", ErrInvalid, MaxThingLen, len(thing))
	}
	return nil
}

func quote(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q...", s[:64])
	}
	return fmt.Sprintf("%q", s)
}
