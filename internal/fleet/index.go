package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/registry/search"
)

// Sentinel errors.
var (
	// ErrInvalid reports a bad query, field or page request.
	ErrInvalid = errors.New("fleet: invalid request")
	// ErrNotFound reports an unknown group.
	ErrNotFound = errors.New("fleet: not found")
)

// Page bounds.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// MaxTerms bounds the buckets of a terms aggregation.
	MaxTerms = 1000
)

// Shadows reads device shadows (the classic shadow's sections).
type Shadows interface {
	// View calls fn with the desired and reported sections of thing's
	// classic shadow (not at all when it has none); fn must not keep or
	// modify them.
	View(ctx context.Context, thing string, fn func(desired, reported map[string]any)) error
}

// Options configure an Index.
type Options struct {
	Logger  *slog.Logger
	Shadows Shadows // nil: shadow fields never match
	Now     func() time.Time
}

// Connectivity is a thing's connection state as the broker reported it.
type Connectivity struct {
	Connected bool `json:"connected"`
	// Timestamp is when it last connected or disconnected; nil if never
	// since the server started.
	Timestamp *time.Time `json:"timestamp,omitempty"`
	// Clients is the number of connected clients authenticated as it.
	Clients int `json:"clients,omitempty"`
}

// ThingDoc is a search result.
type ThingDoc struct {
	registry.Thing
	// Groups are the static groups the thing is in, with their ancestors.
	Groups       []string     `json:"thing_group_names,omitempty"`
	Connectivity Connectivity `json:"connectivity"`
}

type doc struct {
	t      registry.Thing
	groups []string // direct static groups, sorted
}

type group struct {
	g     registry.Group
	query *search.Query // dynamic groups
}

type conn struct {
	clients int
	at      time.Time
}

// Index is the fleet index. It is safe for concurrent use.
type Index struct {
	log     *slog.Logger
	shadows Shadows
	now     func() time.Time

	mu     sync.RWMutex
	things map[string]*doc
	names  []string // sorted when !dirty; may hold deleted names until re-sorted
	dirty  bool
	groups map[string]*group
	post   map[string]map[string]struct{} // see postings.go

	connMu sync.Mutex
	conns  map[string]*conn
}

// New returns an empty index; call Load to fill it.
func New(opts Options) *Index {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Index{log: opts.Logger, shadows: opts.Shadows, now: opts.Now,
		things: map[string]*doc{}, groups: map[string]*group{}, conns: map[string]*conn{}, post: map[string]map[string]struct{}{}}
}

// Source is the registry as Load reads it.
type Source interface {
	AllThings(ctx context.Context, fn func([]registry.Thing) error) error
	AllGroups(ctx context.Context) ([]registry.Group, error)
	Memberships(ctx context.Context, fn func(group, thing string)) error
}

