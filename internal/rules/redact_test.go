package rules

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/rules/action"
)

func TestRedactKeepsStoredSecrets(t *testing.T) {
	m := newManager(t, openDB(t, t.TempDir()), Options{})
	ctx := context.Background()
	r := Rule{Name: "s", Enabled: true, SQL: "SELECT * FROM 'a/#'", Actions: []action.Spec{
		{Type: "webhook", URL: "https://u:pa55@hooks.example.com/x?token=t0k&keep=1", Username: "u", Password: "pw",
			Headers: map[string]string{"X-Api-Key": "k3y", "X-Trace": "on"}},
		{Type: "postgres", URL: "postgres://app:dbpw@db:5432/app", Table: "t", Columns: map[string]string{"c": "${x}"}},
	}, ErrorAction: &action.Spec{Type: "webhook", URL: "https://e.example.com", BearerToken: "b34rer"}}
	if _, err := m.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	stored, _ := m.Get(ctx, "s")
	red := stored.Redact()
	js := strings.Join([]string{red.Actions[0].URL, red.Actions[0].Password, red.Actions[0].Headers["X-Api-Key"],
		red.Actions[1].URL, red.ErrorAction.BearerToken}, " ")
	for _, secret := range []string{"pa55", "t0k", "pw", "k3y", "dbpw", "b34rer"} {
		if strings.Contains(js, secret) {
			t.Fatalf("redacted rule shows %q: %s", secret, js)
		}
	}
	if red.Actions[0].Headers["X-Trace"] != "on" || !strings.Contains(red.Actions[0].URL, "keep=1") ||
		red.Actions[1].URL != "postgres://app:"+Redacted+"@db:5432/app" {
		t.Fatalf("too much redacted: %+v", red.Actions)
	}
	if stored.Actions[0].Password != "pw" {
		t.Fatal("Redact changed the stored rule")
	}
	// Sending the redacted rule back keeps the secrets; a new value wins.
	red.Description = "edited"
	red.Actions[1].URL = "postgres://app:newpw@db:5432/app"
	if _, err := m.Update(ctx, red); err != nil {
		t.Fatal(err)
	}
	got, _ := m.Get(ctx, "s")
	if got.Actions[0].URL != r.Actions[0].URL || got.Actions[0].Password != "pw" || got.Actions[0].Headers["X-Api-Key"] != "k3y" ||
		got.ErrorAction.BearerToken != "b34rer" || got.Actions[1].URL != "postgres://app:newpw@db:5432/app" || got.Description != "edited" {
		t.Fatalf("after update: %+v %+v", got.Actions, got.ErrorAction)
	}
}

// TestProcessingTimeOption: with options.event_time=processing, payload
// timestamps do not place messages in windows, so an old timestamp is not
// late data.
func TestProcessingTimeOption(t *testing.T) {
	m := newManager(t, openDB(t, t.TempDir()), Options{TickInterval: 10 * time.Millisecond})
	ctx := context.Background()
	sqlText := "SELECT count(*) AS n FROM 'p/+' GROUP BY TUMBLINGWINDOW(ss, 10)"
	acts := []action.Spec{{Type: "webhook", URL: "http://127.0.0.1:1/"}}
	if _, err := m.Create(ctx, Rule{Name: "bad", SQL: sqlText, Actions: acts, Options: &RuleOptions{EventTime: "wall"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad event_time accepted: %v", err)
	}
	for _, name := range []string{"event", "processing"} {
		r := Rule{Name: name, Enabled: true, SQL: sqlText, Actions: acts}
		if name == "processing" {
			r.Options = &RuleOptions{EventTime: "processing"}
		}
		if _, err := m.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, sec := range []int{100, 0} {
		if err := m.OnPublish(ctx, []*broker.Message{msg("p/x", `{"timestamp":"`+at(sec)+`"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	late := func(name string) uint64 {
		st, _ := m.Stats(ctx, name)
		if st.Engine == nil || st.Matched < 2 {
			return 99
		}
		return st.Engine.Late
	}
	eventually(t, func() bool { return late("event") == 1 }, "event-time rule counts the old message late (%d)", late("event"))
	eventually(t, func() bool { return late("processing") == 0 }, "processing-time rule has no late data (%d)", late("processing"))
}
