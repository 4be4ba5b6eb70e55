package influxql

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Statement is one parsed InfluxQL statement.
type Statement interface{ statement() }

// Expr is an expression node.
type Expr interface{ expr() }

// VarRef names a field or tag; Type is "", "field" or "tag" (from x::field).
type VarRef struct {
	Name string
	Type string
}

// Call is a function call such as mean("x") or now().
type Call struct {
	Name string // lower case
	Args []Expr
}

// BinaryExpr is LHS Op RHS; Op is one of + - * / % = != < <= > >= =~ !~ AND OR.
type BinaryExpr struct {
	Op       string
	LHS, RHS Expr
}

// ParenExpr keeps parentheses (they matter for column naming only).
type ParenExpr struct{ Expr Expr }

// NumberLit is a float literal.
type NumberLit struct{ Val float64 }

// IntegerLit is an integer literal.
type IntegerLit struct{ Val int64 }

// StringLit is a single-quoted string literal.
type StringLit struct{ Val string }

// BoolLit is true or false.
type BoolLit struct{ Val bool }

// DurationLit is a duration such as 10m.
type DurationLit struct{ Val time.Duration }

// RegexLit is a /regex/.
type RegexLit struct{ Val *regexp.Regexp }

// Wildcard is * (optionally *::field or *::tag).
type Wildcard struct{ Type string }

func (*VarRef) expr()      {}
func (*Call) expr()        {}
func (*BinaryExpr) expr()  {}
func (*ParenExpr) expr()   {}
func (*NumberLit) expr()   {}
func (*IntegerLit) expr()  {}
func (*StringLit) expr()   {}
func (*BoolLit) expr()     {}
func (*DurationLit) expr() {}
func (*RegexLit) expr()    {}
func (*Wildcard) expr()    {}

// Field is one SELECT column.
type Field struct {
	Expr  Expr
	Alias string
}

// Source is what a SELECT reads from: a *Measurement or a *SubQuery.
type Source interface{ source() }

// Measurement is a (possibly qualified, possibly regex) measurement.
type Measurement struct {
	Database, RetentionPolicy string
	Name                      string
	Regex                     *regexp.Regexp
}

// SubQuery is a parenthesised SELECT used as a source.
type SubQuery struct{ Stmt *SelectStatement }

func (*Measurement) source() {}
func (*SubQuery) source()    {}

// FillMode says what GROUP BY time() emits for empty windows.
type FillMode int

// Fill modes.
const (
	FillNull FillMode = iota
	FillNone
	FillPrevious
	FillLinear
	FillNumber
)

// SelectStatement is a SELECT.
type SelectStatement struct {
	Fields     []*Field
	Into       *Measurement
	Sources    []Source
	Condition  Expr
	Interval   time.Duration // GROUP BY time(interval); 0 = none
	Offset     time.Duration // GROUP BY time(interval, offset)
	GroupTags  []string
	GroupAll   bool // GROUP BY *
	GroupRegex []*regexp.Regexp
	Fill       FillMode
	FillValue  float64
	Desc       bool
	Limit      int
	OffsetRows int
	SLimit     int
	SOffset    int
	// Location is the tz() clause: GROUP BY time() windows are aligned
	// on its local time, time strings without an offset are read in it and
	// RFC3339 results carry its offset. nil = UTC.
	Location *time.Location
}

// ShowDatabases is SHOW DATABASES.
type ShowDatabases struct{}

// ShowMeasurements is SHOW MEASUREMENTS [ON db] [WITH MEASUREMENT op x] [WHERE] [LIMIT] [OFFSET].
type ShowMeasurements struct {
	Database      string
	Source        *Measurement // WITH MEASUREMENT = name or =~ /re/
	Condition     Expr
	Limit, Offset int
}

// ShowTagKeys is SHOW TAG KEYS [ON db] [FROM m] [WHERE].
type ShowTagKeys struct {
	Database      string
	Sources       []Source
	Condition     Expr
	Limit, Offset int
}

