package tsdb

import (
	"testing"
	"unsafe"
)

// Writers may pass strings that alias a buffer they reuse after Write
// returns (the broker's messages alias the connection's read buffer). A
// new series must not keep those bytes: the next message overwriting the
// buffer would rename the series and hide its points.
func TestWriteDoesNotRetainCallerBuffers(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	buf := []byte("site-2.pumpflow")
	dev := unsafe.String(&buf[0], 11)
	field := unsafe.String(&buf[11], 4)
	mustWrite(t, db, pt(dev, 1, f(field, FloatValue(2))))
	copy(buf, "other-7/telvolt") // the buffer is reused
	got := values(t, mustQuery(t, db, Query{Measurement: "telemetry", Tags: []Tag{{"device_id", "site-2.pump"}}, Field: "flow"}))
	if len(got) != 1 || got[1] != 2 {
		t.Fatalf("series of site-2.pump after its buffer was reused: %v", got)
	}
	if got := mustQuery(t, db, Query{Measurement: "telemetry", Tags: []Tag{{"device_id", "other-7/tel"}}}); len(got) != 0 {
		t.Fatalf("a series appeared under the reused buffer's new content: %v", got)
	}
}

// The field-order hints of an existing series must not keep a caller's
// strings either: reusing the buffer would give a hint another field's name
// and its type, and a later point would be refused as a type conflict.
func TestFieldHintsDoNotRetainCallerBuffers(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	mustWrite(t, db, pt("d", 1, f("a", FloatValue(1)), f("b", IntValue(1))))
	buf := []byte("ba")
	b, a := unsafe.String(&buf[0], 1), unsafe.String(&buf[1], 1)
	mustWrite(t, db, pt("d", 2, f(b, IntValue(2)), f(a, FloatValue(2)))) // other order: hints change
	copy(buf, "ab")                                                      // the buffer is reused
	mustWrite(t, db, pt("d", 3, f("a", FloatValue(3)), f("b", IntValue(3))))
	mustWrite(t, db, pt("d", 4, f("b", IntValue(4)), f("a", FloatValue(4))))
	got := values(t, mustQuery(t, db, Query{Measurement: "telemetry", Tags: []Tag{{"device_id", "d"}}, Field: "a"}))
	if len(got) != 4 || got[4] != 4 {
		t.Fatalf("field a: %v", got)
	}
}
