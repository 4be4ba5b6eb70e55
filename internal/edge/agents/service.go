package agents

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/rules"
	"github.com/edgewise-iot/edgewise/internal/rules/action"
	"github.com/edgewise-iot/edgewise/internal/rules/stream"
)

// Errors of the service (the API maps them to 404, 400 and 409).
var (
	ErrNotFound = errors.New("fleet: agent not found")
	ErrInvalid  = errors.New("fleet: invalid rule set")
	ErrConflict = errors.New("fleet: version conflict")
)

// Publisher publishes retained rule sets; *broker.Server satisfies it.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}

// Agent is one agent as the cloud sees it.
type Agent struct {
	Name         string             `json:"name"`
	RulesVersion int64              `json:"rules_version"` // desired version (0: none set)
	Rules        []rules.Definition `json:"rules"`
	UpdatedAt    *time.Time         `json:"updated_at,omitempty"`
	// Status is the agent's last report (nil before the first) and
	// StatusAt when it arrived; InSync says whether the agent runs the
	// desired version.
	Status   *Status    `json:"status,omitempty"`
	StatusAt *time.Time `json:"status_at,omitempty"`
	InSync   bool       `json:"in_sync"`
}

// Options configure the service.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
}

// Service keeps agents' rule sets and statuses.
type Service struct {
	db  *sql.DB
	log *slog.Logger
	now func() time.Time

	mu  sync.Mutex // serializes writes; guards pub
	pub Publisher
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$`)
var validRule = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// New creates the edge_agents table in db when missing.
func New(ctx context.Context, db *sql.DB, opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS edge_agents (
		name       TEXT PRIMARY KEY,
		version    INTEGER NOT NULL DEFAULT 0,
		rules      TEXT NOT NULL DEFAULT '[]',
		updated_at TEXT,
		status     TEXT,
		status_at  TEXT)`); err != nil {
		return nil, fmt.Errorf("fleet: migrate: %w", err)
	}
	return &Service{db: db, log: opts.Logger, now: opts.Now}, nil
}

// SetPublisher sets the broker that carries rule sets to agents.
func (s *Service) SetPublisher(p Publisher) {
	s.mu.Lock()
	s.pub = p
	s.mu.Unlock()
}

// Validate checks a rule set the way the agent's engine will: names, SQL
// and action types. (Action settings are checked again by the agent, which
// reports an error in its status.)
func Validate(defs []rules.Definition) error {
	seen := map[string]bool{}
	types := action.Types()
	for i, d := range defs {
		if !validRule.MatchString(d.Name) {
			return fmt.Errorf("%w: rules[%d]: name %q must be 1-128 letters, digits, '_', '.' or '-'", ErrInvalid, i, d.Name)
		}
		if seen[d.Name] {
			return fmt.Errorf("%w: rule %q appears twice", ErrInvalid, d.Name)
		}
		seen[d.Name] = true
		if len(d.Actions) == 0 {
			return fmt.Errorf("%w: rule %q needs at least one action", ErrInvalid, d.Name)
		}
		for j, a := range d.Actions {
			if !slices.Contains(types, a.Type) {
				return fmt.Errorf("%w: rule %q actions[%d]: unknown type %q (one of %s)", ErrInvalid, d.Name, j, a.Type, strings.Join(types, ", "))
			}
		}
		if _, err := stream.Compile(d.Name, d.SQL, stream.Options{}); err != nil {
			return fmt.Errorf("%w: rule %q: sql: %v", ErrInvalid, d.Name, err)
		}
	}
	return nil
}

