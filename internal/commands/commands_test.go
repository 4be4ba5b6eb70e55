package commands

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestMatchTopic(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"devices/d1/command", "devices/d1/command", true},
		{"devices/+/command", "devices/d1/command", true},
		{"devices/d1/#", "devices/d1/command", true},
		{"devices/d1/command/#", "devices/d1/command", true},
		{"#", "devices/d1/command", true},
		{"devices/d1/+", "devices/d1/command", true},
		{"devices/d1/command/response", "devices/d1/command", false},
		{"devices/d2/command", "devices/d1/command", false},
		{"devices/d1", "devices/d1/command", false},
	}
	for _, tc := range cases {
		if got := MatchTopic(tc.filter, tc.topic); got != tc.want {
			t.Errorf("MatchTopic(%q, %q) = %v", tc.filter, tc.topic, got)
		}
	}
}

func TestParseReply(t *testing.T) {
	r, err := ParseReply([]byte(`{"status":"succeeded","result":{"a":1}}`), []byte("abc"))
	if err != nil || r.CommandID != "abc" || string(r.Result) != `{"a":1}` {
		t.Fatalf("correlation data reply: %+v %v", r, err)
	}
	for _, bad := range []string{`{"command_id":"x","status":"done"}`, `{"status":"failed"}`, `[]`, `nope`} {
		if _, err := ParseReply([]byte(bad), nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestDeliveryMessage(t *testing.T) {
	b, err := deliveryMessage(Command{ID: "c1", Command: "reboot", Payload: map[string]any{"delay": 5}})
	if err != nil || string(b) != `{"command":"reboot","command_id":"c1","delay":5}` {
		t.Fatalf("%s %v", b, err)
	}
}

// FuzzParseReply: device replies never panic and accepted ones are sane.
func FuzzParseReply(f *testing.F) {
	f.Add([]byte(`{"command_id":"a","status":"succeeded","result":[1,2]}`), []byte(nil))
	f.Add([]byte(`{"status":"failed","error":"x"}`), []byte("id"))
	f.Add([]byte(`{"command_id":5}`), []byte(nil))
	f.Fuzz(func(t *testing.T, payload, corr []byte) {
		r, err := ParseReply(payload, corr)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if r.CommandID == "" || (r.Status != "succeeded" && r.Status != "failed") {
			t.Fatalf("accepted %+v", r)
		}
		if len(r.Result) > 0 && !json.Valid(r.Result) {
			t.Fatalf("invalid result %q", r.Result)
		}
	})
}

// TestIDsSortByCreation: IDs made one after another sort in that order,
// which breaks created_at ties (milliseconds) in lists.
func TestIDsSortByCreation(t *testing.T) {
	prev := ""
	for i := 0; i < 1000; i++ {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 24 || id <= prev {
			t.Fatalf("id %d: %q after %q", i, id, prev)
		}
		prev = id
	}
}
