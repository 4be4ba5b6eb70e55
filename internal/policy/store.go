package policy

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/edgewise-iot/edgewise/internal/store"
)

// Errors of the Store; returned errors wrap them.
var (
	ErrNotFound = errors.New("policy: not found")
	ErrExists   = errors.New("policy: already exists")
	// ErrInUse reports deleting a policy that is still attached.
	ErrInUse = errors.New("policy: still attached")
)

// Target kinds a policy attaches to.
const (
	TargetCertificate = "certificate"
	TargetThing       = "thing"
	TargetGroup       = "group"
)

// Target is what a policy is attached to.
type Target struct {
	Kind string `json:"kind"` // "certificate" | "thing" | "group"
	Name string `json:"name"` // certificate id, thing name or group name
}

func (t Target) validate() error {
	switch t.Kind {
	case TargetCertificate, TargetThing, TargetGroup:
	default:
		return fmt.Errorf("%w: target kind %q must be certificate, thing or group", ErrInvalid, t.Kind)
	}
	if t.Name == "" || len(t.Name) > 256 || strings.ContainsFunc(t.Name, unicode.IsControl) {
		return fmt.Errorf("%w: target name must be 1 to 256 printable characters", ErrInvalid)
	}
	return nil
}

// GroupResolver returns the thing groups a thing belongs to, ancestors
// included (the registry implements it).
type GroupResolver interface {
	GroupsOf(ctx context.Context, thing string) ([]string, error)
}

// Policy is a named, stored policy document.
type Policy struct {
	Name      string          `json:"name"`
	Document  json.RawMessage `json:"document"`
	Version   int             `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	parsed    *Document
}

// Parsed is the policy's parsed document.
func (p Policy) Parsed() *Document { return p.parsed }

// ListOptions select a page of policies ordered by name.
type ListOptions struct {
	Limit int
	After string
}

// StoreOptions configure NewStore.
type StoreOptions struct {
	Logger *slog.Logger
	// Groups resolves thing groups; nil means no groups.
	Groups GroupResolver
	Now    func() time.Time
}

// Store keeps policies and their attachments in the database, with the
// whole set cached in memory: evaluation never queries the database for
// policies (only the GroupResolver, when set).
type Store struct {
	db     *sql.DB
	log    *slog.Logger
	now    func() time.Time
	groups atomic.Pointer[GroupResolver]
	def    *Document
	gen    atomic.Uint64

	mu       sync.RWMutex
	policies map[string]Policy
	byTarget map[Target][]string // sorted policy names
}

// Component is the schema component of the policy tables.
const Component = "policy"

var migrations = []string{
	`CREATE TABLE policies (
		name       TEXT    NOT NULL PRIMARY KEY,
		document   TEXT    NOT NULL,
		version    INTEGER NOT NULL,
		created_at BIGINT  NOT NULL,
		updated_at BIGINT  NOT NULL
	);
	CREATE TABLE policy_targets (
		policy TEXT NOT NULL REFERENCES policies (name) ON DELETE CASCADE,
		kind   TEXT NOT NULL,
		name   TEXT NOT NULL,
		PRIMARY KEY (policy, kind, name)
	);
	CREATE INDEX policy_targets_target ON policy_targets (kind, name);`,
}

// NewStore migrates the policy schema in db and loads every policy.
func NewStore(ctx context.Context, db *sql.DB, opts StoreOptions) (*Store, error) {
	if db == nil {
		return nil, errors.New("policy: nil database")
	}
	if err := store.Migrate(ctx, db, Component, migrations); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	s := &Store{db: db, log: opts.Logger, now: opts.Now, def: MustParse(Default),
		policies: make(map[string]Policy), byTarget: make(map[Target][]string)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.SetGroupResolver(opts.Groups)
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) load(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT name, document, version, created_at, updated_at FROM policies`)
	if err != nil {
		return fmt.Errorf("policy: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p Policy
		var doc string
		var cr, up int64
		if err := rows.Scan(&p.Name, &doc, &p.Version, &cr, &up); err != nil {
			return fmt.Errorf("policy: load: %w", err)
		}
		p.Document, p.CreatedAt, p.UpdatedAt = json.RawMessage(doc), time.UnixMicro(cr).UTC(), time.UnixMicro(up).UTC()
		if p.parsed, err = Parse(p.Document); err != nil {
			// Stored documents were valid when written; a newer binary's
			// syntax must not lock everyone out, so the policy is skipped.
			s.log.Warn("policy: stored document no longer parses; ignored", "policy", p.Name, "err", err)
			continue
		}
		s.policies[p.Name] = p
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("policy: load: %w", err)
	}
	trows, err := s.db.QueryContext(ctx, `SELECT policy, kind, name FROM policy_targets`)
	if err != nil {
		return fmt.Errorf("policy: load targets: %w", err)
	}
	defer trows.Close()
	for trows.Next() {
		var name string
		var t Target
		if err := trows.Scan(&name, &t.Kind, &t.Name); err != nil {
			return fmt.Errorf("policy: load targets: %w", err)
		}
		s.addTarget(name, t)
	}
	return trows.Err()
}

