package flux

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrParse wraps every parse error.
var ErrParse = errors.New("flux: syntax error")

const maxDepth = 100

// ---- AST ----

// Node is an expression or statement node.
type Node interface{ pos() int }

type (
	// Ident is a name.
	Ident struct {
		P    int
		Name string
	}
	// Lit is a literal value (string, int, float, bool, time, duration).
	Lit struct {
		P int
		V Value
	}
	// RegexLit is /re/.
	RegexLit struct {
		P  int
		Re *regexp.Regexp
	}
	// Member is Obj.Prop or Obj["Prop"].
	Member struct {
		P    int
		Obj  Node
		Prop string
	}
	// Index is Obj[Idx] (arrays).
	Index struct {
		P        int
		Obj, Idx Node
	}
	// Property is one named argument or record field.
	Property struct {
		Key   string
		Value Node // nil: shorthand {a} meaning {a: a}
	}
	// Call is Callee(args...) with named arguments.
	Call struct {
		P      int
		Callee Node
		Args   []Property
	}
	// Pipe is Arg |> Call.
	Pipe struct {
		P    int
		Arg  Node
		Call *Call
	}
	// Arrow is (params) => body.
	Arrow struct {
		P      int
		Params []Property // Value = default
		Body   Node
	}
	// Binary is L op R.
	Binary struct {
		P    int
		Op   string
		L, R Node
	}
	// Unary is op X (-, not, exists).
	Unary struct {
		P  int
		Op string
		X  Node
	}
	// Array is [a, b].
	Array struct {
		P     int
		Elems []Node
	}
	// Record is {a: 1} or {r with a: 1}.
	Record struct {
		P     int
		With  Node
		Props []Property
	}
	// Cond is if c then a else b.
	Cond struct {
		P                int
		Test, Then, Else Node
	}
	// Assign is name = expr (option name = expr too).
	Assign struct {
		P      int
		Name   string
		Value  Node
		Option bool
	}
	// ExprStmt is a bare expression (its tables are yielded).
	ExprStmt struct {
		P int
		X Node
	}
)

func (n *Ident) pos() int    { return n.P }
func (n *Lit) pos() int      { return n.P }
func (n *RegexLit) pos() int { return n.P }
func (n *Member) pos() int   { return n.P }
func (n *Index) pos() int    { return n.P }
func (n *Call) pos() int     { return n.P }
func (n *Pipe) pos() int     { return n.P }
func (n *Arrow) pos() int    { return n.P }
func (n *Binary) pos() int   { return n.P }
func (n *Unary) pos() int    { return n.P }
func (n *Array) pos() int    { return n.P }
func (n *Record) pos() int   { return n.P }
func (n *Cond) pos() int     { return n.P }
func (n *Assign) pos() int   { return n.P }
func (n *ExprStmt) pos() int { return n.P }

// ---- lexer ----

type tkind int

const (
	kEOF tkind = iota
	kIdent
	kString
	kInt
	kFloat
	kDuration
	kTime
	kOp // punctuation and operators; text in lit
	kRegex
)

type token struct {
	k   tkind
	pos int
	lit string
}

type parser struct {
	src   string
	i     int
	tok   token
	depth int
}

// Parse parses a Flux program (the supported subset).
func Parse(src string) ([]Node, error) {
	p := &parser{src: src}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var out []Node
	for p.tok.k != kEOF {
		st, err := p.statement()
		if err != nil {
			return nil, err
		}
		if st != nil {
			out = append(out, st)
		}
	}
	return out, nil
}

