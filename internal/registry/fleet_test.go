package registry_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/store"
)

func ptr[T any](v T) *T { return &v }

func TestThingTypes(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	tt, err := r.CreateType(ctx, registry.ThingType{Name: "sensor", Description: "temperature sensor", SearchableAttributes: []string{"location"}})
	if err != nil {
		t.Fatal(err)
	}
	if tt.Deprecated || tt.CreatedAt.IsZero() {
		t.Fatalf("created %+v", tt)
	}
	if _, err := r.CreateType(ctx, registry.ThingType{Name: "sensor"}); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("duplicate type: %v", err)
	}
	for _, bad := range []registry.ThingType{{Name: "a/b"}, {Name: "x", SearchableAttributes: []string{"a", "a"}}, {Name: "y", SearchableAttributes: []string{"a:b"}}} {
		if _, err := r.CreateType(ctx, bad); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("CreateType(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, _, err := r.CreateThing(ctx, registry.Thing{Name: "s1", Type: "sensor"}); err != nil {
		t.Fatal(err)
	}
	// An unregistered type is allowed.
	if _, _, err := r.CreateThing(ctx, registry.Thing{Name: "g1", Type: "gateway"}); err != nil {
		t.Fatal(err)
	}
	tt, err = r.UpdateType(ctx, "sensor", registry.TypeUpdate{Deprecated: ptr(true)})
	if err != nil || !tt.Deprecated || tt.DeprecatedAt == nil {
		t.Fatalf("deprecate: %+v %v", tt, err)
	}
	if got, _ := r.GetType(ctx, "sensor"); !got.Deprecated || got.Description != "temperature sensor" || !slices.Equal(got.SearchableAttributes, []string{"location"}) {
		t.Fatalf("stored %+v", got)
	}
	_, _, err = r.CreateThing(ctx, registry.Thing{Name: "s2", Type: "sensor"})
	if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "deprecated") {
		t.Fatalf("thing of deprecated type: %v", err)
	}
	if _, err := r.UpdateThing(ctx, "g1", registry.ThingUpdate{Type: ptr("sensor")}); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("change to deprecated type: %v", err)
	}
	if err := r.DeleteType(ctx, "sensor"); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("delete type in use: %v", err)
	}
	if err := r.DeleteThing(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.UpdateType(ctx, "sensor", registry.TypeUpdate{Deprecated: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteType(ctx, "sensor"); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("delete undeprecated type: %v", err)
	}
	if _, _, err := r.CreateThing(ctx, registry.Thing{Name: "s3", Type: "sensor"}); err != nil {
		t.Fatalf("undeprecated type refuses things: %v", err)
	}
	if err := r.DeleteThing(ctx, "s3"); err != nil {
		t.Fatal(err)
	}
	r.UpdateType(ctx, "sensor", registry.TypeUpdate{Deprecated: ptr(true)})
	if err := r.DeleteType(ctx, "sensor"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetType(ctx, "sensor"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("deleted type: %v", err)
	}
}

func TestListTypesPages(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	for i := range 7 {
		if _, err := r.CreateType(ctx, registry.ThingType{Name: fmt.Sprintf("t%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	p := registry.ListPage{Limit: 3}
	for pages := 0; ; pages++ {
		ts, next, err := r.ListTypes(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range ts {
			all = append(all, tt.Name)
		}
		if next == "" {
			if pages != 2 {
				t.Fatalf("%d pages", pages+1)
			}
			break
		}
		p.After = next
	}
	if len(all) != 7 || all[0] != "t00" || all[6] != "t06" {
		t.Fatalf("listed %v", all)
	}
}

func TestUpdateThingAttributes(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	if _, _, err := r.CreateThing(ctx, registry.Thing{Name: "d", Attributes: map[string]string{"a": "1", "b": "2"}}); err != nil {
		t.Fatal(err)
	}
	th, err := r.UpdateThing(ctx, "d", registry.ThingUpdate{Attributes: map[string]*string{"a": ptr("10"), "b": nil, "c": ptr("3")}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(th.Attributes) != "map[a:10 c:3]" || !th.UpdatedAt.After(th.CreatedAt) {
		t.Fatalf("updated %+v", th)
	}
	got, _ := r.GetThing(ctx, "d")
	if fmt.Sprint(got.Attributes) != "map[a:10 c:3]" {
		t.Fatalf("stored %+v", got)
	}
	th, err = r.UpdateThing(ctx, "d", registry.ThingUpdate{ReplaceAttributes: true, Attributes: map[string]*string{"z": ptr("1")}, Type: ptr("lamp")})
	if err != nil || fmt.Sprint(th.Attributes) != "map[z:1]" || th.Type != "lamp" {
		t.Fatalf("replace: %+v %v", th, err)
	}
	if _, err := r.UpdateThing(ctx, "d", registry.ThingUpdate{Attributes: map[string]*string{"bad key": ptr("1")}}); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := r.UpdateThing(ctx, "nope", registry.ThingUpdate{}); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("missing thing: %v", err)
	}
	// Concurrent merges do not lose each other's attributes.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.UpdateThing(ctx, "d", registry.ThingUpdate{Attributes: map[string]*string{fmt.Sprint("k", i): ptr("v")}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _ = r.GetThing(ctx, "d")
	if len(got.Attributes) != 9 {
		t.Fatalf("after concurrent updates: %v", got.Attributes)
	}
}

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string)                  { r.mu.Lock(); r.events = append(r.events, s); r.mu.Unlock() }
func (r *recorder) ThingChanged(t registry.Thing) { r.add("thing " + t.Name) }
func (r *recorder) ThingDeleted(n string)         { r.add("-thing " + n) }
func (r *recorder) GroupChanged(g registry.Group) { r.add("group " + g.Name) }
func (r *recorder) GroupDeleted(n string)         { r.add("-group " + n) }
func (r *recorder) MembershipChanged(g, th string, m bool) {
	r.add(fmt.Sprintf("member %s %s %v", g, th, m))
}

func TestGroups(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := &recorder{}
	r, err := registry.New(ctx, db, registry.Options{HashCost: 4, Listener: rec})
	if err != nil {
		t.Fatal(err)
	}
	// A chain of MaxGroupDepth nested groups; one more level is refused.
	parent := ""
	for i := 1; i <= registry.MaxGroupDepth; i++ {
		g, err := r.CreateGroup(ctx, registry.Group{Name: fmt.Sprint("l", i), Parent: parent, Attributes: map[string]string{"level": fmt.Sprint(i)}})
		if err != nil {
			t.Fatalf("level %d: %v", i, err)
		}
		parent = g.Name
	}
	if _, err := r.CreateGroup(ctx, registry.Group{Name: "too-deep", Parent: parent}); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("depth %d: %v", registry.MaxGroupDepth+1, err)
	}
	if _, err := r.CreateGroup(ctx, registry.Group{Name: "orphan", Parent: "nope"}); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("missing parent: %v", err)
	}
	if _, err := r.CreateGroup(ctx, registry.Group{Name: "hot", Query: "shadow.reported.temperature > 30"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateGroup(ctx, registry.Group{Name: "bad-q", Query: "color:red"}); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "column 1") {
		t.Fatalf("bad query: %v", err)
	}
	if _, err := r.CreateGroup(ctx, registry.Group{Name: "kid", Parent: "hot"}); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("child of dynamic group: %v", err)
	}
	if _, err := r.CreateGroup(ctx, registry.Group{Name: "l1"}); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	kids, _, err := r.ListGroups(ctx, registry.ListPage{}, "l1")
	if err != nil || len(kids) != 1 || kids[0].Name != "l2" {
		t.Fatalf("children of l1: %v %v", kids, err)
	}

	for _, n := range []string{"a", "b"} {
		if _, _, err := r.CreateThing(ctx, registry.Thing{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range [][2]string{{"l1", "a"}, {"l3", "a"}, {"l3", "b"}, {"l3", "b"}} {
		if err := r.AddToGroup(ctx, m[0], m[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.AddToGroup(ctx, "hot", "a"); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("add to dynamic: %v", err)
	}
	if err := r.AddToGroup(ctx, "l1", "ghost"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("add missing thing: %v", err)
	}
	gs, _ := r.GroupsOfThing(ctx, "a")
	if !slices.Equal(gs, []string{"l1", "l3"}) {
		t.Fatalf("groups of a: %v", gs)
	}
	ms, next, err := r.GroupMembers(ctx, "l3", registry.ListPage{Limit: 1})
	if err != nil || !slices.Equal(ms, []string{"a"}) || next != "a" {
		t.Fatalf("members page 1: %v %q %v", ms, next, err)
	}
	ms, next, _ = r.GroupMembers(ctx, "l3", registry.ListPage{Limit: 1, After: next})
	if !slices.Equal(ms, []string{"b"}) || next != "" {
		t.Fatalf("members page 2: %v %q", ms, next)
	}
	if err := r.RemoveFromGroup(ctx, "l3", "a"); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveFromGroup(ctx, "l3", "a"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	if err := r.DeleteGroup(ctx, "l1"); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("delete group with children: %v", err)
	}
	// Deleting a thing removes its memberships.
	if err := r.DeleteThing(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	ms, _, _ = r.GroupMembers(ctx, "l3", registry.ListPage{})
	if len(ms) != 0 {
		t.Fatalf("members after delete: %v", ms)
	}
	g, err := r.UpdateGroup(ctx, "hot", registry.GroupUpdate{Query: ptr("shadow.reported.temperature > 35"), Description: ptr("very hot")})
	if err != nil || g.Query != "shadow.reported.temperature > 35" {
		t.Fatalf("update dynamic: %+v %v", g, err)
	}
	if _, err := r.UpdateGroup(ctx, "l1", registry.GroupUpdate{Query: ptr("thingName:x")}); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("query on static group: %v", err)
	}
	for i := registry.MaxGroupDepth; i >= 1; i-- {
		if err := r.DeleteGroup(ctx, fmt.Sprint("l", i)); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := r.AllGroups(ctx)
	if len(all) != 1 || all[0].Name != "hot" {
		t.Fatalf("left %v", all)
	}
	rec.mu.Lock()
	ev := strings.Join(rec.events, ";")
	rec.mu.Unlock()
	for _, want := range []string{"group l7", "member l3 b true", "member l3 a false", "-thing b", "-group l1", "thing a"} {
		if !strings.Contains(ev, want) {
			t.Errorf("listener missed %q in %s", want, ev)
		}
	}
	if strings.Contains(ev, "member l3 b true;member l3 b true") {
		t.Error("re-adding a member notified twice")
	}
}
