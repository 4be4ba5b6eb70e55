package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every document and input validation error.
var ErrInvalid = errors.New("policy: invalid")

// MaxDocumentBytes bounds a policy document (AWS IoT allows 2048 bytes of
// non-whitespace; Edgewise is more generous).
const MaxDocumentBytes = 64 << 10

// Document is a policy in the AWS IoT policy JSON shape.
type Document struct {
	Version   string      `json:"Version,omitempty"`
	Statement []Statement `json:"Statement"`
}

// Statement allows or denies actions on resources, optionally under
// conditions.
type Statement struct {
	Sid       string                       `json:"Sid,omitempty"`
	Effect    string                       `json:"Effect"`
	Action    StringList                   `json:"Action"`
	Resource  StringList                   `json:"Resource"`
	Condition map[string]map[string]Values `json:"Condition,omitempty"`

	actions   actionSet
	resources []resource
	conds     []condition
}

// StringList is a JSON string or array of strings.
type StringList []string

// UnmarshalJSON accepts "x" or ["x", ...].
func (l *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = StringList{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New("must be a string or an array of strings")
	}
	*l = ss
	return nil
}

// Values is a condition's value: a string, a boolean, or an array of
// strings.
type Values []string

// UnmarshalJSON accepts "x", true/false or ["x", ...].
func (v *Values) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("true")), bytes.Equal(b, []byte("false")):
		*v = Values{string(b)}
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = Values{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New("must be a string, a boolean or an array of strings")
	}
	*v = ss
	return nil
}

// Action is a permission the broker checks.
type Action uint8

// Actions; iot:Connect is checked against client/<client id>, iot:Publish
// and iot:Receive against topic/<topic name>, iot:Subscribe against
// topicfilter/<topic filter>.
const (
	Connect Action = iota
	Publish
	Subscribe
	Receive
	numActions
)

var actionNames = [numActions]string{"connect", "publish", "subscribe", "receive"}

// String is the action's name in a policy ("iot:Publish").
func (a Action) String() string {
	if a >= numActions {
		return "iot:?"
	}
	n := actionNames[a]
	return "iot:" + strings.ToUpper(n[:1]) + n[1:]
}

type actionSet uint8

func (s actionSet) has(a Action) bool { return s&(1<<a) != 0 }

// parseAction maps "iot:Publish", "Publish", "iot:*", "*" or a glob like
// "iot:Pub*" (case-insensitive) to the actions it names.
func parseAction(s string) (actionSet, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	name = strings.TrimPrefix(name, "iot:")
	var set actionSet
	p := compileGlob(name)
	for a, n := range actionNames {
		if p.match(n) {
			set |= 1 << a
		}
	}
	if set == 0 {
		return 0, fmt.Errorf("unknown action %q (want iot:Connect, iot:Publish, iot:Subscribe, iot:Receive or a wildcard)", s)
	}
	return set, nil
}

// Resource kinds.
const (
	kindAny         = ""
	kindTopic       = "topic"
	kindTopicFilter = "topicfilter"
	kindClient      = "client"
)

// resource is a parsed resource: a kind and a template that may hold
// policy variables and the wildcards '*' and '?'.
type resource struct {
	kind     string
	template []part
}

