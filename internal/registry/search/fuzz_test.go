package search_test

import (
	"errors"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/registry/search"
)

// FuzzParse checks that the parser never panics, reports errors as
// *search.Error with a column inside the query (or just past it), and that
// every accepted query can be evaluated.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"thingName:sensor-*", "attributes.location:lab AND connected:true", "shadow.reported.temperature > 30",
		"NOT (a OR b) c", `thingName:"x\"y"`, "shadow.reported.t:[1 TO *}", "attributes.m:aa:bb", "((((", "a:b:c",
		"thingGroupNames:lab OR thingTypeName:sensor", "x:[", "\"", "shadow.desired.a.b.c:{* TO 3]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		pq, err := search.Parse(q)
		if err != nil {
			var se *search.Error
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q): error %v is not *search.Error", q, err)
			}
			if se.Column < 1 || se.Column > len(q)+1 && len(q) <= search.MaxQueryLen {
				t.Fatalf("Parse(%q): column %d outside the query", q, se.Column)
			}
			return
		}
		m := pq.Matcher()
		for _, th := range fleet {
			m.Match(th)
		}
	})
}
