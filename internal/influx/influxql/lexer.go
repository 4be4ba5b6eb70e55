package influxql

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tok is a lexical token kind.
type tok int

const (
	tEOF tok = iota
	tIdent
	tString
	tNumber
	tInteger
	tDuration
	tRegex
	tKeyword
	tLParen
	tRParen
	tComma
	tSemicolon
	tDot
	tDoubleColon
	tStar
	tPlus
	tMinus
	tSlash
	tPercent
	tEq
	tNeq
	tLt
	tLte
	tGt
	tGte
	tEqRegex
	tNeqRegex
	tIllegal
)

var tokNames = map[tok]string{
	tEOF: "EOF", tIdent: "identifier", tString: "string", tNumber: "number", tInteger: "integer",
	tDuration: "duration", tRegex: "regex", tLParen: "(", tRParen: ")", tComma: ",", tSemicolon: ";",
	tDot: ".", tDoubleColon: "::", tStar: "*", tPlus: "+", tMinus: "-", tSlash: "/", tPercent: "%",
	tEq: "=", tNeq: "!=", tLt: "<", tLte: "<=", tGt: ">", tGte: ">=", tEqRegex: "=~", tNeqRegex: "!~",
}

// keywords recognised (case-insensitively) when unquoted.
var keywords = map[string]bool{
	"ALL": true, "AND": true, "AS": true, "ASC": true, "BY": true, "CREATE": true, "DATABASE": true, "DELETE": true,
	"DATABASES": true, "DEFAULT": true, "DESC": true, "DROP": true, "DURATION": true, "FALSE": true,
	"FIELD": true, "FILL": true, "FROM": true, "GROUP": true, "IN": true, "INTO": true, "KEY": true,
	"KEYS": true, "LIMIT": true, "MEASUREMENT": true, "MEASUREMENTS": true, "NAME": true, "OFFSET": true,
	"ON": true, "OR": true, "ORDER": true, "POLICIES": true, "REPLICATION": true, "RETENTION": true,
	"SELECT": true, "SERIES": true, "SHARD": true, "SHOW": true, "SLIMIT": true, "SOFFSET": true,
	"TAG": true, "TRUE": true, "TZ": true, "VALUES": true, "WHERE": true, "WITH": true,
}

// token is one lexed token with its position (byte offset into the query).
type token struct {
	kind tok
	pos  int
	lit  string // identifier / keyword (upper case) / string / number text
}

func (t token) String() string {
	switch t.kind {
	case tKeyword:
		return t.lit
	case tIdent:
		return t.lit
	case tString:
		return "'" + t.lit + "'"
	case tNumber, tInteger, tDuration:
		return t.lit
	case tRegex:
		return "/" + t.lit + "/"
	case tIllegal:
		return t.lit
	}
	return tokNames[t.kind]
}

// lexer turns query text into tokens.
type lexer struct {
	src string
	i   int
}

// position renders a byte offset as "line L, char C" (1-based, chars
// counted in runes), the way InfluxDB reports parse errors.
func position(src string, off int) string {
	if off > len(src) {
		off = len(src)
	}
	line, col := 1, 1
	for _, r := range src[:off] {
		if r == '\n' {
			line++
			col = 1
			continue
		}
		col++
	}
	return fmt.Sprintf("line %d, char %d", line, col)
}

func (l *lexer) skipSpace() {
	for l.i < len(l.src) {
		c := l.src[l.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			l.i++
		case c == '-' && strings.HasPrefix(l.src[l.i:], "--"):
			for l.i < len(l.src) && l.src[l.i] != '\n' {
				l.i++
			}
		case c == '/' && strings.HasPrefix(l.src[l.i:], "/*"):
			end := strings.Index(l.src[l.i+2:], "*/")
			if end < 0 {
				l.i = len(l.src)
			} else {
				l.i += end + 4
			}
		default:
			return
		}
	}
}

