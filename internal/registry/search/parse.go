package search

import (
	"fmt"
	"strconv"
	"strings"
)

// Limits of the parser, so a hostile query cannot exhaust the stack or CPU.
const (
	MaxQueryLen = 4096
	MaxDepth    = 32
	MaxTerms    = 128
)

// Error is a syntax error at a 1-based column of the query.
type Error struct {
	Column int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("search: column %d: %s", e.Column, e.Msg) }

// FieldKind says which part of a thing a field reads.
type FieldKind uint8

// Field kinds.
const (
	ThingName FieldKind = iota + 1
	ThingType
	GroupNames
	Attribute
	Connected
	ConnTimestamp
	ShadowReported
	ShadowDesired
)

// Field is a parsed field reference.
type Field struct {
	Kind FieldKind
	// Key is the attribute name or the shadow path (dot-separated) .
	Key string
	// Path is Key split on dots (shadow fields only).
	Path []string
}

// String returns the field as written in a query.
func (f Field) String() string {
	switch f.Kind {
	case ThingName:
		return "thingName"
	case ThingType:
		return "thingTypeName"
	case GroupNames:
		return "thingGroupNames"
	case Attribute:
		return "attributes." + f.Key
	case Connected:
		return "connectivity.connected"
	case ConnTimestamp:
		return "connectivity.timestamp"
	case ShadowReported:
		return "shadow.reported." + f.Key
	case ShadowDesired:
		return "shadow.desired." + f.Key
	}
	return "?"
}

// Shadow reports whether the field is read from a device shadow.
func (f Field) Shadow() bool { return f.Kind == ShadowReported || f.Kind == ShadowDesired }

// ParseField parses a field name (as used by aggregations).
func ParseField(s string) (Field, error) {
	f, msg := parseField(s)
	if msg != "" {
		return Field{}, fmt.Errorf("search: field %q: %s", s, msg)
	}
	return f, nil
}

func parseField(s string) (Field, string) {
	switch s {
	case "thingName":
		return Field{Kind: ThingName}, ""
	case "thingTypeName":
		return Field{Kind: ThingType}, ""
	case "thingGroupNames":
		return Field{Kind: GroupNames}, ""
	case "connected", "connectivity.connected":
		return Field{Kind: Connected}, ""
	case "connectivity.timestamp":
		return Field{Kind: ConnTimestamp}, ""
	}
	if k, ok := strings.CutPrefix(s, "attributes."); ok {
		if k == "" {
			return Field{}, "attribute name missing after \"attributes.\""
		}
		return Field{Kind: Attribute, Key: k}, ""
	}
	for prefix, kind := range map[string]FieldKind{"shadow.reported.": ShadowReported, "shadow.desired.": ShadowDesired} {
		if k, ok := strings.CutPrefix(s, prefix); ok {
			path := strings.Split(k, ".")
			for _, p := range path {
				if p == "" {
					return Field{}, "empty path element in shadow field"
				}
			}
			return Field{Kind: kind, Key: k, Path: path}, ""
		}
	}
	return Field{}, "unknown field (use thingName, thingTypeName, thingGroupNames, attributes.NAME, connectivity.connected, connectivity.timestamp, shadow.reported.PATH or shadow.desired.PATH)"
}

// Op is the operator of a term.
type Op uint8

// Term operators.
const (
	OpEq Op = iota + 1
	OpExists
	OpLt
	OpLe
	OpGt
	OpGe
	OpRange
)

// Node is a node of the syntax tree: exactly one of the groups of fields is
// used, according to Kind.
type Node struct {
	Kind NodeKind
	// And, Or: the operands. Not: Children[0].
	Children []*Node
	// Term:
	Field Field
	Op    Op
	Value Literal // OpEq, OpLt..OpGe; OpRange: lower bound
	Upper Literal // OpRange: upper bound
	// OpRange: whether each bound is inclusive; an open bound has Open set.
	LowerIncl, UpperIncl bool
}

