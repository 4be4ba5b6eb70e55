package agents

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/rules"
	"github.com/edgewise-iot/edgewise/internal/rules/action"
	"github.com/edgewise-iot/edgewise/internal/store"
)

type pubRec struct {
	mu   sync.Mutex
	msgs map[string][]byte
}

func (p *pubRec) Publish(_ context.Context, topic string, payload []byte, _ byte, retain bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !retain {
		return errors.New("rule sets must be retained")
	}
	p.msgs[topic] = payload
	return nil
}

func def(name, sql string) rules.Definition {
	return rules.Definition{Name: name, SQL: sql, Actions: []action.Spec{{Type: "republish", Topic: "a/b"}}}
}

func TestRuleSetVersionsAndStatus(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := New(ctx, db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pub := &pubRec{msgs: map[string][]byte{}}
	s.SetPublisher(pub)
	if _, err := s.PutRules(ctx, "gw", []rules.Definition{def("x", "SELEKT")}, -1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid SQL: %v", err)
	}
	if _, err := s.PutRules(ctx, "gw", []rules.Definition{{Name: "x", SQL: "SELECT * FROM 'a'", Actions: []action.Spec{{Type: "teleport"}}}}, -1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown action type: %v", err)
	}
	a, err := s.PutRules(ctx, "gw", []rules.Definition{def("hot", "SELECT * FROM 'devices/+/telemetry'")}, -1)
	if err != nil || a.RulesVersion != 1 || a.InSync {
		t.Fatalf("v1: %+v %v", a, err)
	}
	var rs RuleSet
	if err := json.Unmarshal(pub.msgs[RulesTopic("gw")], &rs); err != nil || rs.Version != 1 || len(rs.Rules) != 1 || rs.Agent != "gw" {
		t.Fatalf("published: %s (%v)", pub.msgs[RulesTopic("gw")], err)
	}
	if _, err := s.PutRules(ctx, "gw", nil, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("if_version 0 at version 1: %v", err)
	}
	if a, err = s.PutRules(ctx, "gw", nil, 1); err != nil || a.RulesVersion != 2 || len(a.Rules) != 0 {
		t.Fatalf("v2: %+v %v", a, err)
	}
	// The agent reports; the hook records it.
	st, _ := json.Marshal(Status{Agent: "spoofed", RulesVersion: 2})
	if err := s.OnPublish(ctx, []*broker.Message{{Topic: StatusTopic("gw"), Payload: st, Received: time.Now()},
		{Topic: "devices/gw/telemetry", Payload: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	a, err = s.Get(ctx, "gw")
	if err != nil || a.Status == nil || a.Status.Agent != "gw" || !a.InSync || a.StatusAt == nil {
		t.Fatalf("after status: %+v %v", a, err)
	}
	// A status from an agent without a rule set creates it.
	s.OnPublish(ctx, []*broker.Message{{Topic: StatusTopic("other"), Payload: st}})
	list, _ := s.List(ctx)
	if len(list) != 2 || list[1].Name != "other" || list[1].RulesVersion != 0 {
		t.Fatalf("list: %+v", list)
	}
	if err := s.Delete(ctx, "gw"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "gw"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if b := pub.msgs[RulesTopic("gw")]; len(b) != 0 {
		t.Fatalf("retained rule set not cleared: %s", b)
	}
}