// Load replaces the index's things and groups with the registry's.
func (ix *Index) Load(ctx context.Context, src Source) error {
	things := map[string]*doc{}
	var names []string
	if err := src.AllThings(ctx, func(page []registry.Thing) error {
		for _, t := range page {
			things[t.Name] = &doc{t: t}
			names = append(names, t.Name)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("fleet: load: %w", err)
	}
	gs, err := src.AllGroups(ctx)
	if err != nil {
		return fmt.Errorf("fleet: load: %w", err)
	}
	groups := make(map[string]*group, len(gs))
	for _, g := range gs {
		groups[g.Name] = newGroup(g, ix.log)
	}
	if err := src.Memberships(ctx, func(g, t string) {
		if d := things[t]; d != nil {
			d.groups = append(d.groups, g)
		}
	}); err != nil {
		return fmt.Errorf("fleet: load: %w", err)
	}
	for _, d := range things {
		slices.Sort(d.groups)
	}
	sort.Strings(names)
	ix.mu.Lock()
	ix.things, ix.names, ix.dirty, ix.groups = things, names, false, groups
	ix.post = map[string]map[string]struct{}{}
	for _, d := range things {
		ix.indexThingLocked(d.t, true)
		for _, g := range d.groups {
			ix.postAddLocked(groupKey(g), d.t.Name)
		}
	}
	ix.mu.Unlock()
	ix.log.Info("fleet index loaded", "things", len(things), "groups", len(groups))
	return nil
}

func newGroup(g registry.Group, log *slog.Logger) *group {
	gr := &group{g: g}
	if g.Query != "" {
		q, err := search.Parse(g.Query)
		if err != nil { // validated by the registry; a stored bad query matches nothing
			log.Warn("dynamic group has an invalid query", "group", g.Name, "err", err)
		}
		gr.query = q
	}
	return gr
}

// ThingChanged implements registry.Listener.
func (ix *Index) ThingChanged(t registry.Thing) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if old := ix.things[t.Name]; old != nil {
		ix.indexThingLocked(old.t, false)
		ix.indexThingLocked(t, true)
		ix.things[t.Name] = &doc{t: t, groups: old.groups}
		return
	}
	ix.indexThingLocked(t, true)
	ix.things[t.Name] = &doc{t: t}
	if n := len(ix.names); n > 0 && ix.names[n-1] >= t.Name {
		ix.dirty = true
	}
	ix.names = append(ix.names, t.Name)
}

// ThingDeleted implements registry.Listener.
func (ix *Index) ThingDeleted(name string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if d, ok := ix.things[name]; ok {
		ix.indexThingLocked(d.t, false)
		for _, g := range d.groups {
			ix.postDelLocked(groupKey(g), name)
		}
		delete(ix.things, name)
		ix.dirty = true
	}
}

// GroupChanged implements registry.Listener.
func (ix *Index) GroupChanged(g registry.Group) {
	gr := newGroup(g, ix.log)
	ix.mu.Lock()
	ix.groups[g.Name] = gr
	ix.mu.Unlock()
}

// GroupDeleted implements registry.Listener.
func (ix *Index) GroupDeleted(name string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	delete(ix.groups, name)
	members := ix.post[groupKey(name)]
	delete(ix.post, groupKey(name))
	for n := range members {
		d := ix.things[n]
		if d == nil {
			continue
		}
		if i, ok := slices.BinarySearch(d.groups, name); ok {
			ix.things[n] = &doc{t: d.t, groups: slices.Delete(slices.Clone(d.groups), i, i+1)}
		}
	}
}

// MembershipChanged implements registry.Listener.
func (ix *Index) MembershipChanged(g, thing string, member bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	d := ix.things[thing]
	if d == nil {
		return
	}
	i, ok := slices.BinarySearch(d.groups, g)
	switch {
	case member && !ok:
		ix.postAddLocked(groupKey(g), thing)
		ix.things[thing] = &doc{t: d.t, groups: slices.Insert(slices.Clone(d.groups), i, g)}
	case !member && ok:
		ix.postDelLocked(groupKey(g), thing)
		ix.things[thing] = &doc{t: d.t, groups: slices.Delete(slices.Clone(d.groups), i, i+1)}
	}
}

var _ registry.Listener = (*Index)(nil)

// SetShadows sets the shadow reader when it is built after the index; call
// it before the index is used concurrently.
func (ix *Index) SetShadows(s Shadows) { ix.shadows = s }

// OnConnect implements broker.Observer.
func (ix *Index) OnConnect(c broker.ClientInfo) {
	name := identity(c)
	if name == "" {
		return
	}
	ix.connMu.Lock()
	cs := ix.conns[name]
	if cs == nil {
		cs = &conn{}
		ix.conns[name] = cs
	}
	cs.clients++
	cs.at = ix.now().UTC()
	ix.connMu.Unlock()
}

// OnSubscribe implements broker.Observer.
func (ix *Index) OnSubscribe(broker.ClientInfo, string) {}

// OnDisconnect implements broker.Observer.
func (ix *Index) OnDisconnect(c broker.ClientInfo) {
	name := identity(c)
	if name == "" {
		return
	}
	ix.connMu.Lock()
	if cs := ix.conns[name]; cs != nil && cs.clients > 0 {
		cs.clients--
		cs.at = ix.now().UTC()
	}
	ix.connMu.Unlock()
}

var _ broker.Observer = (*Index)(nil)

// identity is the thing a client acts for: its principal's name, or its
// client id when anonymous; "" for the admin login.
func identity(c broker.ClientInfo) string {
	p := c.Principal
	switch {
	case p != nil && p.Admin:
		return ""
	case p == nil || p.Anonymous || p.Name == "":
		return c.ClientID
	}
	return p.Name
}

func (ix *Index) connected(thing string) bool {
	ix.connMu.Lock()
	defer ix.connMu.Unlock()
	cs := ix.conns[thing]
	return cs != nil && cs.clients > 0
}

// Connectivity returns a thing's connection state.
func (ix *Index) Connectivity(thing string) Connectivity {
	ix.connMu.Lock()
	defer ix.connMu.Unlock()
	cs := ix.conns[thing]
	if cs == nil {
		return Connectivity{}
	}
	at := cs.at
	return Connectivity{Connected: cs.clients > 0, Timestamp: &at, Clients: cs.clients}
}

// ancestorsLocked appends the static groups gs and their ancestors to dst,
// without duplicates. ix.mu is held.
func (ix *Index) ancestorsLocked(gs []string, dst []string) []string {
	for _, g := range gs {
		for cur, depth := g, 0; cur != "" && depth <= registry.MaxGroupDepth; depth++ {
			if slices.Contains(dst, cur) {
				break
			}
			dst = append(dst, cur)
			gr := ix.groups[cur]
			if gr == nil {
				break
			}
			cur = gr.g.Parent
		}
	}
	return dst
}

// view is one thing as the search evaluator sees it. Shadow sections are
// read on first use.
type view struct {
	ix      *Index
	ctx     context.Context
	d       *doc
	groups  []string // direct groups and ancestors, computed on first use
	grouped bool
	err     error
	// The shadow callback and its arguments, allocated once per scan.
	field  search.Field
	out    []search.Value
	viewFn func(des, rep map[string]any)
}

func newView(ix *Index, ctx context.Context) *view {
	v := &view{ix: ix, ctx: ctx}
	v.viewFn = func(des, rep map[string]any) {
		sec := rep
		if v.field.Kind == search.ShadowDesired {
			sec = des
		}
		v.out = appendJSON(v.out, lookup(sec, v.field.Path))
	}
	return v
}

func (v *view) reset(d *doc) {
	v.d, v.groups, v.grouped = d, v.groups[:0], false
}

// Values implements search.Doc.
func (v *view) Values(f search.Field, dst []search.Value) []search.Value {
	t := &v.d.t
	switch f.Kind {
	case search.ThingName:
		return append(dst, search.Str(t.Name))
	case search.ThingType:
		if t.Type != "" {
			dst = append(dst, search.Str(t.Type))
		}
	case search.Attribute:
		if a, ok := t.Attributes[f.Key]; ok {
			dst = append(dst, search.Str(a))
		}
	case search.GroupNames:
		if !v.grouped {
			v.groups, v.grouped = v.ix.ancestorsLocked(v.d.groups, v.groups[:0]), true
		}
		for _, g := range v.groups {
			dst = append(dst, search.Str(g))
		}
	case search.Connected:
		dst = append(dst, search.Boolean(v.ix.connected(t.Name)))
	case search.ConnTimestamp:
		if c := v.ix.Connectivity(t.Name); c.Timestamp != nil {
			dst = append(dst, search.Num(float64(c.Timestamp.UnixMilli())))
		}
	case search.ShadowReported, search.ShadowDesired:
		if v.ix.shadows == nil || v.err != nil {
			return dst
		}
		v.field, v.out = f, dst
		v.err = v.ix.shadows.View(v.ctx, t.Name, v.viewFn)
		dst, v.out = v.out, nil
	}
	return dst
}

func lookup(m map[string]any, path []string) any {
	var cur any = m
	for _, p := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = obj[p]; !ok {
			return nil
		}
	}
	return cur
}

