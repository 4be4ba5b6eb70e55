package tsdb

import (
	"fmt"
	"regexp"
)

// MatchOp is the comparison of a tag Matcher.
type MatchOp uint8

// Matcher operators, as in InfluxQL (=, !=, =~, !~) and Flux.
const (
	MatchEqual     MatchOp = iota // tag value equals Value
	MatchNotEqual                 // tag value differs from Value
	MatchRegexp                   // tag value matches the regular expression Value
	MatchNotRegexp                // tag value does not match the regular expression Value
)

func (o MatchOp) String() string {
	switch o {
	case MatchEqual:
		return "="
	case MatchNotEqual:
		return "!="
	case MatchRegexp:
		return "=~"
	case MatchNotRegexp:
		return "!~"
	}
	return fmt.Sprintf("MatchOp(%d)", uint8(o))
}

// Matcher selects series by one tag. A series without the tag is treated
// as having the empty value: Key = "" matches it, Key != "x" matches it,
// and a regexp matches it when the regexp matches the empty string.
//
// Regular expressions use Go's RE2 syntax and, like InfluxQL's and Flux's,
// are unanchored: /ab/ matches "xaby". Write ^...$ to anchor. Build
// regexp matchers with NewMatcher (a Matcher literal with a regexp Op and
// no compiled expression compiles it on first use in a query).
type Matcher struct {
	Key   string
	Op    MatchOp
	Value string
	re    *regexp.Regexp
}

// NewMatcher returns a matcher, compiling Value for the regexp operators.
func NewMatcher(key string, op MatchOp, value string) (Matcher, error) {
	m := Matcher{Key: key, Op: op, Value: value}
	switch op {
	case MatchEqual, MatchNotEqual:
	case MatchRegexp, MatchNotRegexp:
		re, err := regexp.Compile(value)
		if err != nil {
			return Matcher{}, fmt.Errorf("%w: tag %q: bad regular expression: %v", ErrInvalidQuery, key, err)
		}
		m.re = re
	default:
		return Matcher{}, fmt.Errorf("%w: tag %q: unknown match operator %d", ErrInvalidQuery, key, op)
	}
	if key == "" {
		return Matcher{}, fmt.Errorf("%w: matcher without a tag key", ErrInvalidQuery)
	}
	return m, nil
}

// Matches reports whether a tag value ("" when the series lacks the tag)
// satisfies the matcher.
func (m Matcher) Matches(v string) bool {
	switch m.Op {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re != nil && m.re.MatchString(v)
	case MatchNotRegexp:
		return m.re == nil || !m.re.MatchString(v)
	}
	return false
}

func (m Matcher) String() string { return m.Key + m.Op.String() + fmt.Sprintf("%q", m.Value) }

// compileMatchers returns ms with regexps compiled (for literals built
// without NewMatcher).
func compileMatchers(ms []Matcher) ([]Matcher, error) {
	out := ms
	for i, m := range ms {
		if m.re == nil && (m.Op == MatchRegexp || m.Op == MatchNotRegexp) || m.Op > MatchNotRegexp || m.Key == "" {
			c, err := NewMatcher(m.Key, m.Op, m.Value)
			if err != nil {
				return nil, err
			}
			if &out[0] == &ms[0] {
				out = append([]Matcher(nil), ms...)
			}
			out[i] = c
		}
	}
	return out, nil
}
