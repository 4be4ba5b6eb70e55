package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Sentinel errors. Callers test them with errors.Is; the returned errors wrap
// them with the operation and, for ErrInvalid, a sentence naming the field and
// the rule it broke.
var (
	// ErrNotFound reports that no thing has the given name.
	ErrNotFound = errors.New("registry: thing not found")
	// ErrExists reports that a thing with the given name already exists.
	ErrExists = errors.New("registry: thing already exists")
	// ErrInvalid reports input that breaks a validation rule.
	ErrInvalid = errors.New("registry: invalid input")
	// ErrBadCredentials reports a failed password verification: unknown
	// username or wrong password (deliberately indistinguishable).
	ErrBadCredentials = errors.New("registry: bad credentials")
)

// Thing is a registered device.
type Thing struct {
	Name       string            `json:"name"`
	Type       string            `json:"type,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
}

// Credentials are a thing's MQTT username and password. The password is only
// ever returned at creation or reset; the registry keeps a bcrypt hash.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// ListOptions selects a page of things, ordered by name.
type ListOptions struct {
	// Limit is the page size: 0 means DefaultListLimit, values above
	// MaxListLimit are lowered to it, negative values are invalid.
	Limit int
	// After is the cursor: only things whose name sorts after it are
	// listed. Pass the next value returned by the previous page.
	After string
	// Type, if set, lists only things of that type.
	Type string
}

// Page size bounds of ListThings.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Defaults of Options.
const (
	DefaultHashCost  = 10
	DefaultCacheTTL  = 5 * time.Minute
	DefaultCacheSize = 100_000
)

// passwordBytes is the entropy of generated passwords (192 bits).
const passwordBytes = 24

// maxPasswordLen is bcrypt's input limit; longer passwords never match.
const maxPasswordLen = 72

// Options configures a Registry. The zero value is usable.
type Options struct {
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// HashCost is the bcrypt cost of new password hashes; 0 means
	// DefaultHashCost. Must be within bcrypt.MinCost..bcrypt.MaxCost.
	HashCost int
	// CacheTTL is how long a successful verification is cached; 0 means
	// DefaultCacheTTL, a negative value disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached verifications; 0 means
	// DefaultCacheSize. When full, arbitrary entries are evicted.
	CacheSize int
	// Listener, if set, is told about every stored change of things,
	// groups and memberships.
	Listener Listener
}

// Registry manages things and their credentials. It is safe for concurrent
// use.
type Registry struct {
	store     Store
	log       *slog.Logger
	cost      int
	cache     *credCache
	dummyHash []byte
	listener  Listener

	// Hooks replaced by tests.
	now     func() time.Time
	compare func(hash, password []byte) error
	random  io.Reader
}

// New returns a Registry persisting to db (see internal/store.OpenSQLite). It
// migrates the registry schema first.
func New(ctx context.Context, db *sql.DB, opts Options) (*Registry, error) {
	st, err := NewSQLStore(ctx, db)
	if err != nil {
		return nil, err
	}
	return NewWithStore(st, opts)
}

// NewWithStore returns a Registry persisting to st.
func NewWithStore(st Store, opts Options) (*Registry, error) {
	if st == nil {
		return nil, errors.New("registry: nil store")
	}
	cost := opts.HashCost
	if cost == 0 {
		cost = DefaultHashCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("%w: hash cost %d is outside %d..%d", ErrInvalid, opts.HashCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	ttl := opts.CacheTTL
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	size := opts.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		store:    st,
		log:      log,
		cost:     cost,
		cache:    newCredCache(ttl, size),
		listener: opts.Listener,
		now:      time.Now,
		compare:  bcrypt.CompareHashAndPassword,
		random:   rand.Reader,
	}
	// The dummy hash has the same cost as real ones, so verifying an unknown
	// user takes as long as verifying a known one.
	pw, err := r.newPassword()
	if err != nil {
		return nil, err
	}
	r.dummyHash, err = bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return nil, fmt.Errorf("registry: dummy hash: %w", err)
	}
	return r, nil
}

// CreateThing registers t and returns it as stored (with server timestamps)
// together with its freshly generated credentials. The password is not
// retrievable later. t.CreatedAt and t.UpdatedAt are ignored.
func (r *Registry) CreateThing(ctx context.Context, t Thing) (Thing, Credentials, error) {
	if err := ValidateThing(t); err != nil {
		return Thing{}, Credentials{}, fmt.Errorf("registry: create thing: %w", err)
	}
	if err := r.checkType(ctx, t.Type); err != nil {
		return Thing{}, Credentials{}, fmt.Errorf("registry: create thing %q: %w", t.Name, err)
	}
	pw, hash, err := r.newCredential()
	if err != nil {
		return Thing{}, Credentials{}, fmt.Errorf("registry: create thing %q: %w", t.Name, err)
	}
	now := r.timestamp()
	stored := Thing{
		Name:       t.Name,
		Type:       t.Type,
		Attributes: cloneAttrs(t.Attributes),
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	if err := r.store.InsertThing(ctx, stored, hash); err != nil {
		return Thing{}, Credentials{}, fmt.Errorf("registry: create thing %q: %w", t.Name, err)
	}
	// A previous thing of the same name may have left a cache entry if it
	// was deleted by another node; never let it authenticate the new one.
	r.cache.purge(t.Name)
	r.notify(func(l Listener) { l.ThingChanged(cloneThing(stored)) })
	r.log.LogAttrs(ctx, slog.LevelInfo, "thing created", slog.String("thing", t.Name), slog.String("type", t.Type))
	return cloneThing(stored), Credentials{Username: t.Name, Password: pw}, nil
}

// GetThing returns the thing called name.
func (r *Registry) GetThing(ctx context.Context, name string) (Thing, error) {
	if err := validateName("name", name); err != nil {
		// An invalid name cannot exist.
		return Thing{}, fmt.Errorf("registry: get thing %s: %w", quoteShort(name), ErrNotFound)
	}
	t, err := r.store.GetThing(ctx, name)
	if err != nil {
		return Thing{}, fmt.Errorf("registry: get thing %q: %w", name, err)
	}
	return t, nil
}

// ListThings returns a page of things ordered by name, and the cursor of the
// next page ("" when this is the last page).
func (r *Registry) ListThings(ctx context.Context, o ListOptions) (things []Thing, next string, err error) {
	limit := o.Limit
	switch {
	case limit < 0:
		return nil, "", fmt.Errorf("registry: list things: %w: limit must not be negative, got %d", ErrInvalid, limit)
	case limit == 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	if o.Type != "" {
		if err := validateName("type", o.Type); err != nil {
			return nil, "", fmt.Errorf("registry: list things: %w", err)
		}
	}
	// Fetch one extra row to learn whether another page exists.
	things, err = r.store.ListThings(ctx, o.After, o.Type, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("registry: list things: %w", err)
	}
	if len(things) > limit {
		things = things[:limit]
		next = things[limit-1].Name
	}
	return things, next, nil
}

// DeleteThing removes the thing called name and its credentials. Its
// password stops working at once on this process.
func (r *Registry) DeleteThing(ctx context.Context, name string) error {
	if err := validateName("name", name); err != nil {
		return fmt.Errorf("registry: delete thing %s: %w", quoteShort(name), ErrNotFound)
	}
	if err := r.store.DeleteThing(ctx, name); err != nil {
		return fmt.Errorf("registry: delete thing %q: %w", name, err)
	}
	r.cache.purge(name)
	r.notify(func(l Listener) { l.ThingDeleted(name) })
	r.log.LogAttrs(ctx, slog.LevelInfo, "thing deleted", slog.String("thing", name))
	return nil
}

// ResetCredentials replaces the password of the thing called name and returns
// the new credentials. The old password stops working at once on this
// process.
func (r *Registry) ResetCredentials(ctx context.Context, name string) (Credentials, error) {
	if err := validateName("name", name); err != nil {
		return Credentials{}, fmt.Errorf("registry: reset credentials %s: %w", quoteShort(name), ErrNotFound)
	}
	pw, hash, err := r.newCredential()
	if err != nil {
		return Credentials{}, fmt.Errorf("registry: reset credentials %q: %w", name, err)
	}
	if err := r.store.SetPassword(ctx, name, hash, r.timestamp()); err != nil {
		return Credentials{}, fmt.Errorf("registry: reset credentials %q: %w", name, err)
	}
	r.cache.purge(name)
	r.log.LogAttrs(ctx, slog.LevelInfo, "credentials reset", slog.String("thing", name))
	return Credentials{Username: name, Password: pw}, nil
}

// VerifyPassword checks username and password and returns the thing they
// belong to. Any mismatch (unknown user, wrong password) returns an error
// wrapping ErrBadCredentials; other errors mean the check could not be made
// (for example the database is unavailable) and must not be reported to the
// device as bad credentials.
func (r *Registry) VerifyPassword(ctx context.Context, username, password string) (Thing, error) {
	sum := sha256.Sum256([]byte(password))
	now := r.now()
	if t, ok := r.cache.get(username, sum, now); ok {
		return cloneThing(t), nil
	}
	epoch := r.cache.currentEpoch()
	if validateName("username", username) != nil || len(password) == 0 || len(password) > maxPasswordLen {
		r.dummyCompare(password)
		return Thing{}, badCredentials(username)
	}
	t, hash, err := r.store.Password(ctx, username)
	if errors.Is(err, ErrNotFound) {
		r.dummyCompare(password)
		return Thing{}, badCredentials(username)
	}
	if err != nil {
		return Thing{}, fmt.Errorf("registry: verify password of %q: %w", username, err)
	}
	if r.compare(hash, []byte(password)) != nil {
		return Thing{}, badCredentials(username)
	}
	r.cache.put(username, sum, t, epoch, now)
	return cloneThing(t), nil
}

func badCredentials(username string) error {
	if len(username) > 64 {
		username = username[:64] + "..."
	}
	return fmt.Errorf("registry: verify password of %q: %w", username, ErrBadCredentials)
}

func (r *Registry) dummyCompare(password string) {
	if len(password) > maxPasswordLen {
		password = password[:maxPasswordLen]
	}
	_ = r.compare(r.dummyHash, []byte(password))
}

func (r *Registry) newPassword() (string, error) {
	b := make([]byte, passwordBytes)
	if _, err := io.ReadFull(r.random, b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (r *Registry) newCredential() (password string, hash []byte, err error) {
	password, err = r.newPassword()
	if err != nil {
		return "", nil, err
	}
	hash, err = bcrypt.GenerateFromPassword([]byte(password), r.cost)
	if err != nil {
		return "", nil, fmt.Errorf("hash password: %w", err)
	}
	return password, hash, nil
}

// timestamp is the current time in UTC at microsecond precision, the
// precision every supported database keeps.
func (r *Registry) timestamp() time.Time {
	return r.now().UTC().Truncate(time.Microsecond)
}

func cloneAttrs(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

func cloneThing(t Thing) Thing {
	t.Attributes = cloneAttrs(t.Attributes)
	return t
}
