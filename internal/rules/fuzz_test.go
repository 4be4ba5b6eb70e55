package rules

import (
	"testing"

	"github.com/edgewise-iot/edgewise/internal/rules/action"
)

// FuzzParseFile: rules files come from users; any input gives rules or an
// error, never a panic, and every action of a parsed file validates or
// fails with ErrInvalid.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte("rules:\n  - name: hot\n    sql: SELECT * FROM 'a/#'\n    actions: [{type: webhook, url: 'http://h/${x}', timeout: 2s}]\n"))
	f.Add([]byte("rules: [{name: a, enabled: false, actions: [{type: archive, url: 'file:///x', max_age: 1m}]}]"))
	f.Add([]byte(`{"rules":[{"name":"j","sql":"SELECT 1 FROM 'x'","actions":[{"type":"nats","url":"nats://h","subject":"s.${a}"}]}]}`))
	f.Add([]byte("rules: [{name: a, actions: [{type: postgres, url: 'postgres://x', table: t, columns: {a: '${b'}}]}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		defs, err := ParseFile(b)
		if err != nil {
			return
		}
		for _, d := range defs {
			for _, a := range d.Actions {
				_ = action.Validate(a, action.Options{})
			}
			_ = d.Rule()
		}
	})
}
