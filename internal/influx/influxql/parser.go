package influxql

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrParse wraps every parse error.
var ErrParse = errors.New("error parsing query")

// maxDepth bounds expression and subquery nesting so hostile input cannot
// exhaust the stack.
const maxDepth = 64

type parser struct {
	lx    lexer
	tok   token
	back  bool // tok is pushed back
	depth int
}

// ParseQuery parses one or more statements separated by semicolons.
func ParseQuery(src string) ([]Statement, error) {
	p := &parser{lx: lexer{src: src}}
	var out []Statement
	for {
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		if t.kind == tSemicolon {
			continue
		}
		if t.kind == tEOF {
			break
		}
		p.unscan()
		st, err := p.statement()
		if err != nil {
			return nil, err
		}
		out = append(out, st)
		t, err = p.next()
		if err != nil {
			return nil, err
		}
		if t.kind != tSemicolon && t.kind != tEOF {
			return nil, p.unexpected(t, "EOF", ";")
		}
		if t.kind == tEOF {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty query", ErrParse)
	}
	return out, nil
}

// ParseExpr parses a single expression (used in tests).
func ParseExpr(src string) (Expr, error) {
	p := &parser{lx: lexer{src: src}}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t, err := p.next(); err != nil {
		return nil, err
	} else if t.kind != tEOF {
		return nil, p.unexpected(t, "EOF")
	}
	return e, nil
}

func (p *parser) next() (token, error) {
	if p.back {
		p.back = false
		return p.tok, nil
	}
	t, err := p.lx.next()
	if err != nil {
		return token{}, fmt.Errorf("%w: %v", ErrParse, err)
	}
	p.tok = t
	return t, nil
}

func (p *parser) unscan() { p.back = true }

func (p *parser) errorf(pos int, format string, args ...any) error {
	return fmt.Errorf("%w: %s at %s", ErrParse, fmt.Sprintf(format, args...), position(p.lx.src, pos))
}

func (p *parser) unexpected(t token, expected ...string) error {
	return p.errorf(t.pos, "found %s, expected %s", t, strings.Join(expected, ", "))
}

func (p *parser) keyword(kw string) (bool, error) {
	t, err := p.next()
	if err != nil {
		return false, err
	}
	if t.kind == tKeyword && t.lit == kw {
		return true, nil
	}
	p.unscan()
	return false, nil
}

func (p *parser) expectKeyword(kws ...string) error {
	for _, kw := range kws {
		t, err := p.next()
		if err != nil {
			return err
		}
		if t.kind != tKeyword || t.lit != kw {
			return p.unexpected(t, kw)
		}
	}
	return nil
}

func (p *parser) expect(k tok) (token, error) {
	t, err := p.next()
	if err != nil {
		return t, err
	}
	if t.kind != k {
		return t, p.unexpected(t, tokNames[k])
	}
	return t, nil
}

// ident accepts an identifier (quoted or not). Keywords are accepted where
// no ambiguity is possible only when quoted.
func (p *parser) ident() (string, error) {
	t, err := p.next()
	if err != nil {
		return "", err
	}
	if t.kind != tIdent {
		return "", p.unexpected(t, "identifier")
	}
	return t.lit, nil
}

func (p *parser) statement() (Statement, error) {
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind != tKeyword {
		return nil, p.unexpected(t, "SELECT", "SHOW", "CREATE", "DROP", "DELETE")
	}
	switch t.lit {
	case "SELECT":
		return p.selectStmt()
	case "SHOW":
		return p.show()
	case "CREATE":
		if err := p.expectKeyword("DATABASE"); err != nil {
			return nil, err
		}
		return p.createDatabase()
	case "DELETE":
		return p.deleteStmt(false)
	case "DROP":
		if ok, err := p.keyword("SERIES"); err != nil {
			return nil, err
		} else if ok {
			return p.deleteStmt(true)
		}
		if err := p.expectKeyword("DATABASE"); err != nil {
			return nil, err
		}
		name, err := p.ident()
		if err != nil {
			return nil, err
		}
		return &DropDatabase{Name: name}, nil
	}
	return nil, p.unexpected(t, "SELECT", "SHOW", "CREATE", "DROP", "DELETE")
}

// deleteStmt parses the rest of DELETE or DROP SERIES: [FROM ...] [WHERE ...].
func (p *parser) deleteStmt(drop bool) (Statement, error) {
	st := &Delete{Drop: drop}
	var err error
	if st.Sources, err = p.optionalFrom(); err != nil {
		return nil, err
	}
	if st.Condition, err = p.where(); err != nil {
		return nil, err
	}
	if st.Sources == nil && st.Condition == nil {
		if drop {
			return nil, errors.New("DROP SERIES must have a FROM or WHERE clause")
		}
		return nil, errors.New("DELETE must have a FROM or WHERE clause")
	}
	return st, nil
}

func (p *parser) createDatabase() (Statement, error) {
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	st := &CreateDatabase{Name: name}
	if ok, err := p.keyword("WITH"); err != nil || !ok {
		return st, err
	}
	seen := false
	for {
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		if t.kind != tKeyword {
			p.unscan()
			break
		}
		switch t.lit {
		case "DURATION":
			d, err := p.durationOrInf()
			if err != nil {
				return nil, err
			}
			st.Duration = d
		case "REPLICATION":
			if _, err := p.expect(tInteger); err != nil {
				return nil, err
			}
		case "SHARD":
			if err := p.expectKeyword("DURATION"); err != nil {
				return nil, err
			}
			if _, err := p.durationOrInf(); err != nil {
				return nil, err
			}
		case "NAME":
			if _, err := p.ident(); err != nil {
				return nil, err
			}
		default:
			p.unscan()
			if !seen {
				return nil, p.unexpected(t, "DURATION", "REPLICATION", "SHARD", "NAME")
			}
			return st, nil
		}
		seen = true
	}
	if !seen {
		return nil, p.unexpected(p.tok, "DURATION", "REPLICATION", "SHARD", "NAME")
	}
	return st, nil
}

func (p *parser) durationOrInf() (time.Duration, error) {
	t, err := p.next()
	if err != nil {
		return 0, err
	}
	switch {
	case t.kind == tDuration:
		return parseDuration(t.lit)
	case t.kind == tIdent && strings.EqualFold(t.lit, "INF"):
		return 0, nil
	case t.kind == tInteger && t.lit == "0":
		return 0, nil
	}
	return 0, p.unexpected(t, "duration")
}

func (p *parser) onDatabase() (string, error) {
	if ok, err := p.keyword("ON"); err != nil || !ok {
		return "", err
	}
	return p.ident()
}

func (p *parser) show() (Statement, error) {
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind != tKeyword {
		return nil, p.unexpected(t, "DATABASES", "MEASUREMENTS", "TAG", "FIELD", "SERIES", "RETENTION")
	}
	switch t.lit {
	case "DATABASES":
		return &ShowDatabases{}, nil
	case "RETENTION":
		if err := p.expectKeyword("POLICIES"); err != nil {
			return nil, err
		}
		db, err := p.onDatabase()
		return &ShowRetentionPolicies{Database: db}, err
	case "MEASUREMENTS":
		st := &ShowMeasurements{}
		if st.Database, err = p.onDatabase(); err != nil {
			return nil, err
		}
		if ok, err := p.keyword("WITH"); err != nil {
			return nil, err
		} else if ok {
			if err := p.expectKeyword("MEASUREMENT"); err != nil {
				return nil, err
			}
			op, err := p.next()
			if err != nil {
				return nil, err
			}
			switch op.kind {
			case tEq:
				name, err := p.ident()
				if err != nil {
					return nil, err
				}
				st.Source = &Measurement{Name: name}
			case tEqRegex:
				re, err := p.regex()
				if err != nil {
					return nil, err
				}
				st.Source = &Measurement{Regex: re}
			default:
				return nil, p.unexpected(op, "=", "=~")
			}
		}
		if st.Condition, err = p.where(); err != nil {
			return nil, err
		}
		st.Limit, st.Offset, err = p.limitOffset()
		return st, err
	case "TAG":
		t2, err := p.next()
		if err != nil {
			return nil, err
		}
		if t2.kind != tKeyword || (t2.lit != "KEYS" && t2.lit != "VALUES") {
			return nil, p.unexpected(t2, "KEYS", "VALUES")
		}
		db, err := p.onDatabase()
		if err != nil {
			return nil, err
		}
		srcs, err := p.optionalFrom()
		if err != nil {
			return nil, err
		}
		if t2.lit == "KEYS" {
			st := &ShowTagKeys{Database: db, Sources: srcs}
			if st.Condition, err = p.where(); err != nil {
				return nil, err
			}
			st.Limit, st.Offset, err = p.limitOffset()
			return st, err
		}
		st := &ShowTagValues{Database: db, Sources: srcs}
		if err := p.expectKeyword("WITH", "KEY"); err != nil {
			return nil, err
		}
		op, err := p.next()
		if err != nil {
			return nil, err
		}
		switch op.kind {
		case tEq, tNeq:
			st.KeyOp = tokNames[op.kind]
			k, err := p.ident()
			if err != nil {
				return nil, err
			}
			st.Keys = []string{k}
		case tEqRegex, tNeqRegex:
			st.KeyOp = tokNames[op.kind]
			if st.KeyRegex, err = p.regex(); err != nil {
				return nil, err
			}
		case tKeyword:
			if op.lit != "IN" {
				return nil, p.unexpected(op, "=", "!=", "=~", "!~", "IN")
			}
			st.KeyOp = "IN"
			if _, err := p.expect(tLParen); err != nil {
				return nil, err
			}
			for {
				k, err := p.ident()
				if err != nil {
					return nil, err
				}
				st.Keys = append(st.Keys, k)
				t, err := p.next()
				if err != nil {
					return nil, err
				}
				if t.kind == tRParen {
					break
				}
				if t.kind != tComma {
					return nil, p.unexpected(t, ",", ")")
				}
			}
		default:
			return nil, p.unexpected(op, "=", "!=", "=~", "!~", "IN")
		}
		if st.Condition, err = p.where(); err != nil {
			return nil, err
		}
		st.Limit, st.Offset, err = p.limitOffset()
		return st, err
	case "FIELD":
		if err := p.expectKeyword("KEYS"); err != nil {
			return nil, err
		}
		st := &ShowFieldKeys{}
		if st.Database, err = p.onDatabase(); err != nil {
			return nil, err
		}
		if st.Sources, err = p.optionalFrom(); err != nil {
			return nil, err
		}
		st.Limit, st.Offset, err = p.limitOffset()
		return st, err
	case "SERIES":
		st := &ShowSeries{}
		if st.Database, err = p.onDatabase(); err != nil {
			return nil, err
		}
		if st.Sources, err = p.optionalFrom(); err != nil {
			return nil, err
		}
		if st.Condition, err = p.where(); err != nil {
			return nil, err
		}
		st.Limit, st.Offset, err = p.limitOffset()
		return st, err
	}
	return nil, p.unexpected(t, "DATABASES", "MEASUREMENTS", "TAG", "FIELD", "SERIES", "RETENTION")
}

func (p *parser) optionalFrom() ([]Source, error) {
	if ok, err := p.keyword("FROM"); err != nil || !ok {
		return nil, err
	}
	return p.sources(false)
}

func (p *parser) where() (Expr, error) {
	if ok, err := p.keyword("WHERE"); err != nil || !ok {
		return nil, err
	}
	return p.expr()
}

func (p *parser) limitOffset() (limit, offset int, err error) {
	if ok, err := p.keyword("LIMIT"); err != nil {
		return 0, 0, err
	} else if ok {
		if limit, err = p.nonNegInt(); err != nil {
			return 0, 0, err
		}
	}
	if ok, err := p.keyword("OFFSET"); err != nil {
		return 0, 0, err
	} else if ok {
		if offset, err = p.nonNegInt(); err != nil {
			return 0, 0, err
		}
	}
	return limit, offset, nil
}

func (p *parser) nonNegInt() (int, error) {
	t, err := p.expect(tInteger)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(t.lit, 10, 32)
	if err != nil {
		return 0, p.errorf(t.pos, "unable to parse integer %s", t.lit)
	}
	return int(n), nil
}

func (p *parser) regex() (*regexp.Regexp, error) {
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind != tSlash {
		return nil, p.unexpected(t, "regex")
	}
	rt, err := p.lx.scanRegex(t.pos)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrParse, err)
	}
	re, err := regexp.Compile(rt.lit)
	if err != nil {
		return nil, p.errorf(t.pos, "invalid regex: %v", err)
	}
	return re, nil
}

