package fleet_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/fleet"
	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/shadow"
	"github.com/edgewise-iot/edgewise/internal/store"
)

// benchFleet is 100k things: 4 types, 3 attributes (location of 50 sites),
// one static group per site under 5 regions, a third connected, and every
// thing with a reported temperature in the real shadow store.
func benchFleet(b *testing.B, n int) *fleet.Index {
	b.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, ":memory:")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	states, err := shadow.New(ctx, db, shadow.Options{MaxCachedDocuments: n + 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { states.Close(context.Background()) })
	ix := fleet.New(fleet.Options{Shadows: fleet.ShadowStore{Store: states}})
	for r := range 5 {
		ix.GroupChanged(registry.Group{Name: fmt.Sprint("region-", r)})
	}
	for s := range 50 {
		ix.GroupChanged(registry.Group{Name: fmt.Sprint("site-", s), Parent: fmt.Sprint("region-", s%5)})
	}
	types := []string{"sensor", "gateway", "actuator", "camera"}
	for i := range n {
		name := fmt.Sprintf("device-%06d", i)
		ix.ThingChanged(registry.Thing{Name: name, Type: types[i%4], Attributes: map[string]string{
			"location": fmt.Sprint("site-", i%50), "model": fmt.Sprint("m", i%7), "serial": fmt.Sprint(1_000_000 + i)}})
		ix.MembershipChanged(fmt.Sprint("site-", i%50), name, true)
		if i%3 == 0 {
			ix.OnConnect(broker.ClientInfo{ClientID: name, Principal: &broker.Principal{Name: name}})
		}
		if _, err := states.UpdateReported(ctx, name, map[string]any{"temperature": float64(i % 60)}, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	if err := states.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	return ix
}

// BenchmarkSearch100k measures typical fleet queries over 100k things. Run:
//
//	go test -run '^$' -bench Search100k -benchtime 20x -count 5 ./internal/fleet/
func BenchmarkSearch100k(b *testing.B) {
	ix := benchFleet(b, 100_000)
	ctx := context.Background()
	queries := []struct{ name, q string }{
		{"name-prefix-page", "thingName:device-05*"},
		{"type-attr-count", "thingTypeName:sensor AND attributes.location:site-7"},
		{"attr-connected-count", "attributes.location:site-7 AND connected:true"},
		{"group-ancestor-count", "thingGroupNames:region-3"},
		{"shadow-range-count", "shadow.reported.temperature > 55"},
		{"type-and-shadow-count", "thingTypeName:camera AND shadow.reported.temperature > 55"},
	}
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if q.name == "name-prefix-page" {
					if _, _, err := ix.Search(ctx, q.q, 100, ""); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if _, err := ix.Count(ctx, q.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("terms-location", func(b *testing.B) {
		for b.Loop() {
			if _, err := ix.Aggregate(ctx, "thingTypeName:sensor", "attributes.location", fleet.AggTerms, 10); err != nil {
				b.Fatal(err)
			}
		}
	})
}