func (p *parser) where(pos int) string {
	line, col := 1, 1
	for _, r := range p.src[:min(pos, len(p.src))] {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("%d:%d", line, col)
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return fmt.Errorf("%w at %s: %s", ErrParse, p.where(pos), fmt.Sprintf(format, args...))
}

func (t token) String() string {
	switch t.k {
	case kEOF:
		return "end of input"
	case kString:
		return strconv.Quote(t.lit)
	}
	return strconv.Quote(t.lit)
}

var ops3 = []string{"|>", "=>", "==", "!=", "<=", ">=", "=~", "!~", "<-"}

func (p *parser) skip() {
	for p.i < len(p.src) {
		c := p.src[p.i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			p.i++
			continue
		}
		if strings.HasPrefix(p.src[p.i:], "//") {
			for p.i < len(p.src) && p.src[p.i] != '\n' {
				p.i++
			}
			continue
		}
		return
	}
}

var timeRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?`)
var durRe = regexp.MustCompile(`^(\d+(mo|ms|us|µs|ns|y|w|d|h|m|s))+`)

func (p *parser) advance() error {
	p.skip()
	start := p.i
	if p.i >= len(p.src) {
		p.tok = token{k: kEOF, pos: start}
		return nil
	}
	c := p.src[p.i]
	switch {
	case c == '"':
		var b strings.Builder
		p.i++
		for {
			if p.i >= len(p.src) {
				return p.errorf(start, "unterminated string")
			}
			c := p.src[p.i]
			if c == '"' {
				p.i++
				break
			}
			if c == '\\' && p.i+1 < len(p.src) {
				switch n := p.src[p.i+1]; n {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '"', '\\', '$':
					b.WriteByte(n)
				default:
					return p.errorf(p.i, "invalid escape \\%c", n)
				}
				p.i += 2
				continue
			}
			if c == '$' && p.i+1 < len(p.src) && p.src[p.i+1] == '{' {
				return p.errorf(p.i, "string interpolation is not supported")
			}
			b.WriteByte(c)
			p.i++
		}
		p.tok = token{k: kString, pos: start, lit: b.String()}
		return nil
	case c >= '0' && c <= '9':
		rest := p.src[p.i:]
		if m := timeRe.FindString(rest); m != "" {
			p.i += len(m)
			p.tok = token{k: kTime, pos: start, lit: m}
			return nil
		}
		if m := durRe.FindString(rest); m != "" {
			if n := p.i + len(m); n >= len(p.src) || !isIdentRune(rune(p.src[n])) {
				p.i += len(m)
				p.tok = token{k: kDuration, pos: start, lit: m}
				return nil
			}
		}
		j := p.i
		for j < len(p.src) && p.src[j] >= '0' && p.src[j] <= '9' {
			j++
		}
		kind := kInt
		if j+1 < len(p.src) && p.src[j] == '.' && p.src[j+1] >= '0' && p.src[j+1] <= '9' {
			kind = kFloat
			j++
			for j < len(p.src) && p.src[j] >= '0' && p.src[j] <= '9' {
				j++
			}
		}
		p.tok = token{k: kind, pos: start, lit: p.src[p.i:j]}
		p.i = j
		return nil
	}
	r, size := utf8.DecodeRuneInString(p.src[p.i:])
	if r == '_' || unicode.IsLetter(r) {
		j := p.i
		for j < len(p.src) {
			r, size := utf8.DecodeRuneInString(p.src[j:])
			if !isIdentRune(r) {
				break
			}
			j += size
		}
		p.tok = token{k: kIdent, pos: start, lit: p.src[p.i:j]}
		p.i = j
		return nil
	}
	for _, op := range ops3 {
		if strings.HasPrefix(p.src[p.i:], op) {
			p.i += len(op)
			p.tok = token{k: kOp, pos: start, lit: op}
			return nil
		}
	}
	if strings.ContainsRune("()[]{},:.=<>+-*/%^", r) {
		p.i += size
		p.tok = token{k: kOp, pos: start, lit: string(r)}
		return nil
	}
	return p.errorf(start, "unexpected character %q", r)
}

func isIdentRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// regex scans /.../ when the current token is "/".
func (p *parser) regex() (*RegexLit, error) {
	start := p.tok.pos
	var b strings.Builder
	j := start + 1
	for {
		if j >= len(p.src) || p.src[j] == '\n' {
			return nil, p.errorf(start, "unterminated regex")
		}
		if p.src[j] == '\\' && j+1 < len(p.src) && p.src[j+1] == '/' {
			b.WriteByte('/')
			j += 2
			continue
		}
		if p.src[j] == '/' {
			break
		}
		b.WriteByte(p.src[j])
		j++
	}
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, p.errorf(start, "invalid regex: %v", err)
	}
	p.i = j + 1
	if err := p.advance(); err != nil {
		return nil, err
	}
	return &RegexLit{P: start, Re: re}, nil
}

func (p *parser) isOp(op string) bool  { return p.tok.k == kOp && p.tok.lit == op }
func (p *parser) isWord(w string) bool { return p.tok.k == kIdent && p.tok.lit == w }
func (p *parser) unexpected(want string) error {
	return p.errorf(p.tok.pos, "expected %s, found %s", want, p.tok)
}

func (p *parser) expectOp(op string) error {
	if !p.isOp(op) {
		return p.unexpected(strconv.Quote(op))
	}
	return p.advance()
}

func (p *parser) statement() (Node, error) {
	pos := p.tok.pos
	switch {
	case p.isWord("import"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.k == kIdent { // import alias "path"
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if p.tok.k != kString {
			return nil, p.unexpected("import path string")
		}
		return nil, p.advance()
	case p.isWord("package"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		return nil, p.advance()
	case p.isWord("option"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.k != kIdent {
			return nil, p.unexpected("option name")
		}
		name := p.tok.lit
		if err := p.advance(); err != nil {
			return nil, err
		}
		for p.isOp(".") { // option pkg.name = ...: bind the last segment
			if err := p.advance(); err != nil {
				return nil, err
			}
			name = p.tok.lit
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if err := p.expectOp("="); err != nil {
			return nil, err
		}
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &Assign{P: pos, Name: name, Value: v, Option: true}, nil
	case p.tok.k == kIdent:
		// name = expr ?
		save, saveTok := p.i, p.tok
		name := p.tok.lit
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.isOp("=") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			return &Assign{P: pos, Name: name, Value: v}, nil
		}
		p.i, p.tok = save, saveTok
	}
	x, err := p.expr()
	if err != nil {
		return nil, err
	}
	return &ExprStmt{P: pos, X: x}, nil
}

func (p *parser) expr() (Node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, p.errorf(p.tok.pos, "expression nested too deeply")
	}
	if p.isWord("if") {
		pos := p.tok.pos
		c, err := p.exprAfter("if")
		if err != nil {
			return nil, err
		}
		a, err := p.exprAfter("then")
		if err != nil {
			return nil, err
		}
		b, err := p.exprAfter("else")
		if err != nil {
			return nil, err
		}
		return &Cond{P: pos, Test: c, Then: a, Else: b}, nil
	}
	return p.binary(0)
}

// exprAfter parses the keyword w and the expression that follows it.
func (p *parser) exprAfter(w string) (Node, error) {
	if !p.isWord(w) {
		return nil, p.unexpected(strconv.Quote(w))
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	return p.expr()
}

var levels = [][]string{{"or"}, {"and"}, {"==", "!=", "<", "<=", ">", ">=", "=~", "!~"}, {"+", "-"}, {"*", "/", "%"}, {"^"}}

func (p *parser) opAt(level int) string {
	for _, op := range levels[level] {
		if (op == "or" || op == "and") && p.isWord(op) || p.isOp(op) {
			return op
		}
	}
	return ""
}

func (p *parser) binary(level int) (Node, error) {
	if level == len(levels) {
		return p.unary()
	}
	if level == 2 && p.isWord("not") { // not binds looser than comparisons
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.binary(2)
		if err != nil {
			return nil, err
		}
		return &Unary{P: pos, Op: "not", X: x}, nil
	}
	l, err := p.binary(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		op := p.opAt(level)
		if op == "" {
			return l, nil
		}
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		var r Node
		if (op == "=~" || op == "!~") && p.isOp("/") {
			if r, err = p.regex(); err != nil {
				return nil, err
			}
		} else if r, err = p.binary(level + 1); err != nil {
			return nil, err
		}
		l = &Binary{P: pos, Op: op, L: l, R: r}
	}
}

func (p *parser) unary() (Node, error) {
	pos := p.tok.pos
	if p.isOp("-") || p.isWord("exists") || p.isOp("+") {
		op := p.tok.lit
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if op == "+" {
			return x, nil
		}
		if l, ok := x.(*Lit); ok && op == "-" {
			if neg, ok := l.V.negate(); ok {
				return &Lit{P: pos, V: neg}, nil
			}
		}
		return &Unary{P: pos, Op: op, X: x}, nil
	}
	return p.pipe()
}

func (p *parser) pipe() (Node, error) {
	x, err := p.postfix()
	if err != nil {
		return nil, err
	}
	for p.isOp("|>") {
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		callee, err := p.postfix()
		if err != nil {
			return nil, err
		}
		call, ok := callee.(*Call)
		if !ok {
			return nil, p.errorf(pos, "pipe destination must be a function call")
		}
		x = &Pipe{P: pos, Arg: x, Call: call}
	}
	return x, nil
}

func (p *parser) postfix() (Node, error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		pos := p.tok.pos
		switch {
		case p.isOp("."):
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.k != kIdent {
				return nil, p.unexpected("property name")
			}
			x = &Member{P: pos, Obj: x, Prop: p.tok.lit}
			if err := p.advance(); err != nil {
				return nil, err
			}
		case p.isOp("["):
			if err := p.advance(); err != nil {
				return nil, err
			}
			idx, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expectOp("]"); err != nil {
				return nil, err
			}
			if l, ok := idx.(*Lit); ok && l.V.Kind == KString {
				x = &Member{P: pos, Obj: x, Prop: l.V.S}
			} else {
				x = &Index{P: pos, Obj: x, Idx: idx}
			}
		case p.isOp("("):
			if err := p.advance(); err != nil {
				return nil, err
			}
			props, err := p.properties(")")
			if err != nil {
				return nil, err
			}
			x = &Call{P: pos, Callee: x, Args: props}
		default:
			return x, nil
		}
	}
}

// properties parses "k: v, ..." up to the closing delimiter (consumed).
func (p *parser) properties(end string) ([]Property, error) {
	var out []Property
	for !p.isOp(end) {
		if p.tok.k != kIdent && p.tok.k != kString {
			return nil, p.unexpected("property name")
		}
		key := p.tok.lit
		if err := p.advance(); err != nil {
			return nil, err
		}
		prop := Property{Key: key}
		if p.isOp(":") || p.isOp("=") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			prop.Value = v
		}
		out = append(out, prop)
		if p.isOp(",") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			continue
		}
		if !p.isOp(end) {
			return nil, p.unexpected(`"," or "` + end + `"`)
		}
	}
	return out, p.advance()
}

func (p *parser) primary() (Node, error) {
	t := p.tok
	pos := t.pos
	adv := func(n Node) (Node, error) { return n, p.advance() }
	switch t.k {
	case kIdent:
		switch t.lit {
		case "true", "false":
			return adv(&Lit{P: pos, V: Bool(t.lit == "true")})
		}
		return adv(&Ident{P: pos, Name: t.lit})
	case kString:
		return adv(&Lit{P: pos, V: Str(t.lit)})
	case kInt:
		n, err := strconv.ParseInt(t.lit, 10, 64)
		if err != nil {
			return nil, p.errorf(pos, "integer %s out of range", t.lit)
		}
		return adv(&Lit{P: pos, V: Int(n)})
	case kFloat:
		f, err := strconv.ParseFloat(t.lit, 64)
		if err != nil {
			return nil, p.errorf(pos, "invalid float %s", t.lit)
		}
		return adv(&Lit{P: pos, V: Float(f)})
	case kTime:
		ts, err := parseTime(t.lit)
		if err != nil {
			return nil, p.errorf(pos, "%v", err)
		}
		return adv(&Lit{P: pos, V: Time(ts)})
	case kDuration:
		d, err := parseDuration(t.lit)
		if err != nil {
			return nil, p.errorf(pos, "%v", err)
		}
		return adv(&Lit{P: pos, V: d})
	case kOp:
		switch t.lit {
		case "/":
			return p.regex()
		case "[":
			if err := p.advance(); err != nil {
				return nil, err
			}
			arr := &Array{P: pos}
			for !p.isOp("]") {
				e, err := p.expr()
				if err != nil {
					return nil, err
				}
				arr.Elems = append(arr.Elems, e)
				if p.isOp(",") {
					if err := p.advance(); err != nil {
						return nil, err
					}
				} else if !p.isOp("]") {
					return nil, p.unexpected(`"," or "]"`)
				}
			}
			return arr, p.advance()
		case "{":
			if err := p.advance(); err != nil {
				return nil, err
			}
			rec := &Record{P: pos}
			if p.tok.k == kIdent {
				save, saveTok := p.i, p.tok
				name := p.tok.lit
				if err := p.advance(); err != nil {
					return nil, err
				}
				if p.isWord("with") {
					if err := p.advance(); err != nil {
						return nil, err
					}
					rec.With = &Ident{P: saveTok.pos, Name: name}
				} else {
					p.i, p.tok = save, saveTok
				}
			}
			props, err := p.properties("}")
			if err != nil {
				return nil, err
			}
			rec.Props = props
			return rec, nil
		case "(":
			if arrow, ok, err := p.tryArrow(); ok || err != nil {
				return arrow, err
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			return e, p.expectOp(")")
		}
	}
	return nil, p.unexpected("an expression")
}

// tryArrow parses (params) => body when the parenthesis starts one.
func (p *parser) tryArrow() (Node, bool, error) {
	save, saveTok := p.i, p.tok
	restore := func() { p.i, p.tok = save, saveTok }
	pos := p.tok.pos
	if err := p.advance(); err != nil {
		restore()
		return nil, false, nil
	}
	var params []Property
	for !p.isOp(")") {
		if p.tok.k != kIdent {
			restore()
			return nil, false, nil
		}
		prop := Property{Key: p.tok.lit}
		if err := p.advance(); err != nil {
			restore()
			return nil, false, nil
		}
		if p.isOp("=") {
			if err := p.advance(); err != nil {
				return nil, false, err
			}
			if p.isOp("<-") {
				if err := p.advance(); err != nil {
					return nil, false, err
				}
			} else {
				v, err := p.expr()
				if err != nil {
					restore()
					return nil, false, nil
				}
				prop.Value = v
			}
		}
		params = append(params, prop)
		if p.isOp(",") {
			if err := p.advance(); err != nil {
				restore()
				return nil, false, nil
			}
		} else if !p.isOp(")") {
			restore()
			return nil, false, nil
		}
	}
	if err := p.advance(); err != nil || !p.isOp("=>") {
		restore()
		return nil, false, nil
	}
	if err := p.advance(); err != nil {
		return nil, true, err
	}
	var body Node
	var err error
	if p.isOp("{") {
		// block body: { return expr }
		save2, tok2 := p.i, p.tok
		if err := p.advance(); err != nil {
			return nil, true, err
		}
		if p.isWord("return") {
			if err := p.advance(); err != nil {
				return nil, true, err
			}
			if body, err = p.expr(); err != nil {
				return nil, true, err
			}
			if err := p.expectOp("}"); err != nil {
				return nil, true, err
			}
			return &Arrow{P: pos, Params: params, Body: body}, true, nil
		}
		p.i, p.tok = save2, tok2
	}
	if body, err = p.expr(); err != nil {
		return nil, true, err
	}
	return &Arrow{P: pos, Params: params, Body: body}, true, nil
}

func parseTime(s string) (int64, error) {
	for _, l := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixNano(), nil
		}
	}
	return 0, fmt.Errorf("invalid time %s", s)
}

func parseDuration(s string) (Value, error) {
	var months, nanos int64
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n > 1<<40 {
			return Value{}, fmt.Errorf("invalid duration magnitude %s", s[:i])
		}
		s = s[i:]
		unit := ""
		for _, u := range []string{"mo", "ms", "us", "µs", "ns", "y", "w", "d", "h", "m", "s"} {
			if strings.HasPrefix(s, u) {
				unit = u
				break
			}
		}
		s = s[len(unit):]
		switch unit {
		case "y":
			months += 12 * n
		case "mo":
			months += n
		case "w":
			nanos += n * int64(7*24*time.Hour)
		case "d":
			nanos += n * int64(24*time.Hour)
		case "h":
			nanos += n * int64(time.Hour)
		case "m":
			nanos += n * int64(time.Minute)
		case "s":
			nanos += n * int64(time.Second)
		case "ms":
			nanos += n * int64(time.Millisecond)
		case "us", "µs":
			nanos += n * int64(time.Microsecond)
		case "ns":
			nanos += n
		default:
			return Value{}, fmt.Errorf("invalid duration unit")
		}
	}
	return Duration(nanos, months), nil
}
