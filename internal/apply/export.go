package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/edgewise-iot/edgewise/internal/policy"
	"github.com/edgewise-iot/edgewise/internal/rules"
)

// Export returns the server's state as a fleet file: every thing type,
// group, thing (with its groups, policies and certificate state), policy
// and rule. Applying it to the same server changes nothing.
func (a *Applier) Export(ctx context.Context) (*File, error) {
	st, err := a.load(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("apply: export: %w", err)
	}
	f := &File{}
	types := []ThingType{}
	for _, n := range slices.Sorted(maps.Keys(st.types)) {
		t := st.types[n]
		types = append(types, ThingType{Name: t.Name, Description: t.Description, SearchableAttributes: sortedCopy(t.SearchableAttributes), Deprecated: t.Deprecated})
	}
	f.ThingTypes = &types
	groups := []Group{}
	for _, n := range slices.Sorted(maps.Keys(st.groups)) {
		g := st.groups[n]
		groups = append(groups, Group{Name: g.Name, Parent: g.Parent, Description: g.Description, Attributes: g.Attributes, Query: g.Query,
			Policies: st.attached[policy.Target{Kind: policy.TargetGroup, Name: g.Name}]})
	}
	f.Groups = &groups
	things := []Thing{}
	for _, n := range st.thingOrder {
		t := st.things[n]
		th := Thing{Name: t.Name, Type: t.Type, Attributes: t.Attributes, Groups: st.members[n],
			Policies: st.attached[policy.Target{Kind: policy.TargetThing, Name: n}]}
		if a.Certs != nil {
			cs, err := a.certsOf(ctx, n)
			if err != nil {
				return nil, fmt.Errorf("apply: export: certificates of %q: %w", n, err)
			}
			if len(cs) > 0 {
				th.Certificate = &Certificate{Status: string(cs[0].Status)}
				for _, c := range cs {
					if c.Status == "ACTIVE" {
						th.Certificate.Status = "ACTIVE"
					}
				}
			}
		}
		things = append(things, th)
	}
	f.Things = &things
	if a.Policies != nil {
		ps := []Policy{}
		for _, n := range slices.Sorted(maps.Keys(st.policies)) {
			var doc any
			if err := json.Unmarshal(st.policies[n].Document, &doc); err != nil {
				return nil, fmt.Errorf("apply: export: policy %q: %w", n, err)
			}
			ps = append(ps, Policy{Name: n, Document: doc})
		}
		f.Policies = &ps
	}
	if a.Rules != nil {
		rs := []rules.Definition{}
		for _, n := range slices.Sorted(maps.Keys(st.rules)) {
			r := st.rules[n]
			enabled := r.Enabled
			d := rules.Definition{Name: r.Name, Description: r.Description, SQL: r.SQL, Actions: r.Actions, ErrorAction: r.ErrorAction}
			if !enabled {
				d.Enabled = &enabled
			}
			rs = append(rs, d)
		}
		f.Rules = &rs
	}
	return f, nil
}
