package broker

import (
	"strings"
	"sync"
)

// retainedStore holds the last retained message per topic in a tree of
// topic levels, so a subscription finds its retained messages by walking
// the levels its filter names instead of scanning every topic.
type retainedStore struct {
	mu   sync.RWMutex
	root retainedNode
	n    int
}

type retainedNode struct {
	children map[string]*retainedNode
	msg      *message
}

func (r *retainedStore) init() {}

// set stores m, or clears the topic when m has an empty payload.
func (r *retainedStore) set(m *message) {
	if len(m.payload) == 0 {
		r.clear(m.topic)
		return
	}
	r.mu.Lock()
	n := &r.root
	rest, more := m.topic, true
	for more {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		c := n.children[level]
		if c == nil {
			if n.children == nil {
				n.children = make(map[string]*retainedNode)
			}
			c = &retainedNode{}
			n.children[strings.Clone(level)] = c
		}
		n = c
	}
	if n.msg == nil {
		r.n++
	}
	n.msg = m
	r.mu.Unlock()
}

// clear removes the retained message of topic and prunes empty nodes. It
// reports whether there was one.
func (r *retainedStore) clear(topic string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.remove(&r.root, topic, nil) {
		r.n--
		return true
	}
	return false
}

// drop removes m if it is still the retained message of its topic (used
// for messages whose expiry passed).
func (r *retainedStore) drop(m *message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.remove(&r.root, m.topic, m) {
		r.n--
	}
}

// remove deletes the message at topic below n (only if it is only, when
// only is not nil); it reports whether one was removed. Emptied nodes are
// dropped on the way back.
func (r *retainedStore) remove(n *retainedNode, topic string, only *message) bool {
	level, rest, more := strings.Cut(topic, "/")
	c := n.children[level]
	if c == nil {
		return false
	}
	var removed bool
	if more {
		removed = r.remove(c, rest, only)
	} else if c.msg != nil && (only == nil || c.msg == only) {
		c.msg = nil
		removed = true
	}
	if c.msg == nil && len(c.children) == 0 {
		delete(n.children, level)
	}
	return removed
}

func (r *retainedStore) len() int {
	r.mu.RLock()
	n := r.n
	r.mu.RUnlock()
	return n
}

// match appends the retained messages whose topic matches filter to dst.
func (r *retainedStore) match(filter string, dst []*message) []*message {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.root.match(filter, true, dst)
}

// match walks the remaining filter levels below n. Topics starting with
// '$' are not matched by a wildcard in the first level.
func (n *retainedNode) match(filter string, root bool, dst []*message) []*message {
	level, rest, more := strings.Cut(filter, "/")
	switch level {
	case "#":
		if !root && n.msg != nil { // "a/#" matches "a"
			dst = append(dst, n.msg)
		}
		for k, c := range n.children {
			if root && strings.HasPrefix(k, "$") {
				continue
			}
			dst = c.all(dst)
		}
	case "+":
		for k, c := range n.children {
			if root && strings.HasPrefix(k, "$") {
				continue
			}
			dst = c.next(rest, more, dst)
		}
	default:
		if c := n.children[level]; c != nil {
			dst = c.next(rest, more, dst)
		}
	}
	return dst
}

// next continues matching at c after one filter level.
func (c *retainedNode) next(rest string, more bool, dst []*message) []*message {
	if !more {
		if c.msg != nil {
			dst = append(dst, c.msg)
		}
		return dst
	}
	return c.match(rest, false, dst)
}

// all appends every message in the subtree of n.
func (n *retainedNode) all(dst []*message) []*message {
	if n.msg != nil {
		dst = append(dst, n.msg)
	}
	for _, c := range n.children {
		dst = c.all(dst)
	}
	return dst
}
