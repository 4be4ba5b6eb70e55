package apply_test

import (
	"errors"
	"os"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/apply"
)

// FuzzParse checks that fleet files never panic the parser, that every
// error wraps ErrInvalid, and that accepted files survive Marshal and Parse.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../examples/fleet.yaml"); err == nil {
		f.Add(string(b))
	}
	for _, s := range []string{"", "things: []", "things:\n  - name: a\n    certificate: {status: REVOKED}\n", "policies:\n  - name: p\n    document: 3\n",
		"groups:\n  - {name: g, query: 'thingName:('}\n", "rules:\n  - name: r\n  - name: r\n", "thing_types: [{name: t, searchable_attributes: [a, a]}]", "[1, 2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		file, err := apply.Parse([]byte(s))
		if err != nil {
			if !errors.Is(err, apply.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		b, err := apply.Marshal(file)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if _, err := apply.Parse(b); err != nil {
			t.Fatalf("re-parse of %q: %v\n%s", s, err, b)
		}
	})
}
