package stream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The script tests in ../testdata/*.test drive rules with messages and
// check every output. A file holds cases; each starts with "sql:" (or is a
// one-line eval/compile-error check). Directives:
//
//	sql: SELECT ...            start a case; indented lines continue the SQL
//	options: lateness=2s idle=30s timestamp=ts processing-time=true
//	send [at=RFC3339] [client=C] [principal=P] TOPIC PAYLOAD
//	error SUBSTRING            the previous send failed with this error
//	out [start=T] [end=T] [topic=X] {JSON row, in column order}
//	tick RFC3339               close idle windows at this processing time
//	stats key=value ...        compare counters (matched passed outputs errors late windows_open groups)
//	restore                    carry the rule's state over to a freshly compiled rule
//	compile-error SQL => MESSAGE
//	sql-error: MESSAGE         the case's SQL fails to compile with MESSAGE
//	payload {JSON}             the payload of eval lines
//	eval EXPR => JSON | undefined
//
// Every output must be consumed by an out line before the next send,
// tick, stats or case. Times in at=, start=, end= and tick are RFC 3339;
// messages are received at 2024-01-01T00:00:00Z unless at= says otherwise.

var scriptBase = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type testLookup struct{}

func (testLookup) ThingAttribute(_ context.Context, thing, attr string) (string, bool) {
	m := map[string]map[string]string{"d1": {"location": "lab", "floor": "3"}, "d2": {"location": "roof"}}
	v, ok := m[thing][attr]
	return v, ok
}

func (testLookup) ThingType(_ context.Context, thing string) (string, bool) {
	v, ok := map[string]string{"d1": "sensor", "d2": "gateway"}[thing]
	return v, ok
}

type script struct {
	t       *testing.T
	file    string
	line    int
	rule    *Rule
	sqlText string
	opts    Options
	pending []Output
	lastErr error
	sent    bool
	payload string
}

func (s *script) fail(format string, args ...any) {
	s.t.Helper()
	s.t.Errorf("%s:%d: %s", s.file, s.line, fmt.Sprintf(format, args...))
}

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("../testdata/*.test")
	if err != nil || len(files) == 0 {
		t.Fatalf("no script files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScript(t, f) })
	}
}

func runScript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := &script{t: t, file: filepath.Base(file), payload: "{}"}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	for i := 0; i < len(lines); i++ {
		s.line = i + 1
		l := lines[i]
		trim := strings.TrimSpace(l)
		if trim == "" || strings.HasPrefix(trim, "#") {
			continue
		}
		cmd, rest, _ := strings.Cut(trim, " ")
		rest = strings.TrimSpace(rest)
		switch cmd {
		case "sql:":
			s.flush()
			src := rest
			for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
				i++
				src += "\n" + lines[i]
			}
			s.sqlText, s.opts, s.rule = src, Options{Lookup: testLookup{}, Now: func() time.Time { return scriptBase }}, nil
		case "options:":
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "lateness":
					s.opts.AllowedLateness = mustDur(s, v)
				case "idle":
					s.opts.IdleTimeout = mustDur(s, v)
				case "timestamp":
					s.opts.TimestampField = v
				case "processing-time":
					s.opts.ProcessingTime = v == "true"
				default:
					s.fail("unknown option %s", k)
				}
			}
		case "send":
			s.flush()
			if !s.compile() {
				continue
			}
			m := &Message{Received: scriptBase, ClientID: "c1", Principal: "d1"}
			for {
				tok, r, _ := strings.Cut(rest, " ")
				k, v, ok := strings.Cut(tok, "=")
				if !ok || strings.ContainsAny(k, "/{") {
					break
				}
				switch k {
				case "at":
					m.Received = mustTime(s, v)
				case "client":
					m.ClientID = v
				case "principal":
					m.Principal = v
				}
				rest = strings.TrimSpace(r)
			}
			topic, payload, _ := strings.Cut(rest, " ")
			m.Topic, m.Payload = topic, []byte(strings.TrimSpace(payload))
			s.pending, s.lastErr = s.rule.Process(context.Background(), m)
			s.sent = true
		case "error":
			if !s.sent {
				s.fail("error without a send")
			} else if s.lastErr == nil || !strings.Contains(s.lastErr.Error(), rest) {
				s.fail("want error containing %q, got %v", rest, s.lastErr)
			}
			s.lastErr = nil
		case "out":
			s.out(rest)
		case "tick":
			s.flush()
			if s.compile() {
				s.pending = s.rule.Tick(mustTime(s, rest))
			}
		case "stats":
			s.flush()
			if !s.compile() {
				continue
			}
			st := s.rule.Stats()
			got := map[string]string{
				"matched": fmt.Sprint(st.Matched), "passed": fmt.Sprint(st.Passed), "outputs": fmt.Sprint(st.Outputs),
				"errors": fmt.Sprint(st.Errors), "late": fmt.Sprint(st.Late), "windows_open": fmt.Sprint(st.WindowsOpen),
				"groups": fmt.Sprint(st.Groups),
			}
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				if got[k] != v {
					s.fail("stats %s = %s, want %s", k, got[k], v)
				}
			}
		case "compile-error":
			s.flush()
			src, want, _ := strings.Cut(rest, " => ")
			_, err := Compile("t", src, Options{})
			if err == nil || err.Error() != want {
				s.fail("compile %q: want error %q, got %v", src, want, err)
			}
			s.rule = nil
		case "sql-error:":
			s.flush()
			_, err := Compile("t", s.sqlText, Options{})
			if err == nil || err.Error() != rest {
				s.fail("compile: want error %q, got %v", rest, err)
			}
			s.rule = nil
		case "payload":
			s.flush()
			s.payload = rest
		case "eval":
			s.flush()
			s.eval(rest)
		case "restore":
			s.flush()
			if !s.compile() {
				continue
			}
			b, err := s.rule.State()
			if err != nil {
				s.fail("state: %v", err)
				continue
			}
			r2, _ := Compile("t", s.sqlText, s.opts)
			if err := r2.Restore(b); err != nil {
				s.fail("restore: %v", err)
				continue
			}
			s.rule = r2
		default:
			s.fail("unknown directive %q", cmd)
		}
	}
	s.flush()
}

func (s *script) compile() bool {
	if s.rule != nil {
		return true
	}
	r, err := Compile("t", s.sqlText, s.opts)
	if err != nil {
		s.fail("compile: %v", err)
		return false
	}
	s.rule = r
	return true
}

// flush fails on outputs and errors nobody checked.
func (s *script) flush() {
	s.t.Helper()
	for _, o := range s.pending {
		b, _ := json.Marshal(o.Row)
		s.fail("unexpected output %s (window %s..%s)", b, o.WindowStart.Format(time.RFC3339Nano), o.WindowEnd.Format(time.RFC3339Nano))
	}
	if s.lastErr != nil {
		s.fail("unexpected error: %v", s.lastErr)
	}
	s.pending, s.lastErr, s.sent = nil, nil, false
}

func (s *script) out(rest string) {
	if len(s.pending) == 0 {
		s.fail("want output %s, got none (error: %v)", rest, s.lastErr)
		return
	}
	o := s.pending[0]
	s.pending = s.pending[1:]
	for strings.HasPrefix(rest, "start=") || strings.HasPrefix(rest, "end=") || strings.HasPrefix(rest, "topic=") {
		tok, r, _ := strings.Cut(rest, " ")
		k, v, _ := strings.Cut(tok, "=")
		switch k {
		case "start":
			if w := mustTime(s, v); !o.WindowStart.Equal(w) {
				s.fail("window start %s, want %s", o.WindowStart.Format(time.RFC3339Nano), v)
			}
		case "end":
			if w := mustTime(s, v); !o.WindowEnd.Equal(w) {
				s.fail("window end %s, want %s", o.WindowEnd.Format(time.RFC3339Nano), v)
			}
		case "topic":
			if o.Topic != v {
				s.fail("topic %s, want %s", o.Topic, v)
			}
		}
		rest = strings.TrimSpace(r)
	}
	got, _ := json.Marshal(o.Row)
	var want bytes.Buffer
	if err := json.Compact(&want, []byte(rest)); err != nil {
		s.fail("bad expected JSON %s: %v", rest, err)
		return
	}
	if string(got) != want.String() {
		s.fail("output\n  got  %s\n  want %s", got, want.String())
	}
}

func (s *script) eval(rest string) {
	expr, want, ok := strings.Cut(rest, " => ")
	if !ok {
		s.fail("eval needs EXPR => VALUE")
		return
	}
	r, err := Compile("eval", "SELECT "+expr+" AS v FROM 'devices/+/telemetry'", Options{Lookup: testLookup{}})
	if err != nil {
		s.fail("eval %s: %v", expr, err)
		return
	}
	outs, err := r.Process(context.Background(), &Message{Topic: "devices/d1/telemetry", Payload: []byte(s.payload), ClientID: "c1", Principal: "d1", Received: scriptBase})
	if err != nil || len(outs) != 1 {
		s.fail("eval %s: %v", expr, err)
		return
	}
	v, defined := outs[0].Row.Get("v")
	want = strings.TrimSpace(want)
	if want == "undefined" {
		if defined {
			s.fail("eval %s = %s, want undefined", expr, toJSON(v))
		}
		return
	}
	var wb bytes.Buffer
	if err := json.Compact(&wb, []byte(want)); err != nil {
		s.fail("bad expected JSON %s: %v", want, err)
		return
	}
	if !defined {
		s.fail("eval %s is undefined, want %s", expr, want)
	} else if got := toJSON(v); got != wb.String() {
		s.fail("eval %s = %s (%T), want %s", expr, got, v, want)
	}
}

// toJSON renders a value for comparisons; a whole Decimal keeps a ".0"
// suffix so that Int and Decimal results are told apart.
func toJSON(v any) string {
	if f, ok := v.(float64); ok && f == float64(int64(f)) && f < 1e15 && f > -1e15 {
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func mustDur(s *script, v string) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil {
		s.fail("bad duration %s", v)
	}
	return d
}

func mustTime(s *script, v string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		s.fail("bad time %s", v)
	}
	return t
}