// SetGroupResolver sets (or, with nil, removes) the group resolver.
func (s *Store) SetGroupResolver(g GroupResolver) {
	if g == nil {
		s.groups.Store(nil)
	} else {
		s.groups.Store(&g)
	}
	s.changed()
}

// Generation increases with every change of a policy, an attachment or
// the group resolver; a policy compiled at one generation is stale at a
// later one.
func (s *Store) Generation() uint64 { return s.gen.Load() }

func (s *Store) changed() { s.gen.Add(1) }

func validName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("%w: policy name must be 1 to 128 characters", ErrInvalid)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-+=,.@", r)) {
			return fmt.Errorf("%w: policy name %q: only letters, digits and _-+=,.@ are allowed", ErrInvalid, name)
		}
	}
	return nil
}

// Create stores a new policy; ErrExists if the name is taken.
func (s *Store) Create(ctx context.Context, name string, doc []byte) (Policy, error) {
	if err := validName(name); err != nil {
		return Policy{}, err
	}
	d, err := Parse(doc)
	if err != nil {
		return Policy{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	p := Policy{Name: name, Document: compact(doc), Version: 1, CreatedAt: now, UpdatedAt: now, parsed: d}
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.db.ExecContext(ctx, `INSERT INTO policies (name, document, version, created_at, updated_at) VALUES (?, ?, 1, ?, ?)
		ON CONFLICT (name) DO NOTHING`, name, string(p.Document), now.UnixMicro(), now.UnixMicro())
	if err != nil {
		return Policy{}, fmt.Errorf("policy: create %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Policy{}, fmt.Errorf("policy: create %q: %w", name, ErrExists)
	}
	s.policies[name] = p
	s.changed()
	return p, nil
}

// Update replaces a policy's document (its version increases).
func (s *Store) Update(ctx context.Context, name string, doc []byte) (Policy, error) {
	d, err := Parse(doc)
	if err != nil {
		return Policy{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[name]
	if !ok {
		return Policy{}, fmt.Errorf("policy: update %q: %w", name, ErrNotFound)
	}
	p.Document, p.parsed, p.Version, p.UpdatedAt = compact(doc), d, p.Version+1, s.now().UTC().Truncate(time.Microsecond)
	if _, err := s.db.ExecContext(ctx, `UPDATE policies SET document = ?, version = ?, updated_at = ? WHERE name = ?`,
		string(p.Document), p.Version, p.UpdatedAt.UnixMicro(), name); err != nil {
		return Policy{}, fmt.Errorf("policy: update %q: %w", name, err)
	}
	s.policies[name] = p
	s.changed()
	return p, nil
}

func compact(doc []byte) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, doc); err != nil {
		return json.RawMessage(doc)
	}
	return json.RawMessage(b.Bytes())
}

// Get returns a policy.
func (s *Store) Get(_ context.Context, name string) (Policy, error) {
	s.mu.RLock()
	p, ok := s.policies[name]
	s.mu.RUnlock()
	if !ok {
		return Policy{}, fmt.Errorf("policy: %q: %w", name, ErrNotFound)
	}
	return p, nil
}

// List returns a page of policies ordered by name and the cursor of the
// next page ("" at the end).
func (s *Store) List(_ context.Context, o ListOptions) ([]Policy, string, error) {
	limit := o.Limit
	switch {
	case limit < 0:
		return nil, "", fmt.Errorf("%w: limit must not be negative, got %d", ErrInvalid, limit)
	case limit == 0:
		limit = 100
	case limit > 1000:
		limit = 1000
	}
	s.mu.RLock()
	out := make([]Policy, 0, len(s.policies))
	for n, p := range s.policies {
		if n > o.After {
			out = append(out, p)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].Name
	}
	return out, next, nil
}

// Delete removes a policy that is attached to nothing (ErrInUse otherwise).
func (s *Store) Delete(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.policies[name]; !ok {
		return fmt.Errorf("policy: delete %q: %w", name, ErrNotFound)
	}
	for t, names := range s.byTarget {
		if slices.Contains(names, name) {
			return fmt.Errorf("policy: delete %q: %w to %s %q; detach it first", name, ErrInUse, t.Kind, t.Name)
		}
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM policies WHERE name = ?`, name); err != nil {
		return fmt.Errorf("policy: delete %q: %w", name, err)
	}
	delete(s.policies, name)
	s.changed()
	return nil
}

// Attach attaches a policy to a target (idempotent).
func (s *Store) Attach(ctx context.Context, name string, t Target) error {
	if err := t.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.policies[name]; !ok {
		return fmt.Errorf("policy: attach %q: %w", name, ErrNotFound)
	}
	if slices.Contains(s.byTarget[t], name) {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO policy_targets (policy, kind, name) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		name, t.Kind, t.Name); err != nil {
		return fmt.Errorf("policy: attach %q: %w", name, err)
	}
	s.addTarget(name, t)
	s.changed()
	return nil
}

func (s *Store) addTarget(name string, t Target) {
	ns := append(s.byTarget[t], name)
	slices.Sort(ns)
	s.byTarget[t] = slices.Compact(ns)
}

// Detach removes a policy's attachment to a target.
func (s *Store) Detach(ctx context.Context, name string, t Target) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.byTarget[t]
	i := slices.Index(ns, name)
	if i < 0 {
		return fmt.Errorf("policy: %q is not attached to %s %q: %w", name, t.Kind, t.Name, ErrNotFound)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM policy_targets WHERE policy = ? AND kind = ? AND name = ?`,
		name, t.Kind, t.Name); err != nil {
		return fmt.Errorf("policy: detach %q: %w", name, err)
	}
	ns = slices.Delete(slices.Clone(ns), i, i+1)
	if len(ns) == 0 {
		delete(s.byTarget, t)
	} else {
		s.byTarget[t] = ns
	}
	s.changed()
	return nil
}

// Attached lists the policies attached directly to a target, by name.
func (s *Store) Attached(_ context.Context, t Target) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]string{}, s.byTarget[t]...), nil
}

