package sql

import (
	"fmt"
	"strings"
)

// Template is a text with ${expr} substitutions, as rule actions use for
// topics, URLs, headers and bodies. $${ writes a literal ${.
type Template struct {
	src   string
	lits  []string // len(exprs)+1 literal pieces around the expressions
	exprs []Expr
	srcs  []string
}

// ParseTemplate parses a template; expressions are any SQL expression
// without aggregates. Errors are *Error with the position in s.
func ParseTemplate(s string) (*Template, error) {
	if len(s) > MaxSourceBytes {
		return nil, errAt(Pos{1, 1}, "template longer than %d bytes", MaxSourceBytes)
	}
	t := &Template{src: s}
	var lit strings.Builder
	line, col := 1, 1
	adv := func(str string) {
		for _, r := range str {
			if r == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
	}
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			lit.WriteString("${")
			adv("$${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			lit.WriteByte(s[i])
			if s[i] == '\n' {
				line, col = line+1, 1
			} else if s[i] < 0x80 || s[i] >= 0xC0 {
				col++
			}
			i++
			continue
		}
		start := Pos{line, col}
		adv("${")
		j, err := exprEnd(s, i+2, start)
		if err != nil {
			return nil, err
		}
		body := s[i+2 : j]
		if strings.TrimSpace(body) == "" {
			return nil, errAt(start, "empty ${} in template")
		}
		e, err := parseExprAt(body, Pos{line, col})
		if err != nil {
			return nil, err
		}
		t.lits = append(t.lits, lit.String())
		lit.Reset()
		t.exprs = append(t.exprs, e)
		t.srcs = append(t.srcs, body)
		adv(body + "}")
		i = j + 1
	}
	t.lits = append(t.lits, lit.String())
	return t, nil
}

// exprEnd finds the } closing the expression starting at s[i], skipping
// quoted text and nested braces.
func exprEnd(s string, i int, start Pos) (int, error) {
	depth := 0
	for i < len(s) {
		switch c := s[i]; c {
		case '\'', '"', '`':
			j := i + 1
			for j < len(s) {
				if s[j] == '\\' {
					j += 2
					continue
				}
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(s) {
				return 0, errAt(start, "unterminated quote in ${...}")
			}
			i = j + 1
			continue
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return i, nil
			}
			depth--
		}
		i++
	}
	return 0, errAt(start, "unterminated ${ in template")
}

// String returns the template's source.
func (t *Template) String() string { return t.src }

// Static reports whether the template has no substitutions.
func (t *Template) Static() bool { return len(t.exprs) == 0 }

// Render evaluates the substitutions in env. Strings are inserted as they
// are, other values as ToString writes them; an Undefined substitution is
// an error (a topic or a URL with a hole would go to the wrong place).
func (t *Template) Render(env *Env) (string, error) {
	if len(t.exprs) == 0 {
		return t.lits[0], nil
	}
	var b strings.Builder
	for i, e := range t.exprs {
		b.WriteString(t.lits[i])
		v, err := e.Eval(env)
		if err != nil {
			return "", fmt.Errorf("sql: template ${%s}: %w", t.srcs[i], err)
		}
		if IsUndefined(v) {
			return "", fmt.Errorf("%w: template ${%s} is undefined", ErrEval, t.srcs[i])
		}
		b.WriteString(ToString(v))
	}
	b.WriteString(t.lits[len(t.exprs)])
	return b.String(), nil
}
