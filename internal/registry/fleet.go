package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/edgewise-iot/edgewise/internal/registry/search"
)

// ErrConflict reports a change the current state forbids: deleting a thing
// type that is not deprecated or still in use, or a group that has child
// groups.
var ErrConflict = errors.New("registry: conflict")

// Limits of types and groups.
const (
	// MaxGroupDepth is the deepest nesting of static groups (a root group
	// is at depth 1), as in AWS IoT.
	MaxGroupDepth = 7
	// MaxGroupsPerThing bounds the static groups a thing belongs to
	// directly.
	MaxGroupsPerThing = 50
	// MaxSearchableAttributes bounds a thing type's searchable attributes.
	MaxSearchableAttributes = 50
	// MaxDescriptionLen bounds descriptions of types and groups.
	MaxDescriptionLen = 2028
)

// ThingType describes a kind of thing. Registering a type is optional: a
// thing may name a type that is not registered. A registered, deprecated
// type accepts no new things (nor things changed to it).
type ThingType struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// SearchableAttributes names the attributes users are expected to
	// search by; the fleet index keeps value lists of them for terms
	// aggregations. Every attribute is searchable regardless.
	SearchableAttributes []string   `json:"searchable_attributes,omitempty"`
	Deprecated           bool       `json:"deprecated"`
	DeprecatedAt         *time.Time `json:"deprecated_at,omitempty"`
	CreatedAt            time.Time  `json:"created_at"`
	UpdatedAt            time.Time  `json:"updated_at"`
}

// TypeUpdate changes a thing type; nil fields are left alone.
type TypeUpdate struct {
	Description          *string   `json:"description,omitempty"`
	SearchableAttributes *[]string `json:"searchable_attributes,omitempty"`
	Deprecated           *bool     `json:"deprecated,omitempty"`
}