// NodeKind is the kind of a Node.
type NodeKind uint8

// Node kinds.
const (
	And NodeKind = iota + 1
	Or
	Not
	Term
)

// Literal is a value written in a query.
type Literal struct {
	Text     string
	Quoted   bool
	Wildcard bool // unquoted and contains * or ?
	Open     bool // the "*" bound of a range
	IsNum    bool
	Num      float64
}

func newLiteral(text string, quoted bool) Literal {
	l := Literal{Text: text, Quoted: quoted}
	if !quoted && strings.ContainsAny(text, "*?") {
		l.Wildcard = true
	}
	if n, err := strconv.ParseFloat(text, 64); err == nil && !l.Wildcard {
		l.IsNum, l.Num = true, n
	}
	return l
}

// Query is a parsed query.
type Query struct {
	Root *Node
	src  string
}

// String returns the query text it was parsed from.
func (q *Query) String() string { return q.src }

// Fields returns the distinct fields the query reads.
func (q *Query) Fields() []Field {
	var out []Field
	seen := map[string]bool{}
	var walk func(n *Node)
	walk = func(n *Node) {
		if n.Kind == Term {
			if s := n.Field.String(); !seen[s] {
				seen[s] = true
				out = append(out, n.Field)
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(q.Root)
	return out
}

// NeedsShadow reports whether evaluating the query reads device shadows.
func (q *Query) NeedsShadow() bool {
	for _, f := range q.Fields() {
		if f.Shadow() {
			return true
		}
	}
	return false
}

// Parse parses a query. The empty query (only white space) is an error; use
// "*" or "thingName:*" to match every thing.
func Parse(src string) (*Query, error) {
	if len(src) > MaxQueryLen {
		return nil, &Error{Column: MaxQueryLen + 1, Msg: fmt.Sprintf("query longer than %d bytes", MaxQueryLen)}
	}
	p := &parser{lx: lexer{src: src}}
	p.next()
	if p.tok.kind == tEOF {
		return nil, &Error{Column: 1, Msg: "empty query (use thingName:* to match every thing)"}
	}
	root, err := p.parseOr(0)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.errorf("unexpected %s", p.tok.describe())
	}
	return &Query{Root: root, src: src}, nil
}

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tString
	tLParen
	tRParen
	tColon
	tLBracket
	tRBracket
	tLBrace
	tRBrace
	tLt
	tLe
	tGt
	tGe
	tAnd
	tOr
	tNot
	tTo
)

type token struct {
	kind tokKind
	text string
	pos  int // byte offset
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return fmt.Sprintf("string %q", t.text)
	case tWord:
		return fmt.Sprintf("%q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

type lexer struct {
	src string
	pos int
	err *Error
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// isWordEnd reports characters that end a bare word.
func isWordEnd(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '"':
		return true
	}
	return isSpace(c)
}

func (l *lexer) next() token {
	for l.pos < len(l.src) && isSpace(l.src[l.pos]) {
		l.pos++
	}
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tEOF, pos: start}
	}
	c := l.src[l.pos]
	single := map[byte]tokKind{'(': tLParen, ')': tRParen, '[': tLBracket, ']': tRBracket, '{': tLBrace, '}': tRBrace}
	if k, ok := single[c]; ok {
		l.pos++
		return token{kind: k, text: string(c), pos: start}
	}
	switch c {
	case '<', '>':
		l.pos++
		k := tLt
		if c == '>' {
			k = tGt
		}
		if l.pos < len(l.src) && l.src[l.pos] == '=' {
			l.pos++
			k++
		}
		return token{kind: k, text: l.src[start:l.pos], pos: start}
	case '"':
		l.pos++
		var b strings.Builder
		for {
			if l.pos >= len(l.src) {
				l.err = &Error{Column: start + 1, Msg: "unterminated string"}
				return token{kind: tEOF, pos: start}
			}
			ch := l.src[l.pos]
			if ch == '"' {
				l.pos++
				return token{kind: tString, text: b.String(), pos: start}
			}
			if ch == '\\' {
				if l.pos+1 >= len(l.src) {
					l.err = &Error{Column: l.pos + 1, Msg: "backslash at end of query"}
					return token{kind: tEOF, pos: start}
				}
				l.pos++
				ch = l.src[l.pos]
			}
			b.WriteByte(ch)
			l.pos++
		}
	}
	// A bare word; a colon ends it only when the word so far is a field
	// name (so values may contain colons: attributes.mac:aa:bb).
	for l.pos < len(l.src) && !isWordEnd(l.src[l.pos]) {
		if l.src[l.pos] == ':' {
			if l.pos == start {
				l.pos++
				return token{kind: tColon, text: ":", pos: start}
			}
			break
		}
		l.pos++
	}
	w := l.src[start:l.pos]
	switch w {
	case "AND", "&&":
		return token{kind: tAnd, text: w, pos: start}
	case "OR", "||":
		return token{kind: tOr, text: w, pos: start}
	case "NOT", "!":
		return token{kind: tNot, text: w, pos: start}
	case "TO":
		return token{kind: tTo, text: w, pos: start}
	}
	return token{kind: tWord, text: w, pos: start}
}

// rest reads a value after "field:": everything up to white space or a
// closing parenthesis, colons included.
func (l *lexer) value() token {
	start := l.pos
	for l.pos < len(l.src) && !isWordEnd(l.src[l.pos]) {
		l.pos++
	}
	return token{kind: tWord, text: l.src[start:l.pos], pos: start}
}

type parser struct {
	lx    lexer
	tok   token
	terms int
}

func (p *parser) next() { p.tok = p.lx.next() }

func (p *parser) errorf(format string, args ...any) *Error {
	if p.lx.err != nil {
		return p.lx.err
	}
	return &Error{Column: p.tok.pos + 1, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parseOr(depth int) (*Node, error) {
	if depth > MaxDepth {
		return nil, p.errorf("query nested deeper than %d levels", MaxDepth)
	}
	left, err := p.parseAnd(depth)
	if err != nil {
		return nil, err
	}
	kids := []*Node{left}
	for p.tok.kind == tOr {
		p.next()
		n, err := p.parseAnd(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return left, nil
	}
	return &Node{Kind: Or, Children: kids}, nil
}

func (p *parser) parseAnd(depth int) (*Node, error) {
	left, err := p.parseNot(depth)
	if err != nil {
		return nil, err
	}
	kids := []*Node{left}
	for {
		switch p.tok.kind {
		case tAnd:
			p.next()
		case tWord, tString, tNot, tLParen:
		default:
			if len(kids) == 1 {
				return left, nil
			}
			return &Node{Kind: And, Children: kids}, nil
		}
		n, err := p.parseNot(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
}

func (p *parser) parseNot(depth int) (*Node, error) {
	if depth > MaxDepth {
		return nil, p.errorf("query nested deeper than %d levels", MaxDepth)
	}
	switch p.tok.kind {
	case tNot:
		p.next()
		n, err := p.parseNot(depth + 1)
		if err != nil {
			return nil, err
		}
		return &Node{Kind: Not, Children: []*Node{n}}, nil
	case tLParen:
		open := p.tok
		p.next()
		n, err := p.parseOr(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			if p.tok.kind == tEOF && p.lx.err == nil {
				return nil, &Error{Column: open.pos + 1, Msg: "unclosed parenthesis"}
			}
			return nil, p.errorf("expected ')' but found %s", p.tok.describe())
		}
		p.next()
		return n, nil
	case tWord, tString:
		return p.parseTerm()
	case tEOF:
		return nil, p.errorf("expected a term but the query ended")
	}
	return nil, p.errorf("expected a term but found %s", p.tok.describe())
}

func (p *parser) parseTerm() (*Node, error) {
	if p.terms++; p.terms > MaxTerms {
		return nil, p.errorf("more than %d terms", MaxTerms)
	}
	first := p.tok
	// A quoted string, or a word not followed by ':' or a comparison, is a
	// thingName value.
	if first.kind == tString {
		p.next()
		return &Node{Kind: Term, Field: Field{Kind: ThingName}, Op: OpEq, Value: newLiteral(first.text, true)}, nil
	}
	p.next()
	switch p.tok.kind {
	case tColon, tLt, tLe, tGt, tGe:
	default:
		return &Node{Kind: Term, Field: Field{Kind: ThingName}, Op: OpEq, Value: newLiteral(first.text, false)}, nil
	}
	f, msg := parseField(first.text)
	if msg != "" {
		return nil, &Error{Column: first.pos + 1, Msg: fmt.Sprintf("%q: %s", first.text, msg)}
	}
	n := &Node{Kind: Term, Field: f}
	if p.tok.kind != tColon {
		n.Op = map[tokKind]Op{tLt: OpLt, tLe: OpLe, tGt: OpGt, tGe: OpGe}[p.tok.kind]
		p.next()
		v, err := p.literal("a value after " + n.Field.String())
		if err != nil {
			return nil, err
		}
		n.Value = v
		return n, nil
	}
	// After the colon: a value, "*", a range or a comparison (field:>5).
	for p.lx.pos < len(p.lx.src) && isSpace(p.lx.src[p.lx.pos]) {
		p.lx.pos++
	}
	if p.lx.pos < len(p.lx.src) {
		switch p.lx.src[p.lx.pos] {
		case '[', '{', '<', '>', '"':
			p.next()
		default:
			p.tok = p.lx.value()
		}
	} else {
		p.next()
	}
	switch p.tok.kind {
	case tLBracket, tLBrace:
		return p.parseRange(n)
	case tLt, tLe, tGt, tGe:
		n.Op = map[tokKind]Op{tLt: OpLt, tLe: OpLe, tGt: OpGt, tGe: OpGe}[p.tok.kind]
		p.next()
		v, err := p.literal("a value after " + n.Field.String())
		if err != nil {
			return nil, err
		}
		n.Value = v
		return n, nil
	case tWord:
		if p.tok.text == "" {
			return nil, p.errorf("expected a value after %s:", n.Field.String())
		}
		if p.tok.text == "*" {
			n.Op = OpExists
			p.next()
			return n, nil
		}
	}
	v, err := p.literal("a value after " + n.Field.String() + ":")
	if err != nil {
		return nil, err
	}
	n.Op, n.Value = OpEq, v
	return n, nil
}

func (p *parser) literal(what string) (Literal, error) {
	switch p.tok.kind {
	case tWord:
		if p.tok.text == "" {
			break
		}
		l := newLiteral(p.tok.text, false)
		p.next()
		return l, nil
	case tString:
		l := newLiteral(p.tok.text, true)
		p.next()
		return l, nil
	}
	return Literal{}, p.errorf("expected %s but found %s", what, p.tok.describe())
}

func (p *parser) parseRange(n *Node) (*Node, error) {
	n.Op = OpRange
	n.LowerIncl = p.tok.kind == tLBracket
	p.next()
	bound := func() (Literal, error) {
		if p.tok.kind == tWord && p.tok.text == "*" {
			p.next()
			return Literal{Open: true, Text: "*"}, nil
		}
		return p.literal("a range bound")
	}
	lo, err := bound()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tTo {
		return nil, p.errorf("expected TO in range but found %s", p.tok.describe())
	}
	p.next()
	hi, err := bound()
	if err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tRBracket:
		n.UpperIncl = true
	case tRBrace:
	default:
		return nil, p.errorf("expected ']' or '}' to close the range but found %s", p.tok.describe())
	}
	p.next()
	if lo.Wildcard || hi.Wildcard {
		return nil, &Error{Column: p.tok.pos + 1, Msg: "range bounds cannot contain wildcards"}
	}
	n.Value, n.Upper = lo, hi
	return n, nil
}
