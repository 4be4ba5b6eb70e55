package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgewise-iot/edgewise/internal/store"
)

// Sentinel errors.
var (
	ErrInvalid      = errors.New("access: invalid request")
	ErrNotFound     = errors.New("access: token not found")
	ErrUnauthorized = errors.New("access: missing or invalid token")
)

// Scopes.
const (
	ThingsRead     = "things:read"
	ThingsWrite    = "things:write"
	RulesRead      = "rules:read"
	RulesWrite     = "rules:write"
	JobsRead       = "jobs:read"
	JobsWrite      = "jobs:write"
	TelemetryRead  = "telemetry:read"
	TelemetryWrite = "telemetry:write"
	Admin          = "admin"
)

// AllScopes lists every scope; ReadOnly the scopes of a read-only token.
var (
	AllScopes = []string{ThingsRead, ThingsWrite, RulesRead, RulesWrite, JobsRead, JobsWrite, TelemetryRead, TelemetryWrite, Admin}
	ReadOnly  = []string{ThingsRead, RulesRead, JobsRead, TelemetryRead}
)

// ValidScope reports whether s is a scope.
func ValidScope(s string) bool { return slices.Contains(AllScopes, s) }

// Principal is who made a request.
type Principal struct {
	// Name is "admin" for the bootstrap token, else the token's name.
	Name    string   `json:"name"`
	TokenID string   `json:"token_id,omitempty"`
	Scopes  []string `json:"scopes"`
}

// Actor is the principal as the audit log names it.
func (p Principal) Actor() string {
	if p.TokenID == "" {
		return p.Name
	}
	return "token:" + p.Name + " (" + p.TokenID + ")"
}

// Allows reports whether p holds scope: admin holds all, X:write holds
// X:read; the empty scope only needs a valid token.
func (p Principal) Allows(scope string) bool {
	if scope == "" {
		return true
	}
	for _, s := range p.Scopes {
		if s == Admin || s == scope {
			return true
		}
		if r, ok := strings.CutSuffix(scope, ":read"); ok && s == r+":write" {
			return true
		}
	}
	return false
}

// Token is an API token's metadata (never its secret).
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
}

// Active reports whether t may be used at now.
func (t Token) Active(now time.Time) bool {
	return t.RevokedAt == nil && (t.ExpiresAt == nil || now.Before(*t.ExpiresAt))
}

// Options configure a Service.
type Options struct {
	Logger *slog.Logger
	// AdminToken is the bootstrap admin token; it always holds admin.
	AdminToken string
	// AuditMaxEntries bounds the audit log; the oldest entries go first.
	// 0 means DefaultAuditMaxEntries.
	AuditMaxEntries int
	Now             func() time.Time
}

// DefaultAuditMaxEntries is the default audit log bound.
const DefaultAuditMaxEntries = 1_000_000

// Service holds tokens and the audit log. It is safe for concurrent use.
type Service struct {
	db    *sql.DB
	log   *slog.Logger
	admin []byte
	now   func() time.Time
	max   int

	mu     sync.RWMutex
	byHash map[[32]byte]Token // active and expired tokens (not revoked)

	auditMu sync.Mutex
	inserts int
}

const component = "access"

var migrations = []string{
	`CREATE TABLE api_tokens (
		id         TEXT   NOT NULL PRIMARY KEY,
		name       TEXT   NOT NULL,
		hash       TEXT   NOT NULL UNIQUE,
		scopes     TEXT   NOT NULL,
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL DEFAULT 0,
		revoked_at BIGINT NOT NULL DEFAULT 0,
		created_by TEXT   NOT NULL DEFAULT ''
	);
	CREATE TABLE audit_log (
		id       INTEGER PRIMARY KEY,
		at       BIGINT  NOT NULL,
		actor    TEXT    NOT NULL,
		token_id TEXT    NOT NULL DEFAULT '',
		action   TEXT    NOT NULL,
		target   TEXT    NOT NULL,
		status   INTEGER NOT NULL,
		result   TEXT    NOT NULL,
		message  TEXT    NOT NULL DEFAULT '',
		remote   TEXT    NOT NULL DEFAULT ''
	);`,
}

// New migrates the access schema in db and loads the tokens.
func New(ctx context.Context, db *sql.DB, opts Options) (*Service, error) {
	if db == nil || opts.AdminToken == "" {
		return nil, errors.New("access: database and admin token are required")
	}
	if err := store.Migrate(ctx, db, component, migrations); err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AuditMaxEntries <= 0 {
		opts.AuditMaxEntries = DefaultAuditMaxEntries
	}
	s := &Service{db: db, log: opts.Logger, admin: []byte(opts.AdminToken), now: opts.Now, max: opts.AuditMaxEntries,
		byHash: map[[32]byte]Token{}}
	rows, err := db.QueryContext(ctx, `SELECT `+tokenColumns+`, hash FROM api_tokens WHERE revoked_at = 0`)
	if err != nil {
		return nil, fmt.Errorf("access: load tokens: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h string
		t, err := scanToken(rows, &h)
		if err != nil {
			return nil, err
		}
		var sum [32]byte
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			return nil, fmt.Errorf("access: token %s has a malformed hash", t.ID)
		} else {
			copy(sum[:], b)
		}
		s.byHash[sum] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("access: load tokens: %w", err)
	}
	return s, nil
}

// TokenPrefix starts every API token secret.
const TokenPrefix = "ewt_"