// Group is a thing group. A static group (Query empty) has members added
// explicitly and may be nested under a Parent; a dynamic group has a fleet
// search Query, its members are the things matching it when read, and it
// has neither parent nor children.
type Group struct {
	Name        string            `json:"name"`
	Parent      string            `json:"parent,omitempty"`
	Description string            `json:"description,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	Query       string            `json:"query,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

// Dynamic reports whether g is a dynamic group.
func (g Group) Dynamic() bool { return g.Query != "" }

// GroupUpdate changes a group; nil fields are left alone. The parent of a
// group and whether it is dynamic never change.
type GroupUpdate struct {
	Description *string            `json:"description,omitempty"`
	Attributes  *map[string]string `json:"attributes,omitempty"`
	Query       *string            `json:"query,omitempty"`
}

// ThingUpdate changes a thing; nil fields are left alone. Attributes are
// merged: a nil value removes that attribute. With ReplaceAttributes the
// thing's attributes become exactly the non-nil entries.
type ThingUpdate struct {
	Type              *string            `json:"type,omitempty"`
	Attributes        map[string]*string `json:"attributes,omitempty"`
	ReplaceAttributes bool               `json:"replace_attributes,omitempty"`
}

// Listener is told about registry changes after they are stored, from the
// goroutine that made them. The fleet index (internal/fleet) is one.
type Listener interface {
	ThingChanged(t Thing)
	ThingDeleted(name string)
	GroupChanged(g Group)
	GroupDeleted(name string)
	MembershipChanged(group, thing string, member bool)
}

// ListPage is a page request of names ordered byte-wise: Limit (0 means
// DefaultListLimit, at most MaxListLimit) entries after the cursor After.
type ListPage struct {
	Limit int
	After string
}

func (p ListPage) limit(op string) (int, error) {
	switch {
	case p.Limit < 0:
		return 0, fmt.Errorf("registry: %s: %w: limit must not be negative, got %d", op, ErrInvalid, p.Limit)
	case p.Limit == 0:
		return DefaultListLimit, nil
	}
	return min(p.Limit, MaxListLimit), nil
}

func (r *Registry) notify(f func(Listener)) {
	if r.listener != nil {
		f(r.listener)
	}
}

// checkType refuses a registered, deprecated thing type for a new or
// changed thing.
func (r *Registry) checkType(ctx context.Context, typ string) error {
	if typ == "" {
		return nil
	}
	tt, err := r.store.GetType(ctx, typ)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if tt.Deprecated {
		return fmt.Errorf("%w: thing type %q is deprecated and accepts no new things", ErrInvalid, typ)
	}
	return nil
}

// UpdateThing changes a thing's type and attributes and returns it as
// stored.
func (r *Registry) UpdateThing(ctx context.Context, name string, u ThingUpdate) (Thing, error) {
	if err := validateName("name", name); err != nil {
		return Thing{}, fmt.Errorf("registry: update thing %s: %w", quoteShort(name), ErrNotFound)
	}
	for attempt := 0; ; attempt++ {
		old, err := r.store.GetThing(ctx, name)
		if err != nil {
			return Thing{}, fmt.Errorf("registry: update thing %q: %w", name, err)
		}
		t := cloneThing(old)
		if u.Type != nil && *u.Type != t.Type {
			if err := r.checkType(ctx, *u.Type); err != nil {
				return Thing{}, fmt.Errorf("registry: update thing %q: %w", name, err)
			}
			t.Type = *u.Type
		}
		if u.ReplaceAttributes {
			t.Attributes = nil
		}
		for k, v := range u.Attributes {
			if v == nil {
				delete(t.Attributes, k)
				continue
			}
			if t.Attributes == nil {
				t.Attributes = map[string]string{}
			}
			t.Attributes[k] = *v
		}
		if err := ValidateThing(t); err != nil {
			return Thing{}, fmt.Errorf("registry: update thing %q: %w", name, err)
		}
		t.Attributes = cloneAttrs(t.Attributes)
		t.UpdatedAt = r.timestamp()
		if !t.UpdatedAt.After(old.UpdatedAt) {
			t.UpdatedAt = old.UpdatedAt.Add(time.Microsecond)
		}
		err = r.store.UpdateThing(ctx, t, old.UpdatedAt)
		if errors.Is(err, errStale) && attempt < 10 {
			continue // a concurrent update won; merge into its result
		}
		if err != nil {
			return Thing{}, fmt.Errorf("registry: update thing %q: %w", name, err)
		}
		r.cache.purge(name)
		r.notify(func(l Listener) { l.ThingChanged(cloneThing(t)) })
		return t, nil
	}
}

// errStale reports an optimistic update that lost a race.
var errStale = errors.New("registry: stale update")

// AllThings calls fn for every thing, in name order, a page at a time.
func (r *Registry) AllThings(ctx context.Context, fn func([]Thing) error) error {
	after := ""
	for {
		page, err := r.store.ListThings(ctx, after, "", MaxListLimit)
		if err != nil {
			return fmt.Errorf("registry: list things: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		if err := fn(page); err != nil {
			return err
		}
		after = page[len(page)-1].Name
	}
}

// --- thing types ---

func validateType(t ThingType) error {
	if err := validateName("type name", t.Name); err != nil {
		return err
	}
	if n := len([]rune(t.Description)); n > MaxDescriptionLen {
		return fmt.Errorf("%w: description must be at most %d characters, got %d", ErrInvalid, MaxDescriptionLen, n)
	}
	if len(t.SearchableAttributes) > MaxSearchableAttributes {
		return fmt.Errorf("%w: at most %d searchable attributes, got %d", ErrInvalid, MaxSearchableAttributes, len(t.SearchableAttributes))
	}
	seen := map[string]bool{}
	for _, a := range t.SearchableAttributes {
		if err := validateAttributeKey(a); err != nil {
			return err
		}
		if seen[a] {
			return fmt.Errorf("%w: searchable attribute %q is listed twice", ErrInvalid, a)
		}
		seen[a] = true
	}
	return nil
}

// CreateType registers a thing type (not deprecated).
func (r *Registry) CreateType(ctx context.Context, t ThingType) (ThingType, error) {
	if err := validateType(t); err != nil {
		return ThingType{}, fmt.Errorf("registry: create thing type: %w", err)
	}
	now := r.timestamp()
	t.SearchableAttributes = slices.Clone(t.SearchableAttributes)
	t.Deprecated, t.DeprecatedAt, t.CreatedAt, t.UpdatedAt = false, nil, now, now
	if err := r.store.InsertType(ctx, t); err != nil {
		return ThingType{}, fmt.Errorf("registry: create thing type %q: %w", t.Name, err)
	}
	r.log.LogAttrs(ctx, slog.LevelInfo, "thing type created", slog.String("type", t.Name))
	return t, nil
}

// GetType returns a registered thing type.
func (r *Registry) GetType(ctx context.Context, name string) (ThingType, error) {
	if validateName("type", name) != nil {
		return ThingType{}, fmt.Errorf("registry: get thing type %s: %w", quoteShort(name), ErrNotFound)
	}
	t, err := r.store.GetType(ctx, name)
	if err != nil {
		return ThingType{}, fmt.Errorf("registry: get thing type %q: %w", name, err)
	}
	return t, nil
}

// ListTypes returns a page of thing types by name and the next cursor.
func (r *Registry) ListTypes(ctx context.Context, p ListPage) ([]ThingType, string, error) {
	limit, err := p.limit("list thing types")
	if err != nil {
		return nil, "", err
	}
	ts, err := r.store.ListTypes(ctx, p.After, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("registry: list thing types: %w", err)
	}
	next := ""
	if len(ts) > limit {
		ts, next = ts[:limit], ts[limit-1].Name
	}
	return ts, next, nil
}

// UpdateType changes a thing type's description, searchable attributes or
// deprecation.
func (r *Registry) UpdateType(ctx context.Context, name string, u TypeUpdate) (ThingType, error) {
	t, err := r.GetType(ctx, name)
	if err != nil {
		return ThingType{}, err
	}
	if u.Description != nil {
		t.Description = *u.Description
	}
	if u.SearchableAttributes != nil {
		t.SearchableAttributes = slices.Clone(*u.SearchableAttributes)
	}
	now := r.timestamp()
	if u.Deprecated != nil && *u.Deprecated != t.Deprecated {
		t.Deprecated = *u.Deprecated
		t.DeprecatedAt = nil
		if t.Deprecated {
			t.DeprecatedAt = &now
		}
	}
	if err := validateType(t); err != nil {
		return ThingType{}, fmt.Errorf("registry: update thing type: %w", err)
	}
	t.UpdatedAt = now
	if err := r.store.UpdateType(ctx, t); err != nil {
		return ThingType{}, fmt.Errorf("registry: update thing type %q: %w", name, err)
	}
	return t, nil
}

// DeleteType removes a thing type. As in AWS IoT, it must be deprecated
// first, and no thing may still have it.
func (r *Registry) DeleteType(ctx context.Context, name string) error {
	t, err := r.GetType(ctx, name)
	if err != nil {
		return err
	}
	if !t.Deprecated {
		return fmt.Errorf("registry: delete thing type %q: %w: deprecate it first", name, ErrConflict)
	}
	used, err := r.store.ListThings(ctx, "", name, 1)
	if err != nil {
		return fmt.Errorf("registry: delete thing type %q: %w", name, err)
	}
	if len(used) > 0 {
		return fmt.Errorf("registry: delete thing type %q: %w: thing %q still has this type", name, ErrConflict, used[0].Name)
	}
	if err := r.store.DeleteType(ctx, name); err != nil {
		return fmt.Errorf("registry: delete thing type %q: %w", name, err)
	}
	return nil
}

// --- groups ---

func validateGroup(g Group) error {
	if err := validateName("group name", g.Name); err != nil {
		return err
	}
	if n := len([]rune(g.Description)); n > MaxDescriptionLen {
		return fmt.Errorf("%w: description must be at most %d characters, got %d", ErrInvalid, MaxDescriptionLen, n)
	}
	if err := ValidateThing(Thing{Name: "x", Attributes: g.Attributes}); err != nil {
		return err
	}
	if g.Query != "" {
		if g.Parent != "" {
			return fmt.Errorf("%w: a dynamic group cannot have a parent", ErrInvalid)
		}
		if _, err := search.Parse(g.Query); err != nil {
			return fmt.Errorf("%w: query: %w", ErrInvalid, err)
		}
	}
	return nil
}

// CreateGroup creates a static group (nested under Parent if set, at most
// MaxGroupDepth deep) or, when Query is set, a dynamic group.
func (r *Registry) CreateGroup(ctx context.Context, g Group) (Group, error) {
	if err := validateGroup(g); err != nil {
		return Group{}, fmt.Errorf("registry: create group: %w", err)
	}
	if g.Parent != "" {
		depth, err := r.depth(ctx, g.Parent)
		if err != nil {
			return Group{}, fmt.Errorf("registry: create group %q: %w", g.Name, err)
		}
		if depth+1 > MaxGroupDepth {
			return Group{}, fmt.Errorf("registry: create group %q: %w: groups nest at most %d deep", g.Name, ErrInvalid, MaxGroupDepth)
		}
	}
	now := r.timestamp()
	g.Attributes = cloneAttrs(g.Attributes)
	g.CreatedAt, g.UpdatedAt = now, now
	if err := r.store.InsertGroup(ctx, g); err != nil {
		return Group{}, fmt.Errorf("registry: create group %q: %w", g.Name, err)
	}
	r.notify(func(l Listener) { l.GroupChanged(g) })
	r.log.LogAttrs(ctx, slog.LevelInfo, "group created", slog.String("group", g.Name), slog.Bool("dynamic", g.Dynamic()))
	return g, nil
}

// depth returns the depth of the static group name (1 for a root group).
func (r *Registry) depth(ctx context.Context, name string) (int, error) {
	d := 0
	for cur := name; cur != ""; d++ {
		if d > MaxGroupDepth {
			return d, nil
		}
		g, err := r.store.GetGroup(ctx, cur)
		if errors.Is(err, ErrNotFound) {
			return 0, fmt.Errorf("%w: parent group %q does not exist", ErrInvalid, cur)
		}
		if err != nil {
			return 0, err
		}
		if g.Dynamic() {
			return 0, fmt.Errorf("%w: dynamic group %q cannot have child groups", ErrInvalid, cur)
		}
		cur = g.Parent
	}
	return d, nil
}

// GetGroup returns a group.
func (r *Registry) GetGroup(ctx context.Context, name string) (Group, error) {
	if validateName("group", name) != nil {
		return Group{}, fmt.Errorf("registry: get group %s: %w", quoteShort(name), ErrNotFound)
	}
	g, err := r.store.GetGroup(ctx, name)
	if err != nil {
		return Group{}, fmt.Errorf("registry: get group %q: %w", name, err)
	}
	return g, nil
}

// ListGroups returns a page of groups by name; with parent set, only its
// direct children.
func (r *Registry) ListGroups(ctx context.Context, p ListPage, parent string) ([]Group, string, error) {
	limit, err := p.limit("list groups")
	if err != nil {
		return nil, "", err
	}
	gs, err := r.store.ListGroups(ctx, p.After, parent, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("registry: list groups: %w", err)
	}
	next := ""
	if len(gs) > limit {
		gs, next = gs[:limit], gs[limit-1].Name
	}
	return gs, next, nil
}

// UpdateGroup changes a group's description, attributes or (dynamic
// groups) query.
func (r *Registry) UpdateGroup(ctx context.Context, name string, u GroupUpdate) (Group, error) {
	g, err := r.GetGroup(ctx, name)
	if err != nil {
		return Group{}, err
	}
	if u.Description != nil {
		g.Description = *u.Description
	}
	if u.Attributes != nil {
		g.Attributes = cloneAttrs(*u.Attributes)
	}
	if u.Query != nil {
		if !g.Dynamic() || *u.Query == "" {
			return Group{}, fmt.Errorf("registry: update group %q: %w: a group's query can be changed but not added or removed (static and dynamic groups are different kinds)", name, ErrInvalid)
		}
		g.Query = *u.Query
	}
	if err := validateGroup(g); err != nil {
		return Group{}, fmt.Errorf("registry: update group: %w", err)
	}
	g.UpdatedAt = r.timestamp()
	if err := r.store.UpdateGroup(ctx, g); err != nil {
		return Group{}, fmt.Errorf("registry: update group %q: %w", name, err)
	}
	r.notify(func(l Listener) { l.GroupChanged(g) })
	return g, nil
}

// DeleteGroup removes a group and its memberships; a group with child
// groups cannot be deleted (ErrConflict).
func (r *Registry) DeleteGroup(ctx context.Context, name string) error {
	if validateName("group", name) != nil {
		return fmt.Errorf("registry: delete group %s: %w", quoteShort(name), ErrNotFound)
	}
	kids, err := r.store.ListGroups(ctx, "", name, 1)
	if err != nil {
		return fmt.Errorf("registry: delete group %q: %w", name, err)
	}
	if len(kids) > 0 {
		return fmt.Errorf("registry: delete group %q: %w: it has child group %q", name, ErrConflict, kids[0].Name)
	}
	if err := r.store.DeleteGroup(ctx, name); err != nil {
		return fmt.Errorf("registry: delete group %q: %w", name, err)
	}
	r.notify(func(l Listener) { l.GroupDeleted(name) })
	return nil
}

// AddToGroup makes thing a member of the static group. Adding a member
// again is not an error.
func (r *Registry) AddToGroup(ctx context.Context, group, thing string) error {
	g, err := r.GetGroup(ctx, group)
	if err != nil {
		return err
	}
	if g.Dynamic() {
		return fmt.Errorf("registry: add %q to group %q: %w: membership of a dynamic group follows its query", thing, group, ErrInvalid)
	}
	if _, err := r.GetThing(ctx, thing); err != nil {
		return err
	}
	groups, err := r.store.GroupsOfThing(ctx, thing)
	if err != nil {
		return fmt.Errorf("registry: add %q to group %q: %w", thing, group, err)
	}
	if slices.Contains(groups, group) {
		return nil
	}
	if len(groups) >= MaxGroupsPerThing {
		return fmt.Errorf("registry: add %q to group %q: %w: a thing belongs to at most %d groups", thing, group, ErrInvalid, MaxGroupsPerThing)
	}
	if err := r.store.AddMember(ctx, group, thing, r.timestamp()); err != nil {
		return fmt.Errorf("registry: add %q to group %q: %w", thing, group, err)
	}
	r.notify(func(l Listener) { l.MembershipChanged(group, thing, true) })
	return nil
}

// RemoveFromGroup ends thing's membership of group; ErrNotFound if it was
// not a member.
func (r *Registry) RemoveFromGroup(ctx context.Context, group, thing string) error {
	if validateName("group", group) != nil || validateName("thing", thing) != nil {
		return fmt.Errorf("registry: remove from group: %w", ErrNotFound)
	}
	if err := r.store.RemoveMember(ctx, group, thing); err != nil {
		return fmt.Errorf("registry: remove %q from group %q: %w: not a member", thing, group, err)
	}
	r.notify(func(l Listener) { l.MembershipChanged(group, thing, false) })
	return nil
}

// GroupsOfThing returns the static groups thing belongs to directly, by
// name.
func (r *Registry) GroupsOfThing(ctx context.Context, thing string) ([]string, error) {
	gs, err := r.store.GroupsOfThing(ctx, thing)
	if err != nil {
		return nil, fmt.Errorf("registry: groups of %q: %w", thing, err)
	}
	return gs, nil
}

// Memberships calls fn with every (group, thing) pair of static groups.
func (r *Registry) Memberships(ctx context.Context, fn func(group, thing string)) error {
	if err := r.store.Memberships(ctx, fn); err != nil {
		return fmt.Errorf("registry: memberships: %w", err)
	}
	return nil
}

// AllGroups returns every group.
func (r *Registry) AllGroups(ctx context.Context) ([]Group, error) {
	var all []Group
	after := ""
	for {
		gs, err := r.store.ListGroups(ctx, after, "", MaxListLimit)
		if err != nil {
			return nil, fmt.Errorf("registry: list groups: %w", err)
		}
		all = append(all, gs...)
		if len(gs) < MaxListLimit {
			return all, nil
		}
		after = gs[len(gs)-1].Name
	}
}

// GroupMembers returns a page of the direct members of the static group,
// by name. Dynamic groups' members come from the fleet index.
func (r *Registry) GroupMembers(ctx context.Context, group string, p ListPage) ([]string, string, error) {
	limit, err := p.limit("list group members")
	if err != nil {
		return nil, "", err
	}
	if _, err := r.GetGroup(ctx, group); err != nil {
		return nil, "", err
	}
	ms, err := r.store.Members(ctx, group, p.After, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("registry: members of %q: %w", group, err)
	}
	next := ""
	if len(ms) > limit {
		ms, next = ms[:limit], ms[limit-1]
	}
	return ms, next, nil
}
