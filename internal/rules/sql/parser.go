package sql

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

type parser struct {
	toks []token
	i    int
	// ctxAgg is set while parsing the arguments of an aggregate.
	inAgg bool
}

func isReserved(s string) bool {
	switch strings.ToUpper(s) {
	case "SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL", "TRUE", "FALSE",
		"CASE", "WHEN", "THEN", "ELSE", "END", "GROUP", "BY", "HAVING":
		return true
	}
	return false
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) peekN(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// isKw reports whether the next token is the keyword kw (upper case).
func (p *parser) isKw(kw string) bool {
	t := p.peek()
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}
func (p *parser) isOp(op string) bool {
	t := p.peek()
	return t.kind == tOp && t.text == op
}
func (p *parser) acceptKw(kw string) bool {
	if p.isKw(kw) {
		p.i++
		return true
	}
	return false
}
func (p *parser) acceptOp(op string) bool {
	if p.isOp(op) {
		p.i++
		return true
	}
	return false
}
func (p *parser) expectKw(kw string) error {
	if !p.acceptKw(kw) {
		t := p.peek()
		return errAt(t.pos, "expected %s, found %s", kw, t)
	}
	return nil
}
func (p *parser) expectOp(op string) error {
	if !p.acceptOp(op) {
		t := p.peek()
		return errAt(t.pos, "expected %q, found %s", op, t)
	}
	return nil
}

// Parse parses and checks a rule's SQL. Errors are *Error.
func Parse(src string) (*Statement, error) {
	toks, err := lex(src, Pos{1, 1})
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	st, err := p.statement()
	if err != nil {
		return nil, err
	}
	if err := st.check(); err != nil {
		return nil, err
	}
	return st, nil
}

// ParseExpr parses a single expression (no aggregates).
func ParseExpr(src string) (Expr, error) { return parseExprAt(src, Pos{1, 1}) }

func parseExprAt(src string, base Pos) (Expr, error) {
	toks, err := lex(src, base)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, errAt(t.pos, "unexpected %s after expression", t)
	}
	var aggErr error
	Walk(e, func(x Expr) bool {
		if c, ok := x.(*Call); ok && c.Agg && aggErr == nil {
			aggErr = errAt(c.P, "aggregate function %s is not allowed here", c.Name)
		}
		return aggErr == nil
	})
	return e, aggErr
}

func (p *parser) statement() (*Statement, error) {
	st := &Statement{}
	if err := p.expectKw("SELECT"); err != nil {
		return nil, err
	}
	for {
		f, err := p.field(len(st.Fields) + 1)
		if err != nil {
			return nil, err
		}
		st.Fields = append(st.Fields, f)
		if !p.acceptOp(",") {
			break
		}
	}
	if err := p.expectKw("FROM"); err != nil {
		return nil, err
	}
	t := p.next()
	if t.kind != tString && t.kind != tQuotedIdent {
		return nil, errAt(t.pos, "expected a quoted topic filter after FROM, found %s", t)
	}
	if err := checkFilter(t.text); err != nil {
		return nil, errAt(t.pos, "topic filter %q: %v", t.text, err)
	}
	st.From, st.FromPos = t.text, t.pos
	if p.acceptKw("WHERE") {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		st.Where = e
	}
	if p.isKw("GROUP") {
		p.next()
		if err := p.expectKw("BY"); err != nil {
			return nil, err
		}
		for {
			if err := p.groupItem(st); err != nil {
				return nil, err
			}
			if !p.acceptOp(",") {
				break
			}
		}
	}
	if p.acceptKw("HAVING") {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		st.Having = e
	}
	p.acceptOp(";")
	if t := p.peek(); t.kind != tEOF {
		return nil, errAt(t.pos, "unexpected %s", t)
	}
	return st, nil
}

func (p *parser) field(n int) (Field, error) {
	if t := p.peek(); t.kind == tOp && t.text == "*" {
		p.next()
		return Field{Expr: &Star{P: t.pos}, Star: true}, nil
	}
	e, err := p.expr()
	if err != nil {
		return Field{}, err
	}
	f := Field{Expr: e}
	if p.isOp(".") && p.peekN(1).kind == tOp && p.peekN(1).text == "*" {
		p.next()
		p.next()
		f.Expand = true
		return f, nil
	}
	if p.acceptKw("AS") {
		t := p.next()
		if t.kind != tIdent && t.kind != tQuotedIdent && t.kind != tString {
			return Field{}, errAt(t.pos, "expected a column name after AS, found %s", t)
		}
		if t.text == "" {
			return Field{}, errAt(t.pos, "empty column name")
		}
		f.Alias = t.text
	} else if t := p.peek(); (t.kind == tIdent && !isReserved(t.text)) || t.kind == tQuotedIdent {
		p.next()
		f.Alias = t.text
	} else {
		f.Alias = defaultName(e, n)
	}
	return f, nil
}

