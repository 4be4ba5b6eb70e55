package policy

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Vars are the values of the policy variables for one connection.
type Vars struct {
	ClientID string
	// ThingName is the connection's thing: the thing named by the client id
	// when the certificate used is attached to it, or the thing that logged
	// in with its password. Empty leaves the ${iot:Connection.Thing.*}
	// variables unresolved.
	ThingName     string
	ThingTypeName string
	Attributes    map[string]string
	// IsAttached is ${iot:Connection.Thing.IsAttached}: the connection's
	// certificate is attached to the thing named by its client id.
	IsAttached bool
	// CertificateID is the connection's certificate, if any (for policies
	// attached to certificates).
	CertificateID string
}

// Variable names.
const (
	varClientID   = "iot:ClientId"
	varThingName  = "iot:Connection.Thing.ThingName"
	varThingType  = "iot:Connection.Thing.ThingTypeName"
	varAttrPrefix = "iot:Connection.Thing.Attributes["
	varAttached   = "iot:Connection.Thing.IsAttached"
)

// lookup resolves a variable; ok is false when it has no value for this
// connection.
func (v *Vars) lookup(name string) (string, bool) {
	switch name {
	case varClientID:
		return v.ClientID, v.ClientID != ""
	case varThingName:
		return v.ThingName, v.ThingName != ""
	case varThingType:
		return v.ThingTypeName, v.ThingName != "" && v.ThingTypeName != ""
	case varAttached:
		return strconv.FormatBool(v.IsAttached), true
	}
	if key, ok := strings.CutPrefix(name, varAttrPrefix); ok && strings.HasSuffix(key, "]") && v.ThingName != "" {
		val, ok := v.Attributes[strings.TrimSuffix(key, "]")]
		return val, ok
	}
	return "", false
}

func validVariable(name string) bool {
	switch name {
	case varClientID, varThingName, varThingType, varAttached:
		return true
	}
	key, ok := strings.CutPrefix(name, varAttrPrefix)
	return ok && len(key) > 1 && strings.HasSuffix(key, "]") && !strings.ContainsAny(key[:len(key)-1], "[]")
}

type partKind uint8

const (
	partLit partKind = iota
	partStar
	partOne
	partVar
)

type part struct {
	kind partKind
	s    string // literal text or variable name
}