func (p *parser) selectStmt() (*SelectStatement, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, p.errorf(p.tok.pos, "query nested too deeply")
	}
	st := &SelectStatement{}
	for {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		f := &Field{Expr: e}
		if ok, err := p.keyword("AS"); err != nil {
			return nil, err
		} else if ok {
			if f.Alias, err = p.ident(); err != nil {
				return nil, err
			}
		}
		st.Fields = append(st.Fields, f)
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		if t.kind != tComma {
			p.unscan()
			break
		}
	}
	if ok, err := p.keyword("INTO"); err != nil {
		return nil, err
	} else if ok {
		srcs, err := p.sources(false)
		if err != nil {
			return nil, err
		}
		m, ok := srcs[0].(*Measurement)
		if len(srcs) != 1 || !ok || m.Regex != nil {
			return nil, p.errorf(p.tok.pos, "INTO needs one measurement name")
		}
		st.Into = m
	}
	if err := p.expectKeyword("FROM"); err != nil {
		return nil, err
	}
	var err error
	if st.Sources, err = p.sources(true); err != nil {
		return nil, err
	}
	if st.Condition, err = p.where(); err != nil {
		return nil, err
	}
	if err := p.groupBy(st); err != nil {
		return nil, err
	}
	if ok, err := p.keyword("FILL"); err != nil {
		return nil, err
	} else if ok {
		if err := p.fill(st); err != nil {
			return nil, err
		}
	}
	if ok, err := p.keyword("ORDER"); err != nil {
		return nil, err
	} else if ok {
		if err := p.orderBy(st); err != nil {
			return nil, err
		}
	}
	for {
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		if t.kind != tKeyword {
			p.unscan()
			break
		}
		var dst *int
		switch t.lit {
		case "LIMIT":
			dst = &st.Limit
		case "OFFSET":
			dst = &st.OffsetRows
		case "SLIMIT":
			dst = &st.SLimit
		case "SOFFSET":
			dst = &st.SOffset
		case "TZ":
			if err := p.tz(st); err != nil {
				return nil, err
			}
			continue
		default:
			p.unscan()
		}
		if dst == nil {
			break
		}
		if *dst, err = p.nonNegInt(); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// tz parses the rest of a tz('Zone/Name') clause. An unknown zone is a
// parse error, as in InfluxDB ("unknown time zone X").
func (p *parser) tz(st *SelectStatement) error {
	if st.Location != nil {
		return p.errorf(p.tok.pos, "duplicate tz() clause")
	}
	if _, err := p.expect(tLParen); err != nil {
		return err
	}
	name, err := p.expect(tString)
	if err != nil {
		return err
	}
	loc, err := loadLocation(name.lit)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrParse, err)
	}
	if _, err := p.expect(tRParen); err != nil {
		return err
	}
	st.Location = loc
	return nil
}

