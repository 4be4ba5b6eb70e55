package registry_test

import (
	"strings"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/registry"
)

// FuzzValidateThing checks that validation never panics and that every
// accepted thing is safe to use as an MQTT username, client ID and topic level.
func FuzzValidateThing(f *testing.F) {
	seeds := []struct{ name, typ, key, value string }{
		{"dev-1", "sensor", "site", "lyon"},
		{"a/b", "", "", ""},
		{"admin", "", "", ""},
		{"ADMIN", "t", "k", "v"},
		{"$SYS", "+", "#", "x"},
		{strings.Repeat("n", 129), "", "k:k", "\xff"},
		{"é", "t.1:2", "a.b-c_d", strings.Repeat("v", 801)},
		{"", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.name, s.typ, s.key, s.value)
	}
	f.Fuzz(func(t *testing.T, name, typ, key, value string) {
		th := registry.Thing{Name: name, Type: typ}
		if key != "" || value != "" {
			th.Attributes = map[string]string{key: value}
		}
		if err := registry.ValidateThing(th); err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if name == "" || len(name) > registry.MaxNameLen || strings.ContainsAny(name, "/+#$ \x00") {
			t.Fatalf("accepted unsafe name %q", name)
		}
		if strings.EqualFold(name, registry.ReservedName) {
			t.Fatalf("accepted reserved name %q", name)
		}
		if strings.ContainsAny(typ, "/+#$ ") || len(typ) > registry.MaxNameLen {
			t.Fatalf("accepted bad type %q", typ)
		}
		if th.Attributes != nil && (key == "" || strings.ContainsAny(key, ":/+# ")) {
			t.Fatalf("accepted bad attribute key %q", key)
		}
	})
}
