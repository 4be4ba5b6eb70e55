package apply

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"gopkg.in/yaml.v3"

	"github.com/edgewise-iot/edgewise/internal/pki"
	"github.com/edgewise-iot/edgewise/internal/policy"
	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/rules"
)

// ErrInvalid reports a malformed or inconsistent fleet file.
var ErrInvalid = errors.New("apply: invalid fleet file")

// ErrStale reports that the server changed between plan and apply.
var ErrStale = errors.New("apply: the fleet changed since the plan was made; plan again")

// File is a fleet file. A nil section is not managed.
type File struct {
	ThingTypes *[]ThingType        `yaml:"thing_types,omitempty" json:"thing_types,omitempty"`
	Groups     *[]Group            `yaml:"groups,omitempty" json:"groups,omitempty"`
	Things     *[]Thing            `yaml:"things,omitempty" json:"things,omitempty"`
	Policies   *[]Policy           `yaml:"policies,omitempty" json:"policies,omitempty"`
	Rules      *[]rules.Definition `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// ThingType declares a thing type.
type ThingType struct {
	Name                 string   `yaml:"name" json:"name"`
	Description          string   `yaml:"description,omitempty" json:"description,omitempty"`
	SearchableAttributes []string `yaml:"searchable_attributes,omitempty" json:"searchable_attributes,omitempty"`
	Deprecated           bool     `yaml:"deprecated,omitempty" json:"deprecated,omitempty"`
}

// Group declares a static (Parent optional) or dynamic (Query) group and
// the policies attached to it.
type Group struct {
	Name        string            `yaml:"name" json:"name"`
	Parent      string            `yaml:"parent,omitempty" json:"parent,omitempty"`
	Description string            `yaml:"description,omitempty" json:"description,omitempty"`
	Attributes  map[string]string `yaml:"attributes,omitempty" json:"attributes,omitempty"`
	Query       string            `yaml:"query,omitempty" json:"query,omitempty"`
	Policies    []string          `yaml:"policies,omitempty" json:"policies,omitempty"`
}

// Thing declares a thing, its static groups, the policies attached to it
// and optionally its certificate.
type Thing struct {
	Name        string            `yaml:"name" json:"name"`
	Type        string            `yaml:"type,omitempty" json:"type,omitempty"`
	Attributes  map[string]string `yaml:"attributes,omitempty" json:"attributes,omitempty"`
	Groups      []string          `yaml:"groups,omitempty" json:"groups,omitempty"`
	Policies    []string          `yaml:"policies,omitempty" json:"policies,omitempty"`
	Certificate *Certificate      `yaml:"certificate,omitempty" json:"certificate,omitempty"`
}

// Certificate declares that a certificate attached to the thing exists in
// Status (ACTIVE, the default, or INACTIVE).
type Certificate struct {
	Status string `yaml:"status,omitempty" json:"status,omitempty"`
}

// Policy declares a policy document (AWS IoT policy JSON, written in YAML
// or JSON).
type Policy struct {
	Name     string `yaml:"name" json:"name"`
	Document any    `yaml:"document" json:"document"`
}

// Parse reads a fleet file (YAML, or JSON which is YAML) and checks it:
// unknown keys, duplicate names, invalid names and attributes, policy
// documents, rule definitions and certificate states are errors.
func Parse(b []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return &f, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func dupCheck(kind string, names []string) error {
	seen := map[string]bool{}
	for i, n := range names {
		if n == "" {
			return invalid("%s[%d] has no name", kind, i)
		}
		if seen[n] {
			return invalid("%s %q is declared twice", kind, n)
		}
		seen[n] = true
	}
	return nil
}

func (f *File) check() error {
	if f.ThingTypes != nil {
		var names []string
		for _, t := range *f.ThingTypes {
			names = append(names, t.Name)
		}
		if err := dupCheck("thing_types", names); err != nil {
			return err
		}
	}
	if f.Groups != nil {
		var names []string
		for _, g := range *f.Groups {
			names = append(names, g.Name)
			if err := registry.ValidateThing(registry.Thing{Name: "x", Attributes: g.Attributes}); err != nil {
				return invalid("group %q: %v", g.Name, err)
			}
		}
		if err := dupCheck("groups", names); err != nil {
			return err
		}
	}
	if f.Things != nil {
		var names []string
		for _, t := range *f.Things {
			names = append(names, t.Name)
			if err := registry.ValidateThing(registry.Thing{Name: t.Name, Type: t.Type, Attributes: t.Attributes}); err != nil {
				return invalid("thing %q: %v", t.Name, err)
			}
			if c := t.Certificate; c != nil {
				if _, err := certStatus(c); err != nil {
					return invalid("thing %q: certificate: %v", t.Name, err)
				}
			}
		}
		if err := dupCheck("things", names); err != nil {
			return err
		}
	}
	if f.Policies != nil {
		var names []string
		for _, p := range *f.Policies {
			names = append(names, p.Name)
			doc, err := policyJSON(p.Document)
			if err != nil {
				return invalid("policy %q: %v", p.Name, err)
			}
			if _, err := policy.Parse(doc); err != nil {
				return invalid("policy %q: %v", p.Name, err)
			}
		}
		if err := dupCheck("policies", names); err != nil {
			return err
		}
	}
	if f.Rules != nil {
		var names []string
		for _, r := range *f.Rules {
			names = append(names, r.Name)
		}
		if err := dupCheck("rules", names); err != nil {
			return err
		}
	}
	return nil
}

func certStatus(c *Certificate) (pki.Status, error) {
	if c.Status == "" {
		return pki.StatusActive, nil
	}
	st, err := pki.ParseStatus(c.Status)
	if err != nil {
		return "", err
	}
	if st == pki.StatusRevoked {
		return "", errors.New("a declared certificate must be ACTIVE or INACTIVE (revoke certificates with edgewise certs revoke)")
	}
	return st, nil
}

// policyJSON turns a policy document written in YAML or JSON into JSON.
func policyJSON(doc any) ([]byte, error) {
	if doc == nil {
		return nil, errors.New("document is required")
	}
	if s, ok := doc.(string); ok { // a JSON document given as a string
		return []byte(s), nil
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("document: %w", err)
	}
	return b, nil
}

// sameJSON compares two JSON documents semantically.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// Marshal writes f as YAML.
func Marshal(f *File) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("apply: export: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("apply: export: %w", err)
	}
	return buf.Bytes(), nil
}