// parseTemplate splits a resource pattern into literal text, the wildcards
// '*' and '?' and ${...} variables. ${*}, ${?} and ${$} are the literal
// characters.
func parseTemplate(p string) ([]part, error) {
	var out []part
	lit := func(s string) {
		if n := len(out); n > 0 && out[n-1].kind == partLit {
			out[n-1].s += s
		} else {
			out = append(out, part{kind: partLit, s: s})
		}
	}
	for i := 0; i < len(p); {
		switch c := p[i]; {
		case c == '*':
			out = append(out, part{kind: partStar})
			i++
		case c == '?':
			out = append(out, part{kind: partOne})
			i++
		case c == '$' && i+1 < len(p) && p[i+1] == '{':
			end := strings.IndexByte(p[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unterminated policy variable at %q", p[i:])
			}
			name := p[i+2 : i+end]
			i += end + 1
			switch name {
			case "*", "?", "$":
				lit(name)
				continue
			}
			if !validVariable(name) {
				return nil, fmt.Errorf("unknown policy variable ${%s}", name)
			}
			out = append(out, part{kind: partVar, s: name})
		default:
			j := i + 1
			for j < len(p) && p[j] != '*' && p[j] != '?' && p[j] != '$' {
				j++
			}
			lit(p[i:j])
			i = j
		}
	}
	return out, nil
}

// pchar is one element of an instantiated pattern: a literal rune or a
// wildcard.
type pchar struct {
	r    rune
	wild byte // 0: literal r, '*': any run of characters, '?': one character
}

// glob is an instantiated resource pattern. Variable values are literal:
// '*', '?', '+', '#' and '/' inside them match only themselves.
type glob struct {
	prefix string // literal text before the first wildcard
	kind   uint8  // globExact, globPrefix (prefix then one '*'), globGeneral
	chars  []pchar
}

const (
	globExact uint8 = iota
	globPrefix
	globPrefixPlus // prefix then "?*": at least one character after it
	globGeneral
)

// instantiate substitutes the variables of tmpl; ok is false when one has
// no value (the resource then matches nothing). The client id is chosen by
// the client: in topic and topic filter resources a client id holding '/',
// '+' or '#' would reach into other topic levels or stand for a wildcard,
// so such a resource matches nothing for that connection.
func instantiate(tmpl []part, v *Vars, kind string) (glob, bool) {
	var chars []pchar
	for _, p := range tmpl {
		switch p.kind {
		case partStar:
			if n := len(chars); n == 0 || chars[n-1].wild != '*' {
				chars = append(chars, pchar{wild: '*'})
			}
		case partOne:
			chars = append(chars, pchar{wild: '?'})
		case partLit, partVar:
			s := p.s
			if p.kind == partVar {
				val, ok := v.lookup(p.s)
				if !ok || p.s == varClientID && kind != kindClient && strings.ContainsAny(val, "/+#") {
					return glob{}, false
				}
				s = val
			}
			for _, r := range s {
				chars = append(chars, pchar{r: r})
			}
		}
	}
	return newGlob(chars), true
}

func newGlob(chars []pchar) glob {
	g := glob{kind: globGeneral, chars: chars}
	var b strings.Builder
	i := 0
	for ; i < len(chars) && chars[i].wild == 0; i++ {
		b.WriteRune(chars[i].r)
	}
	g.prefix = b.String()
	switch {
	case i == len(chars):
		g.kind = globExact
	case i == len(chars)-1 && chars[i].wild == '*':
		g.kind = globPrefix
	case i == len(chars)-2 && chars[i].wild == '?' && chars[i+1].wild == '*':
		g.kind = globPrefixPlus
	}
	return g
}

// compileGlob parses a pattern with '*' and '?' and no variables.
func compileGlob(p string) glob {
	var chars []pchar
	for _, r := range p {
		switch r {
		case '*', '?':
			chars = append(chars, pchar{wild: byte(r)})
		default:
			chars = append(chars, pchar{r: r})
		}
	}
	return newGlob(chars)
}

func (g *glob) match(s string) bool {
	switch g.kind {
	case globExact:
		return s == g.prefix
	case globPrefix:
		return strings.HasPrefix(s, g.prefix)
	case globPrefixPlus:
		return len(s) > len(g.prefix) && strings.HasPrefix(s, g.prefix)
	}
	if !strings.HasPrefix(s, g.prefix) {
		return false
	}
	// Linear wildcard matching with backtracking to the last '*' only.
	p := g.chars
	pi, si := utf8.RuneCountInString(g.prefix), len(g.prefix)
	starP, starS := -1, 0
	for si < len(s) {
		r, n := utf8.DecodeRuneInString(s[si:])
		if pi < len(p) {
			switch c := p[pi]; {
			case c.wild == '?' || c.wild == 0 && c.r == r:
				pi++
				si += n
				continue
			case c.wild == '*':
				starP, starS = pi, si
				pi++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		_, n = utf8.DecodeRuneInString(s[starS:])
		starS += n
		pi, si = starP+1, starS
	}
	for pi < len(p) && p[pi].wild == '*' {
		pi++
	}
	return pi == len(p)
}

// condition is one key of a Condition operator.
type condition struct {
	op   string
	key  string
	vals []string
}

func parseCondition(op, key string, vals Values) (condition, error) {
	switch op {
	case "StringEquals", "StringNotEquals", "StringLike", "StringNotLike", "Bool":
	default:
		return condition{}, fmt.Errorf("unknown operator %q (want StringEquals, StringNotEquals, StringLike, StringNotLike or Bool)", op)
	}
	if !validVariable(key) {
		return condition{}, fmt.Errorf("unknown condition key %q", key)
	}
	if len(vals) == 0 {
		return condition{}, fmt.Errorf("no values")
	}
	if op == "Bool" {
		for _, v := range vals {
			if v != "true" && v != "false" {
				return condition{}, fmt.Errorf("Bool value %q must be true or false", v)
			}
		}
	}
	return condition{op: op, key: key, vals: vals}, nil
}

func (c *condition) holds(v *Vars) bool {
	val, ok := v.lookup(c.key)
	neg := c.op == "StringNotEquals" || c.op == "StringNotLike"
	if !ok {
		return neg
	}
	any := false
	for _, want := range c.vals {
		switch c.op {
		case "StringLike", "StringNotLike":
			g := compileGlob(want)
			any = any || g.match(val)
		default:
			any = any || val == want
		}
	}
	return any != neg
}

// Compiled is the effective policy of one connection: the statements of
// every policy that applies, with variables substituted, grouped by action.
// It is immutable and safe for concurrent use.
type Compiled struct {
	allow, deny [numActions][]glob
	allowAll    [numActions]bool
	// unrestrictedReceive: receiving needs no check per message.
	unrestrictedReceive bool
}

// Compile evaluates the conditions of docs and instantiates their
// resources for the connection described by v.
func Compile(v Vars, docs ...*Document) *Compiled {
	c := &Compiled{}
	for _, d := range docs {
		if d == nil {
			continue
		}
		for i := range d.Statement {
			st := &d.Statement[i]
			applies := true
			for j := range st.conds {
				if !st.conds[j].holds(&v) {
					applies = false
					break
				}
			}
			if !applies {
				continue
			}
			for _, r := range st.resources {
				g, ok := instantiate(r.template, &v, r.kind)
				if !ok {
					continue
				}
				for a := range numActions {
					if !st.actions.has(a) || !kindFits(r.kind, a) {
						continue
					}
					if st.Effect == "Deny" {
						c.deny[a] = append(c.deny[a], g)
					} else {
						c.allow[a] = append(c.allow[a], g)
						if g.kind == globPrefix && g.prefix == "" {
							c.allowAll[a] = true
						}
					}
				}
			}
		}
	}
	c.unrestrictedReceive = c.allowAll[Receive] && len(c.deny[Receive]) == 0
	return c
}

func kindFits(kind string, a Action) bool {
	switch kind {
	case kindAny:
		return true
	case kindTopic:
		return a == Publish || a == Receive
	case kindTopicFilter:
		return a == Subscribe
	case kindClient:
		return a == Connect
	}
	return false
}

// Allowed reports whether the policy allows action a on name: the client
// id for Connect, the topic name for Publish and Receive, the topic filter
// for Subscribe. Deny overrides Allow; nothing allowed is denied.
func (c *Compiled) Allowed(a Action, name string) bool {
	if c == nil || a >= numActions {
		return false
	}
	for i := range c.deny[a] {
		if c.deny[a][i].match(name) {
			return false
		}
	}
	if c.allowAll[a] {
		return true
	}
	for i := range c.allow[a] {
		if c.allow[a][i].match(name) {
			return true
		}
	}
	return false
}

// RestrictsReceive reports whether deliveries need an iot:Receive check:
// false when every topic may be received.
func (c *Compiled) RestrictsReceive() bool { return c == nil || !c.unrestrictedReceive }

// Default is the built-in policy for things with no policy attached: it
// reproduces the default confinement. A thing may connect with any client
// id and publish, subscribe and receive under devices/{thing}/,
// $aws/things/{thing}/ and $edgewise/things/{thing}/ (at least one
// character below the prefix).
const Default = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/*"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": [
      "topic/devices/${iot:Connection.Thing.ThingName}/?*",
      "topic/$aws/things/${iot:Connection.Thing.ThingName}/?*",
      "topic/$edgewise/things/${iot:Connection.Thing.ThingName}/?*"]},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [
      "topicfilter/devices/${iot:Connection.Thing.ThingName}/?*",
      "topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/?*",
      "topicfilter/$edgewise/things/${iot:Connection.Thing.ThingName}/?*"]}
  ]
}`

// CompileDefault compiles the built-in policy for v. Its subscriptions are
// confined to literal per-thing prefixes, so everything they deliver lies in
// the thing's namespace and deliveries need no iot:Receive check.
func CompileDefault(v Vars, d *Document) *Compiled {
	c := Compile(v, d)
	c.unrestrictedReceive = true
	return c
}
