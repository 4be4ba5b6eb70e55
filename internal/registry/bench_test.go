package registry_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/store"
)

func benchRegistry(b *testing.B, opts registry.Options) (*registry.Registry, registry.Credentials) {
	b.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "meta.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	r, err := registry.New(ctx, db, opts)
	if err != nil {
		b.Fatal(err)
	}
	_, creds, err := r.CreateThing(ctx, registry.Thing{Name: "dev", Attributes: map[string]string{"site": "lyon"}})
	if err != nil {
		b.Fatal(err)
	}
	return r, creds
}

// BenchmarkVerifyPassword compares a cache hit with a full verification at
// the default bcrypt cost (one database read plus one bcrypt comparison).
func BenchmarkVerifyPassword(b *testing.B) {
	for _, bc := range []struct {
		name string
		ttl  time.Duration
		cost int
	}{{"cached", 0, 0}, {"uncached", -1, 0}, {"uncached-cost4", -1, 4}} {
		b.Run(bc.name, func(b *testing.B) {
			r, creds := benchRegistry(b, registry.Options{CacheTTL: bc.ttl, HashCost: bc.cost})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.VerifyPassword(ctx, creds.Username, creds.Password); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyPasswordCachedParallel measures cache hits from many
// connections at once (a reconnect storm).
func BenchmarkVerifyPasswordCachedParallel(b *testing.B) {
	r, creds := benchRegistry(b, registry.Options{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.VerifyPassword(ctx, creds.Username, creds.Password); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetThing measures a registry read through SQLite.
func BenchmarkGetThing(b *testing.B) {
	r, _ := benchRegistry(b, registry.Options{HashCost: 4})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.GetThing(ctx, "dev"); err != nil {
			b.Fatal(err)
		}
	}
}
