package broker

import (
	"sync"
)

// shareGroup is one shared subscription "$share/{name}/{filter}": a single
// entry (holder) in the trie stands for all members, and each matching
// message goes to one member, round-robin among the members that are
// connected (offline persistent members get messages only when no member
// is connected).
type shareGroup struct {
	key    string // name + "\x00" + filter
	filter string
	holder *subscription // the trie entry; sess is nil

	mu      sync.Mutex // guards the fields below
	members []*subscription
	next    int
}

// joinShare adds sub (filter "$share/name/inner") to its group, creating
// the group on first use.
func (s *Server) joinShare(sub *subscription, name, inner string) {
	key := name + "\x00" + inner
	s.shareMu.Lock()
	g := s.shares[key]
	if g == nil {
		g = &shareGroup{key: key, filter: inner}
		g.holder = &subscription{filter: inner, share: g}
		if s.shares == nil {
			s.shares = make(map[string]*shareGroup)
		}
		s.shares[key] = g
		s.subs.Add(inner, g.holder)
	}
	sub.share = g
	g.mu.Lock()
	g.members = append(g.members, sub)
	g.mu.Unlock()
	s.shareMu.Unlock()
}

// leaveShare removes sub from its group and drops the group when empty.
func (s *Server) leaveShare(sub *subscription) {
	g := sub.share
	s.shareMu.Lock()
	g.mu.Lock()
	for i, m := range g.members {
		if m == sub {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	empty := len(g.members) == 0
	g.mu.Unlock()
	if empty && s.shares[g.key] == g {
		delete(s.shares, g.key)
		s.subs.Remove(g.filter, g.holder)
	}
	s.shareMu.Unlock()
}

// pick chooses the member that gets the next message: the next connected
// one in round-robin order, else the next offline one; never except. It
// returns nil when there is none.
func (g *shareGroup) pick(except *session) *subscription {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(g.members)
	offline := -1
	for i := 0; i < n; i++ {
		j := (g.next + i) % n
		m := g.members[j]
		if m.sess == except {
			continue
		}
		if m.sess.conn.Load() != nil {
			g.next = j + 1
			return m
		}
		if offline < 0 {
			offline = j
		}
	}
	if offline < 0 {
		return nil
	}
	g.next = offline + 1
	return g.members[offline]
}

// redistribute gives deliveries taken from a departing member to other
// members of their groups; with no other member they stay with from (and
// are dropped if from is gone).
func (s *Server) redistribute(msgs []outMsg, from *session) {
	for _, m := range msgs {
		m.id, m.state, m.seq = 0, stQueued, 0
		to := from
		if sub := m.group.pick(from); sub != nil {
			to = sub.sess
			m.qos = min(m.msg.qos, byte(sub.opts.Load()&optQoSMask))
		}
		if m.qos > 0 {
			to.deliver(m)
		}
	}
}
