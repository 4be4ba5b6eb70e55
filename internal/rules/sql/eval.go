package sql

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Lookup resolves registry lookups; the rules engine passes the registry.
type Lookup interface {
	ThingAttribute(ctx context.Context, thing, attr string) (string, bool)
	ThingType(ctx context.Context, thing string) (string, bool)
}

// Env is what an expression is evaluated against: a message payload (raw
// JSON) or an output row, plus the message's context. Reset it (or make a
// new one) for each message.
type Env struct {
	Ctx context.Context
	// Payload is the raw message payload, read when Row is false.
	Payload []byte
	// Row makes field references resolve against Cols/Vals (templates).
	Row  bool
	Cols []string
	Vals []any

	Topic     string
	ClientID  string
	Principal string
	// Now is the processing time, for timestamp().
	Now                    time.Time
	WindowStart, WindowEnd time.Time
	// Aggs holds the results of the statement's aggregates, by slot.
	Aggs   []any
	Lookup Lookup

	checked bool
	jsonErr error
	root    any
	decoded bool
	// top indexes the members of a top-level object (valid when checked
	// and topOK), so that lookups skip straight to their first key.
	top   []member
	topOK bool
	// Index, when set, is the payload's shared index (NewIndex): the
	// validation pass is not repeated.
	Index *Index
}

// Index is the validation result and top-level member index of one
// payload, computed once and shared, read-only, by every rule that
// evaluates the payload (safe for concurrent use).
type Index struct {
	err   error
	top   []member
	topOK bool
}

// NewIndex validates and indexes a payload.
func NewIndex(payload []byte) *Index {
	var e Env
	e.Payload = payload
	err := e.checkJSON()
	return &Index{err: err, top: e.top, topOK: e.topOK}
}

type member struct {
	ks, ke, vs int // key body [ks, ke), value start
	esc        bool
}

// Reset clears what the Env cached about its previous payload.
func (e *Env) Reset() {
	e.checked, e.jsonErr, e.root, e.decoded = false, nil, nil, false
	if e.Index != nil {
		e.top = nil
	}
	e.top, e.topOK = e.top[:0], false
}

// checkJSON validates the payload once, indexing a top-level object's
// members on the way.
func (e *Env) checkJSON() error {
	if !e.checked {
		e.checked = true
		if x := e.Index; x != nil {
			// Shared: borrow the members (never appended to: Reset
			// drops the borrowed slice).
			e.jsonErr, e.top, e.topOK = x.err, x.top, x.topOK
			return e.jsonErr
		}
		if !e.index() {
			e.jsonErr = fmt.Errorf("%w (%d bytes)", ErrBadJSON, len(e.Payload))
		}
	}
	return e.jsonErr
}

// index validates the payload; for an object it records its members.
func (e *Env) index() bool {
	b := e.Payload
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return ValidJSON(b)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		e.topOK = true
		return skipWS(b, i+1) == len(b)
	}
	if e.top == nil {
		e.top = make([]member, 0, 8)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		ke, err := skipString(b, i)
		if err != nil {
			return false
		}
		m := member{ks: i + 1, ke: ke - 1}
		for _, c := range b[m.ks:m.ke] {
			if c == '\\' {
				m.esc = true
				break
			}
		}
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		m.vs = skipWS(b, i+1)
		if i, err = skipValue(b, m.vs, 1); err != nil {
			return false
		}
		e.top = append(e.top, m)
		i = skipWS(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			e.topOK = true
			return skipWS(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return false
		}
		i = skipWS(b, i+1)
	}
}

// find returns the value offset of a static path, using the index for the
// first key. The last member of a duplicated key wins, as in encoding/json.
func (e *Env) find(steps []Step) (int, bool) {
	if !e.topOK || steps[0].Index != nil {
		return lookupPath(e.Payload, 0, steps)
	}
	k := steps[0].Key
	for j := len(e.top) - 1; j >= 0; j-- {
		m := e.top[j]
		var eq bool
		if m.esc {
			eq = unescape(e.Payload[m.ks:m.ke]) == k
		} else {
			eq = string(e.Payload[m.ks:m.ke]) == k
		}
		if eq {
			return lookupPath(e.Payload, m.vs, steps[1:])
		}
	}
	return 0, false
}

