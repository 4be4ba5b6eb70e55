package sql

import (
	"regexp"
	"time"
)

// Expr is a compiled expression.
type Expr interface {
	// Pos is where the expression starts in the source.
	Pos() Pos
	// Eval computes the value of the expression in env.
	Eval(env *Env) (any, error)
}

// Literal is a constant.
type Literal struct {
	P Pos
	V any
}

// Step is one step of a field path: an object key or an array index.
type Step struct {
	Key   string
	Index Expr // non-nil for [index]
}

// FieldRef reads a path out of the document (Root nil) or out of the value
// of Root: a.b[0].c.
type FieldRef struct {
	P     Pos
	Root  Expr
	Steps []Step
	// static: no index expressions (a single raw scan resolves the path).
	static bool
}

// Unary is -x or NOT x.
type Unary struct {
	P  Pos
	Op string // "-" or "NOT"
	X  Expr
}

// Binary is an arithmetic, concatenation, comparison or logical operator.
type Binary struct {
	P    Pos
	Op   string // + - * / % || = <> < <= > >= AND OR
	L, R Expr
}

// In is x [NOT] IN (a, b, ...) or x [NOT] IN array.
type In struct {
	P    Pos
	X    Expr
	List []Expr // one element that is not a literal list may be an array
	Not  bool
}

// Like is x [NOT] LIKE pattern: % any run, _ one character, \ escapes.
type Like struct {
	P          Pos
	X, Pattern Expr
	Not        bool
	re         *regexp.Regexp // when the pattern is a literal
}

// Is is x IS [NOT] NULL or x IS [NOT] UNDEFINED.
type Is struct {
	P         Pos
	X         Expr
	Not       bool
	Undefined bool
}

// When is one WHEN ... THEN ... branch.
type When struct{ Cond, Then Expr }

// Case is CASE [operand] WHEN ... THEN ... [ELSE ...] END.
type Case struct {
	P       Pos
	Operand Expr
	Whens   []When
	Else    Expr
}

// Cast is cast(x AS type).
type Cast struct {
	P    Pos
	X    Expr
	Type string // Int, Decimal, Boolean, String (lower-cased canonical)
}

// ArrayLit is [a, b, ...].
type ArrayLit struct {
	P     Pos
	Elems []Expr
}

// ObjectLit is {'k': v, ...}.
type ObjectLit struct {
	P    Pos
	Keys []string
	Vals []Expr
}

// Star is *, the whole payload (in SELECT and as a function argument).
type Star struct{ P Pos }

// Call is a function call; aggregates are calls with Agg set, evaluated
// through the slot the statement assigned them.
type Call struct {
	P      Pos
	Name   string // lower case
	Args   []Expr
	Filter Expr // FILTER (WHERE ...) of an aggregate
	Agg    bool
	Slot   int
	def    *funcDef
	re     *regexp.Regexp // compiled literal pattern argument
}

// Field is one item of the SELECT list.
type Field struct {
	Expr   Expr
	Alias  string // AS name, or derived: last path key, function name, _N
	Star   bool   // bare *
	Expand bool   // expr.*: the object's keys become columns
}

// WindowKind is the kind of a GROUP BY window.
type WindowKind uint8

// Window kinds.
const (
	Tumbling WindowKind = iota + 1
	Hopping
	Sliding
	Session
	Count
)

func (k WindowKind) String() string {
	return [...]string{"", "TUMBLINGWINDOW", "HOPPINGWINDOW", "SLIDINGWINDOW", "SESSIONWINDOW", "COUNTWINDOW"}[k]
}

// Window is the window function of GROUP BY.
type Window struct {
	P    Pos
	Kind WindowKind
	// Size is the length of tumbling, hopping and sliding windows and the
	// maximum duration of a session.
	Size time.Duration
	// Hop is the period of hopping windows.
	Hop time.Duration
	// Timeout is the gap that ends a session.
	Timeout time.Duration
	// Count and CountHop are the length and the period of count windows.
	Count, CountHop int
}

// Statement is a parsed and checked rule.
type Statement struct {
	Fields   []Field
	From     string
	FromPos  Pos
	Where    Expr
	GroupBy  []Expr // group keys besides the window
	Window   *Window
	Having   Expr
	Aggs     []*Call // aggregate calls, indexed by their Slot
	HasStar  bool    // the SELECT list has a bare *
	usesTime bool
}

func (e *Literal) Pos() Pos   { return e.P }
func (e *FieldRef) Pos() Pos  { return e.P }
func (e *Unary) Pos() Pos     { return e.P }
func (e *Binary) Pos() Pos    { return e.P }
func (e *In) Pos() Pos        { return e.P }
func (e *Like) Pos() Pos      { return e.P }
func (e *Is) Pos() Pos        { return e.P }
func (e *Case) Pos() Pos      { return e.P }
func (e *Cast) Pos() Pos      { return e.P }
func (e *ArrayLit) Pos() Pos  { return e.P }
func (e *ObjectLit) Pos() Pos { return e.P }
func (e *Star) Pos() Pos      { return e.P }
func (e *Call) Pos() Pos      { return e.P }

// Walk calls fn for e and every expression below it, depth first; fn
// returning false skips the children.
func Walk(e Expr, fn func(Expr) bool) {
	if e == nil || !fn(e) {
		return
	}
	switch x := e.(type) {
	case *FieldRef:
		Walk(x.Root, fn)
		for _, s := range x.Steps {
			Walk(s.Index, fn)
		}
	case *Unary:
		Walk(x.X, fn)
	case *Binary:
		Walk(x.L, fn)
		Walk(x.R, fn)
	case *In:
		Walk(x.X, fn)
		for _, a := range x.List {
			Walk(a, fn)
		}
	case *Like:
		Walk(x.X, fn)
		Walk(x.Pattern, fn)
	case *Is:
		Walk(x.X, fn)
	case *Case:
		Walk(x.Operand, fn)
		for _, w := range x.Whens {
			Walk(w.Cond, fn)
			Walk(w.Then, fn)
		}
		Walk(x.Else, fn)
	case *Cast:
		Walk(x.X, fn)
	case *ArrayLit:
		for _, a := range x.Elems {
			Walk(a, fn)
		}
	case *ObjectLit:
		for _, a := range x.Vals {
			Walk(a, fn)
		}
	case *Call:
		for _, a := range x.Args {
			Walk(a, fn)
		}
		Walk(x.Filter, fn)
	case *arrayArg:
		Walk(x.Expr, fn)
	}
}
