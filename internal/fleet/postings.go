package fleet

import (
	"slices"
	"sort"
	"strings"

	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/registry/search"
)

// The index keeps postings (the set of thing names) per thing type, per
// attribute key and value, and per direct static group, so a query whose top
// level requires one of those equalities (or a thingName prefix) scans only
// the candidates instead of the whole fleet.

func typeKey(t string) string    { return "t\x00" + t }
func attrKey(k, v string) string { return "a\x00" + k + "\x00" + v }
func groupKey(g string) string   { return "g\x00" + g }

func (ix *Index) postAddLocked(key, name string) {
	s := ix.post[key]
	if s == nil {
		s = map[string]struct{}{}
		ix.post[key] = s
	}
	s[name] = struct{}{}
}

func (ix *Index) postDelLocked(key, name string) {
	if s := ix.post[key]; s != nil {
		delete(s, name)
		if len(s) == 0 {
			delete(ix.post, key)
		}
	}
}

// indexThingLocked adds (add) or removes the postings of t's type and
// attributes.
func (ix *Index) indexThingLocked(t registry.Thing, add bool) {
	op := ix.postDelLocked
	if add {
		op = ix.postAddLocked
	}
	if t.Type != "" {
		op(typeKey(t.Type), t.Name)
	}
	for k, v := range t.Attributes {
		op(attrKey(k, v), t.Name)
	}
}

// plan is how a query is scanned: a sorted candidate list, or the names in
// [lo, hi).
type plan struct {
	cands  []string
	lo, hi int
	useSet bool
}

// planLocked picks the most selective indexed term at the top level of q.
// ix.mu is read-locked and names are sorted.
func (ix *Index) planLocked(q *search.Query) plan {
	best := plan{lo: 0, hi: len(ix.names)}
	bestSize := len(ix.names)
	var set map[string]struct{}
	var sets []map[string]struct{}
	terms := []*search.Node{q.Root}
	if q.Root.Kind == search.And {
		terms = q.Root.Children
	}
	for _, n := range terms {
		if n.Kind != search.Term || n.Op != search.OpEq {
			continue
		}
		v := n.Value
		switch n.Field.Kind {
		case search.ThingName:
			p := search.LiteralPrefix(v)
			if p == "" {
				continue
			}
			lo, _ := slices.BinarySearch(ix.names, p)
			hi := lo
			if v.Wildcard {
				hi = lo + sort.Search(len(ix.names)-lo, func(i int) bool { return !strings.HasPrefix(ix.names[lo+i], p) })
			} else if hi < len(ix.names) && ix.names[hi] == p {
				hi++
			}
			if hi-lo < bestSize {
				best, bestSize, set, sets = plan{lo: lo, hi: hi}, hi-lo, nil, nil
			}
			continue
		case search.ThingType:
			if v.Wildcard {
				continue
			}
			if s := ix.post[typeKey(v.Text)]; len(s) < bestSize {
				best, bestSize, set, sets = plan{useSet: true}, len(s), s, nil
			}
		case search.Attribute:
			if v.Wildcard {
				continue
			}
			if s := ix.post[attrKey(n.Field.Key, v.Text)]; len(s) < bestSize {
				best, bestSize, set, sets = plan{useSet: true}, len(s), s, nil
			}
		case search.GroupNames:
			if v.Wildcard {
				continue
			}
			var gs []map[string]struct{}
			size := 0
			for _, g := range ix.descendantsLocked(v.Text) {
				if s := ix.post[groupKey(g)]; len(s) > 0 {
					gs = append(gs, s)
					size += len(s)
				}
			}
			if size < bestSize {
				best, bestSize, set, sets = plan{useSet: true}, size, nil, gs
			}
		}
	}
	if !best.useSet {
		return best
	}
	seen := make(map[string]struct{}, bestSize)
	for _, s := range append(sets, set) {
		for name := range s {
			seen[name] = struct{}{}
		}
	}
	best.cands = make([]string, 0, len(seen))
	for name := range seen {
		best.cands = append(best.cands, name)
	}
	slices.Sort(best.cands)
	return best
}

// descendantsLocked returns g and every static group below it.
func (ix *Index) descendantsLocked(g string) []string {
	out := []string{g}
	for i := 0; i < len(out) && i < 10_000; i++ {
		for name, gr := range ix.groups {
			if gr.g.Parent == out[i] {
				out = append(out, name)
			}
		}
	}
	return out
}