// RawField returns the raw JSON of a static field path in the payload
// (nil, false when the path is absent or not static). The payload must be
// valid JSON: the error says when it is not.
func (e *Env) RawField(x *FieldRef) ([]byte, bool, error) {
	if x.Root != nil || !x.static || e.Row {
		return nil, false, nil
	}
	if err := e.checkJSON(); err != nil {
		return nil, false, err
	}
	at, ok := e.find(x.Steps)
	if !ok {
		return nil, false, nil
	}
	end, _ := skipValue(e.Payload, at, 0)
	return e.Payload[at:end], true, nil
}

// Document returns the decoded payload (or the row as an object).
func (e *Env) Document() (any, error) {
	if e.Row {
		m := make(map[string]any, len(e.Cols))
		for i, c := range e.Cols {
			m[c] = e.Vals[i]
		}
		return m, nil
	}
	if err := e.checkJSON(); err != nil {
		return nil, err
	}
	if !e.decoded {
		e.root, _ = decodeAt(e.Payload, skipWS(e.Payload, 0))
		e.decoded = true
	}
	return e.root, nil
}

// Members returns the top-level members of the payload in document order
// (for SELECT *); a payload that is not an object gives ok false.
func (e *Env) Members(fn func(key string, val any)) (bool, error) {
	if e.Row {
		for i, c := range e.Cols {
			fn(c, e.Vals[i])
		}
		return true, nil
	}
	if err := e.checkJSON(); err != nil {
		return false, err
	}
	return eachMember(e.Payload, func(k string, b []byte, at int) {
		v, _ := decodeAt(b, at)
		fn(k, v)
	}), nil
}

func (e *Env) ctx() context.Context {
	if e.Ctx == nil {
		return context.Background()
	}
	return e.Ctx
}

func (x *Literal) Eval(*Env) (any, error) { return x.V, nil }

func (x *Star) Eval(env *Env) (any, error) { return env.Document() }

func (x *FieldRef) Eval(env *Env) (any, error) {
	steps := x.Steps
	var cur any
	switch {
	case x.Root != nil:
		v, err := x.Root.Eval(env)
		if err != nil {
			return nil, err
		}
		cur = v
	case env.Row:
		k := steps[0].Key
		found := false
		for i, c := range env.Cols {
			if c == k {
				cur, found = env.Vals[i], true
				break
			}
		}
		if !found {
			return Undefined{}, nil
		}
		steps = steps[1:]
	case x.static:
		if err := env.checkJSON(); err != nil {
			return nil, err
		}
		at, ok := env.find(steps)
		if !ok {
			return Undefined{}, nil
		}
		v, _ := decodeAt(env.Payload, at)
		return v, nil
	default:
		doc, err := env.Document()
		if err != nil {
			return nil, err
		}
		cur = doc
	}
	for _, s := range steps {
		if s.Index == nil {
			m, ok := cur.(map[string]any)
			if !ok {
				return Undefined{}, nil
			}
			if cur, ok = m[s.Key]; !ok {
				return Undefined{}, nil
			}
			continue
		}
		iv, err := s.Index.Eval(env)
		if err != nil {
			return nil, err
		}
		switch c := cur.(type) {
		case []any:
			n, ok := iv.(int64)
			if !ok {
				if f, isF := iv.(float64); isF && f == float64(int64(f)) {
					n, ok = int64(f), true
				}
			}
			if !ok || n < 0 || n >= int64(len(c)) {
				return Undefined{}, nil
			}
			cur = c[n]
		case map[string]any:
			k, ok := iv.(string)
			if !ok {
				return Undefined{}, nil
			}
			if cur, ok = c[k]; !ok {
				return Undefined{}, nil
			}
		default:
			return Undefined{}, nil
		}
	}
	return cur, nil
}

