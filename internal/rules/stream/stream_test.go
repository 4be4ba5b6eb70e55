package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules/sql"
)

func TestCompileErrorsArePositioned(t *testing.T) {
	_, err := Compile("r", "SELECT a\nFROM 'x' WHERE avg(a) > 1", Options{})
	var e *sql.Error
	if !errors.As(err, &e) || e.Line != 2 || e.Column != 16 {
		t.Fatalf("got %v", err)
	}
	if _, err := Compile("r", "SELECT a FROM 'x'", Options{TimestampField: "a +"}); err == nil {
		t.Fatal("bad timestamp field accepted")
	}
	if _, err := Compile("r", "SELECT a FROM 'x'", Options{TimestampField: "upper(a)"}); err == nil {
		t.Fatal("timestamp field that is not a path accepted")
	}
}

func TestRowJSONKeepsOrder(t *testing.T) {
	r := Row{Columns: []string{"z", "a", "m"}, Values: []any{int64(1), map[string]any{"y": 1, "b": sql.Undefined{}}, []any{2.5}}}
	b, err := json.Marshal(r)
	if err != nil || string(b) != `{"z":1,"a":{"y":1},"m":[2.5]}` {
		t.Fatalf("%s %v", b, err)
	}
	if v, ok := r.Get("m"); !ok || v.([]any)[0] != 2.5 {
		t.Fatal("Get")
	}
	if _, ok := r.Get("nope"); ok {
		t.Fatal("Get of a missing column")
	}
}