// defaultName names an unaliased column: the last key of a field path, the
// function name of a call, _N otherwise.
func defaultName(e Expr, n int) string {
	switch x := e.(type) {
	case *FieldRef:
		for i := len(x.Steps) - 1; i >= 0; i-- {
			if x.Steps[i].Index == nil {
				return x.Steps[i].Key
			}
		}
	case *Call:
		return x.Name
	case *Cast:
		return "cast"
	}
	return "_" + strconv.Itoa(n)
}

func (p *parser) groupItem(st *Statement) error {
	t := p.peek()
	if t.kind == tIdent && p.peekN(1).kind == tOp && p.peekN(1).text == "(" {
		var kind WindowKind
		switch strings.ToUpper(t.text) {
		case "TUMBLINGWINDOW":
			kind = Tumbling
		case "HOPPINGWINDOW":
			kind = Hopping
		case "SLIDINGWINDOW":
			kind = Sliding
		case "SESSIONWINDOW":
			kind = Session
		case "COUNTWINDOW":
			kind = Count
		}
		if kind != 0 {
			if st.Window != nil {
				return errAt(t.pos, "only one window function is allowed in GROUP BY")
			}
			w, err := p.window(kind)
			if err != nil {
				return err
			}
			st.Window = w
			return nil
		}
	}
	e, err := p.expr()
	if err != nil {
		return err
	}
	st.GroupBy = append(st.GroupBy, e)
	return nil
}

