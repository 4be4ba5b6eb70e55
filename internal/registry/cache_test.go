package registry

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/store"
)

// instrumented returns a registry whose bcrypt comparisons are counted and
// whose clock is controlled by the test.
func instrumented(t *testing.T, opts Options) (*Registry, *atomic.Int64, *time.Time) {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts.HashCost = 4
	r, err := New(ctx, db, opts)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	cmp := r.compare
	r.compare = func(h, p []byte) error { calls.Add(1); return cmp(h, p) }
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	return r, &calls, &now
}

func TestVerifyCache(t *testing.T) {
	ctx := context.Background()
	r, calls, now := instrumented(t, Options{CacheTTL: time.Minute})
	_, creds, err := r.CreateThing(ctx, Thing{Name: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name      string
		advance   time.Duration
		do        func() error
		pass      string // "" = creds.Password
		wantOK    bool
		wantCalls int64 // bcrypt comparisons made by this step
	}{
		{name: "first verify compares", wantOK: true, wantCalls: 1},
		{name: "second verify is cached", wantOK: true, wantCalls: 0},
		{name: "wrong password is compared, not cached", pass: "nope", wantCalls: 1},
		{name: "right password still cached", wantOK: true, wantCalls: 0},
		{name: "still cached just before expiry", advance: time.Minute - time.Nanosecond, wantOK: true, wantCalls: 0},
		{name: "expired entry compares again", advance: time.Nanosecond, wantOK: true, wantCalls: 1},
		{name: "unknown user runs a dummy compare", do: func() error { _, err := r.VerifyPassword(ctx, "ghost", "pw"); return err }, wantCalls: 1},
	}
	for _, s := range steps {
		*now = now.Add(s.advance)
		before := calls.Load()
		var err error
		if s.do != nil {
			err = s.do()
		} else {
			pass := s.pass
			if pass == "" {
				pass = creds.Password
			}
			_, err = r.VerifyPassword(ctx, "dev", pass)
		}
		if s.wantOK != (err == nil) {
			t.Fatalf("%s: err = %v", s.name, err)
		}
		if !s.wantOK && !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("%s: err = %v, want ErrBadCredentials", s.name, err)
		}
		if got := calls.Load() - before; got != s.wantCalls {
			t.Fatalf("%s: %d bcrypt comparisons, want %d", s.name, got, s.wantCalls)
		}
	}
}

func TestVerifyCacheDisabled(t *testing.T) {
	ctx := context.Background()
	r, calls, _ := instrumented(t, Options{CacheTTL: -1})
	_, creds, err := r.CreateThing(ctx, Thing{Name: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := r.VerifyPassword(ctx, "dev", creds.Password); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 3 || r.cache.len() != 0 {
		t.Errorf("calls=%d cached=%d with the cache disabled", calls.Load(), r.cache.len())
	}
}

func TestCachePurgeRace(t *testing.T) {
	// A verification that read the old hash before a reset and finishes
	// after it must not cache the old password.
	c := newCredCache(time.Minute, 10)
	now := time.Now()
	sum := sha256.Sum256([]byte("old"))
	epoch := c.currentEpoch()
	c.purge("dev") // the reset commits meanwhile
	c.put("dev", sum, Thing{Name: "dev"}, epoch, now)
	if _, ok := c.get("dev", sum, now); ok {
		t.Fatal("stale verification was cached after a purge")
	}
	c.put("dev", sum, Thing{Name: "dev"}, c.currentEpoch(), now)
	if _, ok := c.get("dev", sum, now); !ok {
		t.Fatal("fresh verification was not cached")
	}
	if _, ok := c.get("dev", sha256.Sum256([]byte("other")), now); ok {
		t.Fatal("different password hit the cache")
	}
}

func TestCacheBounded(t *testing.T) {
	const max = 100
	c := newCredCache(time.Minute, max)
	now := time.Now()
	for i := range 10 * max {
		c.put(fmt.Sprintf("dev-%d", i), [32]byte{}, Thing{}, c.currentEpoch(), now)
		if c.len() > max {
			t.Fatalf("cache grew to %d entries, bound is %d", c.len(), max)
		}
	}
	// Expired entries are preferred victims.
	c2 := newCredCache(time.Minute, 2)
	c2.put("old", [32]byte{}, Thing{}, 0, now.Add(-2*time.Minute))
	c2.put("live", [32]byte{}, Thing{}, 0, now)
	c2.put("new", [32]byte{}, Thing{}, 0, now)
	if _, ok := c2.get("live", [32]byte{}, now); !ok {
		t.Error("live entry evicted while an expired one was present")
	}
}

func TestCachedThingIsACopy(t *testing.T) {
	ctx := context.Background()
	r, _, _ := instrumented(t, Options{})
	_, creds, err := r.CreateThing(ctx, Thing{Name: "dev", Attributes: map[string]string{"a": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	th, err := r.VerifyPassword(ctx, "dev", creds.Password)
	if err != nil {
		t.Fatal(err)
	}
	th.Attributes["a"] = "mutated"
	th2, err := r.VerifyPassword(ctx, "dev", creds.Password)
	if err != nil || th2.Attributes["a"] != "1" {
		t.Errorf("cached thing was mutated through a returned value: %+v %v", th2, err)
	}
}
