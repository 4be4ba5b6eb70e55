package bridge

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
	"github.com/edgewise-iot/edgewise/internal/broker/topics"
)

// Route maps topics matching a filter to a topic template.
//
// From is an MQTT topic filter; "${agent}" in it is the agent's name. To is
// a template of the destination topic: "${agent}", "${topic}" (the whole
// source topic) and "${1}", "${2}", ... (levels of the source topic,
// counted from 1) are replaced; everything else is literal. An empty To
// keeps the topic.
type Route struct {
	From string `yaml:"from" json:"from"`
	To   string `yaml:"to" json:"to"`
}

type compiled struct {
	idx    int
	filter string
	parts  []tplPart
}

type tplPart struct {
	lit   string
	level int // >0: that level; -1: the whole topic; 0: literal
}

// router matches topics against routes; the first route (in configuration
// order) whose filter matches wins.
type router struct {
	trie   *topics.Trie[*compiled]
	routes []*compiled
}

func newRouter(agent string, routes []Route) (*router, error) {
	r := &router{trie: topics.New[*compiled]()}
	for i, rt := range routes {
		filter := strings.ReplaceAll(rt.From, "${agent}", agent)
		if !packets.ValidTopicFilter(filter) {
			return nil, fmt.Errorf("bridge: route %d: %q is not a valid topic filter", i, rt.From)
		}
		to := rt.To
		if to == "" {
			to = "${topic}"
		}
		parts, err := parseTemplate(strings.ReplaceAll(to, "${agent}", agent))
		if err != nil {
			return nil, fmt.Errorf("bridge: route %d (%s): %w", i, rt.From, err)
		}
		c := &compiled{idx: i, filter: filter, parts: parts}
		r.routes = append(r.routes, c)
		r.trie.Add(filter, c)
	}
	return r, nil
}

func parseTemplate(s string) ([]tplPart, error) {
	var out []tplPart
	for s != "" {
		i := strings.Index(s, "${")
		if i < 0 {
			out = append(out, tplPart{lit: s})
			break
		}
		if i > 0 {
			out = append(out, tplPart{lit: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("unterminated ${ in template")
		}
		name := s[i+2 : i+j]
		switch n, err := strconv.Atoi(name); {
		case name == "topic":
			out = append(out, tplPart{level: -1})
		case err == nil && n >= 1 && n <= 64:
			out = append(out, tplPart{level: n})
		default:
			return nil, fmt.Errorf("unknown template variable ${%s} (use ${agent}, ${topic} or a level ${1}, ${2}, ...)", name)
		}
		s = s[i+j+1:]
	}
	return out, nil
}

// match returns the destination topic of topic, or ok=false when no route
// matches (or the result is not a valid topic name).
func (r *router) match(topic string) (string, bool) {
	var best *compiled
	r.trie.Match(topic, func(_ string, c *compiled) bool {
		if best == nil || c.idx < best.idx {
			best = c
		}
		return true
	})
	if best == nil {
		return "", false
	}
	var b strings.Builder
	var levels []string
	for _, p := range best.parts {
		switch {
		case p.level == -1:
			b.WriteString(topic)
		case p.level > 0:
			if levels == nil {
				levels = strings.Split(topic, "/")
			}
			if p.level <= len(levels) {
				b.WriteString(levels[p.level-1])
			}
		default:
			b.WriteString(p.lit)
		}
	}
	out := b.String()
	return out, packets.ValidTopicName(out)
}