// Parse decodes and validates a policy document. Errors name the statement
// and the field at fault.
func Parse(b []byte) (*Document, error) {
	if len(b) > MaxDocumentBytes {
		return nil, fmt.Errorf("%w: document is %d bytes, at most %d allowed", ErrInvalid, len(b), MaxDocumentBytes)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%w: document is not valid UTF-8", ErrInvalid)
	}
	var raw struct {
		Version   string          `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: document is not a JSON object: %w", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the document", ErrInvalid)
	}
	switch raw.Version {
	case "", "2012-10-17":
	default:
		return nil, fmt.Errorf("%w: Version %q: want \"2012-10-17\"", ErrInvalid, raw.Version)
	}
	d := &Document{Version: raw.Version}
	st := bytes.TrimSpace(raw.Statement)
	switch {
	case len(st) == 0 || bytes.Equal(st, []byte("null")):
		return nil, fmt.Errorf("%w: Statement is missing", ErrInvalid)
	case st[0] == '{':
		var one Statement
		if err := strictUnmarshal(st, &one); err != nil {
			return nil, fmt.Errorf("%w: Statement: %w", ErrInvalid, err)
		}
		d.Statement = []Statement{one}
	default:
		var many []json.RawMessage
		if err := json.Unmarshal(st, &many); err != nil {
			return nil, fmt.Errorf("%w: Statement must be an object or an array of objects", ErrInvalid)
		}
		for i, m := range many {
			var s Statement
			if err := strictUnmarshal(m, &s); err != nil {
				return nil, fmt.Errorf("%w: Statement[%d]: %w", ErrInvalid, i, err)
			}
			d.Statement = append(d.Statement, s)
		}
	}
	if len(d.Statement) == 0 {
		return nil, fmt.Errorf("%w: Statement is empty", ErrInvalid)
	}
	for i := range d.Statement {
		if err := d.Statement[i].compile(); err != nil {
			return nil, fmt.Errorf("%w: Statement[%d].%w", ErrInvalid, i, err)
		}
	}
	return d, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return fmt.Errorf("field %s: wrong JSON type %s", ute.Field, ute.Value)
		}
		return err
	}
	return nil
}

// MustParse parses a document known to be valid (built-in policies).
func MustParse(s string) *Document {
	d, err := Parse([]byte(s))
	if err != nil {
		panic(err)
	}
	return d
}

func (s *Statement) compile() error {
	switch strings.ToLower(s.Effect) {
	case "allow":
		s.Effect = "Allow"
	case "deny":
		s.Effect = "Deny"
	default:
		return fmt.Errorf("Effect: %q must be Allow or Deny", s.Effect)
	}
	if len(s.Action) == 0 {
		return errors.New("Action: at least one action is required")
	}
	s.actions = 0
	for i, a := range s.Action {
		set, err := parseAction(a)
		if err != nil {
			return fmt.Errorf("Action[%d]: %w", i, err)
		}
		s.actions |= set
	}
	if len(s.Resource) == 0 {
		return errors.New("Resource: at least one resource is required")
	}
	s.resources = s.resources[:0]
	for i, r := range s.Resource {
		res, err := parseResource(r)
		if err != nil {
			return fmt.Errorf("Resource[%d]: %w", i, err)
		}
		s.resources = append(s.resources, res)
	}
	s.conds = s.conds[:0]
	for op, keys := range s.Condition {
		for key, vals := range keys {
			c, err := parseCondition(op, key, vals)
			if err != nil {
				return fmt.Errorf("Condition.%s.%s: %w", op, key, err)
			}
			s.conds = append(s.conds, c)
		}
	}
	return nil
}

// parseResource accepts "*", an ARN arn:aws:iot:REGION:ACCOUNT:KIND/PATTERN
// (region and account are not checked: one installation is one account) or
// the bare KIND/PATTERN.
func parseResource(r string) (resource, error) {
	rest := r
	if strings.HasPrefix(rest, "arn:") {
		fields := strings.SplitN(rest, ":", 6)
		if len(fields) != 6 || fields[1] != "aws" && fields[1] != "edgewise" && fields[1] != "*" || fields[2] != "iot" && fields[2] != "*" {
			return resource{}, fmt.Errorf("%q is not an IoT ARN (arn:aws:iot:REGION:ACCOUNT:topic/...)", r)
		}
		rest = fields[5]
	}
	if rest == "*" {
		return resource{kind: kindAny, template: []part{{kind: partStar}}}, nil
	}
	kind, pattern, ok := strings.Cut(rest, "/")
	if !ok {
		return resource{}, fmt.Errorf("%q: want *, topic/..., topicfilter/..., client/... or an ARN of one", r)
	}
	switch kind {
	case kindTopic, kindTopicFilter, kindClient:
	default:
		return resource{}, fmt.Errorf("%q: unknown resource type %q (want topic, topicfilter or client)", r, kind)
	}
	tmpl, err := parseTemplate(pattern)
	if err != nil {
		return resource{}, fmt.Errorf("%q: %w", r, err)
	}
	return resource{kind: kind, template: tmpl}, nil
}