func (p *parser) groupBy(st *SelectStatement) error {
	if ok, err := p.keyword("GROUP"); err != nil || !ok {
		return err
	}
	if err := p.expectKeyword("BY"); err != nil {
		return err
	}
	for {
		t, err := p.next()
		if err != nil {
			return err
		}
		switch {
		case t.kind == tStar:
			st.GroupAll = true
		case t.kind == tSlash:
			p.unscan()
			re, err := p.regex()
			if err != nil {
				return err
			}
			st.GroupRegex = append(st.GroupRegex, re)
		case t.kind == tIdent && strings.EqualFold(t.lit, "time") && p.peekKind() == tLParen:
			if st.Interval != 0 {
				return p.errorf(t.pos, "multiple time dimensions")
			}
			p.next()
			d, err := p.expect(tDuration)
			if err != nil {
				return err
			}
			if st.Interval, err = parseDuration(d.lit); err != nil {
				return p.errorf(d.pos, "%v", err)
			}
			if st.Interval <= 0 {
				return p.errorf(d.pos, "time dimension must have a positive interval")
			}
			c, err := p.next()
			if err != nil {
				return err
			}
			if c.kind == tComma {
				o, err := p.next()
				if err != nil {
					return err
				}
				neg := false
				if o.kind == tMinus {
					neg = true
					if o, err = p.next(); err != nil {
						return err
					}
				}
				if o.kind != tDuration {
					return p.unexpected(o, "duration")
				}
				off, err := parseDuration(o.lit)
				if err != nil {
					return p.errorf(o.pos, "%v", err)
				}
				if neg {
					off = -off
				}
				st.Offset = off % st.Interval
				if st.Offset < 0 {
					st.Offset += st.Interval
				}
				c, err = p.next()
				if err != nil {
					return err
				}
			}
			if c.kind != tRParen {
				return p.unexpected(c, ")")
			}
		case t.kind == tIdent:
			name := t.lit
			if p.peekKind() == tDoubleColon {
				p.next()
				typ, err := p.next()
				if err != nil {
					return err
				}
				// Grafana sends GROUP BY "host"::tag; TAG is a keyword.
				if typ.kind != tIdent && typ.kind != tKeyword {
					return p.unexpected(typ, "tag")
				}
			}
			st.GroupTags = append(st.GroupTags, name)
		default:
			return p.unexpected(t, "identifier", "time()", "*", "regex")
		}
		t, err = p.next()
		if err != nil {
			return err
		}
		if t.kind != tComma {
			p.unscan()
			return nil
		}
	}
}

