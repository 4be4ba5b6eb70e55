package shadow

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Publisher that keeps what was published.
type recorder struct {
	mu   sync.Mutex
	msgs []recorded
}

type recorded struct {
	topic string
	body  map[string]any
}

func (r *recorder) Publish(_ context.Context, topic string, payload []byte, _ byte, _ bool) error {
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return err
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, recorded{topic, m})
	r.mu.Unlock()
	return nil
}

func (r *recorder) take(topic string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	rest := r.msgs[:0]
	for _, m := range r.msgs {
		if m.topic == topic {
			out = append(out, m.body)
		} else {
			rest = append(rest, m)
		}
	}
	r.msgs = rest
	return out
}

func newService(t *testing.T) (*Service, *recorder) {
	t.Helper()
	st, _ := newMemStore(t, Options{MaxDocumentBytes: 512})
	rec := &recorder{}
	sv := NewService(st, rec, ServiceOptions{Now: func() time.Time { return time.Unix(1700000000, 0) }})
	return sv, rec
}

func TestServiceProtocol(t *testing.T) {
	ctx := context.Background()
	sv, rec := newService(t)
	// Desired state for a shadow that does not exist yet: accepted, a
	// delta (nothing reported), documents without "previous".
	sv.handle(ctx, AWSPrefix, "dev", "", "update", []byte(`{"state":{"desired":{"color":"red","cfg":{"rate":5}}},"clientToken":"t1"}`))
	acc := rec.take("$aws/things/dev/shadow/update/accepted")
	if len(acc) != 1 || acc[0]["clientToken"] != "t1" || acc[0]["version"] != 1.0 || acc[0]["timestamp"] != 1700000000.0 {
		t.Fatalf("accepted = %v", acc)
	}
	if md := acc[0]["metadata"].(map[string]any)["desired"].(map[string]any); md["cfg"].(map[string]any)["rate"].(map[string]any)["timestamp"] != 1700000000.0 {
		t.Errorf("accepted metadata = %v", md)
	}
	for _, p := range []string{AWSPrefix, EdgewisePrefix} {
		d := rec.take(p + "dev/shadow/update/delta")
		if len(d) != 1 || mustJSON(t, d[0]["state"]) != `{"cfg":{"rate":5},"color":"red"}` || d[0]["clientToken"] != "t1" {
			t.Fatalf("%s delta = %v", p, d)
		}
		docs := rec.take(p + "dev/shadow/update/documents")
		if len(docs) != 1 || docs[0]["previous"] != nil || docs[0]["current"].(map[string]any)["version"] != 1.0 {
			t.Fatalf("%s documents = %v", p, docs)
		}
	}
	// The device reports part of it: the delta shrinks and is published.
	if err := sv.ReportState(ctx, "dev", map[string]any{"color": "red", "cfg": map[string]any{"rate": 1}}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	d := rec.take("$aws/things/dev/shadow/update/delta")
	if len(d) != 1 || mustJSON(t, d[0]["state"]) != `{"cfg":{"rate":5}}` || d[0]["version"] != 2.0 {
		t.Fatalf("delta after report = %v", d)
	}
	// Stale version: 409, nothing changes.
	sv.handle(ctx, EdgewisePrefix, "dev", "", "update", []byte(`{"state":{"reported":{"cfg":{"rate":5}}},"version":1,"clientToken":"t2"}`))
	rej := rec.take("$edgewise/things/dev/shadow/update/rejected")
	if len(rej) != 1 || rej[0]["code"] != 409.0 || rej[0]["clientToken"] != "t2" {
		t.Fatalf("rejected = %v", rej)
	}
	// The right version: the delta clears, no delta is published.
	sv.handle(ctx, EdgewisePrefix, "dev", "", "update", []byte(`{"state":{"reported":{"cfg":{"rate":5}}},"version":2}`))
	if acc := rec.take("$edgewise/things/dev/shadow/update/accepted"); len(acc) != 1 || acc[0]["version"] != 3.0 {
		t.Fatalf("accepted = %v", acc)
	}
	if d := rec.take("$aws/things/dev/shadow/update/delta"); len(d) != 0 {
		t.Fatalf("delta published after it cleared: %v", d)
	}
	sv.handle(ctx, AWSPrefix, "dev", "", "get", []byte(`{"clientToken":"g"}`))
	got := rec.take("$aws/things/dev/shadow/get/accepted")
	if len(got) != 1 || got[0]["clientToken"] != "g" {
		t.Fatalf("get = %v", got)
	}
	state := got[0]["state"].(map[string]any)
	if state["delta"] != nil || mustJSON(t, state["desired"]) != `{"cfg":{"rate":5},"color":"red"}` {
		t.Errorf("get state = %v", state)
	}
	// null deletes a field; "desired": null clears the section.
	sv.handle(ctx, AWSPrefix, "dev", "", "update", []byte(`{"state":{"desired":null,"reported":{"color":null}}}`))
	doc, err := sv.store.GetShadow(ctx, "dev", "")
	if err != nil || len(doc.Desired) != 0 || mustJSON(t, doc.Reported) != `{"cfg":{"rate":5}}` || doc.ReportedMetadata["color"] != nil {
		t.Fatalf("after null update: %+v %v", doc, err)
	}
	// Named shadows are separate documents.
	sv.handle(ctx, AWSPrefix, "dev", "fw", "update", []byte(`{"state":{"desired":{"v":"2.0"}}}`))
	if acc := rec.take("$aws/things/dev/shadow/name/fw/update/accepted"); len(acc) != 1 || acc[0]["version"] != 1.0 {
		t.Fatalf("named accepted = %v", acc)
	}
	if names, err := sv.Names(ctx, "dev"); err != nil || len(names) != 1 || names[0] != "fw" {
		t.Fatalf("names = %v %v", names, err)
	}
	sv.handle(ctx, AWSPrefix, "dev", "fw", "delete", nil)
	if acc := rec.take("$aws/things/dev/shadow/name/fw/delete/accepted"); len(acc) != 1 || acc[0]["version"] != 1.0 {
		t.Fatalf("delete accepted = %v", acc)
	}
	sv.handle(ctx, AWSPrefix, "dev", "fw", "get", nil)
	if rej := rec.take("$aws/things/dev/shadow/name/fw/get/rejected"); len(rej) != 1 || rej[0]["code"] != 404.0 {
		t.Fatalf("get deleted = %v", rej)
	}
}

func TestServiceRejections(t *testing.T) {
	ctx := context.Background()
	sv, rec := newService(t)
	cases := []struct {
		body string
		code float64
	}{
		{`not json`, 400},
		{`{}`, 400},
		{`{"state":{}}`, 400},
		{`{"state":{"delta":{"a":1}}}`, 400},
		{`{"state":{"desired":[1]}}`, 400},
		{`{"state":{"desired":{"a":1}},"version":0}`, 400},
		{`{"state":{"desired":{"a":1}},"version":"x"}`, 400},
		{`{"state":{"desired":{"a":1}},"clientToken":5}`, 400},
		{`{"state":{"desired":{"a":"` + strings.Repeat("x", 600) + `"}}}`, 413},
		{`{"state":{"desired":{"a":1}},"version":7}`, 409},
	}
	for _, tc := range cases {
		sv.handle(ctx, AWSPrefix, "dev", "", "update", []byte(tc.body))
		rej := rec.take("$aws/things/dev/shadow/update/rejected")
		if len(rej) != 1 || rej[0]["code"] != tc.code || rej[0]["message"] == "" {
			t.Errorf("%s: rejected = %v, want code %v", tc.body, rej, tc.code)
		}
	}
	sv.handle(ctx, AWSPrefix, "dev", "bad/name", "get", nil)
	sv.handle(ctx, AWSPrefix, "dev", "", "get", nil)
	if rej := rec.take("$aws/things/dev/shadow/get/rejected"); len(rej) != 1 || rej[0]["code"] != 404.0 {
		t.Errorf("get of missing shadow = %v", rej)
	}
}

func TestParseTopic(t *testing.T) {
	cases := []struct {
		topic, thing, name, op string
		ok                     bool
	}{
		{"$aws/things/d1/shadow/update", "d1", "", "update", true},
		{"$aws/things/d1/shadow/get", "d1", "", "get", true},
		{"$edgewise/things/d1/shadow/name/fw/delete", "d1", "fw", "delete", true},
		{"$aws/things/d1/shadow/update/accepted", "", "", "", false},
		{"$aws/things/d1/shadow/name//update", "", "", "", false},
		{"$aws/things//shadow/update", "", "", "", false},
		{"$aws/things/d1/jobs/get", "", "", "", false},
		{"devices/d1/state", "", "", "", false},
	}
	for _, tc := range cases {
		_, thing, name, op, ok := ParseTopic(tc.topic)
		if ok != tc.ok || thing != tc.thing || name != tc.name || op != tc.op {
			t.Errorf("ParseTopic(%q) = %q %q %q %v", tc.topic, thing, name, op, ok)
		}
	}
}

func TestDelta(t *testing.T) {
	cases := []struct{ desired, reported, want string }{
		{`{"a":1}`, `{"a":1}`, `null`},
		{`{"a":1}`, `{}`, `{"a":1}`},
		{`{"a":{"b":1,"c":2}}`, `{"a":{"b":1,"c":3}}`, `{"a":{"c":2}}`},
		{`{"a":{"b":1}}`, `{"a":5}`, `{"a":{"b":1}}`},
		{`{"a":[1,2]}`, `{"a":[1,2]}`, `null`},
		{`{"a":[1,2]}`, `{"a":[2,1]}`, `{"a":[1,2]}`},
		{`{}`, `{"a":1}`, `null`},
	}
	for _, tc := range cases {
		got := mustJSON(t, delta(obj(t, tc.desired), obj(t, tc.reported)))
		if got != tc.want {
			t.Errorf("delta(%s, %s) = %s, want %s", tc.desired, tc.reported, got, tc.want)
		}
	}
}

// FuzzParseUpdate checks that any payload a device sends is either parsed
// or rejected with a RequestError, never a panic.
func FuzzParseUpdate(f *testing.F) {
	for _, s := range []string{`{"state":{"desired":{"a":1}},"version":3,"clientToken":"x"}`, `{"state":null}`,
		`{"state":{"reported":null}}`, `{"state":[]}`, `nope`, `{"state":{"desired":{"a":{"b":null}}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseUpdate(body)
		if err != nil {
			if _, ok := err.(*RequestError); !ok {
				t.Fatalf("error %T %v is not a RequestError", err, err)
			}
			return
		}
		if req.Update.Desired == nil && req.Update.Reported == nil && !req.Update.ClearDesired && !req.Update.ClearReported {
			t.Fatalf("accepted an update that changes nothing: %s", body)
		}
		st, _ := newMemStore(t, Options{MaxDocumentBytes: 256, MaxDepth: 5})
		sv := NewService(st, &recorder{}, ServiceOptions{})
		sv.handle(context.Background(), AWSPrefix, "dev", "", "update", body)
	})
}
