package rules

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/rules/action"
)

func mqttClient(t *testing.T, addr, id string) mqtt3.Client {
	t.Helper()
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetAutoReconnect(false)
	c := mqtt3.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// TestEndToEndRepublish: a device publishes through the real broker, a
// rule filters and republishes, and a subscriber receives the alert.
func TestEndToEndRepublish(t *testing.T) {
	slot := &hookSlot{}
	srv, addr := startBroker(t, slot)
	m := newManager(t, openDB(t, t.TempDir()), Options{Publisher: srv})
	slot.set(m)
	_, err := m.Create(context.Background(), Rule{
		Name:    "hot",
		SQL:     "SELECT temperature, topic(2) AS device FROM 'devices/+/telemetry' WHERE temperature > 50",
		Actions: []action.Spec{{Type: "republish", Topic: "devices/${device}/alerts", QoS: 1}},
		Enabled: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan mqtt3.Message, 10)
	sub := mqttClient(t, addr, "sub")
	if tok := sub.Subscribe("devices/+/alerts", 1, func(_ mqtt3.Client, msg mqtt3.Message) { got <- msg }); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	dev := mqttClient(t, addr, "d1")
	for _, temp := range []int{20, 70} {
		if tok := dev.Publish("devices/d1/telemetry", 1, false, fmt.Sprintf(`{"temperature": %d}`, temp)); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	select {
	case msg := <-got:
		if msg.Topic() != "devices/d1/alerts" || string(msg.Payload()) != `{"temperature":70,"device":"d1"}` {
			t.Fatalf("got %s %s", msg.Topic(), msg.Payload())
		}
	case <-time.After(waitFor):
		t.Fatal("no alert received")
	}
	eventually(t, func() bool {
		st, _ := m.Stats(context.Background(), "hot")
		return st.Matched == 2 && st.Passed == 1 && len(st.Actions) == 1 && st.Actions[0].Delivered == 1
	}, "stats")
	select {
	case msg := <-got:
		t.Fatalf("unexpected second alert %s", msg.Payload())
	default:
	}
}

func TestCreateValidation(t *testing.T) {
	m := newManager(t, openDB(t, t.TempDir()), Options{})
	ctx := context.Background()
	hook := action.Spec{Type: "webhook", URL: "http://127.0.0.1:9/x"}
	_, err := m.Create(ctx, Rule{Name: "bad", SQL: "SELECT temp\nFROM 'a/b' WHERE (", Actions: []action.Spec{hook}})
	var se *SQLError
	if !errors.As(err, &se) || se.Line != 2 || se.Column < 1 || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want a SQLError on line 2", err)
	}
	for _, r := range []Rule{
		{Name: "", SQL: "SELECT * FROM 'a'", Actions: []action.Spec{hook}},
		{Name: "x y", SQL: "SELECT * FROM 'a'", Actions: []action.Spec{hook}},
		{Name: "noact", SQL: "SELECT * FROM 'a'"},
		{Name: "badact", SQL: "SELECT * FROM 'a'", Actions: []action.Spec{{Type: "ftp"}}},
		{Name: "repub", SQL: "SELECT * FROM 'a'", Actions: []action.Spec{{Type: "republish", Topic: "x"}}}, // no publisher
		{Name: "badtmpl", SQL: "SELECT * FROM 'a'", Actions: []action.Spec{{Type: "webhook", URL: "http://h/${oops"}}},
	} {
		if _, err := m.Create(ctx, r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", r.Name, err)
		}
	}
	if _, err := m.Create(ctx, Rule{Name: "ok", SQL: "SELECT * FROM 'a'", Actions: []action.Spec{hook}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, Rule{Name: "ok", SQL: "SELECT * FROM 'a'", Actions: []action.Spec{hook}}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := m.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
}

const windowSQL = "SELECT topic(2) AS device, avg(t) AS avg_t, count(*) AS n FROM 'devices/+/telemetry' GROUP BY topic(2), TUMBLINGWINDOW(ss, 10)"

func at(sec int) string { return time.Unix(1_700_000_000+int64(sec), 0).UTC().Format(time.RFC3339) }

// TestRestartKeepsRulesAndWindows: rules survive a restart; a clean
// shutdown saves open windows and the next start resumes them; after a
// crash (no Close) the rules come back with empty windows.
func TestRestartKeepsRulesAndWindows(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	col := newCollector(t)
	ctx := context.Background()
	opts := Options{IdleTimeout: -1}
	m1, err := New(ctx, db, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m1.Create(ctx, Rule{Name: "avg", SQL: windowSQL, Enabled: true, Actions: []action.Spec{{Type: "webhook", URL: col.srv.URL}}}); err != nil {
		t.Fatal(err)
	}
	m1.OnPublish(ctx, []*broker.Message{
		msg("devices/d1/telemetry", fmt.Sprintf(`{"t": 10, "timestamp": %q}`, at(1))),
		msg("devices/d1/telemetry", fmt.Sprintf(`{"t": 20, "timestamp": %q}`, at(2))),
	})
	eventually(t, func() bool { st, _ := m1.Stats(ctx, "avg"); return st.Matched == 2 && st.Queued == 0 }, "m1 processed")
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Clean restart: the window [0s, 10s) continues.
	m2, err := New(ctx, db, opts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := m2.Get(ctx, "avg")
	if err != nil || r.SQL != windowSQL || !r.Enabled {
		t.Fatalf("rule after restart: %+v, %v", r, err)
	}
	m2.OnPublish(ctx, []*broker.Message{
		msg("devices/d1/telemetry", fmt.Sprintf(`{"t": 30, "timestamp": %q}`, at(3))),
		msg("devices/d1/telemetry", fmt.Sprintf(`{"t": 99, "timestamp": %q}`, at(12))), // closes [0,10)
	})
	eventually(t, func() bool { return len(col.got()) == 1 }, "window output after clean restart")
	if b := col.got()[0]; b["avg_t"] != 20.0 || b["n"] != 3.0 || b["device"] != "d1" {
		t.Fatalf("window after clean restart = %v, want avg 20 over 3 messages", b)
	}
	eventually(t, func() bool { st, _ := m2.Stats(ctx, "avg"); return st.Matched == 2 && st.Queued == 0 }, "m2 processed")

	// Crash: m2 is abandoned without Close (as after kill -9). Its open
	// window [10s, 20s) holding t=99 is not saved; the next start begins
	// empty instead of replaying the state restored at m2's start.
	m3, err := New(ctx, db, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m3.Close(ctx)
	defer m2.Close(ctx)
	m3.OnPublish(ctx, []*broker.Message{
		msg("devices/d1/telemetry", fmt.Sprintf(`{"t": 1, "timestamp": %q}`, at(15))),
		msg("devices/d1/telemetry", fmt.Sprintf(`{"t": 1, "timestamp": %q}`, at(25))), // closes [10,20)
	})
	eventually(t, func() bool { return len(col.got()) == 2 }, "window output after crash")
	if b := col.got()[1]; b["avg_t"] != 1.0 || b["n"] != 1.0 {
		t.Fatalf("window after crash = %v, want only the post-crash message", b)
	}
}

// TestLoopGuard: a rule never sees its own republished messages, and
// chains between rules stop after MaxHops.
func TestLoopGuard(t *testing.T) {
	slot := &hookSlot{}
	srv, _ := startBroker(t, slot)
	m := newManager(t, openDB(t, t.TempDir()), Options{Publisher: srv, MaxHops: 4})
	slot.set(m)
	ctx := context.Background()
	mk := func(name, from, to string) {
		t.Helper()
		if _, err := m.Create(ctx, Rule{Name: name, SQL: "SELECT * FROM '" + from + "'", Enabled: true,
			Actions: []action.Spec{{Type: "republish", Topic: to}}}); err != nil {
			t.Fatal(err)
		}
	}
	mk("self", "self/#", "self/again")
	mk("a", "a/#", "b/x")
	mk("b", "b/#", "a/x")
	m.OnPublish(ctx, []*broker.Message{msg("self/start", `{}`), msg("a/start", `{}`)})
	idle := func(name string) bool {
		st, _ := m.Stats(ctx, name)
		return st.Queued == 0 && st.Actions[0].Queued == 0
	}
	eventually(t, func() bool {
		sa, _ := m.Stats(ctx, "a")
		sb, _ := m.Stats(ctx, "b")
		return sa.Matched == 3 && sb.Matched == 2 && idle("a") && idle("b") && idle("self")
	}, "chain a->b->a stops after 4 hops")
	// Once everything is idle the counts are final.
	ss, _ := m.Stats(ctx, "self")
	sa, _ := m.Stats(ctx, "a")
	sb, _ := m.Stats(ctx, "b")
	if ss.Matched != 1 || sa.Matched != 3 || sb.Matched != 2 {
		t.Fatalf("matched self=%d a=%d b=%d, want 1, 3, 2", ss.Matched, sa.Matched, sb.Matched)
	}
	if m.Summary().LoopsBroken < 2 {
		t.Fatalf("loops broken = %d, want the self loop and the hop limit counted", m.Summary().LoopsBroken)
	}
}

// TestErrorActionPayload: an evaluation error reaches the error action
// with the documented payload.
func TestErrorActionPayload(t *testing.T) {
	col := newCollector(t)
	m := newManager(t, openDB(t, t.TempDir()), Options{})
	ctx := context.Background()
	if _, err := m.Create(ctx, Rule{Name: "e", SQL: "SELECT t FROM 'x/#' WHERE t > 1", Enabled: true,
		Actions:     []action.Spec{{Type: "webhook", URL: col.srv.URL + "/out"}},
		ErrorAction: &action.Spec{Type: "webhook", URL: col.srv.URL + "/err"}}); err != nil {
		t.Fatal(err)
	}
	m.OnPublish(ctx, []*broker.Message{msg("x/1", "not json")})
	eventually(t, func() bool { return len(col.got()) == 1 }, "error report")
	b := col.got()[0]
	want := base64.StdEncoding.EncodeToString([]byte("not json"))
	if b["rule"] != "e" || b["topic"] != "x/1" || b["client_id"] != "c-x/1" || b["principal"] != "dev" || b["payload"] != want ||
		b["error"] == nil || b["error"] == "" || b["timestamp"] == nil {
		js, _ := json.Marshal(b)
		t.Fatalf("error payload %s", js)
	}
	// The collector records the request before the sink sees the response.
	eventually(t, func() bool {
		st, _ := m.Stats(ctx, "e")
		return st.Errors == 1 && st.ErrorAction != nil && st.ErrorAction.Delivered == 1
	}, "error action stats")
}

// TestDisableEnableUpdateDelete exercises the lifecycle.
func TestDisableEnableUpdateDelete(t *testing.T) {
	col := newCollector(t)
	m := newManager(t, openDB(t, t.TempDir()), Options{})
	ctx := context.Background()
	r := Rule{Name: "r", SQL: "SELECT v FROM 'x/#'", Enabled: true, Actions: []action.Spec{{Type: "webhook", URL: col.srv.URL}}}
	if _, err := m.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetEnabled(ctx, "r", false); err != nil {
		t.Fatal(err)
	}
	m.OnPublish(ctx, []*broker.Message{msg("x/1", `{"v":1}`)}) // ignored: disabled
	if _, err := m.SetEnabled(ctx, "r", true); err != nil {
		t.Fatal(err)
	}
	r.SQL = "SELECT v * 2 AS w FROM 'x/#'"
	if _, err := m.Update(ctx, r); err != nil {
		t.Fatal(err)
	}
	m.OnPublish(ctx, []*broker.Message{msg("x/1", `{"v":2}`)})
	eventually(t, func() bool { return len(col.got()) == 1 }, "output")
	if got := col.got()[0]; got["w"] != 4.0 {
		t.Fatalf("got %v", got)
	}
	if err := m.Delete(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if len(m.List(ctx)) != 0 {
		t.Fatal("rule still listed")
	}
	if err := m.Delete(ctx, "r"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestApplyFileIdempotent(t *testing.T) {
	col := newCollector(t)
	m := newManager(t, openDB(t, t.TempDir()), Options{})
	ctx := context.Background()
	file := fmt.Sprintf(`rules:
  - name: hot
    description: temperature alerts
    sql: SELECT data.temp AS temp FROM 'devices/+/telemetry' WHERE data.temp > 50
    actions:
      - type: webhook
        url: %s/hot
        timeout: 2s
        headers: {X-Rule: "${temp}"}
  - name: off
    enabled: false
    sql: SELECT * FROM 'x/#'
    actions: [{type: webhook, url: "%s/off"}]
`, col.srv.URL, col.srv.URL)
	defs, err := ParseFile([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Apply(ctx, defs)
	if err != nil || len(res.Created) != 2 {
		t.Fatalf("first apply %+v %v", res, err)
	}
	if r, _ := m.Get(ctx, "hot"); r.Actions[0].Timeout != action.Duration(2*time.Second) || !r.Enabled {
		t.Fatalf("hot = %+v", r)
	}
	if r, _ := m.Get(ctx, "off"); r.Enabled {
		t.Fatal("off is enabled")
	}
	res, err = m.Apply(ctx, defs)
	if err != nil || len(res.Unchanged) != 2 || len(res.Created)+len(res.Updated) != 0 {
		t.Fatalf("second apply %+v %v", res, err)
	}
	defs[0].SQL += " AND data.temp < 1000"
	if res, err = m.Apply(ctx, defs); err != nil || len(res.Updated) != 1 || res.Updated[0] != "hot" {
		t.Fatalf("third apply %+v %v", res, err)
	}
	for _, bad := range []string{"rules: [{sql: x}]", "rules: [{name: a, bogus: 1}]", "rules: [{name: a}, {name: a}]"} {
		if _, err := ParseFile([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	defs = append(defs, Definition{Name: "broken", SQL: "SELECT", Actions: defs[0].Actions})
	if _, err := m.Apply(ctx, defs); !errors.Is(err, ErrInvalid) || len(m.List(ctx)) != 2 {
		t.Fatalf("apply with a broken rule: %v (%d rules)", err, len(m.List(ctx)))
	}
}

// TestActionFailureReachesErrorAction: a webhook that never recovers is
// retried, then every row goes to the error action with its failures; a
// webhook that recovers loses nothing.
func TestActionFailureReachesErrorAction(t *testing.T) {
	col := newCollector(t)
	var calls, okCalls atomic.Int64
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" || calls.Add(1) <= 4 {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		okCalls.Add(1)
	}))
	defer flaky.Close()
	m := newManager(t, openDB(t, t.TempDir()), Options{})
	ctx := context.Background()
	fast := action.Duration(time.Millisecond)
	if _, err := m.Create(ctx, Rule{Name: "w", SQL: "SELECT v FROM 'x/#'", Enabled: true,
		Actions: []action.Spec{
			{Type: "webhook", URL: flaky.URL + "/down", MaxRetries: 2, RetryBackoff: fast},
			{Type: "webhook", URL: flaky.URL + "/flaky", MaxRetries: 10, RetryBackoff: fast},
		},
		ErrorAction: &action.Spec{Type: "webhook", URL: col.srv.URL}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m.OnPublish(ctx, []*broker.Message{msg("x/1", fmt.Sprintf(`{"v":%d}`, i))})
	}
	eventually(t, func() bool { return len(col.got()) == 3 && okCalls.Load() == 3 }, "3 error reports and 3 recovered deliveries")
	for _, b := range col.got() {
		fs, _ := b["failures"].([]any)
		if len(fs) != 1 {
			t.Fatalf("error report %v", b)
		}
		f := fs[0].(map[string]any)
		if f["action"] != "webhook#0" || f["attempts"] != 3.0 || !strings.Contains(f["error"].(string), "503") || b["payload"] == "" {
			t.Fatalf("failure %v", b)
		}
	}
	st, _ := m.Stats(ctx, "w")
	if st.Actions[0].Failed != 3 || st.Actions[1].Delivered != 3 || st.Actions[1].Failed != 0 || st.Actions[1].Retried == 0 {
		t.Fatalf("action stats %+v", st.Actions)
	}
}

// TestIdleWindowClosesOnTick: a device that goes quiet still gets its last
// window, closed by the manager's tick on processing time.
func TestIdleWindowClosesOnTick(t *testing.T) {
	col := newCollector(t)
	m := newManager(t, openDB(t, t.TempDir()), Options{IdleTimeout: 50 * time.Millisecond, TickInterval: 10 * time.Millisecond})
	ctx := context.Background()
	if _, err := m.Create(ctx, Rule{Name: "idle", SQL: windowSQL, Enabled: true, Actions: []action.Spec{{Type: "webhook", URL: col.srv.URL}}}); err != nil {
		t.Fatal(err)
	}
	m.OnPublish(ctx, []*broker.Message{msg("devices/d9/telemetry", fmt.Sprintf(`{"t": 5, "timestamp": %q}`, at(1)))})
	eventually(t, func() bool { return len(col.got()) == 1 }, "window closed by idle tick")
	if b := col.got()[0]; b["device"] != "d9" || b["n"] != 1.0 || b["avg_t"] != 5.0 {
		t.Fatalf("window %v", b)
	}
	st, _ := m.Stats(ctx, "idle")
	if st.Passed != 1 || st.LatencyP50 <= 0 || st.LatencyP99 < st.LatencyP50 {
		t.Fatalf("stats %+v", st)
	}
	eventually(t, func() bool {
		st, _ := m.Stats(ctx, "idle")
		return st.Engine != nil && st.Engine.Matched == 1
	}, "engine counters published by the rule's goroutine")
}
