package fleet

import (
	"context"
	"fmt"
	"slices"

	"github.com/edgewise-iot/edgewise/internal/registry/search"
)

// GroupsOf returns every group thing belongs to, sorted: its static groups
// with all their ancestors, and the dynamic groups whose query it matches.
// It implements the policy engine's GroupResolver. An unknown thing belongs
// to no group.
func (ix *Index) GroupsOf(ctx context.Context, thing string) ([]string, error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	d := ix.things[thing]
	if d == nil {
		return nil, nil
	}
	out := ix.ancestorsLocked(d.groups, nil)
	v := newView(ix, ctx)
	for name, g := range ix.groups {
		if g.query == nil {
			continue
		}
		v.reset(d)
		ok := g.query.Matcher().Match(v)
		if v.err != nil {
			return nil, fmt.Errorf("fleet: groups of %q: %w", thing, v.err)
		}
		if ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// groupQuery returns the query selecting the members of group: a dynamic
// group's own query, or thingGroupNames:NAME for a static group (its
// direct members and the members of its descendants).
func (ix *Index) groupQuery(group string) (*search.Query, error) {
	ix.mu.RLock()
	g := ix.groups[group]
	ix.mu.RUnlock()
	if g == nil {
		return nil, fmt.Errorf("%w: group %q does not exist", ErrNotFound, group)
	}
	if g.g.Query != "" {
		if g.query == nil {
			return nil, fmt.Errorf("%w: dynamic group %q has an invalid query", ErrInvalid, group)
		}
		return g.query, nil
	}
	return &search.Query{Root: &search.Node{Kind: search.Term, Field: search.Field{Kind: search.GroupNames},
		Op: search.OpEq, Value: search.Literal{Text: group, Quoted: true}}}, nil
}

// GroupMembers returns a page of the things in group (for a static group,
// including the things of its descendant groups), ordered by name.
func (ix *Index) GroupMembers(ctx context.Context, group string, limit int, after string) ([]ThingDoc, string, error) {
	q, err := ix.groupQuery(group)
	if err != nil {
		return nil, "", err
	}
	return ix.SearchQuery(ctx, q, limit, after)
}

// GroupThings returns the names of every thing in group, at most max
// (ErrInvalid beyond). It serves job targets.
func (ix *Index) GroupThings(ctx context.Context, group string, max int) ([]string, error) {
	q, err := ix.groupQuery(group)
	if err != nil {
		return nil, err
	}
	ix.rlockSorted()
	defer ix.mu.RUnlock()
	var out []string
	tooMany := false
	err = ix.scanLocked(ctx, q, "", func(d *doc) bool {
		if len(out) == max {
			tooMany = true
			return false
		}
		out = append(out, d.t.Name)
		return true
	})
	if err != nil {
		return nil, err
	}
	if tooMany {
		return nil, fmt.Errorf("%w: group %q has more than %d things", ErrInvalid, group, max)
	}
	return out, nil
}