func (p *parser) window(kind WindowKind) (*Window, error) {
	name := p.next()
	p.next() // (
	w := &Window{P: name.pos, Kind: kind}
	var unit time.Duration
	if kind != Count {
		u := p.next()
		if u.kind != tIdent {
			return nil, errAt(u.pos, "%s: expected a time unit (dd, hh, mi, ss, ms), found %s", kind, u)
		}
		switch strings.ToLower(u.text) {
		case "dd":
			unit = 24 * time.Hour
		case "hh":
			unit = time.Hour
		case "mi":
			unit = time.Minute
		case "ss":
			unit = time.Second
		case "ms":
			unit = time.Millisecond
		default:
			return nil, errAt(u.pos, "%s: unknown time unit %q (want dd, hh, mi, ss or ms)", kind, u.text)
		}
	}
	var nums []int64
	var poss []Pos
	for (kind == Count && len(nums) == 0) || p.acceptOp(",") {
		t := p.next()
		if t.kind != tInt {
			return nil, errAt(t.pos, "%s: expected a positive integer, found %s", kind, t)
		}
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil || n <= 0 || n > 1<<40 {
			return nil, errAt(t.pos, "%s: %s is not a valid length", kind, t.text)
		}
		nums = append(nums, n)
		poss = append(poss, t.pos)
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	want := map[WindowKind][2]int{Tumbling: {1, 1}, Hopping: {2, 2}, Sliding: {1, 1}, Session: {2, 2}, Count: {1, 2}}[kind]
	if len(nums) < want[0] || len(nums) > want[1] {
		args := map[WindowKind]string{Tumbling: "(unit, size)", Hopping: "(unit, size, hop)", Sliding: "(unit, size)",
			Session: "(unit, maxduration, timeout)", Count: "(count[, hop])"}[kind]
		return nil, errAt(name.pos, "%s takes %s", kind, args)
	}
	d := func(i int) (time.Duration, error) {
		if nums[i] > int64(math.MaxInt64/unit) {
			return 0, errAt(poss[i], "%s: length too large", kind)
		}
		return time.Duration(nums[i]) * unit, nil
	}
	var err error
	switch kind {
	case Tumbling, Sliding:
		w.Size, err = d(0)
	case Hopping:
		if w.Size, err = d(0); err == nil {
			w.Hop, err = d(1)
		}
	case Session:
		if w.Size, err = d(0); err == nil {
			w.Timeout, err = d(1)
		}
	case Count:
		w.Count, w.CountHop = int(nums[0]), int(nums[0])
		if len(nums) == 2 {
			w.CountHop = int(nums[1])
			if w.CountHop > w.Count {
				return nil, errAt(poss[1], "COUNTWINDOW: the hop %d is larger than the window length %d", w.CountHop, w.Count)
			}
		}
		if w.Count > 1<<20 {
			return nil, errAt(poss[0], "COUNTWINDOW: length %d is larger than %d", w.Count, 1<<20)
		}
	}
	return w, err
}

// Expressions, by increasing precedence:
// OR; AND; NOT; comparison, IN, LIKE, IS; + - ||; * / %; unary -; postfix.
func (p *parser) expr() (Expr, error) { return p.or() }

func (p *parser) or() (Expr, error) {
	l, err := p.and()
	for err == nil && p.isKw("OR") {
		t := p.next()
		var r Expr
		if r, err = p.and(); err == nil {
			l = &Binary{P: t.pos, Op: "OR", L: l, R: r}
		}
	}
	return l, err
}

func (p *parser) and() (Expr, error) {
	l, err := p.not()
	for err == nil && p.isKw("AND") {
		t := p.next()
		var r Expr
		if r, err = p.not(); err == nil {
			l = &Binary{P: t.pos, Op: "AND", L: l, R: r}
		}
	}
	return l, err
}

func (p *parser) not() (Expr, error) {
	if p.isKw("NOT") {
		t := p.next()
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return &Unary{P: t.pos, Op: "NOT", X: x}, nil
	}
	return p.comparison()
}

func (p *parser) comparison() (Expr, error) {
	l, err := p.additive()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch {
		case t.kind == tOp && (t.text == "=" || t.text == "==" || t.text == "<>" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">="):
			p.next()
			r, err := p.additive()
			if err != nil {
				return nil, err
			}
			op := t.text
			switch op {
			case "==":
				op = "="
			case "!=":
				op = "<>"
			}
			l = &Binary{P: t.pos, Op: op, L: l, R: r}
		case p.isKw("IS"):
			p.next()
			not := p.acceptKw("NOT")
			k := p.next()
			switch {
			case k.kind == tIdent && strings.EqualFold(k.text, "NULL"):
				l = &Is{P: t.pos, X: l, Not: not}
			case k.kind == tIdent && strings.EqualFold(k.text, "UNDEFINED"):
				l = &Is{P: t.pos, X: l, Not: not, Undefined: true}
			default:
				return nil, errAt(k.pos, "expected NULL or UNDEFINED after IS, found %s", k)
			}
		case p.isKw("NOT") && (p.peekN(1).kind == tIdent && (strings.EqualFold(p.peekN(1).text, "IN") || strings.EqualFold(p.peekN(1).text, "LIKE"))),
			p.isKw("IN"), p.isKw("LIKE"):
			not := p.acceptKw("NOT")
			kw := p.next()
			if strings.EqualFold(kw.text, "LIKE") {
				pat, err := p.additive()
				if err != nil {
					return nil, err
				}
				lk := &Like{P: kw.pos, X: l, Pattern: pat, Not: not}
				if lit, ok := pat.(*Literal); ok {
					s, ok := lit.V.(string)
					if !ok {
						return nil, errAt(pat.Pos(), "LIKE pattern must be a string")
					}
					lk.re = likeRegexp(s)
				}
				l = lk
				continue
			}
			in := &In{P: kw.pos, X: l, Not: not}
			if p.isOp("(") {
				p.next()
				for {
					e, err := p.expr()
					if err != nil {
						return nil, err
					}
					in.List = append(in.List, e)
					if !p.acceptOp(",") {
						break
					}
				}
				if err := p.expectOp(")"); err != nil {
					return nil, err
				}
			} else {
				e, err := p.additive()
				if err != nil {
					return nil, err
				}
				in.List = []Expr{&arrayArg{e}}
			}
			l = in
		default:
			return l, nil
		}
	}
}

// arrayArg marks the right side of x IN array.
type arrayArg struct{ Expr }

func (p *parser) additive() (Expr, error) {
	l, err := p.multiplicative()
	for err == nil && (p.isOp("+") || p.isOp("-") || p.isOp("||")) {
		t := p.next()
		var r Expr
		if r, err = p.multiplicative(); err == nil {
			l = &Binary{P: t.pos, Op: t.text, L: l, R: r}
		}
	}
	return l, err
}

func (p *parser) multiplicative() (Expr, error) {
	l, err := p.unary()
	for err == nil && (p.isOp("*") || p.isOp("/") || p.isOp("%")) {
		t := p.next()
		var r Expr
		if r, err = p.unary(); err == nil {
			l = &Binary{P: t.pos, Op: t.text, L: l, R: r}
		}
	}
	return l, err
}

