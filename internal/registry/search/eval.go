package search

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// ValueKind is the type of a field value.
type ValueKind uint8

// Value kinds.
const (
	String ValueKind = iota + 1
	Number
	Bool
)

// Value is one value of a field of a thing.
type Value struct {
	Kind ValueKind
	S    string
	N    float64
	B    bool
}

// Str, Num and Boolean build values.
func Str(s string) Value   { return Value{Kind: String, S: s} }
func Num(n float64) Value  { return Value{Kind: Number, N: n} }
func Boolean(b bool) Value { return Value{Kind: Bool, B: b} }
func (v Value) String() string {
	switch v.Kind {
	case Number:
		return strconv.FormatFloat(v.N, 'g', -1, 64)
	case Bool:
		return strconv.FormatBool(v.B)
	}
	return v.S
}

// Doc is one thing as the evaluator sees it.
type Doc interface {
	// Values appends the values of field f to dst (none when the thing
	// has no such field; several for thingGroupNames) and returns dst.
	Values(f Field, dst []Value) []Value
}

// Matcher evaluates a query against documents. It keeps a scratch buffer,
// so one Matcher must not be used by several goroutines at once.
type Matcher struct {
	root *Node
	buf  []Value
}

// Matcher returns a matcher for q. In AND nodes, terms that read shadows
// are evaluated last, so cheap terms can short-circuit them.
func (q *Query) Matcher() *Matcher {
	return &Matcher{root: reorder(q.Root), buf: make([]Value, 0, 8)}
}

func reorder(n *Node) *Node {
	if n.Kind == Term {
		return n
	}
	c := *n
	c.Children = make([]*Node, 0, len(n.Children))
	var costly []*Node
	for _, k := range n.Children {
		k = reorder(k)
		if n.Kind == And && cost(k) > 0 {
			costly = append(costly, k)
			continue
		}
		c.Children = append(c.Children, k)
	}
	c.Children = append(c.Children, costly...)
	return &c
}

func cost(n *Node) int {
	if n.Kind == Term {
		if n.Field.Shadow() {
			return 1
		}
		return 0
	}
	for _, k := range n.Children {
		if cost(k) > 0 {
			return 1
		}
	}
	return 0
}

// Match reports whether d satisfies the query.
func (m *Matcher) Match(d Doc) bool { return m.eval(m.root, d) }

func (m *Matcher) eval(n *Node, d Doc) bool {
	switch n.Kind {
	case And:
		for _, c := range n.Children {
			if !m.eval(c, d) {
				return false
			}
		}
		return true
	case Or:
		for _, c := range n.Children {
			if m.eval(c, d) {
				return true
			}
		}
		return false
	case Not:
		return !m.eval(n.Children[0], d)
	}
	m.buf = d.Values(n.Field, m.buf[:0])
	for _, v := range m.buf {
		if termMatches(n, v) {
			return true
		}
	}
	return false
}

func termMatches(n *Node, v Value) bool {
	switch n.Op {
	case OpExists:
		return true
	case OpEq:
		return equal(n.Value, v)
	case OpLt, OpLe, OpGt, OpGe:
		c, ok := compare(v, n.Value)
		if !ok {
			return false
		}
		switch n.Op {
		case OpLt:
			return c < 0
		case OpLe:
			return c <= 0
		case OpGt:
			return c > 0
		}
		return c >= 0
	case OpRange:
		if !n.Value.Open {
			c, ok := compare(v, n.Value)
			if !ok || c < 0 || (c == 0 && !n.LowerIncl) {
				return false
			}
		}
		if !n.Upper.Open {
			c, ok := compare(v, n.Upper)
			if !ok || c > 0 || (c == 0 && !n.UpperIncl) {
				return false
			}
		}
		return true
	}
	return false
}

func equal(l Literal, v Value) bool {
	switch v.Kind {
	case Number:
		if l.IsNum {
			return v.N == l.Num
		}
		if l.Wildcard {
			return Wildcard(l.Text, v.String())
		}
		return false
	case Bool:
		return l.Text == strconv.FormatBool(v.B)
	}
	if l.Wildcard {
		return Wildcard(l.Text, v.S)
	}
	return v.S == l.Text
}

// compare orders v against l: numerically when both are numbers (a string
// value that parses as a number counts as one), byte-wise when both are
// strings; ok is false when they cannot be ordered.
func compare(v Value, l Literal) (int, bool) {
	switch v.Kind {
	case Number:
		if !l.IsNum {
			return 0, false
		}
		return cmpFloat(v.N, l.Num), true
	case String:
		if l.IsNum {
			if f, err := strconv.ParseFloat(v.S, 64); err == nil {
				return cmpFloat(f, l.Num), true
			}
		}
		return strings.Compare(v.S, l.Text), true
	}
	return 0, false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Wildcard matches s against pattern, where * matches any run of bytes and
// ? exactly one character. It runs in O(len(pattern)*len(s)) at worst.
func Wildcard(pattern, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					_, size := utf8.DecodeRuneInString(s[sx:])
					px++
					sx += size
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// LiteralPrefix returns the literal text before the first wildcard of an
// unquoted pattern (all of it when there is none); an index can use it to
// narrow a scan.
func LiteralPrefix(l Literal) string {
	if !l.Wildcard {
		return l.Text
	}
	return l.Text[:strings.IndexAny(l.Text, "*?")]
}
