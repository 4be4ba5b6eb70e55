package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/edgewise-iot/edgewise/internal/pki"
	"github.com/edgewise-iot/edgewise/internal/policy"
	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/rules"
)

// Registry is what apply needs of internal/registry.
type Registry interface {
	ListTypes(ctx context.Context, p registry.ListPage) ([]registry.ThingType, string, error)
	CreateType(ctx context.Context, t registry.ThingType) (registry.ThingType, error)
	UpdateType(ctx context.Context, name string, u registry.TypeUpdate) (registry.ThingType, error)
	DeleteType(ctx context.Context, name string) error
	AllGroups(ctx context.Context) ([]registry.Group, error)
	CreateGroup(ctx context.Context, g registry.Group) (registry.Group, error)
	UpdateGroup(ctx context.Context, name string, u registry.GroupUpdate) (registry.Group, error)
	DeleteGroup(ctx context.Context, name string) error
	AllThings(ctx context.Context, fn func([]registry.Thing) error) error
	CreateThing(ctx context.Context, t registry.Thing) (registry.Thing, registry.Credentials, error)
	UpdateThing(ctx context.Context, name string, u registry.ThingUpdate) (registry.Thing, error)
	DeleteThing(ctx context.Context, name string) error
	Memberships(ctx context.Context, fn func(group, thing string)) error
	AddToGroup(ctx context.Context, group, thing string) error
	RemoveFromGroup(ctx context.Context, group, thing string) error
}

// Rules is what apply needs of the rules manager.
type Rules interface {
	List(ctx context.Context) []rules.Rule
	Create(ctx context.Context, r rules.Rule) (rules.Rule, error)
	Update(ctx context.Context, r rules.Rule) (rules.Rule, error)
	Delete(ctx context.Context, name string) error
}

// Policies is what apply needs of the policy store.
type Policies interface {
	List(ctx context.Context, o policy.ListOptions) ([]policy.Policy, string, error)
	Create(ctx context.Context, name string, doc []byte) (policy.Policy, error)
	Update(ctx context.Context, name string, doc []byte) (policy.Policy, error)
	Delete(ctx context.Context, name string) error
	Attach(ctx context.Context, name string, t policy.Target) error
	Detach(ctx context.Context, name string, t policy.Target) error
	Targets(ctx context.Context, name string) ([]policy.Target, error)
}

// Certs is what apply needs of the PKI.
type Certs interface {
	List(ctx context.Context, o pki.ListOptions) ([]pki.Certificate, string, error)
	CreateCertificate(ctx context.Context, thing string, o pki.CreateOptions) (pki.Bundle, error)
	SetStatus(ctx context.Context, id string, st pki.Status) error
}

// ThingStates deletes the device state of deleted things (optional).
type ThingStates interface {
	Delete(ctx context.Context, thing string) error
}

// Applier plans and applies fleet files. Policies and Certs may be nil:
// files using them are then refused.
type Applier struct {
	Registry Registry
	Rules    Rules
	Policies Policies
	Certs    Certs
	States   ThingStates
}

// Change is one step of a plan.
type Change struct {
	Action string   `json:"action"` // create, update, delete
	Kind   string   `json:"kind"`   // thing_type, group, thing, policy, certificate, rule
	Name   string   `json:"name"`
	Fields []string `json:"fields,omitempty"` // what changes, for updates
	run    func(ctx context.Context, r *Result) error
}

// String renders the change as a plan line: "+ thing x", "~ group y (a, b)".
func (c Change) String() string {
	sym := map[string]string{"create": "+", "update": "~", "delete": "-"}[c.Action]
	s := sym + " " + c.Kind + " " + c.Name
	if len(c.Fields) > 0 {
		s += "\n" + "    " + strings.Join(c.Fields, "\n    ")
	}
	return s
}

// IssuedCert is a certificate issued by apply, with its private key.
type IssuedCert struct {
	Thing   string `json:"thing"`
	ID      string `json:"id"`
	CertPEM string `json:"cert_pem"`
	KeyPEM  string `json:"key_pem"`
	CAPEM   string `json:"ca_pem"`
}