func (p *parser) unary() (Expr, error) {
	if p.isOp("-") || p.isOp("+") {
		t := p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return x, nil
		}
		if lit, ok := x.(*Literal); ok {
			switch v := lit.V.(type) {
			case int64:
				return &Literal{P: t.pos, V: -v}, nil
			case float64:
				return &Literal{P: t.pos, V: -v}, nil
			}
		}
		return &Unary{P: t.pos, Op: "-", X: x}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (Expr, error) {
	e, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isOp(".") && !(p.peekN(1).kind == tOp && p.peekN(1).text == "*"):
			p.next()
			k := p.next()
			if k.kind != tIdent && k.kind != tQuotedIdent {
				return nil, errAt(k.pos, "expected a field name after '.', found %s", k)
			}
			e = appendStep(e, Step{Key: k.text})
		case p.isOp("["):
			t := p.next()
			idx, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expectOp("]"); err != nil {
				return nil, err
			}
			_ = t
			e = appendStep(e, Step{Index: idx})
		default:
			return e, nil
		}
	}
}

func appendStep(e Expr, s Step) Expr {
	f, ok := e.(*FieldRef)
	if !ok {
		f = &FieldRef{P: e.Pos(), Root: e, static: true}
	}
	if s.Index != nil {
		if lit, ok := s.Index.(*Literal); !ok {
			f.static = false
		} else if _, ok := lit.V.(int64); !ok {
			f.static = false
		}
	}
	f.Steps = append(f.Steps, s)
	return f
}

func (p *parser) primary() (Expr, error) {
	t := p.next()
	switch t.kind {
	case tInt:
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			f, _ := strconv.ParseFloat(t.text, 64)
			return &Literal{P: t.pos, V: f}, nil
		}
		return &Literal{P: t.pos, V: n}, nil
	case tDecimal:
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, errAt(t.pos, "number %s out of range", t.text)
		}
		return &Literal{P: t.pos, V: f}, nil
	case tString:
		return &Literal{P: t.pos, V: t.text}, nil
	case tQuotedIdent:
		return &FieldRef{P: t.pos, Steps: []Step{{Key: t.text}}, static: true}, nil
	case tOp:
		switch t.text {
		case "(":
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return e, nil
		case "[":
			a := &ArrayLit{P: t.pos}
			if p.acceptOp("]") {
				return a, nil
			}
			for {
				e, err := p.expr()
				if err != nil {
					return nil, err
				}
				a.Elems = append(a.Elems, e)
				if !p.acceptOp(",") {
					break
				}
			}
			return a, p.expectOp("]")
		case "{":
			o := &ObjectLit{P: t.pos}
			if p.acceptOp("}") {
				return o, nil
			}
			for {
				k := p.next()
				if k.kind != tString && k.kind != tQuotedIdent && k.kind != tIdent {
					return nil, errAt(k.pos, "expected an object key, found %s", k)
				}
				if err := p.expectOp(":"); err != nil {
					return nil, err
				}
				e, err := p.expr()
				if err != nil {
					return nil, err
				}
				o.Keys = append(o.Keys, k.text)
				o.Vals = append(o.Vals, e)
				if !p.acceptOp(",") {
					break
				}
			}
			return o, p.expectOp("}")
		case "*":
			return &Star{P: t.pos}, nil
		}
	case tIdent:
		up := strings.ToUpper(t.text)
		switch up {
		case "NULL":
			return &Literal{P: t.pos, V: nil}, nil
		case "TRUE":
			return &Literal{P: t.pos, V: true}, nil
		case "FALSE":
			return &Literal{P: t.pos, V: false}, nil
		case "CASE":
			return p.caseExpr(t)
		}
		if p.isOp("(") {
			return p.call(t)
		}
		if isReserved(t.text) {
			return nil, errAt(t.pos, "unexpected keyword %s", up)
		}
		return &FieldRef{P: t.pos, Steps: []Step{{Key: t.text}}, static: true}, nil
	case tEOF:
		return nil, errAt(t.pos, "unexpected end of input, expected an expression")
	}
	return nil, errAt(t.pos, "unexpected %s, expected an expression", t)
}

