package broker

import (
	"strings"
	"sync"
)

// retainedStore holds the last retained message per topic.
type retainedStore struct {
	mu   sync.RWMutex
	msgs map[string]*message
}

func (r *retainedStore) init() { r.msgs = make(map[string]*message) }

// set stores m, or clears the topic when m has an empty payload.
func (r *retainedStore) set(m *message) {
	r.mu.Lock()
	if len(m.payload) == 0 {
		delete(r.msgs, m.topic)
	} else {
		r.msgs[m.topic] = m
	}
	r.mu.Unlock()
}

// clear removes the retained message of topic.
func (r *retainedStore) clear(topic string) {
	r.mu.Lock()
	delete(r.msgs, topic)
	r.mu.Unlock()
}

func (r *retainedStore) len() int {
	r.mu.RLock()
	n := len(r.msgs)
	r.mu.RUnlock()
	return n
}

// match appends the retained messages whose topic matches filter to dst.
func (r *retainedStore) match(filter string, dst []*message) []*message {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !strings.ContainsAny(filter, "+#") {
		if m, ok := r.msgs[filter]; ok {
			dst = append(dst, m)
		}
		return dst
	}
	for topic, m := range r.msgs {
		if topicMatch(filter, topic) {
			dst = append(dst, m)
		}
	}
	return dst
}

// topicMatch reports whether topic name matches a subscription filter, with
// '$' topics not matched by a leading wildcard.
func topicMatch(filter, topic string) bool {
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		if filter == "#" {
			return true
		}
		fl, frest, fmore := strings.Cut(filter, "/")
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore {
			return !tmore
		}
		if !tmore {
			// "a/#" matches "a" too.
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}