// Result is a plan and, once applied, what applying produced.
type Result struct {
	Changes []Change `json:"changes"`
	// Fingerprint identifies the plan; Apply with a fingerprint refuses
	// to run a different plan.
	Fingerprint string `json:"fingerprint"`
	Applied     bool   `json:"applied"`
	Done        int    `json:"done"` // changes applied (all of them unless Error)
	Error       string `json:"error,omitempty"`
	// Credentials of created things and certificates issued (secrets,
	// returned once).
	Credentials  []registry.Credentials `json:"credentials,omitempty"`
	Certificates []IssuedCert           `json:"certificates,omitempty"`
}

// state is the server's current state.
type state struct {
	types      map[string]registry.ThingType
	groups     map[string]registry.Group
	things     map[string]registry.Thing
	members    map[string][]string // thing -> groups, sorted
	policies   map[string]policy.Policy
	attached   map[policy.Target][]string // target -> policies, sorted
	rules      map[string]rules.Rule
	thingOrder []string
}

func (a *Applier) load(ctx context.Context, needCerts bool) (*state, error) {
	st := &state{types: map[string]registry.ThingType{}, groups: map[string]registry.Group{}, things: map[string]registry.Thing{},
		members: map[string][]string{}, policies: map[string]policy.Policy{}, attached: map[policy.Target][]string{}, rules: map[string]rules.Rule{}}
	p := registry.ListPage{Limit: registry.MaxListLimit}
	for {
		ts, next, err := a.Registry.ListTypes(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			st.types[t.Name] = t
		}
		if next == "" {
			break
		}
		p.After = next
	}
	gs, err := a.Registry.AllGroups(ctx)
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		st.groups[g.Name] = g
	}
	if err := a.Registry.AllThings(ctx, func(page []registry.Thing) error {
		for _, t := range page {
			st.things[t.Name] = t
			st.thingOrder = append(st.thingOrder, t.Name)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := a.Registry.Memberships(ctx, func(g, t string) { st.members[t] = append(st.members[t], g) }); err != nil {
		return nil, err
	}
	for t := range st.members {
		slices.Sort(st.members[t])
	}
	if a.Policies != nil {
		o := policy.ListOptions{Limit: 1000}
		for {
			ps, next, err := a.Policies.List(ctx, o)
			if err != nil {
				return nil, err
			}
			for _, p := range ps {
				st.policies[p.Name] = p
				ts, err := a.Policies.Targets(ctx, p.Name)
				if err != nil {
					return nil, err
				}
				for _, t := range ts {
					st.attached[t] = append(st.attached[t], p.Name)
				}
			}
			if next == "" {
				break
			}
			o.After = next
		}
		for t := range st.attached {
			slices.Sort(st.attached[t])
		}
	}
	if a.Rules != nil {
		for _, r := range a.Rules.List(ctx) {
			st.rules[r.Name] = r
		}
	}
	return st, nil
}

// certsOf returns the non-revoked certificates attached to thing.
func (a *Applier) certsOf(ctx context.Context, thing string) ([]pki.Certificate, error) {
	var out []pki.Certificate
	o := pki.ListOptions{Thing: thing, Limit: pki.MaxListLimit}
	for {
		cs, next, err := a.Certs.List(ctx, o)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if c.Status != pki.StatusRevoked {
				out = append(out, c)
			}
		}
		if next == "" {
			return out, nil
		}
		o.After = next
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

func attrDiff(old, new map[string]string) []string {
	var out []string
	keys := slices.Sorted(maps.Keys(old))
	for _, k := range slices.Sorted(maps.Keys(new)) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		o, had := old[k]
		n, has := new[k]
		switch {
		case had && !has:
			out = append(out, fmt.Sprintf("attributes.%s: %q -> (removed)", k, o))
		case !had && has:
			out = append(out, fmt.Sprintf("attributes.%s: (none) -> %q", k, n))
		case o != n:
			out = append(out, fmt.Sprintf("attributes.%s: %q -> %q", k, o, n))
		}
	}
	return out
}

func listDiff(field string, old, new []string) []string {
	if slices.Equal(old, new) {
		return nil
	}
	return []string{fmt.Sprintf("%s: [%s] -> [%s]", field, strings.Join(old, ", "), strings.Join(new, ", "))}
}

func strDiff(field, old, new string) []string {
	if old == new {
		return nil
	}
	return []string{fmt.Sprintf("%s: %q -> %q", field, old, new)}
}

// Plan computes the changes that make the server match f (prune: also
// deleting undeclared resources of the kinds f manages).
func (a *Applier) Plan(ctx context.Context, f *File, prune bool) (*Result, error) {
	if f.Policies != nil && a.Policies == nil {
		return nil, invalid("policies are not available on this server")
	}
	st, err := a.load(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("apply: read current state: %w", err)
	}
	var cs []Change
	add := func(c Change) { cs = append(cs, c) }
	if err := a.checkRefs(f, st); err != nil {
		return nil, err
	}

	// 1. Thing types.
	if f.ThingTypes != nil {
		for _, t := range *f.ThingTypes {
			t := t
			want := registry.ThingType{Name: t.Name, Description: t.Description, SearchableAttributes: sortedCopy(t.SearchableAttributes), Deprecated: t.Deprecated}
			old, ok := st.types[t.Name]
			if !ok {
				add(Change{Action: "create", Kind: "thing_type", Name: t.Name, run: func(ctx context.Context, _ *Result) error {
					if _, err := a.Registry.CreateType(ctx, registry.ThingType{Name: want.Name, Description: want.Description, SearchableAttributes: want.SearchableAttributes}); err != nil {
						return err
					}
					if want.Deprecated {
						_, err := a.Registry.UpdateType(ctx, want.Name, registry.TypeUpdate{Deprecated: &want.Deprecated})
						return err
					}
					return nil
				}})
				continue
			}
			var fields []string
			fields = append(fields, strDiff("description", old.Description, want.Description)...)
			fields = append(fields, listDiff("searchable_attributes", sortedCopy(old.SearchableAttributes), want.SearchableAttributes)...)
			if old.Deprecated != want.Deprecated {
				fields = append(fields, fmt.Sprintf("deprecated: %v -> %v", old.Deprecated, want.Deprecated))
			}
			if len(fields) > 0 {
				add(Change{Action: "update", Kind: "thing_type", Name: t.Name, Fields: fields, run: func(ctx context.Context, _ *Result) error {
					sa := want.SearchableAttributes
					_, err := a.Registry.UpdateType(ctx, want.Name, registry.TypeUpdate{Description: &want.Description, SearchableAttributes: &sa, Deprecated: &want.Deprecated})
					return err
				}})
			}
		}
	}

	// 2. Policy documents.
	if f.Policies != nil {
		for _, p := range *f.Policies {
			doc, _ := policyJSON(p.Document) // checked by Parse
			name := p.Name
			old, ok := st.policies[name]
			switch {
			case !ok:
				add(Change{Action: "create", Kind: "policy", Name: name, run: func(ctx context.Context, _ *Result) error {
					_, err := a.Policies.Create(ctx, name, doc)
					return err
				}})
			case !sameJSON(old.Document, doc):
				add(Change{Action: "update", Kind: "policy", Name: name, Fields: []string{"document"}, run: func(ctx context.Context, _ *Result) error {
					_, err := a.Policies.Update(ctx, name, doc)
					return err
				}})
			}
		}
	}

	// 3. Groups, parents before children.
	if f.Groups != nil {
		gs := slices.Clone(*f.Groups)
		depth := map[string]int{}
		var depthOf func(name string, n int) int
		byName := map[string]Group{}
		for _, g := range gs {
			byName[g.Name] = g
		}
		depthOf = func(name string, n int) int {
			g, ok := byName[name]
			if !ok || g.Parent == "" || n > registry.MaxGroupDepth {
				return n
			}
			return depthOf(g.Parent, n+1)
		}
		for _, g := range gs {
			depth[g.Name] = depthOf(g.Name, 0)
		}
		sort.SliceStable(gs, func(i, j int) bool { return depth[gs[i].Name] < depth[gs[j].Name] })
		for _, g := range gs {
			g := g
			target := policy.Target{Kind: policy.TargetGroup, Name: g.Name}
			attach := a.attachments(st, target, g.Policies, f.Policies != nil || len(g.Policies) > 0)
			old, ok := st.groups[g.Name]
			if !ok {
				add(Change{Action: "create", Kind: "group", Name: g.Name, Fields: attach.fields, run: func(ctx context.Context, _ *Result) error {
					if _, err := a.Registry.CreateGroup(ctx, registry.Group{Name: g.Name, Parent: g.Parent, Description: g.Description, Attributes: g.Attributes, Query: g.Query}); err != nil {
						return err
					}
					return attach.run(ctx)
				}})
				continue
			}
			if old.Parent != g.Parent || old.Dynamic() != (g.Query != "") {
				return nil, invalid("group %q: its parent or its kind (static or dynamic) cannot change; delete it and apply again", g.Name)
			}
			var fields []string
			fields = append(fields, strDiff("description", old.Description, g.Description)...)
			fields = append(fields, attrDiff(old.Attributes, g.Attributes)...)
			fields = append(fields, strDiff("query", old.Query, g.Query)...)
			fields = append(fields, attach.fields...)
			if len(fields) > 0 {
				add(Change{Action: "update", Kind: "group", Name: g.Name, Fields: fields, run: func(ctx context.Context, _ *Result) error {
					u := registry.GroupUpdate{Description: &g.Description, Attributes: &g.Attributes}
					if g.Query != "" {
						u.Query = &g.Query
					}
					if _, err := a.Registry.UpdateGroup(ctx, g.Name, u); err != nil {
						return err
					}
					return attach.run(ctx)
				}})
			}
		}
	}

	// 4. Things with their groups, policies and certificates.
	if f.Things != nil {
		for _, t := range *f.Things {
			t := t
			groups := sortedCopy(t.Groups)
			target := policy.Target{Kind: policy.TargetThing, Name: t.Name}
			attach := a.attachments(st, target, t.Policies, f.Policies != nil || len(t.Policies) > 0)
			old, ok := st.things[t.Name]
			oldGroups := st.members[t.Name]
			memberRun := func(ctx context.Context) error {
				for _, g := range groups {
					if !slices.Contains(oldGroups, g) {
						if err := a.Registry.AddToGroup(ctx, g, t.Name); err != nil {
							return err
						}
					}
				}
				for _, g := range oldGroups {
					if !slices.Contains(groups, g) {
						if err := a.Registry.RemoveFromGroup(ctx, g, t.Name); err != nil && !errors.Is(err, registry.ErrNotFound) {
							return err
						}
					}
				}
				return attach.run(ctx)
			}
			if !ok {
				fields := append(listDiff("groups", nil, groups), attach.fields...)
				add(Change{Action: "create", Kind: "thing", Name: t.Name, Fields: fields, run: func(ctx context.Context, r *Result) error {
					_, creds, err := a.Registry.CreateThing(ctx, registry.Thing{Name: t.Name, Type: t.Type, Attributes: t.Attributes})
					if err != nil {
						return err
					}
					r.Credentials = append(r.Credentials, creds)
					oldGroups = nil
					return memberRun(ctx)
				}})
			} else {
				var fields []string
				fields = append(fields, strDiff("type", old.Type, t.Type)...)
				attrs := attrDiff(old.Attributes, t.Attributes)
				fields = append(fields, attrs...)
				fields = append(fields, listDiff("groups", oldGroups, groups)...)
				fields = append(fields, attach.fields...)
				if len(fields) > 0 {
					add(Change{Action: "update", Kind: "thing", Name: t.Name, Fields: fields, run: func(ctx context.Context, _ *Result) error {
						if old.Type != t.Type || len(attrs) > 0 {
							u := registry.ThingUpdate{Type: &t.Type, ReplaceAttributes: true, Attributes: map[string]*string{}}
							for k, v := range t.Attributes {
								u.Attributes[k] = &v
							}
							if _, err := a.Registry.UpdateThing(ctx, t.Name, u); err != nil {
								return err
							}
						}
						return memberRun(ctx)
					}})
				}
			}
			if t.Certificate != nil {
				c, err := a.certChange(ctx, t, ok)
				if err != nil {
					return nil, err
				}
				if c != nil {
					add(*c)
				}
			}
		}
	}

	// 5. Rules.
	if f.Rules != nil {
		if a.Rules == nil {
			return nil, invalid("rules are not available on this server")
		}
		for _, d := range *f.Rules {
			want := d.Rule()
			old, ok := st.rules[want.Name]
			if !ok {
				add(Change{Action: "create", Kind: "rule", Name: want.Name, run: func(ctx context.Context, _ *Result) error {
					_, err := a.Rules.Create(ctx, want)
					return err
				}})
				continue
			}
			if fields := ruleDiff(old, want); len(fields) > 0 {
				add(Change{Action: "update", Kind: "rule", Name: want.Name, Fields: fields, run: func(ctx context.Context, _ *Result) error {
					_, err := a.Rules.Update(ctx, want)
					return err
				}})
			}
		}
	}

	if prune {
		cs = append(cs, a.prunePlan(f, st)...)
	}
	res := &Result{Changes: cs}
	if res.Changes == nil {
		res.Changes = []Change{}
	}
	res.Fingerprint = fingerprint(cs)
	return res, nil
}

// checkRefs verifies that every group, parent and policy a file refers to
// is declared in it or exists.
func (a *Applier) checkRefs(f *File, st *state) error {
	groups := maps.Clone(st.groups)
	if f.Groups != nil {
		for _, g := range *f.Groups {
			groups[g.Name] = registry.Group{Name: g.Name, Query: g.Query}
		}
	}
	policies := map[string]bool{}
	for n := range st.policies {
		policies[n] = true
	}
	if f.Policies != nil {
		for _, p := range *f.Policies {
			policies[p.Name] = true
		}
	}
	checkPolicies := func(owner string, ps []string) error {
		if len(ps) > 0 && a.Policies == nil {
			return invalid("%s: policies are not available on this server", owner)
		}
		for _, p := range ps {
			if !policies[p] {
				return invalid("%s: policy %q is neither declared nor on the server", owner, p)
			}
		}
		return nil
	}
	if f.Groups != nil {
		for _, g := range *f.Groups {
			if g.Parent != "" {
				if _, ok := groups[g.Parent]; !ok {
					return invalid("group %q: parent group %q is neither declared nor on the server", g.Name, g.Parent)
				}
			}
			if err := checkPolicies(fmt.Sprintf("group %q", g.Name), g.Policies); err != nil {
				return err
			}
		}
	}
	if f.Things != nil {
		for _, t := range *f.Things {
			for _, g := range t.Groups {
				gr, ok := groups[g]
				if !ok {
					return invalid("thing %q: group %q is neither declared nor on the server", t.Name, g)
				}
				if gr.Query != "" {
					return invalid("thing %q: group %q is dynamic; its members follow its query", t.Name, g)
				}
			}
			if err := checkPolicies(fmt.Sprintf("thing %q", t.Name), t.Policies); err != nil {
				return err
			}
			if t.Certificate != nil && a.Certs == nil {
				return invalid("thing %q: certificates are not available on this server", t.Name)
			}
		}
	}
	return nil
}

type attachPlan struct {
	fields []string
	run    func(ctx context.Context) error
}

// attachments plans the policies attached to target so they become want.
func (a *Applier) attachments(st *state, target policy.Target, want []string, managed bool) attachPlan {
	if !managed || a.Policies == nil {
		return attachPlan{run: func(context.Context) error { return nil }}
	}
	want = sortedCopy(want)
	have := st.attached[target]
	return attachPlan{fields: listDiff("policies", have, want), run: func(ctx context.Context) error {
		for _, p := range want {
			if !slices.Contains(have, p) {
				if err := a.Policies.Attach(ctx, p, target); err != nil {
					return err
				}
			}
		}
		for _, p := range have {
			if !slices.Contains(want, p) {
				if err := a.Policies.Detach(ctx, p, target); err != nil && !errors.Is(err, policy.ErrNotFound) {
					return err
				}
			}
		}
		return nil
	}}
}

func (a *Applier) certChange(ctx context.Context, t Thing, exists bool) (*Change, error) {
	want, _ := certStatus(t.Certificate)
	var have []pki.Certificate
	if exists {
		var err error
		if have, err = a.certsOf(ctx, t.Name); err != nil {
			return nil, fmt.Errorf("apply: certificates of %q: %w", t.Name, err)
		}
	}
	for _, c := range have {
		if c.Status == want {
			return nil, nil
		}
	}
	if len(have) > 0 {
		id := have[0].ID
		return &Change{Action: "update", Kind: "certificate", Name: t.Name + " " + shortID(id),
			Fields: []string{fmt.Sprintf("status: %s -> %s", have[0].Status, want)},
			run:    func(ctx context.Context, _ *Result) error { return a.Certs.SetStatus(ctx, id, want) }}, nil
	}
	return &Change{Action: "create", Kind: "certificate", Name: t.Name, Fields: []string{"status: " + string(want)},
		run: func(ctx context.Context, r *Result) error {
			b, err := a.Certs.CreateCertificate(ctx, t.Name, pki.CreateOptions{})
			if err != nil {
				return err
			}
			if want != pki.StatusActive {
				if err := a.Certs.SetStatus(ctx, b.ID, want); err != nil {
					return err
				}
			}
			r.Certificates = append(r.Certificates, IssuedCert{Thing: t.Name, ID: b.ID, CertPEM: string(b.CertPEM), KeyPEM: string(b.KeyPEM), CAPEM: string(b.CAPEM)})
			return nil
		}}, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func ruleDiff(old, want rules.Rule) []string {
	var fields []string
	fields = append(fields, strDiff("description", old.Description, want.Description)...)
	fields = append(fields, strDiff("sql", old.SQL, want.SQL)...)
	if old.Enabled != want.Enabled {
		fields = append(fields, fmt.Sprintf("enabled: %v -> %v", old.Enabled, want.Enabled))
	}
	ja, _ := json.Marshal(old.Actions)
	jb, _ := json.Marshal(want.Actions)
	if !sameJSON(ja, jb) {
		fields = append(fields, "actions") // values may hold secrets: named, not shown
	}
	ja, _ = json.Marshal(old.ErrorAction)
	jb, _ = json.Marshal(want.ErrorAction)
	if !sameJSON(ja, jb) {
		fields = append(fields, "error_action")
	}
	return fields
}

// prunePlan deletes what f's managed sections do not declare: rules,
// policies (detached first), things, groups (children first) and thing
// types (deprecated first, as deletion requires).
func (a *Applier) prunePlan(f *File, st *state) []Change {
	var cs []Change
	if f.Rules != nil {
		keep := map[string]bool{}
		for _, r := range *f.Rules {
			keep[r.Name] = true
		}
		for _, n := range slices.Sorted(maps.Keys(st.rules)) {
			if !keep[n] {
				cs = append(cs, Change{Action: "delete", Kind: "rule", Name: n, run: func(ctx context.Context, _ *Result) error { return a.Rules.Delete(ctx, n) }})
			}
		}
	}
	if f.Policies != nil {
		keep := map[string]bool{}
		for _, p := range *f.Policies {
			keep[p.Name] = true
		}
		for _, n := range slices.Sorted(maps.Keys(st.policies)) {
			if keep[n] {
				continue
			}
			cs = append(cs, Change{Action: "delete", Kind: "policy", Name: n, run: func(ctx context.Context, _ *Result) error {
				ts, err := a.Policies.Targets(ctx, n)
				if err != nil {
					return err
				}
				for _, t := range ts {
					if err := a.Policies.Detach(ctx, n, t); err != nil && !errors.Is(err, policy.ErrNotFound) {
						return err
					}
				}
				return a.Policies.Delete(ctx, n)
			}})
		}
	}
	if f.Things != nil {
		keep := map[string]bool{}
		for _, t := range *f.Things {
			keep[t.Name] = true
		}
		for _, n := range st.thingOrder {
			if keep[n] {
				continue
			}
			cs = append(cs, Change{Action: "delete", Kind: "thing", Name: n, run: func(ctx context.Context, _ *Result) error {
				if err := a.Registry.DeleteThing(ctx, n); err != nil {
					return err
				}
				if a.States != nil {
					_ = a.States.Delete(ctx, n) // a thing without state is fine
				}
				return nil
			}})
		}
	}
	if f.Groups != nil {
		keep := map[string]bool{}
		for _, g := range *f.Groups {
			keep[g.Name] = true
		}
		depth := func(n string) int {
			d := 0
			for g := st.groups[n]; g.Parent != "" && d <= registry.MaxGroupDepth; g = st.groups[g.Parent] {
				d++
			}
			return d
		}
		var del []string
		for n := range st.groups {
			if !keep[n] {
				del = append(del, n)
			}
		}
		sort.Slice(del, func(i, j int) bool {
			di, dj := depth(del[i]), depth(del[j])
			return di > dj || di == dj && del[i] < del[j]
		})
		for _, n := range del {
			cs = append(cs, Change{Action: "delete", Kind: "group", Name: n, run: func(ctx context.Context, _ *Result) error { return a.Registry.DeleteGroup(ctx, n) }})
		}
	}
	if f.ThingTypes != nil {
		keep := map[string]bool{}
		for _, t := range *f.ThingTypes {
			keep[t.Name] = true
		}
		for _, n := range slices.Sorted(maps.Keys(st.types)) {
			if keep[n] {
				continue
			}
			dep := !st.types[n].Deprecated
			cs = append(cs, Change{Action: "delete", Kind: "thing_type", Name: n, run: func(ctx context.Context, _ *Result) error {
				if dep {
					t := true
					if _, err := a.Registry.UpdateType(ctx, n, registry.TypeUpdate{Deprecated: &t}); err != nil {
						return err
					}
				}
				return a.Registry.DeleteType(ctx, n)
			}})
		}
	}
	return cs
}

func fingerprint(cs []Change) string {
	h := sha256.New()
	for _, c := range cs {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\n", c.Action, c.Kind, c.Name, strings.Join(c.Fields, "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Apply plans f and runs the plan. With fingerprint set, a plan that
// differs from the one the caller reviewed is refused with ErrStale. On a
// failed step it returns the result so far (Done, Error) and the error.
func (a *Applier) Apply(ctx context.Context, f *File, prune bool, fingerprint string) (*Result, error) {
	res, err := a.Plan(ctx, f, prune)
	if err != nil {
		return nil, err
	}
	if fingerprint != "" && fingerprint != res.Fingerprint {
		return nil, ErrStale
	}
	res.Applied = true
	for _, c := range res.Changes {
		if err := c.run(ctx, res); err != nil {
			res.Error = fmt.Sprintf("%s %s %s: %v", c.Action, c.Kind, c.Name, err)
			return res, fmt.Errorf("apply: %s %s %s: %w", c.Action, c.Kind, c.Name, err)
		}
		res.Done++
	}
	return res, nil
}