func TestTemplateRender(t *testing.T) {
	r, err := Compile("hot", "SELECT topic(2) AS device, data.t AS t FROM 'devices/+/telemetry'", Options{})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := r.Process(context.Background(), &Message{Topic: "devices/d9/telemetry", Payload: []byte(`{"data":{"t":40}}`), ClientID: "c"})
	if err != nil || len(outs) != 1 {
		t.Fatal(outs, err)
	}
	tp, err := ParseTemplate("devices/${device}/alerts?t=${t * 2}&c=${clientid()}&u=${length(newuuid())}")
	if err != nil {
		t.Fatal(err)
	}
	// Templates are shared by action workers.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				got, err := tp.Render(&outs[0])
				if err != nil || got != "devices/d9/alerts?t=80&c=c&u=36" {
					t.Errorf("%q %v", got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := ParseTemplate("a/${b"); err == nil {
		t.Fatal("unterminated template accepted")
	}
	bad, _ := ParseTemplate("a/${nope}")
	if _, err := bad.Render(&outs[0]); err == nil {
		t.Fatal("undefined substitution rendered")
	}
}

func TestRestoreChecks(t *testing.T) {
	a, _ := Compile("a", "SELECT count(*) AS n FROM 'x' GROUP BY TUMBLINGWINDOW(ss, 10)", Options{})
	b, _ := Compile("b", "SELECT count(*) AS n FROM 'x' GROUP BY TUMBLINGWINDOW(ss, 20)", Options{})
	if _, err := a.Process(context.Background(), &Message{Topic: "x", Payload: []byte(`{}`), Received: time.Unix(100, 0)}); err != nil {
		t.Fatal(err)
	}
	st, err := a.State()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Restore(st); err == nil || !strings.Contains(err.Error(), "different SQL") {
		t.Fatalf("restore into another SQL: %v", err)
	}
	if err := a.Restore([]byte(`{"version":99}`)); err == nil {
		t.Fatal("restore of another version accepted")
	}
	if err := a.Restore([]byte(`nope`)); err == nil {
		t.Fatal("restore of garbage accepted")
	}
	if err := a.Restore(st); err != nil {
		t.Fatal(err)
	}
	outs := a.Tick(time.Unix(200, 0))
	if len(outs) != 1 || outs[0].Row.Values[0] != int64(1) {
		t.Fatalf("%+v", outs)
	}
}

// TestManyGroupsIdle closes thousands of quiet devices' windows in one
// Tick, in a deterministic order, and forgets the groups later.
func TestManyGroupsIdle(t *testing.T) {
	r, _ := Compile("w", "SELECT device_id, count(*) AS n FROM 'd/+' GROUP BY device_id, TUMBLINGWINDOW(ss, 10)", Options{})
	recv := time.Unix(1000, 0)
	for i := range 3000 {
		p := fmt.Appendf(nil, `{"device_id":"d%04d","timestamp":%d}`, i, 1000+i%10)
		if _, err := r.Process(context.Background(), &Message{Topic: "d/x", Payload: p, Received: recv}); err != nil {
			t.Fatal(err)
		}
	}
	outs := r.Tick(recv.Add(10 * time.Second))
	if len(outs) != 3000 {
		t.Fatalf("%d outputs", len(outs))
	}
	for i, o := range outs {
		if v, _ := o.Row.Get("device_id"); v != fmt.Sprintf("d%04d", i) {
			t.Fatalf("output %d is %v", i, v)
		}
	}
	if s := r.Stats(); s.WindowsOpen != 0 || s.Groups != 3000 {
		t.Fatalf("%+v", s)
	}
	r.Tick(recv.Add(time.Hour))
	if s := r.Stats(); s.Groups != 0 {
		t.Fatalf("groups not forgotten: %+v", s)
	}
}

func FuzzWindows(f *testing.F) {
	f.Add(uint8(0), []byte(`{"g":"a","t":1,"v":1}`), int64(5), int64(-3))
	f.Fuzz(func(t *testing.T, kind uint8, payload []byte, dt1, dt2 int64) {
		sqls := []string{
			"SELECT g, sum(v) AS s, collect(v) AS c FROM 'x' GROUP BY g, TUMBLINGWINDOW(ss, 2)",
			"SELECT g, avg(v) AS s FROM 'x' GROUP BY g, HOPPINGWINDOW(ss, 3, 1)",
			"SELECT g, max(v) AS s FROM 'x' GROUP BY g, SLIDINGWINDOW(ss, 2)",
			"SELECT g, first(v) AS s FROM 'x' GROUP BY g, SESSIONWINDOW(ss, 5, 1)",
			"SELECT g, percentile(v, 0.5) AS s FROM 'x' GROUP BY g, COUNTWINDOW(2, 1)",
		}
		r, err := Compile("f", sqls[int(kind)%len(sqls)], Options{AllowedLateness: time.Second, TimestampField: "t"})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		base := int64(1_700_000_000)
		for i, dt := range []int64{0, dt1 % 100, dt2 % 100, 7} {
			p := payload
			if i > 0 {
				p = fmt.Appendf(nil, `{"g":"a","t":%d,"v":%d}`, base+dt, i)
			}
			_, _ = r.Process(ctx, &Message{Topic: "x", Payload: p, Received: time.Unix(base, 0)})
		}
		checkBuffered(t, r)
		r.Tick(time.Unix(base+int64(dt1%7), 0))
		checkBuffered(t, r)
		st, err := r.State()
		if err != nil {
			t.Fatal(err)
		}
		r2, _ := Compile("f", r.SQL(), Options{TimestampField: "t"})
		if err := r2.Restore(st); err != nil {
			t.Fatal(err)
		}
		r2.Tick(time.Unix(base+3600, 0))
		checkBuffered(t, r2)
	})
}

func checkBuffered(t *testing.T, r *Rule) {
	t.Helper()
	n := 0
	for _, g := range r.groups {
		n += len(g.entries)
	}
	if n != r.buffered {
		t.Fatalf("buffered count %d, entries %d", r.buffered, n)
	}
}

// TestPreparedMessageSharedByRules: one prepared message processed by many
// rules at once, with the same results as unprepared messages.
func TestPreparedMessageSharedByRules(t *testing.T) {
	srcs := []string{
		"SELECT data.t AS t, device_id FROM 'x' WHERE data.t > 1",
		"SELECT * FROM 'x'",
		"SELECT device_id, sum(data.t) AS s FROM 'x' GROUP BY device_id, COUNTWINDOW(1)",
	}
	payload := []byte(`{"device_id":"d1","timestamp":"2024-01-01T00:00:00","data":{"t":2}}`)
	want := make([]string, len(srcs))
	for i, src := range srcs {
		r, _ := Compile("r", src, Options{})
		outs, err := r.Process(context.Background(), &Message{Topic: "x", Payload: payload})
		if err != nil || len(outs) != 1 {
			t.Fatal(outs, err)
		}
		b, _ := json.Marshal(outs[0].Row)
		want[i] = string(b)
	}
	m := &Message{Topic: "x", Payload: payload}
	m.Prepare()
	bad := &Message{Topic: "x", Payload: []byte("{oops")}
	bad.Prepare()
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, _ := Compile("r", src, Options{})
			for range 200 {
				outs, err := r.Process(context.Background(), m)
				if err != nil || len(outs) != 1 {
					t.Error(outs, err)
					return
				}
				if b, _ := json.Marshal(outs[0].Row); string(b) != want[i] {
					t.Errorf("%s: %s, want %s", src, b, want[i])
					return
				}
				if _, err := r.Process(context.Background(), bad); !errors.Is(err, sql.ErrBadJSON) {
					t.Errorf("bad payload: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	r, _ := Compile("g", "SELECT d, count(*) AS n FROM 'x' GROUP BY d, TUMBLINGWINDOW(ss, 10)", Options{MaxGroups: 2})
	for i, d := range []string{"a", "b", "a", "c"} {
		_, err := r.Process(ctx, &Message{Topic: "x", Payload: fmt.Appendf(nil, `{"d":%q}`, d)})
		if (i == 3) != errors.Is(err, ErrLimit) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for _, src := range []string{
		"SELECT count(*) AS n FROM 'x' GROUP BY SLIDINGWINDOW(hh, 1)",
		"SELECT count(*) AS n FROM 'x' GROUP BY SESSIONWINDOW(hh, 10, 1)",
		"SELECT count(*) AS n FROM 'x' GROUP BY d, COUNTWINDOW(100)",
	} {
		r, _ := Compile("b", src, Options{MaxBuffered: 5})
		var errs int
		for i := range 8 {
			p := fmt.Appendf(nil, `{"d":"%d","timestamp":%d}`, i%2, 1704067200+i)
			if _, err := r.Process(ctx, &Message{Topic: "x", Payload: p}); errors.Is(err, ErrLimit) {
				errs++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if errs != 3 {
			t.Errorf("%s: %d limit errors, want 3", src, errs)
		}
		st, _ := r.State()
		r2, _ := Compile("b", src, Options{MaxBuffered: 5})
		if err := r2.Restore(st); err != nil || r2.buffered != 5 {
			t.Errorf("%s: restored %d buffered, %v", src, r2.buffered, err)
		}
	}
	// A full count window keeps accepting: the oldest message leaves.
	r, _ = Compile("c", "SELECT count(*) AS n FROM 'x' GROUP BY COUNTWINDOW(3, 1)", Options{MaxBuffered: 3})
	for i := range 10 {
		if _, err := r.Process(ctx, &Message{Topic: "x", Payload: []byte(`{}`)}); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}
