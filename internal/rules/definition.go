package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"gopkg.in/yaml.v3"

	"github.com/edgewise-iot/edgewise/internal/rules/action"
)

// Definition is a rule as users write it (API bodies, YAML files):
// Enabled defaults to true.
type Definition struct {
	Name        string        `json:"name" yaml:"name"`
	Description string        `json:"description,omitempty" yaml:"description,omitempty"`
	SQL         string        `json:"sql" yaml:"sql"`
	Actions     []action.Spec `json:"actions" yaml:"actions"`
	ErrorAction *action.Spec  `json:"error_action,omitempty" yaml:"error_action,omitempty"`
	Options     *RuleOptions  `json:"options,omitempty" yaml:"options,omitempty"`
	Enabled     *bool         `json:"enabled,omitempty" yaml:"enabled,omitempty"`
}

// Rule returns the definition as a rule.
func (d Definition) Rule() Rule {
	return Rule{Name: d.Name, Description: d.Description, SQL: d.SQL, Actions: d.Actions, ErrorAction: d.ErrorAction,
		Options: d.Options, Enabled: d.Enabled == nil || *d.Enabled}
}

// File is the YAML rules file format:
//
//	rules:
//	  - name: hot
//	    sql: SELECT ... FROM 'devices/+/telemetry' WHERE ...
//	    actions:
//	      - {type: republish, topic: "alerts/${device}"}
type File struct {
	Rules []Definition `yaml:"rules" json:"rules"`
}

// ParseFile reads a YAML (or JSON) rules file; unknown keys are errors.
func ParseFile(b []byte) ([]Definition, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: rules file: %v", ErrInvalid, err)
	}
	seen := map[string]bool{}
	for i, d := range f.Rules {
		if d.Name == "" {
			return nil, fmt.Errorf("%w: rules file: rules[%d] has no name", ErrInvalid, i)
		}
		if seen[d.Name] {
			return nil, fmt.Errorf("%w: rules file: rule %q appears twice", ErrInvalid, d.Name)
		}
		seen[d.Name] = true
	}
	return f.Rules, nil
}

// ApplyResult says what Apply did with each rule.
type ApplyResult struct {
	Created   []string `json:"created"`
	Updated   []string `json:"updated"`
	Unchanged []string `json:"unchanged"`
}

// same reports whether a stored rule already matches r.
func same(a, b Rule) bool {
	a.CreatedAt, a.UpdatedAt = b.CreatedAt, b.UpdatedAt
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && reflect.DeepEqual(ja, jb)
}

// Apply creates or updates each rule so the stored rules match defs
// (idempotent: unchanged rules are not touched). Every definition is
// checked before anything changes; rules not in defs are left alone.
func (m *Manager) Apply(ctx context.Context, defs []Definition) (ApplyResult, error) {
	res := ApplyResult{Created: []string{}, Updated: []string{}, Unchanged: []string{}}
	for _, d := range defs {
		if _, err := m.compile(d.Rule()); err != nil {
			return res, fmt.Errorf("rule %q: %w", d.Name, err)
		}
	}
	for _, d := range defs {
		r := d.Rule()
		old, err := m.Get(ctx, r.Name)
		switch {
		case errors.Is(err, ErrNotFound):
			if _, err := m.Create(ctx, r); err != nil {
				return res, err
			}
			res.Created = append(res.Created, r.Name)
		case err != nil:
			return res, err
		case same(old, r):
			res.Unchanged = append(res.Unchanged, r.Name)
		default:
			if _, err := m.Update(ctx, r); err != nil {
				return res, err
			}
			res.Updated = append(res.Updated, r.Name)
		}
	}
	return res, nil
}
