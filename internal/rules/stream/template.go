package stream

import (
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules/sql"
)

// Template is an action template: text with ${expr} substitutions where
// expr is any SQL expression over the output row (columns by name, nested
// paths like ${data.temp}) and the functions topic(n), clientid(),
// principal(), timestamp() (render time), newuuid(), window_start() and
// window_end().
type Template struct{ t *sql.Template }

// ParseTemplate parses an action template; errors are *sql.Error.
func ParseTemplate(s string) (*Template, error) {
	t, err := sql.ParseTemplate(s)
	if err != nil {
		return nil, err
	}
	return &Template{t: t}, nil
}

// String returns the template's source.
func (t *Template) String() string { return t.t.String() }

// Static reports whether the template has no substitutions.
func (t *Template) Static() bool { return t.t.Static() }

// Render substitutes the expressions for output o. An expression that is
// Undefined (a missing column) is an error, so that a topic or URL never
// has a hole.
func (t *Template) Render(o *Output) (string, error) {
	if t.t.Static() {
		return t.t.Render(nil)
	}
	env := sql.Env{
		Row: true, Cols: o.Row.Columns, Vals: o.Row.Values,
		Topic: o.Topic, ClientID: o.ClientID, Principal: o.Principal,
		Now: time.Now(), WindowStart: o.WindowStart, WindowEnd: o.WindowEnd,
	}
	return t.t.Render(&env)
}
