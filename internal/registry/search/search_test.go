package search_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/registry/search"
)

type thing struct {
	name, typ string
	attrs     map[string]string
	groups    []string
	connected bool
	reported  map[string]any
}

func (t thing) Values(f search.Field, dst []search.Value) []search.Value {
	switch f.Kind {
	case search.ThingName:
		return append(dst, search.Str(t.name))
	case search.ThingType:
		if t.typ != "" {
			dst = append(dst, search.Str(t.typ))
		}
	case search.Attribute:
		if v, ok := t.attrs[f.Key]; ok {
			dst = append(dst, search.Str(v))
		}
	case search.GroupNames:
		for _, g := range t.groups {
			dst = append(dst, search.Str(g))
		}
	case search.Connected:
		dst = append(dst, search.Boolean(t.connected))
	case search.ShadowReported:
		var cur any = t.reported
		for _, p := range f.Path {
			m, ok := cur.(map[string]any)
			if !ok {
				return dst
			}
			if cur, ok = m[p]; !ok {
				return dst
			}
		}
		switch v := cur.(type) {
		case float64:
			dst = append(dst, search.Num(v))
		case string:
			dst = append(dst, search.Str(v))
		case bool:
			dst = append(dst, search.Boolean(v))
		}
	}
	return dst
}

var fleet = []thing{
	{name: "sensor-1", typ: "sensor", attrs: map[string]string{"location": "lab", "mac": "aa:bb", "floor": "3"}, groups: []string{"lab", "site-a"}, connected: true,
		reported: map[string]any{"temperature": 31.5, "fw": map[string]any{"version": "1.2"}}},
	{name: "sensor-2", typ: "sensor", attrs: map[string]string{"location": "hall", "floor": "10"}, groups: []string{"site-a"},
		reported: map[string]any{"temperature": 21.0}},
	{name: "gw-1", typ: "gateway", attrs: map[string]string{"location": "lab"}, connected: true},
	{name: "actuator x", attrs: map[string]string{"location": "lab floor 2"}},
}

func names(t *testing.T, q string) string {
	t.Helper()
	pq, err := search.Parse(q)
	if err != nil {
		t.Fatalf("Parse(%q): %v", q, err)
	}
	m := pq.Matcher()
	var out []string
	for _, th := range fleet {
		if m.Match(th) {
			out = append(out, th.name)
		}
	}
	return strings.Join(out, ",")
}

func TestQueries(t *testing.T) {
	cases := []struct{ q, want string }{
		{"thingName:sensor-*", "sensor-1,sensor-2"},
		{"sensor-?", "sensor-1,sensor-2"},
		{"thingName:*", "sensor-1,sensor-2,gw-1,actuator x"},
		{`"actuator x"`, "actuator x"},
		{`thingName:"sensor-*"`, ""},
		{"thingTypeName:sensor", "sensor-1,sensor-2"},
		{"thingTypeName:*", "sensor-1,sensor-2,gw-1"},
		{"NOT thingTypeName:*", "actuator x"},
		{"attributes.location:lab", "sensor-1,gw-1"},
		{`attributes.location:"lab floor 2"`, "actuator x"},
		{"attributes.location:lab*", "sensor-1,gw-1,actuator x"},
		{"attributes.mac:aa:bb", "sensor-1"},
		{"attributes.location:lab AND connected:true", "sensor-1,gw-1"},
		{"attributes.location:lab connectivity.connected:false", ""},
		{"connected:false", "sensor-2,actuator x"},
		{"shadow.reported.temperature > 30", "sensor-1"},
		{"shadow.reported.temperature:>30", "sensor-1"},
		{"shadow.reported.temperature <= 21", "sensor-2"},
		{"shadow.reported.temperature:[21 TO 31.5]", "sensor-1,sensor-2"},
		{"shadow.reported.temperature:{21 TO 31.5]", "sensor-1"},
		{"shadow.reported.temperature:{21 TO *}", "sensor-1"},
		{"shadow.reported.temperature:*", "sensor-1,sensor-2"},
		{"shadow.reported.fw.version:1.2", "sensor-1"},
		{"attributes.floor > 5", "sensor-2"},
		{"attributes.floor:[1 TO 5]", "sensor-1"},
		{"thingGroupNames:site-a", "sensor-1,sensor-2"},
		{"thingGroupNames:lab OR thingTypeName:gateway", "sensor-1,gw-1"},
		{"(thingGroupNames:lab OR thingTypeName:gateway) AND NOT connected:true", ""},
		{"thingTypeName:sensor AND (attributes.location:hall OR shadow.reported.temperature > 30)", "sensor-1,sensor-2"},
		{"NOT NOT thingName:gw-1", "gw-1"},
		{"thingName:gw-1 || thingName:sensor-2", "sensor-2,gw-1"},
	}
	for _, c := range cases {
		if got := names(t, c.q); got != c.want {
			t.Errorf("%s: got [%s], want [%s]", c.q, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		q      string
		col    int
		substr string
	}{
		{"", 1, "empty query"},
		{"   ", 1, "empty query"},
		{"thingName:", 11, "expected a value"},
		{"color:red", 1, "unknown field"},
		{"attributes.:x", 1, "attribute name missing"},
		{"(thingName:a", 1, "unclosed parenthesis"},
		{"thingName:a)", 12, "unexpected"},
		{"thingName:a AND", 16, "query ended"},
		{`thingName:"abc`, 11, "unterminated string"},
		{"shadow.reported.t:[1 10]", 22, "expected TO"},
		{"shadow.reported.t:[1 TO 10", 27, "close the range"},
		{"shadow.reported.t >", 20, "expected a value"},
		{"OR thingName:a", 1, "expected a term"},
		{"shadow.reported..a:1", 1, "empty path element"},
		{strings.Repeat("(", 40) + "a" + strings.Repeat(")", 40), 34, "nested deeper"},
	}
	for _, c := range cases {
		_, err := search.Parse(c.q)
		var se *search.Error
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want *search.Error", c.q, err)
			continue
		}
		if se.Column != c.col || !strings.Contains(se.Msg, c.substr) {
			t.Errorf("Parse(%q) = column %d %q, want column %d containing %q", c.q, se.Column, se.Msg, c.col, c.substr)
		}
	}
}

func TestWildcard(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*", "abc", true}, {"*c", "abc", true}, {"a*c", "abxc", true}, {"a*c", "abcd", false},
		{"?", "é", true}, {"??", "é", false}, {"a?c", "abc", true}, {"*a*a*a*b", strings.Repeat("a", 100), false},
	}
	for _, c := range cases {
		if got := search.Wildcard(c.p, c.s); got != c.want {
			t.Errorf("Wildcard(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

func TestFieldsAndShadow(t *testing.T) {
	q, err := search.Parse("attributes.a:1 AND (shadow.reported.t > 3 OR attributes.a:2)")
	if err != nil {
		t.Fatal(err)
	}
	if !q.NeedsShadow() || len(q.Fields()) != 2 {
		t.Fatalf("fields %v", q.Fields())
	}
	q, _ = search.Parse("thingName:x")
	if q.NeedsShadow() {
		t.Fatal("thingName needs no shadow")
	}
}