func (p *parser) peekKind() tok {
	t, err := p.next()
	if err != nil {
		return tIllegal
	}
	p.unscan()
	return t.kind
}

func (p *parser) fill(st *SelectStatement) error {
	if _, err := p.expect(tLParen); err != nil {
		return err
	}
	t, err := p.next()
	if err != nil {
		return err
	}
	neg := false
	if t.kind == tMinus {
		neg = true
		if t, err = p.next(); err != nil {
			return err
		}
	}
	switch {
	case t.kind == tIdent && !neg:
		switch strings.ToLower(t.lit) {
		case "null":
			st.Fill = FillNull
		case "none":
			st.Fill = FillNone
		case "previous":
			st.Fill = FillPrevious
		case "linear":
			st.Fill = FillLinear
		default:
			return p.unexpected(t, "null", "none", "previous", "linear", "number")
		}
	case t.kind == tInteger || t.kind == tNumber:
		v, err := strconv.ParseFloat(t.lit, 64)
		if err != nil {
			return p.errorf(t.pos, "invalid fill value %s", t.lit)
		}
		if neg {
			v = -v
		}
		st.Fill, st.FillValue = FillNumber, v
	default:
		return p.unexpected(t, "null", "none", "previous", "linear", "number")
	}
	_, err = p.expect(tRParen)
	return err
}