// ShowTagValues is SHOW TAG VALUES [ON db] [FROM m] WITH KEY op ... [WHERE].
type ShowTagValues struct {
	Database      string
	Sources       []Source
	KeyOp         string // "=", "!=", "=~", "!~", "IN"
	Keys          []string
	KeyRegex      *regexp.Regexp
	Condition     Expr
	Limit, Offset int
}

// ShowFieldKeys is SHOW FIELD KEYS [ON db] [FROM m].
type ShowFieldKeys struct {
	Database      string
	Sources       []Source
	Limit, Offset int
}

// ShowSeries is SHOW SERIES [ON db] [FROM m] [WHERE].
type ShowSeries struct {
	Database      string
	Sources       []Source
	Condition     Expr
	Limit, Offset int
}

// ShowRetentionPolicies is SHOW RETENTION POLICIES [ON db].
type ShowRetentionPolicies struct{ Database string }

// CreateDatabase is CREATE DATABASE name [WITH DURATION d ...].
type CreateDatabase struct {
	Name     string
	Duration time.Duration // 0 = infinite
}

// DropDatabase is DROP DATABASE name.
type DropDatabase struct{ Name string }

// Delete is DELETE [FROM sources] [WHERE tags and time] or, with Drop,
// DROP SERIES [FROM sources] [WHERE tags] (no time).
type Delete struct {
	Sources   []Source
	Condition Expr
	Drop      bool
}

func (*SelectStatement) statement()       {}
func (*ShowDatabases) statement()         {}
func (*ShowMeasurements) statement()      {}
func (*ShowTagKeys) statement()           {}
func (*ShowTagValues) statement()         {}
func (*ShowFieldKeys) statement()         {}
func (*ShowSeries) statement()            {}
func (*ShowRetentionPolicies) statement() {}
func (*CreateDatabase) statement()        {}
func (*DropDatabase) statement()          {}
func (*Delete) statement()                {}

// ExprString renders an expression back to InfluxQL (for messages and tests).
func ExprString(e Expr) string {
	var b strings.Builder
	writeExpr(&b, e)
	return b.String()
}

func quoteIdent(s string) string {
	simple := s != ""
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			simple = false
			break
		}
	}
	if simple && !keywords[strings.ToUpper(s)] {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func writeExpr(b *strings.Builder, e Expr) {
	switch e := e.(type) {
	case *VarRef:
		b.WriteString(quoteIdent(e.Name))
		if e.Type != "" {
			b.WriteString("::" + e.Type)
		}
	case *Call:
		b.WriteString(e.Name + "(")
		for i, a := range e.Args {
			if i > 0 {
				b.WriteString(", ")
			}
			writeExpr(b, a)
		}
		b.WriteString(")")
	case *BinaryExpr:
		writeExpr(b, e.LHS)
		b.WriteString(" " + e.Op + " ")
		writeExpr(b, e.RHS)
	case *ParenExpr:
		b.WriteString("(")
		writeExpr(b, e.Expr)
		b.WriteString(")")
	case *NumberLit:
		b.WriteString(strconv.FormatFloat(e.Val, 'f', -1, 64))
	case *IntegerLit:
		b.WriteString(strconv.FormatInt(e.Val, 10))
	case *StringLit:
		b.WriteString("'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(e.Val) + "'")
	case *BoolLit:
		b.WriteString(strconv.FormatBool(e.Val))
	case *DurationLit:
		b.WriteString(formatDuration(e.Val))
	case *RegexLit:
		b.WriteString("/" + strings.ReplaceAll(e.Val.String(), "/", `\/`) + "/")
	case *Wildcard:
		b.WriteString("*")
		if e.Type != "" {
			b.WriteString("::" + e.Type)
		}
	case nil:
	}
}

func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%(7*24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(7*24*time.Hour)), 10) + "w"
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	case d%time.Microsecond == 0:
		return strconv.FormatInt(int64(d/time.Microsecond), 10) + "u"
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}