func isIdentStart(r rune) bool { return r == '_' || unicode.IsLetter(r) }
func isIdentChar(r rune) bool  { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// next returns the next token. Regex literals are not produced here (a
// "/" is a division); the parser calls scanRegex where a regex may stand.
func (l *lexer) next() (token, error) {
	l.skipSpace()
	start := l.i
	if l.i >= len(l.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	c := l.src[l.i]
	one := func(k tok) (token, error) { l.i++; return token{kind: k, pos: start}, nil }
	two := func(k tok) (token, error) { l.i += 2; return token{kind: k, pos: start}, nil }
	peek := func(n int) byte {
		if l.i+n < len(l.src) {
			return l.src[l.i+n]
		}
		return 0
	}
	switch c {
	case '(':
		return one(tLParen)
	case ')':
		return one(tRParen)
	case ',':
		return one(tComma)
	case ';':
		return one(tSemicolon)
	case '*':
		return one(tStar)
	case '+':
		return one(tPlus)
	case '-':
		return one(tMinus)
	case '/':
		return one(tSlash)
	case '%':
		return one(tPercent)
	case '=':
		if peek(1) == '~' {
			return two(tEqRegex)
		}
		return one(tEq)
	case '!':
		switch peek(1) {
		case '=':
			return two(tNeq)
		case '~':
			return two(tNeqRegex)
		}
	case '<':
		switch peek(1) {
		case '=':
			return two(tLte)
		case '>':
			return two(tNeq)
		}
		return one(tLt)
	case '>':
		if peek(1) == '=' {
			return two(tGte)
		}
		return one(tGt)
	case ':':
		if peek(1) == ':' {
			return two(tDoubleColon)
		}
	case '.':
		if d := peek(1); d < '0' || d > '9' {
			return one(tDot)
		}
		return l.number(start)
	case '"':
		s, err := l.quoted('"')
		if err != nil {
			return token{}, err
		}
		return token{kind: tIdent, pos: start, lit: s}, nil
	case '\'':
		s, err := l.quoted('\'')
		if err != nil {
			return token{}, err
		}
		return token{kind: tString, pos: start, lit: s}, nil
	}
	if c >= '0' && c <= '9' {
		return l.number(start)
	}
	r, size := utf8.DecodeRuneInString(l.src[l.i:])
	if isIdentStart(r) {
		for l.i < len(l.src) {
			r, size = utf8.DecodeRuneInString(l.src[l.i:])
			if !isIdentChar(r) {
				break
			}
			l.i += size
		}
		word := l.src[start:l.i]
		if up := strings.ToUpper(word); keywords[up] {
			return token{kind: tKeyword, pos: start, lit: up}, nil
		}
		return token{kind: tIdent, pos: start, lit: word}, nil
	}
	l.i += size
	return token{kind: tIllegal, pos: start, lit: string(r)}, nil
}

// quoted scans a quoted string or identifier with backslash escapes.
func (l *lexer) quoted(q byte) (string, error) {
	start := l.i
	l.i++
	var b strings.Builder
	for l.i < len(l.src) {
		c := l.src[l.i]
		switch {
		case c == q:
			l.i++
			return b.String(), nil
		case c == '\\' && l.i+1 < len(l.src):
			n := l.src[l.i+1]
			switch n {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case '\\', '\'', '"':
				b.WriteByte(n)
			default:
				b.WriteByte('\\')
				b.WriteByte(n)
			}
			l.i += 2
		case c == '\n' && q == '"':
			return "", fmt.Errorf("unterminated quoted identifier at %s", position(l.src, start))
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	what := "string"
	if q == '"' {
		what = "quoted identifier"
	}
	return "", fmt.Errorf("unterminated %s at %s", what, position(l.src, start))
}

// durationUnits in the order they must be tried (longest first).
var durationUnits = []string{"ns", "ms", "us", "µs", "u", "µ", "s", "m", "h", "d", "w"}

func (l *lexer) number(start int) (token, error) {
	isFloat := false
	for l.i < len(l.src) && l.src[l.i] >= '0' && l.src[l.i] <= '9' {
		l.i++
	}
	if l.i < len(l.src) && l.src[l.i] == '.' {
		isFloat = true
		l.i++
		for l.i < len(l.src) && l.src[l.i] >= '0' && l.src[l.i] <= '9' {
			l.i++
		}
	}
	if l.i < len(l.src) && (l.src[l.i] == 'e' || l.src[l.i] == 'E') {
		j := l.i + 1
		if j < len(l.src) && (l.src[j] == '+' || l.src[j] == '-') {
			j++
		}
		if j < len(l.src) && l.src[j] >= '0' && l.src[j] <= '9' {
			for j < len(l.src) && l.src[j] >= '0' && l.src[j] <= '9' {
				j++
			}
			l.i, isFloat = j, true
		}
	}
	if !isFloat {
		// Duration literal: integer immediately followed by a unit, and
		// possibly more integer+unit pairs (1h30m).
		j := l.i
		matched := false
		for {
			unitFound := false
			for _, u := range durationUnits {
				if strings.HasPrefix(l.src[j:], u) {
					k := j + len(u)
					if k < len(l.src) {
						if r, _ := utf8.DecodeRuneInString(l.src[k:]); isIdentChar(r) && !(r >= '0' && r <= '9') {
							continue
						}
					}
					j, unitFound = k, true
					break
				}
			}
			if !unitFound {
				break
			}
			matched = true
			k := j
			for k < len(l.src) && l.src[k] >= '0' && l.src[k] <= '9' {
				k++
			}
			if k == j {
				break
			}
			j = k
		}
		if matched {
			l.i = j
			return token{kind: tDuration, pos: start, lit: l.src[start:l.i]}, nil
		}
		return token{kind: tInteger, pos: start, lit: l.src[start:l.i]}, nil
	}
	return token{kind: tNumber, pos: start, lit: l.src[start:l.i]}, nil
}

// scanRegex scans a /regex/ literal starting at offset pos (which must be
// a '/'). "\/" escapes a slash.
func (l *lexer) scanRegex(pos int) (token, error) {
	l.i = pos + 1
	var b strings.Builder
	for l.i < len(l.src) {
		c := l.src[l.i]
		if c == '\\' && l.i+1 < len(l.src) && l.src[l.i+1] == '/' {
			b.WriteByte('/')
			l.i += 2
			continue
		}
		if c == '/' {
			l.i++
			return token{kind: tRegex, pos: pos, lit: b.String()}, nil
		}
		b.WriteByte(c)
		l.i++
	}
	return token{}, fmt.Errorf("unterminated regex at %s", position(l.src, pos))
}