func (p *parser) orderBy(st *SelectStatement) error {
	if err := p.expectKeyword("BY"); err != nil {
		return err
	}
	t, err := p.next()
	if err != nil {
		return err
	}
	if t.kind == tIdent && strings.EqualFold(t.lit, "time") {
		t, err = p.next()
		if err != nil {
			return err
		}
	} else if !(t.kind == tKeyword && (t.lit == "ASC" || t.lit == "DESC")) {
		return p.errorf(t.pos, "only ORDER BY time supported at this time")
	}
	switch {
	case t.kind == tKeyword && t.lit == "DESC":
		st.Desc = true
	case t.kind == tKeyword && t.lit == "ASC":
	default:
		p.unscan()
	}
	if t, err := p.next(); err != nil {
		return err
	} else if t.kind == tComma {
		return p.errorf(t.pos, "only ORDER BY time supported at this time")
	} else {
		p.unscan()
	}
	return nil
}

// sources parses a comma-separated FROM list.
func (p *parser) sources(allowSub bool) ([]Source, error) {
	var out []Source
	for {
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		switch {
		case t.kind == tLParen && allowSub:
			if err := p.expectKeyword("SELECT"); err != nil {
				return nil, err
			}
			sub, err := p.selectStmt()
			if err != nil {
				return nil, err
			}
			if _, err := p.expect(tRParen); err != nil {
				return nil, err
			}
			out = append(out, &SubQuery{Stmt: sub})
		case t.kind == tSlash:
			p.unscan()
			re, err := p.regex()
			if err != nil {
				return nil, err
			}
			out = append(out, &Measurement{Regex: re})
		case t.kind == tIdent:
			m, err := p.qualifiedMeasurement(t.lit)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		default:
			return nil, p.unexpected(t, "identifier", "regex")
		}
		t, err = p.next()
		if err != nil {
			return nil, err
		}
		if t.kind != tComma {
			p.unscan()
			return out, nil
		}
	}
}