func (x *Unary) Eval(env *Env) (any, error) {
	v, err := x.X.Eval(env)
	if err != nil {
		return nil, err
	}
	if x.Op == "NOT" {
		b, ok := toBool(v)
		if !ok {
			return Undefined{}, nil
		}
		return !b, nil
	}
	switch n := v.(type) {
	case int64:
		if n == -n && n != 0 {
			return -float64(n), nil
		}
		return -n, nil
	case float64:
		return -n, nil
	}
	if _, isBool := v.(bool); isBool {
		return Undefined{}, nil
	}
	n, ok := ToNumber(v)
	if !ok {
		return Undefined{}, nil
	}
	return arith("-", int64(0), n), nil
}

func (x *Binary) Eval(env *Env) (any, error) {
	l, err := x.L.Eval(env)
	if err != nil {
		return nil, err
	}
	switch x.Op {
	case "AND", "OR":
		// AWS IoT semantics: both sides must be Boolean (or "true"/"false").
		r, err := x.R.Eval(env)
		if err != nil {
			return nil, err
		}
		lb, lok := toBool(l)
		rb, rok := toBool(r)
		if !lok || !rok {
			return Undefined{}, nil
		}
		if x.Op == "AND" {
			return lb && rb, nil
		}
		return lb || rb, nil
	}
	r, err := x.R.Eval(env)
	if err != nil {
		return nil, err
	}
	if IsUndefined(l) || IsUndefined(r) {
		return Undefined{}, nil
	}
	switch x.Op {
	case "=":
		return Equal(l, r), nil
	case "<>":
		return !Equal(l, r), nil
	case "<", "<=", ">", ">=":
		c, ok := Compare(l, r)
		if !ok {
			return Undefined{}, nil
		}
		switch x.Op {
		case "<":
			return c < 0, nil
		case "<=":
			return c <= 0, nil
		case ">":
			return c > 0, nil
		}
		return c >= 0, nil
	case "||":
		return ToString(l) + ToString(r), nil
	}
	return arith(x.Op, l, r), nil
}

func (x *arrayArg) Eval(env *Env) (any, error) { return x.Expr.Eval(env) }

func (x *In) Eval(env *Env) (any, error) {
	v, err := x.X.Eval(env)
	if err != nil {
		return nil, err
	}
	if IsUndefined(v) {
		return Undefined{}, nil
	}
	found := false
	if len(x.List) == 1 {
		if a, ok := x.List[0].(*arrayArg); ok {
			av, err := a.Eval(env)
			if err != nil {
				return nil, err
			}
			arr, ok := av.([]any)
			if !ok {
				return Undefined{}, nil
			}
			for _, e := range arr {
				if Equal(v, e) {
					found = true
					break
				}
			}
			return found != x.Not, nil
		}
	}
	for _, e := range x.List {
		ev, err := e.Eval(env)
		if err != nil {
			return nil, err
		}
		if !IsUndefined(ev) && Equal(v, ev) {
			found = true
			break
		}
	}
	return found != x.Not, nil
}

func (x *Like) Eval(env *Env) (any, error) {
	v, err := x.X.Eval(env)
	if err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return Undefined{}, nil
	}
	re := x.re
	if re == nil {
		pv, err := x.Pattern.Eval(env)
		if err != nil {
			return nil, err
		}
		ps, ok := pv.(string)
		if !ok {
			return Undefined{}, nil
		}
		re = likeRegexp(ps)
	}
	return re.MatchString(s) != x.Not, nil
}

func (x *Is) Eval(env *Env) (any, error) {
	v, err := x.X.Eval(env)
	if err != nil {
		return nil, err
	}
	var r bool
	if x.Undefined {
		r = IsUndefined(v)
	} else {
		r = v == nil
	}
	return r != x.Not, nil
}

func (x *Case) Eval(env *Env) (any, error) {
	var op any
	if x.Operand != nil {
		v, err := x.Operand.Eval(env)
		if err != nil {
			return nil, err
		}
		op = v
	}
	for _, w := range x.Whens {
		c, err := w.Cond.Eval(env)
		if err != nil {
			return nil, err
		}
		var hit bool
		if x.Operand != nil {
			hit = !IsUndefined(op) && !IsUndefined(c) && Equal(op, c)
		} else {
			hit = Truthy(c)
		}
		if hit {
			return w.Then.Eval(env)
		}
	}
	if x.Else != nil {
		return x.Else.Eval(env)
	}
	return Undefined{}, nil
}

