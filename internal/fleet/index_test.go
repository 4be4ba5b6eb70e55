package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/fleet"
	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/shadow"
	"github.com/edgewise-iot/edgewise/internal/store"
)

type env struct {
	reg    *registry.Registry
	ix     *fleet.Index
	states *shadow.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	states, err := shadow.New(ctx, db, shadow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { states.Close(context.Background()) })
	ix := fleet.New(fleet.Options{Shadows: fleet.ShadowStore{Store: states}})
	reg, err := registry.New(ctx, db, registry.Options{HashCost: 4, Listener: ix})
	if err != nil {
		t.Fatal(err)
	}
	return &env{reg: reg, ix: ix, states: states}
}

func names(docs []fleet.ThingDoc) string {
	var out []string
	for _, d := range docs {
		out = append(out, d.Name)
	}
	return strings.Join(out, ",")
}

func (e *env) search(t *testing.T, q string) string {
	t.Helper()
	docs, next, err := e.ix.Search(context.Background(), q, 1000, "")
	if err != nil {
		t.Fatalf("Search(%q): %v", q, err)
	}
	if next != "" {
		t.Fatalf("Search(%q): unexpected next page", q)
	}
	return names(docs)
}

func TestSearchFleet(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	mk := func(name, typ string, attrs map[string]string) {
		if _, _, err := e.reg.CreateThing(ctx, registry.Thing{Name: name, Type: typ, Attributes: attrs}); err != nil {
			t.Fatal(err)
		}
	}
	mk("sensor-1", "sensor", map[string]string{"location": "lab", "floor": "3"})
	mk("sensor-2", "sensor", map[string]string{"location": "hall", "floor": "12"})
	mk("gw-1", "gateway", map[string]string{"location": "lab"})
	mk("lamp-1", "", nil)
	for _, g := range []registry.Group{{Name: "site"}, {Name: "lab", Parent: "site"}, {Name: "bench", Parent: "lab"}, {Name: "hot", Query: "shadow.reported.temperature > 30"}} {
		if _, err := e.reg.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.reg.AddToGroup(ctx, "bench", "sensor-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.AddToGroup(ctx, "site", "gw-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.states.UpdateReported(ctx, "sensor-1", map[string]any{"temperature": 31.5, "fw": map[string]any{"version": "1.2"}}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.states.UpdateReported(ctx, "sensor-2", map[string]any{"temperature": 20}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	// sensor-1 connects twice, then one connection drops: still connected.
	dev := func(name, client string) broker.ClientInfo {
		return broker.ClientInfo{ClientID: client, Principal: &broker.Principal{Name: name}}
	}
	e.ix.OnConnect(dev("sensor-1", "a"))
	e.ix.OnConnect(dev("sensor-1", "b"))
	e.ix.OnConnect(dev("gw-1", "gw-1"))
	e.ix.OnConnect(broker.ClientInfo{ClientID: "ops", Principal: &broker.Principal{Name: "admin", Admin: true}})
	e.ix.OnDisconnect(dev("sensor-1", "a"))
	e.ix.OnDisconnect(dev("gw-1", "gw-1"))

	cases := []struct{ q, want string }{
		{"", "gw-1,lamp-1,sensor-1,sensor-2"},
		{"thingName:sensor-*", "sensor-1,sensor-2"},
		{"thingTypeName:sensor", "sensor-1,sensor-2"},
		{"attributes.location:lab", "gw-1,sensor-1"},
		{"attributes.location:lab AND connected:true", "sensor-1"},
		{"connectivity.connected:false", "gw-1,lamp-1,sensor-2"},
		{"connectivity.timestamp:*", "gw-1,sensor-1"},
		{"shadow.reported.temperature > 30", "sensor-1"},
		{"shadow.reported.fw.version:1.2", "sensor-1"},
		{"shadow.reported.temperature:[0 TO 100] AND NOT thingName:sensor-1", "sensor-2"},
		{"thingGroupNames:site", "gw-1,sensor-1"},
		{"thingGroupNames:lab", "sensor-1"},
		{"thingGroupNames:bench OR thingTypeName:gateway", "gw-1,sensor-1"},
		{"attributes.floor > 5", "sensor-2"},
	}
	for _, c := range cases {
		if got := e.search(t, c.q); got != c.want {
			t.Errorf("%q: got [%s], want [%s]", c.q, got, c.want)
		}
	}
	docs, _, _ := e.ix.Search(ctx, "thingName:sensor-1", 10, "")
	d := docs[0]
	if !slices.Equal(d.Groups, []string{"bench", "lab", "site"}) || !d.Connectivity.Connected || d.Connectivity.Clients != 1 || d.Attributes["floor"] != "3" {
		t.Fatalf("doc %+v", d)
	}

	// Pagination: pages of one, in name order, ending with "".
	var got []string
	after := ""
	for {
		page, next, err := e.ix.Search(ctx, "thingName:*", 1, after)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, names(page))
		if next == "" {
			break
		}
		after = next
	}
	if strings.Join(got, ",") != "gw-1,lamp-1,sensor-1,sensor-2" {
		t.Fatalf("pages %v", got)
	}
	if n, err := e.ix.Count(ctx, "thingTypeName:sensor OR thingTypeName:gateway"); err != nil || n != 3 {
		t.Fatalf("count %d %v", n, err)
	}
	_, _, err := e.ix.Search(ctx, "thingName:(", 10, "")
	if !errors.Is(err, fleet.ErrInvalid) || !strings.Contains(err.Error(), "column") {
		t.Fatalf("bad query: %v", err)
	}

	// Groups: static with ancestors, dynamic by query.
	gs, err := e.ix.GroupsOf(ctx, "sensor-1")
	if err != nil || !slices.Equal(gs, []string{"bench", "hot", "lab", "site"}) {
		t.Fatalf("GroupsOf sensor-1: %v %v", gs, err)
	}
	gs, _ = e.ix.GroupsOf(ctx, "sensor-2")
	if len(gs) != 0 {
		t.Fatalf("GroupsOf sensor-2: %v", gs)
	}
	ms, _, err := e.ix.GroupMembers(ctx, "site", 10, "")
	if err != nil || names(ms) != "gw-1,sensor-1" {
		t.Fatalf("members of site: %v %v", names(ms), err)
	}
	if _, err := e.states.UpdateReported(ctx, "sensor-2", map[string]any{"temperature": 40}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	things, err := e.ix.GroupThings(ctx, "hot", 10)
	if err != nil || strings.Join(things, ",") != "sensor-1,sensor-2" {
		t.Fatalf("dynamic members: %v %v", things, err)
	}
	if _, err := e.ix.GroupThings(ctx, "hot", 1); !errors.Is(err, fleet.ErrInvalid) {
		t.Fatalf("over max: %v", err)
	}
	if _, err := e.ix.GroupThings(ctx, "nope", 1); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("unknown group: %v", err)
	}

	// Changes flow in through the listener.
	if _, err := e.reg.UpdateThing(ctx, "lamp-1", registry.ThingUpdate{Attributes: map[string]*string{"location": ptr("lab")}}); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.RemoveFromGroup(ctx, "bench", "sensor-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.DeleteThing(ctx, "gw-1"); err != nil {
		t.Fatal(err)
	}
	mk("gw-0", "gateway", nil)
	if got := e.search(t, "attributes.location:lab OR thingTypeName:gateway"); got != "gw-0,lamp-1,sensor-1" {
		t.Fatalf("after changes: %s", got)
	}
	if got := e.search(t, "thingGroupNames:*"); got != "" {
		t.Fatalf("groups after changes: %s", got)
	}

	// A second index loaded from the registry sees the same fleet.
	ix2 := fleet.New(fleet.Options{Shadows: fleet.ShadowStore{Store: e.states}})
	e.reg.AddToGroup(ctx, "lab", "lamp-1")
	if err := ix2.Load(ctx, e.reg); err != nil {
		t.Fatal(err)
	}
	a, _, _ := e.ix.Search(ctx, "thingGroupNames:site OR shadow.reported.temperature:*", 100, "")
	b, _, _ := ix2.Search(ctx, "thingGroupNames:site OR shadow.reported.temperature:*", 100, "")
	if names(a) != names(b) || names(a) != "lamp-1,sensor-1,sensor-2" {
		t.Fatalf("loaded index %s, live %s", names(b), names(a))
	}
}

func ptr[T any](v T) *T { return &v }

func TestAggregate(t *testing.T) {
	ctx := context.Background()
	ix := fleet.New(fleet.Options{})
	for i := range 10 {
		ix.ThingChanged(registry.Thing{Name: fmt.Sprintf("d%02d", i), Type: []string{"a", "b", "b"}[i%3],
			Attributes: map[string]string{"n": fmt.Sprint(i)}})
	}
	ix.ThingChanged(registry.Thing{Name: "x", Attributes: map[string]string{"n": "not a number"}})
	agg, err := ix.Aggregate(ctx, "attributes.n:*", "attributes.n", fleet.AggStats, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := agg.Stats
	if s.Count != 10 || s.Sum != 45 || *s.Avg != 4.5 || *s.Min != 0 || *s.Max != 9 {
		t.Fatalf("stats %+v", s)
	}
	agg, err = ix.Aggregate(ctx, "", "thingTypeName", fleet.AggTerms, 1)
	if err != nil {
		t.Fatal(err)
	}
	if tm := agg.Terms; len(tm.Buckets) != 1 || tm.Buckets[0] != (fleet.Bucket{Value: "b", Count: 6}) || tm.Other != 4 || tm.Missing != 1 {
		t.Fatalf("terms %+v", tm)
	}
	for _, bad := range [][3]string{{"", "color", "terms"}, {"", "thingName", "sum"}, {"x:", "thingName", "terms"}} {
		if _, err := ix.Aggregate(ctx, bad[0], bad[1], bad[2], 0); !errors.Is(err, fleet.ErrInvalid) {
			t.Errorf("Aggregate(%v) = %v", bad, err)
		}
	}
}