// Authenticate returns the principal of a bearer token.
func (s *Service) Authenticate(_ context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, ErrUnauthorized
	}
	if subtle.ConstantTimeCompare([]byte(secret), s.admin) == 1 {
		return Principal{Name: "admin", Scopes: []string{Admin}}, nil
	}
	if !strings.HasPrefix(secret, TokenPrefix) {
		return Principal{}, ErrUnauthorized
	}
	sum := sha256.Sum256([]byte(secret))
	s.mu.RLock()
	t, ok := s.byHash[sum]
	s.mu.RUnlock()
	if !ok || !t.Active(s.now()) {
		return Principal{}, ErrUnauthorized
	}
	return Principal{Name: t.Name, TokenID: t.ID, Scopes: slices.Clone(t.Scopes)}, nil
}

// CreateRequest describes a token to create.
type CreateRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// ExpiresIn is a Go duration ("720h"); empty means no expiry.
	ExpiresIn string `json:"expires_in,omitempty"`
}

// Create makes a token and returns it with its secret, which is not
// retrievable later.
func (s *Service) Create(ctx context.Context, req CreateRequest, createdBy string) (Token, string, error) {
	if req.Name == "" || len(req.Name) > 128 {
		return Token{}, "", fmt.Errorf("%w: name must be 1 to 128 characters", ErrInvalid)
	}
	if len(req.Scopes) == 0 {
		return Token{}, "", fmt.Errorf("%w: at least one scope is required (one of %s)", ErrInvalid, strings.Join(AllScopes, ", "))
	}
	scopes := slices.Clone(req.Scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	for _, sc := range scopes {
		if !ValidScope(sc) {
			return Token{}, "", fmt.Errorf("%w: unknown scope %q (use %s)", ErrInvalid, sc, strings.Join(AllScopes, ", "))
		}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	t := Token{Name: req.Name, Scopes: scopes, CreatedAt: now, CreatedBy: createdBy}
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			return Token{}, "", fmt.Errorf("%w: expires_in %q must be a positive duration like 720h", ErrInvalid, req.ExpiresIn)
		}
		exp := now.Add(d)
		t.ExpiresAt = &exp
	}
	raw := make([]byte, 32)
	id := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		return Token{}, "", fmt.Errorf("access: create token: %w", err)
	}
	if _, err := rand.Read(id); err != nil {
		return Token{}, "", fmt.Errorf("access: create token: %w", err)
	}
	t.ID = hex.EncodeToString(id)
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(secret))
	sc, _ := json.Marshal(scopes)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO api_tokens (id, name, hash, scopes, created_at, expires_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, hex.EncodeToString(sum[:]), string(sc), now.UnixMicro(), micros(t.ExpiresAt), createdBy); err != nil {
		return Token{}, "", fmt.Errorf("access: create token: %w", err)
	}
	s.mu.Lock()
	s.byHash[sum] = t
	s.mu.Unlock()
	s.log.Info("API token created", "id", t.ID, "name", t.Name, "scopes", scopes, "by", createdBy)
	return t, secret, nil
}

func micros(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMicro()
}

const tokenColumns = `id, name, scopes, created_at, expires_at, revoked_at, created_by`

type scanner interface{ Scan(dest ...any) error }

func scanToken(sc scanner, extra ...any) (Token, error) {
	var t Token
	var scopes string
	var created, expires, revoked int64
	if err := sc.Scan(append([]any{&t.ID, &t.Name, &scopes, &created, &expires, &revoked, &t.CreatedBy}, extra...)...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Token{}, ErrNotFound
		}
		return Token{}, fmt.Errorf("access: read token: %w", err)
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return Token{}, fmt.Errorf("access: token %s: scopes: %w", t.ID, err)
	}
	t.CreatedAt = time.UnixMicro(created).UTC()
	if expires != 0 {
		e := time.UnixMicro(expires).UTC()
		t.ExpiresAt = &e
	}
	if revoked != 0 {
		r := time.UnixMicro(revoked).UTC()
		t.RevokedAt = &r
	}
	return t, nil
}

// List returns a page of tokens by id (revoked ones included) and the next
// cursor.
func (s *Service) List(ctx context.Context, limit int, after string) ([]Token, string, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE id > ? ORDER BY id LIMIT ?`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("access: list tokens: %w", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("access: list tokens: %w", err)
	}
	next := ""
	if len(out) > limit {
		out, next = out[:limit], out[limit-1].ID
	}
	return out, next, nil
}

// Revoke revokes a token at once; revoking it again changes nothing.
func (s *Service) Revoke(ctx context.Context, id string) (Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE id = ?`, id))
	if err != nil {
		return Token{}, fmt.Errorf("access: revoke %q: %w", id, err)
	}
	if t.RevokedAt != nil {
		return t, nil
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	if _, err := s.db.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE id = ?`, now.UnixMicro(), id); err != nil {
		return Token{}, fmt.Errorf("access: revoke %q: %w", id, err)
	}
	s.mu.Lock()
	for h, tt := range s.byHash {
		if tt.ID == id {
			delete(s.byHash, h)
		}
	}
	s.mu.Unlock()
	t.RevokedAt = &now
	s.log.Info("API token revoked", "id", id, "name", t.Name)
	return t, nil
}

type scopeKey struct{}

// WithScope returns ctx carrying the scope a request needs; the Influx
// token checker reads it.
func WithScope(ctx context.Context, scope string) context.Context {
	return context.WithValue(ctx, scopeKey{}, scope)
}

// InfluxChecker accepts the admin token and API tokens holding the scope
// set on the request context by WithScope (telemetry:read when none is).
// It implements influx.TokenChecker.
type InfluxChecker struct{ S *Service }

// CheckToken implements influx.TokenChecker.
func (c InfluxChecker) CheckToken(ctx context.Context, token string) bool {
	p, err := c.S.Authenticate(ctx, token)
	if err != nil {
		return false
	}
	scope, _ := ctx.Value(scopeKey{}).(string)
	if scope == "" {
		scope = TelemetryRead
	}
	return p.Allows(scope)
}