func (p *parser) caseExpr(t token) (Expr, error) {
	c := &Case{P: t.pos}
	if !p.isKw("WHEN") {
		op, err := p.expr()
		if err != nil {
			return nil, err
		}
		c.Operand = op
	}
	for p.acceptKw("WHEN") {
		cond, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.expectKw("THEN"); err != nil {
			return nil, err
		}
		then, err := p.expr()
		if err != nil {
			return nil, err
		}
		c.Whens = append(c.Whens, When{cond, then})
	}
	if len(c.Whens) == 0 {
		return nil, errAt(p.peek().pos, "CASE needs at least one WHEN, found %s", p.peek())
	}
	if p.acceptKw("ELSE") {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		c.Else = e
	}
	return c, p.expectKw("END")
}

func (p *parser) call(name token) (Expr, error) {
	p.next() // (
	lname := strings.ToLower(name.text)
	if lname == "cast" {
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if !p.acceptKw("AS") && !p.acceptOp(",") {
			return nil, errAt(p.peek().pos, "expected AS in cast(x AS type), found %s", p.peek())
		}
		tt := p.next()
		if tt.kind != tIdent && tt.kind != tString {
			return nil, errAt(tt.pos, "expected a type name, found %s", tt)
		}
		typ, ok := castType(tt.text)
		if !ok {
			return nil, errAt(tt.pos, "unknown type %q in cast (want Int, Decimal, Boolean or String)", tt.text)
		}
		return &Cast{P: name.pos, X: x, Type: typ}, p.expectOp(")")
	}
	def := lookupFunc(lname)
	if def == nil {
		return nil, errAt(name.pos, "unknown function %s", name.text)
	}
	c := &Call{P: name.pos, Name: lname, def: def, Agg: def.agg}
	if c.Agg {
		if p.inAgg {
			return nil, errAt(name.pos, "aggregate function %s inside another aggregate", lname)
		}
		p.inAgg = true
		defer func() { p.inAgg = false }()
	}
	if !p.acceptOp(")") {
		for {
			var e Expr
			if t := p.peek(); t.kind == tOp && t.text == "*" && (p.peekN(1).text == ")" || p.peekN(1).text == ",") {
				p.next()
				e = &Star{P: t.pos}
			} else {
				var err error
				if e, err = p.expr(); err != nil {
					return nil, err
				}
			}
			c.Args = append(c.Args, e)
			if !p.acceptOp(",") {
				break
			}
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
	}
	if len(c.Args) < def.min || (def.max >= 0 && len(c.Args) > def.max) {
		return nil, errAt(name.pos, "%s takes %s, got %d", lname, arity(def), len(c.Args))
	}
	for i, a := range c.Args {
		if _, ok := a.(*Star); ok && !def.star(i) {
			return nil, errAt(a.Pos(), "* is not allowed as argument %d of %s", i+1, lname)
		}
	}
	if def.check != nil {
		if err := def.check(c); err != nil {
			return nil, err
		}
	}
	if p.isKw("FILTER") && p.peekN(1).kind == tOp && p.peekN(1).text == "(" {
		ft := p.next()
		if !c.Agg {
			return nil, errAt(ft.pos, "FILTER applies to aggregate functions only, not %s", lname)
		}
		p.next()
		if err := p.expectKw("WHERE"); err != nil {
			return nil, err
		}
		save := p.inAgg
		p.inAgg = true
		f, err := p.expr()
		p.inAgg = save
		if err != nil {
			return nil, err
		}
		c.Filter = f
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func arity(d *funcDef) string {
	switch {
	case d.max == d.min && d.min == 0:
		return "no arguments"
	case d.max == d.min && d.min == 1:
		return "1 argument"
	case d.max == d.min:
		return fmt.Sprintf("%d arguments", d.min)
	case d.max < 0:
		return fmt.Sprintf("at least %d arguments", d.min)
	}
	return fmt.Sprintf("%d to %d arguments", d.min, d.max)
}

func castType(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "int", "integer", "bigint", "long":
		return "int", true
	case "decimal", "float", "double":
		return "decimal", true
	case "bool", "boolean":
		return "boolean", true
	case "string", "varchar", "text":
		return "string", true
	}
	return "", false
}

// likeRegexp compiles a LIKE pattern.
func likeRegexp(pat string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?s)^")
	esc := false
	for _, r := range pat {
		switch {
		case esc:
			b.WriteString(regexp.QuoteMeta(string(r)))
			esc = false
		case r == '\\':
			esc = true
		case r == '%':
			b.WriteString(".*")
		case r == '_':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	if esc {
		b.WriteString(`\\`)
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// checkFilter validates an MQTT topic filter.
func checkFilter(f string) error {
	if f == "" {
		return fmt.Errorf("empty")
	}
	if len(f) > 65535 {
		return fmt.Errorf("longer than 65535 bytes")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("'#' must be a whole level and the last one")
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("'+' must be a whole level")
		}
	}
	if strings.ContainsRune(f, 0) {
		return fmt.Errorf("contains a NUL character")
	}
	return nil
}

// check validates the statement as a whole and assigns aggregate slots.
func (st *Statement) check() error {
	aliases := map[string]Expr{}
	for _, f := range st.Fields {
		if f.Star {
			st.HasStar = true
		} else if !f.Expand {
			aliases[f.Alias] = f.Expr
		}
	}
	noAgg := func(e Expr, where string) error {
		var err error
		Walk(e, func(x Expr) bool {
			if c, ok := x.(*Call); ok && c.Agg && err == nil {
				err = errAt(c.P, "aggregate function %s is not allowed in %s", c.Name, where)
			}
			return err == nil
		})
		return err
	}
	if err := noAgg(st.Where, "WHERE (it filters messages before they enter a window; use HAVING)"); err != nil {
		return err
	}
	for _, g := range st.GroupBy {
		if err := noAgg(g, "GROUP BY"); err != nil {
			return err
		}
	}
	// HAVING may name SELECT aliases.
	if st.Having != nil {
		st.Having = substituteAliases(st.Having, aliases)
	}
	seen := map[*Call]bool{}
	collect := func(e Expr) {
		Walk(e, func(x Expr) bool {
			if c, ok := x.(*Call); ok && c.Agg {
				if !seen[c] {
					seen[c] = true
					c.Slot = len(st.Aggs)
					st.Aggs = append(st.Aggs, c)
				}
				return false
			}
			return true
		})
	}
	for _, f := range st.Fields {
		collect(f.Expr)
	}
	collect(st.Having)
	if st.Window == nil {
		if len(st.GroupBy) > 0 {
			return errAt(st.GroupBy[0].Pos(), "GROUP BY needs a window: add TUMBLINGWINDOW, HOPPINGWINDOW, SLIDINGWINDOW, SESSIONWINDOW or COUNTWINDOW")
		}
		if st.Having != nil {
			return errAt(st.Having.Pos(), "HAVING needs a window in GROUP BY")
		}
		if len(st.Aggs) > 0 {
			return errAt(st.Aggs[0].P, "aggregate function %s needs a window in GROUP BY", st.Aggs[0].Name)
		}
		var err error
		for _, f := range st.Fields {
			Walk(f.Expr, func(x Expr) bool {
				if c, ok := x.(*Call); ok && (c.Name == "window_start" || c.Name == "window_end") && err == nil {
					err = errAt(c.P, "%s() needs a window in GROUP BY", c.Name)
				}
				return err == nil
			})
		}
		return err
	}
	if st.HasStar {
		for _, f := range st.Fields {
			if f.Star {
				return errAt(f.Expr.Pos(), "SELECT * is not allowed with a window (one row per window): use collect(*) or name the columns")
			}
		}
	}
	return nil
}

func substituteAliases(e Expr, aliases map[string]Expr) Expr {
	if f, ok := e.(*FieldRef); ok && f.Root == nil && len(f.Steps) == 1 && f.Steps[0].Index == nil {
		if a, ok := aliases[f.Steps[0].Key]; ok {
			return a
		}
		return e
	}
	switch x := e.(type) {
	case *Unary:
		x.X = substituteAliases(x.X, aliases)
	case *Binary:
		x.L = substituteAliases(x.L, aliases)
		x.R = substituteAliases(x.R, aliases)
	case *In:
		x.X = substituteAliases(x.X, aliases)
		for i := range x.List {
			x.List[i] = substituteAliases(x.List[i], aliases)
		}
	case *Like:
		x.X = substituteAliases(x.X, aliases)
	case *Is:
		x.X = substituteAliases(x.X, aliases)
	case *Case:
		if x.Operand != nil {
			x.Operand = substituteAliases(x.Operand, aliases)
		}
		for i := range x.Whens {
			x.Whens[i].Cond = substituteAliases(x.Whens[i].Cond, aliases)
			x.Whens[i].Then = substituteAliases(x.Whens[i].Then, aliases)
		}
		if x.Else != nil {
			x.Else = substituteAliases(x.Else, aliases)
		}
	case *Cast:
		x.X = substituteAliases(x.X, aliases)
	case *Call:
		if !x.Agg {
			for i := range x.Args {
				x.Args[i] = substituteAliases(x.Args[i], aliases)
			}
		}
	}
	return e
}