// qualifiedMeasurement parses the rest of db.rp.m, db..m, rp.m or m, whose
// first segment has been read.
func (p *parser) qualifiedMeasurement(first string) (*Measurement, error) {
	segs := []string{first}
	for len(segs) < 3 && p.peekKind() == tDot {
		p.next()
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case tIdent:
			segs = append(segs, t.lit)
		case tDot: // db..m
			p.unscan()
			segs = append(segs, "")
		case tSlash:
			p.unscan()
			re, err := p.regex()
			if err != nil {
				return nil, err
			}
			m := &Measurement{Regex: re}
			if len(segs) == 2 {
				m.Database, m.RetentionPolicy = segs[0], segs[1]
			} else {
				m.RetentionPolicy = segs[0]
			}
			return m, nil
		default:
			return nil, p.unexpected(t, "identifier")
		}
	}
	switch len(segs) {
	case 3:
		return &Measurement{Database: segs[0], RetentionPolicy: segs[1], Name: segs[2]}, nil
	case 2:
		return &Measurement{RetentionPolicy: segs[0], Name: segs[1]}, nil
	}
	return &Measurement{Name: segs[0]}, nil
}

// Operator precedence, lowest first.
func precedence(t token) (string, int) {
	switch t.kind {
	case tKeyword:
		switch t.lit {
		case "OR":
			return "OR", 1
		case "AND":
			return "AND", 2
		}
	case tEq, tNeq, tLt, tLte, tGt, tGte, tEqRegex, tNeqRegex:
		return tokNames[t.kind], 3
	case tPlus, tMinus:
		return tokNames[t.kind], 4
	case tStar, tSlash, tPercent:
		return tokNames[t.kind], 5
	}
	return "", 0
}

func (p *parser) expr() (Expr, error) { return p.binary(1) }

func (p *parser) binary(minPrec int) (Expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, p.errorf(p.tok.pos, "expression nested too deeply")
	}
	lhs, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		op, prec := precedence(t)
		if prec == 0 || prec < minPrec {
			p.unscan()
			return lhs, nil
		}
		var rhs Expr
		if op == "=~" || op == "!~" {
			re, err := p.regex()
			if err != nil {
				return nil, err
			}
			rhs = &RegexLit{Val: re}
		} else if rhs, err = p.binary(prec + 1); err != nil {
			return nil, err
		}
		lhs = &BinaryExpr{Op: op, LHS: lhs, RHS: rhs}
	}
}