func appendJSON(dst []search.Value, v any) []search.Value {
	switch x := v.(type) {
	case float64:
		return append(dst, search.Num(x))
	case int64:
		return append(dst, search.Num(float64(x)))
	case int:
		return append(dst, search.Num(float64(x)))
	case string:
		return append(dst, search.Str(x))
	case bool:
		return append(dst, search.Boolean(x))
	case []any: // arrays match when any scalar element does
		for _, e := range x {
			if _, nested := e.([]any); !nested {
				dst = appendJSON(dst, e)
			}
		}
	}
	return dst
}

// rlockSorted takes the read lock with the names sorted and free of
// deleted or duplicate entries, re-sorting them first if a change requires.
func (ix *Index) rlockSorted() {
	for {
		ix.mu.RLock()
		if !ix.dirty {
			return
		}
		ix.mu.RUnlock()
		ix.mu.Lock()
		if ix.dirty {
			names := make([]string, 0, len(ix.things))
			for n := range ix.things {
				names = append(names, n)
			}
			sort.Strings(names)
			ix.names, ix.dirty = names, false
		}
		ix.mu.Unlock()
	}
}

func (ix *Index) docLocked(d *doc) ThingDoc {
	t := d.t
	t.Attributes = cloneMap(t.Attributes)
	out := ThingDoc{Thing: t, Connectivity: ix.Connectivity(t.Name)}
	if len(d.groups) > 0 {
		out.Groups = ix.ancestorsLocked(d.groups, nil)
		slices.Sort(out.Groups)
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// parse parses q; the empty query matches everything.
func parse(q string) (*search.Query, error) {
	if q == "" {
		q = "thingName:*"
	}
	pq, err := search.Parse(q)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return pq, nil
}

// scan calls fn for each thing matching q whose name sorts after after, in
// name order, until fn returns false. ix.mu must be read-locked.
func (ix *Index) scanLocked(ctx context.Context, q *search.Query, after string, fn func(*doc) bool) error {
	m := q.Matcher()
	v := newView(ix, ctx)
	p := ix.planLocked(q)
	list := ix.names[p.lo:p.hi]
	if p.useSet {
		list = p.cands
	}
	start := 0
	if after != "" {
		start, _ = slices.BinarySearch(list, after)
		if start < len(list) && list[start] == after {
			start++
		}
	}
	for i := start; i < len(list); i++ {
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("fleet: search: %w", err)
			}
		}
		d := ix.things[list[i]]
		if d == nil {
			continue
		}
		v.reset(d)
		ok := m.Match(v)
		if v.err != nil {
			return fmt.Errorf("fleet: search: read shadow of %q: %w", d.t.Name, v.err)
		}
		if ok && !fn(d) {
			return nil
		}
	}
	return nil
}

