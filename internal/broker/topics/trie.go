package topics

import (
	"strings"
	"sync"
)

// Trie is a topic filter trie holding (filter, value) pairs, generic over
// the subscriber value V. It is safe for concurrent use: Add and Remove take
// a write lock, Match and Len a read lock. Create one with New.
type Trie[V comparable] struct {
	mu   sync.RWMutex
	root *node[V]
	n    int
}

// maxKids is the number of literal children kept in a slice before a
// node switches to a map; most nodes of a device fleet have one child.
const maxKids = 8

// indexThreshold is the number of values on one node above which a map
// index is kept so Add and Remove stay O(1) for popular filters.
const indexThreshold = 16

type node[V comparable] struct {
	parent   *node[V]
	level    string              // this node's level in its parent's children
	kids     []*node[V]          // literal children while few
	children map[string]*node[V] // literal children once more than maxKids
	plus     *node[V]            // "+" child
	hash     *node[V]            // "#" child
	filter   string              // the full filter ending here (set when vals non-empty)
	vals     []V
	idx      map[V]int // position in vals, when len(vals) > indexThreshold
}

// New returns an empty trie.
func New[V comparable]() *Trie[V] {
	return &Trie[V]{root: &node[V]{}}
}

// Len returns the number of (filter, value) pairs in the trie.
func (t *Trie[V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}

// Add adds the pair (filter, v) and reports whether it was not present.
func (t *Trie[V]) Add(filter string, v V) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.root
	for pos := 0; pos <= len(filter); {
		end := levelEnd(filter, pos)
		level := filter[pos:end]
		n = n.child(level, true)
		pos = end + 1
	}
	if n.find(v) >= 0 {
		return false
	}
	if len(n.vals) == 0 {
		n.filter = strings.Clone(filter)
	}
	n.vals = append(n.vals, v)
	if n.idx != nil {
		n.idx[v] = len(n.vals) - 1
	} else if len(n.vals) > indexThreshold {
		n.idx = make(map[V]int, len(n.vals))
		for i, x := range n.vals {
			n.idx[x] = i
		}
	}
	t.n++
	return true
}

// Remove removes the pair (filter, v) and reports whether it was present.
func (t *Trie[V]) Remove(filter string, v V) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.root
	for pos := 0; pos <= len(filter); {
		end := levelEnd(filter, pos)
		n = n.child(filter[pos:end], false)
		if n == nil {
			return false
		}
		pos = end + 1
	}
	i := n.find(v)
	if i < 0 {
		return false
	}
	last := len(n.vals) - 1
	if i != last {
		n.vals[i] = n.vals[last]
		if n.idx != nil {
			n.idx[n.vals[i]] = i
		}
	}
	var zero V
	n.vals[last] = zero
	n.vals = n.vals[:last]
	if n.idx != nil {
		delete(n.idx, v)
		if len(n.vals) <= indexThreshold/2 {
			n.idx = nil
		}
	}
	if len(n.vals) == 0 {
		n.vals = nil
		n.filter = ""
	}
	t.n--
	// Prune nodes left without values or children.
	for n != t.root && n.empty() {
		p := n.parent
		switch {
		case p.plus == n:
			p.plus = nil
		case p.hash == n:
			p.hash = nil
		default:
			p.removeKid(n)
		}
		n = p
	}
	return true
}

// Match calls fn for each (filter, v) pair whose filter matches topic,
// until fn returns false. The order of the calls is unspecified. Match
// holds the read lock while calling fn, so fn must not call Add or Remove
// on the same trie. Match does not allocate.
func (t *Trie[V]) Match(topic string, fn func(filter string, v V) bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	dollar := len(topic) > 0 && topic[0] == '$'
	t.root.match(topic, 0, dollar, fn)
}

// match matches the levels of topic from pos on against the subtree of n;
// pos > len(topic) means all levels are consumed. It returns false when fn
// asked to stop.
func (n *node[V]) match(topic string, pos int, dollar bool, fn func(string, V) bool) bool {
	if pos > len(topic) {
		if !n.emit(fn) {
			return false
		}
		// "a/#" also matches "a".
		if n.hash != nil {
			return n.hash.emit(fn)
		}
		return true
	}
	wild := pos > 0 || !dollar
	if wild && n.hash != nil {
		if !n.hash.emit(fn) {
			return false
		}
	}
	end := levelEnd(topic, pos)
	if wild && n.plus != nil {
		if !n.plus.match(topic, end+1, dollar, fn) {
			return false
		}
	}
	if c := n.kid(topic[pos:end]); c != nil {
		return c.match(topic, end+1, dollar, fn)
	}
	return true
}

// kid returns the literal child for level, or nil.
func (n *node[V]) kid(level string) *node[V] {
	if n.children != nil {
		return n.children[level]
	}
	for _, k := range n.kids {
		if k.level == level {
			return k
		}
	}
	return nil
}

func (n *node[V]) addKid(c *node[V]) {
	if n.children != nil {
		n.children[c.level] = c
		return
	}
	if len(n.kids) < maxKids {
		n.kids = append(n.kids, c)
		return
	}
	n.children = make(map[string]*node[V], len(n.kids)+1)
	for _, k := range n.kids {
		n.children[k.level] = k
	}
	n.children[c.level] = c
	n.kids = nil
}

func (n *node[V]) removeKid(c *node[V]) {
	if n.children != nil {
		delete(n.children, c.level)
		if len(n.children) == 0 {
			n.children = nil
		}
		return
	}
	for i, k := range n.kids {
		if k == c {
			last := len(n.kids) - 1
			n.kids[i] = n.kids[last]
			n.kids[last] = nil
			n.kids = n.kids[:last]
			break
		}
	}
	if len(n.kids) == 0 {
		n.kids = nil
	}
}

func (n *node[V]) emit(fn func(string, V) bool) bool {
	for _, v := range n.vals {
		if !fn(n.filter, v) {
			return false
		}
	}
	return true
}

// child returns the child for level, creating it when create is set.
func (n *node[V]) child(level string, create bool) *node[V] {
	switch level {
	case "+":
		if n.plus == nil && create {
			n.plus = &node[V]{parent: n, level: level}
		}
		return n.plus
	case "#":
		if n.hash == nil && create {
			n.hash = &node[V]{parent: n, level: level}
		}
		return n.hash
	}
	c := n.kid(level)
	if c == nil && create {
		c = &node[V]{parent: n, level: strings.Clone(level)}
		n.addKid(c)
	}
	return c
}

func (n *node[V]) find(v V) int {
	if n.idx != nil {
		if i, ok := n.idx[v]; ok {
			return i
		}
		return -1
	}
	for i, x := range n.vals {
		if x == v {
			return i
		}
	}
	return -1
}

func (n *node[V]) empty() bool {
	return len(n.vals) == 0 && len(n.kids) == 0 && len(n.children) == 0 && n.plus == nil && n.hash == nil
}

// levelEnd returns the index of the '/' ending the level that starts at
// pos, or len(s).
func levelEnd(s string, pos int) int {
	if i := strings.IndexByte(s[pos:], '/'); i >= 0 {
		return pos + i
	}
	return len(s)
}
