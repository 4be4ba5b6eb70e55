package sql

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Pos is a position in the source text; Line and Column count from 1
// (columns in characters).
type Pos struct{ Line, Column int }

// Error is a compile error of a rule's SQL or a template, at a position.
type Error struct {
	Line, Column int
	Msg          string
}

func (e *Error) Error() string { return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg) }

// Sentinel errors of evaluation.
var (
	// ErrBadJSON is wrapped when a rule reads fields of a payload that is
	// not valid JSON.
	ErrBadJSON = errors.New("sql: payload is not valid JSON")
	// ErrEval is wrapped by other evaluation errors.
	ErrEval = errors.New("sql: evaluation error")
)

func errAt(p Pos, format string, args ...any) *Error {
	return &Error{Line: p.Line, Column: p.Column, Msg: fmt.Sprintf(format, args...)}
}

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tQuotedIdent // `name`
	tString      // 'text' or "text" (AWS IoT SQL takes both)
	tInt
	tDecimal
	tOp // punctuation and operators
)

type token struct {
	kind tokKind
	text string // identifier (as written), string value, number text, operator
	pos  Pos
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tString:
		return fmt.Sprintf("string '%s'", t.text)
	case tQuotedIdent:
		return fmt.Sprintf("identifier %q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

// MaxSourceBytes bounds the length of a rule's SQL or a template.
const MaxSourceBytes = 64 << 10

type lexer struct {
	src       string
	off       int
	line, col int
	base      Pos // position of src[0] (templates embed expressions)
}

func lex(src string, base Pos) ([]token, error) {
	if len(src) > MaxSourceBytes {
		return nil, errAt(base, "source longer than %d bytes", MaxSourceBytes)
	}
	l := &lexer{src: src, line: base.Line, col: base.Column}
	var toks []token
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tEOF {
			return toks, nil
		}
	}
}

func (l *lexer) pos() Pos { return Pos{l.line, l.col} }

func (l *lexer) advance() rune {
	r, n := utf8.DecodeRuneInString(l.src[l.off:])
	l.off += n
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	return r
}

func (l *lexer) peek() byte {
	if l.off < len(l.src) {
		return l.src[l.off]
	}
	return 0
}

func (l *lexer) peekAt(n int) byte {
	if l.off+n < len(l.src) {
		return l.src[l.off+n]
	}
	return 0
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (l *lexer) next() (token, error) {
	// Skip white space and comments (-- to end of line, /* ... */).
	for l.off < len(l.src) {
		c := l.src[l.off]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			l.advance()
			continue
		}
		if c == '-' && l.peekAt(1) == '-' {
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance()
			}
			continue
		}
		if c == '/' && l.peekAt(1) == '*' {
			p := l.pos()
			l.advance()
			l.advance()
			for {
				if l.off >= len(l.src) {
					return token{}, errAt(p, "unterminated comment")
				}
				if l.src[l.off] == '*' && l.peekAt(1) == '/' {
					l.advance()
					l.advance()
					break
				}
				l.advance()
			}
			continue
		}
		break
	}
	p := l.pos()
	if l.off >= len(l.src) {
		return token{kind: tEOF, pos: p}, nil
	}
	c := l.src[l.off]
	switch {
	case isIdentStart(c):
		start := l.off
		for l.off < len(l.src) && (isIdentStart(l.src[l.off]) || isDigit(l.src[l.off])) {
			l.advance()
		}
		return token{kind: tIdent, text: l.src[start:l.off], pos: p}, nil
	case isDigit(c) || c == '.' && isDigit(l.peekAt(1)):
		start := l.off
		kind := tInt
		for l.off < len(l.src) && isDigit(l.src[l.off]) {
			l.advance()
		}
		if l.peek() == '.' && isDigit(l.peekAt(1)) {
			kind = tDecimal
			l.advance()
			for l.off < len(l.src) && isDigit(l.src[l.off]) {
				l.advance()
			}
		}
		if e := l.peek(); e == 'e' || e == 'E' {
			n := 1
			if s := l.peekAt(1); s == '+' || s == '-' {
				n = 2
			}
			if isDigit(l.peekAt(n)) {
				kind = tDecimal
				for i := 0; i < n; i++ {
					l.advance()
				}
				for l.off < len(l.src) && isDigit(l.src[l.off]) {
					l.advance()
				}
			}
		}
		if l.off < len(l.src) && isIdentStart(l.src[l.off]) {
			return token{}, errAt(l.pos(), "unexpected %q after number", l.src[l.off])
		}
		return token{kind: kind, text: l.src[start:l.off], pos: p}, nil
	case c == '\'' || c == '"' || c == '`':
		s, err := l.quoted(c)
		if err != nil {
			return token{}, err
		}
		k := tString
		if c == '`' {
			k = tQuotedIdent
		}
		return token{kind: k, text: s, pos: p}, nil
	}
	// Operators, longest first.
	for _, op := range [...]string{"<>", "!=", "<=", ">=", "||", "==", "(", ")", "[", "]", "{", "}", ",", ".", "*", "+", "-", "/", "%", "=", "<", ">", ":", ";"} {
		if strings.HasPrefix(l.src[l.off:], op) {
			for range op {
				l.advance()
			}
			return token{kind: tOp, text: op, pos: p}, nil
		}
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.off:])
	return token{}, errAt(p, "unexpected character %q", r)
}

// quoted reads a quoted string or identifier. The quote is escaped by
// writing it twice or with a backslash; \n, \t, \r, \\ and \uXXXX are
// understood.
func (l *lexer) quoted(q byte) (string, error) {
	p := l.pos()
	l.advance()
	var b strings.Builder
	for {
		if l.off >= len(l.src) {
			return "", errAt(p, "unterminated %s", map[byte]string{'\'': "string", '"': "quoted identifier", '`': "quoted identifier"}[q])
		}
		c := l.src[l.off]
		switch {
		case c == q:
			l.advance()
			if l.peek() == q {
				l.advance()
				b.WriteByte(q)
				continue
			}
			return b.String(), nil
		case c == '\\':
			ep := l.pos()
			l.advance()
			if l.off >= len(l.src) {
				return "", errAt(ep, "unterminated escape")
			}
			e := l.advance()
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'u':
				if l.off+4 > len(l.src) {
					return "", errAt(ep, "bad \\u escape")
				}
				var r rune
				for i := 0; i < 4; i++ {
					h := l.src[l.off]
					var d byte
					switch {
					case h >= '0' && h <= '9':
						d = h - '0'
					case h >= 'a' && h <= 'f':
						d = h - 'a' + 10
					case h >= 'A' && h <= 'F':
						d = h - 'A' + 10
					default:
						return "", errAt(ep, "bad \\u escape")
					}
					r = r<<4 | rune(d)
					l.advance()
				}
				b.WriteRune(r)
			default:
				b.WriteRune(e)
			}
		default:
			b.WriteRune(l.advance())
		}
	}
}
