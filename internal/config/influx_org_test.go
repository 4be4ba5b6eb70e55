package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestInfluxOrg(t *testing.T) {
	load := func(yml string) (Config, error) {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(p, func(string) string { return "" })
	}
	c, err := load("")
	if err != nil || c.Influx.Org != "edgewise" {
		t.Fatalf("default org = %q (%v), want edgewise", c.Influx.Org, err)
	}
	if c, err = load("influx:\n  org: plant-7\n"); err != nil || c.Influx.Org != "plant-7" {
		t.Fatalf("org from file = %q (%v)", c.Influx.Org, err)
	}
	for _, bad := range []string{`""`, `"a\tb"`} {
		if _, err := load("influx:\n  org: " + bad + "\n"); !errors.Is(err, ErrInvalid) {
			t.Errorf("org %s accepted: %v", bad, err)
		}
	}
}