// PutRules stores a new version of an agent's rule set (creating the
// agent) and publishes it. With ifVersion >= 0 the current version must
// equal it (optimistic concurrency), else ErrConflict.
func (s *Service) PutRules(ctx context.Context, name string, defs []rules.Definition, ifVersion int64) (Agent, error) {
	if !validName.MatchString(name) {
		return Agent{}, fmt.Errorf("%w: agent name %q must be 1-128 letters, digits, '_', '.', ':' or '-'", ErrInvalid, name)
	}
	if defs == nil {
		defs = []rules.Definition{}
	}
	if err := Validate(defs); err != nil {
		return Agent{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.get(ctx, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Agent{}, err
	}
	if ifVersion >= 0 && cur.RulesVersion != ifVersion {
		return Agent{}, fmt.Errorf("%w: agent %s is at version %d, not %d", ErrConflict, name, cur.RulesVersion, ifVersion)
	}
	body, _ := json.Marshal(defs)
	now := s.now().UTC()
	ver := cur.RulesVersion + 1
	if _, err := s.db.ExecContext(ctx, `INSERT INTO edge_agents (name, version, rules, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET version = excluded.version, rules = excluded.rules, updated_at = excluded.updated_at`,
		name, ver, string(body), now.Format(time.RFC3339Nano)); err != nil {
		return Agent{}, fmt.Errorf("fleet: store rules of %s: %w", name, err)
	}
	a, err := s.get(ctx, name)
	if err != nil {
		return Agent{}, err
	}
	if err := s.publishLocked(ctx, a); err != nil {
		// Stored: the set is published again at the next start.
		s.log.Error("rule set stored but not published", "agent", name, "version", ver, "err", err)
	}
	return a, nil
}

func (s *Service) publishLocked(ctx context.Context, a Agent) error {
	if s.pub == nil {
		return errors.New("fleet: no publisher")
	}
	rs := RuleSet{Agent: a.Name, Version: a.RulesVersion, Rules: a.Rules}
	if a.UpdatedAt != nil {
		rs.UpdatedAt = *a.UpdatedAt
	}
	b, _ := json.Marshal(rs)
	return s.pub.Publish(ctx, RulesTopic(a.Name), b, 1, true)
}

// PublishAll publishes every stored rule set again (at server start, so
// the retained messages exist even without broker persistence).
func (s *Service) PublishAll(ctx context.Context) error {
	agents, err := s.List(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range agents {
		if a.RulesVersion == 0 {
			continue
		}
		if err := s.publishLocked(ctx, a); err != nil {
			return fmt.Errorf("fleet: publish rules of %s: %w", a.Name, err)
		}
	}
	return nil
}

// Get returns one agent.
func (s *Service) Get(ctx context.Context, name string) (Agent, error) { return s.get(ctx, name) }

func (s *Service) get(ctx context.Context, name string) (Agent, error) {
	row := s.db.QueryRowContext(ctx, `SELECT name, version, rules, updated_at, status, status_at FROM edge_agents WHERE name = ?`, name)
	a, err := scan(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{Name: name}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return a, err
}

// List returns every agent by name.
func (s *Service) List(ctx context.Context) ([]Agent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, version, rules, updated_at, status, status_at FROM edge_agents ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("fleet: list: %w", err)
	}
	defer rows.Close()
	out := []Agent{}
	for rows.Next() {
		a, err := scan(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func scan(f func(...any) error) (Agent, error) {
	var a Agent
	var body string
	var updated, status, statusAt sql.NullString
	if err := f(&a.Name, &a.RulesVersion, &body, &updated, &status, &statusAt); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return a, err
		}
		return a, fmt.Errorf("fleet: read agent: %w", err)
	}
	if err := json.Unmarshal([]byte(body), &a.Rules); err != nil {
		return a, fmt.Errorf("fleet: agent %s: stored rules: %w", a.Name, err)
	}
	if t, err := time.Parse(time.RFC3339Nano, updated.String); err == nil {
		a.UpdatedAt = &t
	}
	if status.Valid {
		var st Status
		if json.Unmarshal([]byte(status.String), &st) == nil {
			a.Status = &st
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, statusAt.String); err == nil {
		a.StatusAt = &t
	}
	a.InSync = a.Status != nil && a.Status.RulesVersion == a.RulesVersion
	return a, nil
}

// Delete forgets an agent and clears its retained rule set.
func (s *Service) Delete(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.db.ExecContext(ctx, `DELETE FROM edge_agents WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("fleet: delete %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if s.pub != nil && validName.MatchString(name) {
		_ = s.pub.Publish(ctx, RulesTopic(name), nil, 1, true) // an empty retained message clears it
	}
	return nil
}

// OnPublish records the status messages agents publish on
// devices/{agent}/agent/status (the broker's policy confines each thing to
// its own devices/{name}/ namespace).
func (s *Service) OnPublish(ctx context.Context, batch []*broker.Message) error {
	for _, m := range batch {
		rest, ok := strings.CutPrefix(m.Topic, "devices/")
		if !ok {
			continue
		}
		name, ok := strings.CutSuffix(rest, "/agent/status")
		if !ok || name == "" || strings.Contains(name, "/") || len(m.Payload) == 0 {
			continue
		}
		var st Status
		if err := json.Unmarshal(m.Payload, &st); err != nil {
			s.log.Warn("agent status is not valid JSON; ignored", "agent", name, "err", err)
			continue
		}
		st.Agent = name
		b, _ := json.Marshal(st)
		at := m.Received
		if at.IsZero() {
			at = s.now()
		}
		if _, err := s.db.ExecContext(ctx, `INSERT INTO edge_agents (name, status, status_at) VALUES (?, ?, ?)
			ON CONFLICT(name) DO UPDATE SET status = excluded.status, status_at = excluded.status_at`,
			name, string(b), at.UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("fleet: store status of %s: %w", name, err)
		}
	}
	return nil
}