// Targets lists what a policy is attached to.
func (s *Store) Targets(_ context.Context, name string) ([]Target, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.policies[name]; !ok {
		return nil, fmt.Errorf("policy: %q: %w", name, ErrNotFound)
	}
	out := []Target{}
	for t, ns := range s.byTarget {
		if slices.Contains(ns, name) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Effective compiles the policies that apply to a connection: those
// attached to its certificate, to its thing and to the thing's groups
// (ancestors included). With none, the built-in Default applies. The
// thing's policies only count when v.ThingName is set (the certificate is
// attached to the thing named by the client id, or the thing logged in
// with its password). It returns the generation it compiled at.
func (s *Store) Effective(ctx context.Context, v Vars) (*Compiled, uint64, error) {
	gen := s.gen.Load()
	var groups []string
	if v.ThingName != "" {
		if g := s.groups.Load(); g != nil {
			var err error
			if groups, err = (*g).GroupsOf(ctx, v.ThingName); err != nil {
				return nil, 0, fmt.Errorf("policy: groups of %q: %w", v.ThingName, err)
			}
		}
	}
	var docs []*Document
	seen := map[string]bool{}
	s.mu.RLock()
	add := func(t Target) {
		for _, n := range s.byTarget[t] {
			if p, ok := s.policies[n]; ok && !seen[n] {
				seen[n] = true
				docs = append(docs, p.parsed)
			}
		}
	}
	if v.CertificateID != "" {
		add(Target{TargetCertificate, v.CertificateID})
	}
	if v.ThingName != "" {
		add(Target{TargetThing, v.ThingName})
	}
	for _, g := range groups {
		add(Target{TargetGroup, g})
	}
	s.mu.RUnlock()
	if len(docs) == 0 {
		return CompileDefault(v, s.def), gen, nil
	}
	return Compile(v, docs...), gen, nil
}