func (p *parser) unary() (Expr, error) {
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	switch t.kind {
	case tLParen:
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen); err != nil {
			return nil, err
		}
		return &ParenExpr{Expr: e}, nil
	case tMinus, tPlus:
		neg := t.kind == tMinus
		n, err := p.next()
		if err != nil {
			return nil, err
		}
		switch n.kind {
		case tInteger:
			if neg {
				v, err := strconv.ParseInt("-"+n.lit, 10, 64)
				if err != nil {
					return nil, p.errorf(n.pos, "unable to parse integer %s", n.lit)
				}
				return &IntegerLit{Val: v}, nil
			}
		case tNumber:
			v, err := strconv.ParseFloat(n.lit, 64)
			if err != nil {
				return nil, p.errorf(n.pos, "unable to parse number %s", n.lit)
			}
			if neg {
				v = -v
			}
			return &NumberLit{Val: v}, nil
		case tDuration:
			d, err := parseDuration(n.lit)
			if err != nil {
				return nil, p.errorf(n.pos, "%v", err)
			}
			if neg {
				d = -d
			}
			return &DurationLit{Val: d}, nil
		}
		p.unscan()
		e, err := p.unary()
		if err != nil {
			return nil, err
		}
		if neg {
			return &BinaryExpr{Op: "*", LHS: &IntegerLit{Val: -1}, RHS: e}, nil
		}
		return e, nil
	case tInteger:
		v, err := strconv.ParseInt(t.lit, 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(t.lit, 64)
			if ferr != nil || math.IsInf(f, 0) {
				return nil, p.errorf(t.pos, "unable to parse integer %s", t.lit)
			}
			return &NumberLit{Val: f}, nil
		}
		return &IntegerLit{Val: v}, nil
	case tNumber:
		v, err := strconv.ParseFloat(t.lit, 64)
		if err != nil {
			return nil, p.errorf(t.pos, "unable to parse number %s", t.lit)
		}
		return &NumberLit{Val: v}, nil
	case tDuration:
		d, err := parseDuration(t.lit)
		if err != nil {
			return nil, p.errorf(t.pos, "%v", err)
		}
		return &DurationLit{Val: d}, nil
	case tString:
		return &StringLit{Val: t.lit}, nil
	case tStar:
		w := &Wildcard{}
		if p.peekKind() == tDoubleColon {
			p.next()
			typ, err := p.ident()
			if err != nil {
				return nil, err
			}
			w.Type = strings.ToLower(typ)
		}
		return w, nil
	case tSlash:
		p.unscan()
		re, err := p.regex()
		if err != nil {
			return nil, err
		}
		return &RegexLit{Val: re}, nil
	case tKeyword:
		switch t.lit {
		case "TRUE":
			return &BoolLit{Val: true}, nil
		case "FALSE":
			return &BoolLit{Val: false}, nil
		}
		return nil, p.unexpected(t, "identifier", "string", "number", "bool")
	case tIdent:
		if p.peekKind() == tLParen {
			p.next()
			call := &Call{Name: strings.ToLower(t.lit)}
			if p.peekKind() == tRParen {
				p.next()
				return call, nil
			}
			for {
				a, err := p.expr()
				if err != nil {
					return nil, err
				}
				call.Args = append(call.Args, a)
				c, err := p.next()
				if err != nil {
					return nil, err
				}
				if c.kind == tRParen {
					return call, nil
				}
				if c.kind != tComma {
					return nil, p.unexpected(c, ",", ")")
				}
			}
		}
		ref := &VarRef{Name: t.lit}
		if p.peekKind() == tDoubleColon {
			p.next()
			typ, err := p.next()
			if err != nil {
				return nil, err
			}
			if typ.kind != tIdent && typ.kind != tKeyword {
				return nil, p.unexpected(typ, "field", "tag")
			}
			ref.Type = strings.ToLower(typ.lit)
			switch ref.Type {
			case "field", "tag", "float", "integer", "string", "boolean", "unsigned":
			default:
				return nil, p.errorf(typ.pos, "unknown type %s", typ.lit)
			}
		}
		return ref, nil
	}
	return nil, p.unexpected(t, "identifier", "string", "number", "bool")
}

// parseDuration parses an InfluxQL duration literal (1h30m, 10m, 5d, 1w, 100ms, 10u, 20ns).
func parseDuration(s string) (time.Duration, error) {
	var total time.Duration
	orig := s
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("invalid duration %s", orig)
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %s", orig)
		}
		s = s[i:]
		var unit time.Duration
		switch {
		case strings.HasPrefix(s, "ns"):
			unit, s = time.Nanosecond, s[2:]
		case strings.HasPrefix(s, "ms"):
			unit, s = time.Millisecond, s[2:]
		case strings.HasPrefix(s, "us"):
			unit, s = time.Microsecond, s[2:]
		case strings.HasPrefix(s, "µs"):
			unit, s = time.Microsecond, s[len("µs"):]
		case strings.HasPrefix(s, "µ"):
			unit, s = time.Microsecond, s[len("µ"):]
		case strings.HasPrefix(s, "u"):
			unit, s = time.Microsecond, s[1:]
		case strings.HasPrefix(s, "s"):
			unit, s = time.Second, s[1:]
		case strings.HasPrefix(s, "m"):
			unit, s = time.Minute, s[1:]
		case strings.HasPrefix(s, "h"):
			unit, s = time.Hour, s[1:]
		case strings.HasPrefix(s, "d"):
			unit, s = 24*time.Hour, s[1:]
		case strings.HasPrefix(s, "w"):
			unit, s = 7*24*time.Hour, s[1:]
		default:
			return 0, fmt.Errorf("invalid duration %s", orig)
		}
		if n > int64(math.MaxInt64/unit) {
			return 0, fmt.Errorf("duration %s out of range", orig)
		}
		total += time.Duration(n) * unit
		if total < 0 {
			return 0, fmt.Errorf("duration %s out of range", orig)
		}
	}
	return total, nil
}