func (x *Cast) Eval(env *Env) (any, error) {
	v, err := x.X.Eval(env)
	if err != nil {
		return nil, err
	}
	return castValue(v, x.Type), nil
}

func castValue(v any, typ string) any {
	if IsUndefined(v) || v == nil {
		return v
	}
	switch typ {
	case "int":
		switch b := v.(type) {
		case bool:
			if b {
				return int64(1)
			}
			return int64(0)
		case string:
			if n, ok := ToNumber(strings.TrimSpace(b)); ok {
				if i, ok := ToInt(n); ok {
					return i
				}
			}
			return Undefined{}
		}
		if i, ok := ToInt(v); ok {
			return i
		}
	case "decimal":
		if b, ok := v.(bool); ok {
			if b {
				return 1.0
			}
			return 0.0
		}
		if f, ok := ToFloat(v); ok {
			return f
		}
	case "boolean":
		switch b := v.(type) {
		case bool:
			return b
		case int64:
			return b != 0
		case float64:
			return b != 0
		case string:
			if t, ok := toBool(b); ok {
				return t
			}
		}
	case "string":
		return ToString(v)
	}
	return Undefined{}
}

func (x *ArrayLit) Eval(env *Env) (any, error) {
	out := make([]any, 0, len(x.Elems))
	for _, e := range x.Elems {
		v, err := e.Eval(env)
		if err != nil {
			return nil, err
		}
		if !IsUndefined(v) {
			out = append(out, v)
		}
	}
	return out, nil
}

func (x *ObjectLit) Eval(env *Env) (any, error) {
	out := make(map[string]any, len(x.Keys))
	for i, e := range x.Vals {
		v, err := e.Eval(env)
		if err != nil {
			return nil, err
		}
		if !IsUndefined(v) {
			out[x.Keys[i]] = v
		}
	}
	return out, nil
}

func (x *Call) Eval(env *Env) (any, error) {
	if x.Agg {
		if x.Slot >= len(env.Aggs) {
			return nil, fmt.Errorf("%w: aggregate %s evaluated outside a window", ErrEval, x.Name)
		}
		return env.Aggs[x.Slot], nil
	}
	var buf [4]any
	args := buf[:0]
	for _, a := range x.Args {
		if _, ok := a.(*Star); ok && x.def.rawStar {
			args = append(args, rawPayload(env.Payload))
			continue
		}
		v, err := a.Eval(env)
		if err != nil {
			return nil, err
		}
		args = append(args, v)
	}
	return x.def.fn(env, x, args)
}

// rawPayload is the payload bytes handed to encode(*, ...).
type rawPayload []byte

// Select evaluates the SELECT list into columns. Undefined values are left
// out; a later column of the same name replaces an earlier one.
func (st *Statement) Select(env *Env, cols []string, vals []any) ([]string, []any, error) {
	set := func(k string, v any) {
		if IsUndefined(v) {
			return
		}
		for i, c := range cols {
			if c == k {
				vals[i] = v
				return
			}
		}
		cols = append(cols, k)
		vals = append(vals, v)
	}
	for _, f := range st.Fields {
		switch {
		case f.Star:
			ok, err := env.Members(set)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				// A JSON payload that is not an object: one column.
				doc, _ := env.Document()
				set("payload", doc)
			}
		case f.Expand:
			v, err := f.Expr.Eval(env)
			if err != nil {
				return nil, nil, err
			}
			if m, ok := v.(map[string]any); ok {
				for _, k := range sortedKeys(m) {
					set(k, m[k])
				}
			}
		default:
			v, err := f.Expr.Eval(env)
			if err != nil {
				return nil, nil, err
			}
			set(f.Alias, v)
		}
	}
	return cols, vals, nil
}

// Matches reports whether the WHERE clause passes in env (no WHERE passes).
func (st *Statement) Matches(env *Env) (bool, error) {
	if st.Where == nil {
		return true, nil
	}
	v, err := st.Where.Eval(env)
	if err != nil {
		return false, err
	}
	return Truthy(v), nil
}