// Search returns up to limit things matching q (empty: every thing) whose
// names sort after the cursor after, ordered by name, and the cursor of the
// next page ("" after the last).
func (ix *Index) Search(ctx context.Context, q string, limit int, after string) ([]ThingDoc, string, error) {
	pq, err := parse(q)
	if err != nil {
		return nil, "", err
	}
	return ix.SearchQuery(ctx, pq, limit, after)
}

// SearchQuery is Search with a parsed query.
func (ix *Index) SearchQuery(ctx context.Context, pq *search.Query, limit int, after string) ([]ThingDoc, string, error) {
	limit, err := pageLimit(limit)
	if err != nil {
		return nil, "", err
	}
	ix.rlockSorted()
	defer ix.mu.RUnlock()
	out := []ThingDoc{}
	more := false
	err = ix.scanLocked(ctx, pq, after, func(d *doc) bool {
		if len(out) == limit {
			more = true
			return false
		}
		out = append(out, ix.docLocked(d))
		return true
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		next = out[len(out)-1].Name
	}
	return out, next, nil
}

func pageLimit(limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, fmt.Errorf("%w: limit must not be negative, got %d", ErrInvalid, limit)
	case limit == 0:
		return DefaultLimit, nil
	}
	return min(limit, MaxLimit), nil
}

// Count returns how many things match q.
func (ix *Index) Count(ctx context.Context, q string) (int, error) {
	pq, err := parse(q)
	if err != nil {
		return 0, err
	}
	ix.rlockSorted()
	defer ix.mu.RUnlock()
	n := 0
	err = ix.scanLocked(ctx, pq, "", func(*doc) bool { n++; return true })
	return n, err
}

// Len returns the number of indexed things.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.things)
}
