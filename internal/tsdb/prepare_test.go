package tsdb

import (
	"math"
	"strings"
	"testing"
)

// The batch preparer shortcuts points that share a tag slice with an earlier
// point: the shortcut must reject exactly what the full check rejects.
func TestPreparerSharedTagsStillValidates(t *testing.T) {
	tags := []Tag{{"b", "2"}, {"a", "1"}}
	keys := []string{"f", "g"}
	var pr preparer
	p0, err := pr.prepare(Point{Measurement: "m", Tags: tags, Time: 1, Fields: []Field{{keys[0], FloatValue(1)}, {keys[1], IntValue(2)}}})
	if err != nil || p0.bs != 1 || p0.Tags[0].Key != "a" {
		t.Fatalf("first point: %v %+v", err, p0)
	}
	// Same key strings, non-finite value: rejected.
	if _, err := pr.prepare(Point{Measurement: "m", Tags: tags, Time: 2, Fields: []Field{{keys[0], FloatValue(math.Inf(1))}, {keys[1], IntValue(2)}}}); err == nil {
		t.Fatal("non-finite float accepted")
	}
	// Different strings with a duplicate: rejected.
	dup := strings.Clone("f")
	if _, err := pr.prepare(Point{Measurement: "m", Tags: tags, Time: 3, Fields: []Field{{keys[0], FloatValue(1)}, {dup, FloatValue(2)}}}); err == nil {
		t.Fatal("duplicate field key accepted")
	}
	// The same series again: same batch number, same key string.
	p4, err := pr.prepare(Point{Measurement: "m", Tags: tags, Time: 4, Fields: []Field{{keys[1], IntValue(3)}}})
	if err != nil || p4.bs != p0.bs || p4.key != p0.key {
		t.Fatalf("same series: %v bs %d/%d", err, p4.bs, p0.bs)
	}
	// Another series gets another number.
	p5, err := pr.prepare(Point{Measurement: "m", Tags: []Tag{{"a", "9"}}, Time: 5, Fields: []Field{{"f", FloatValue(1)}}})
	if err != nil || p5.bs == p0.bs {
		t.Fatalf("other series: %v bs %d", err, p5.bs)
	}
	// WAL encoding round trip keeps the series apart.
	pts, err := decodePoints(appendPoints(nil, []preparedPoint{p0, p5, p4}))
	if err != nil || len(pts) != 3 || pts[0].key != pts[2].key || pts[1].key == pts[0].key {
		t.Fatalf("round trip: %v %+v", err, pts)
	}
}
