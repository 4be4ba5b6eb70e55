package action

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/edgewise-iot/edgewise/internal/rules/stream"
	"github.com/edgewise-iot/edgewise/internal/testenv"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

const waitFor = 20 * time.Second

func eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met: "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// unique returns a name no other test run uses.
func unique(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano())
}

func output(device string, temp float64, at time.Time) *stream.Output {
	return &stream.Output{
		Rule: "r", Topic: "devices/" + device + "/telemetry", ClientID: device, EventTime: at,
		Row: stream.Row{Columns: []string{"device", "temp", "ts"}, Values: []any{device, temp, at.UTC().Format(time.RFC3339Nano)}},
	}
}

type failures struct {
	mu sync.Mutex
	fs []Failure
}

func (f *failures) add(_ *Item, x Failure) { f.mu.Lock(); f.fs = append(f.fs, x); f.mu.Unlock() }
func (f *failures) get() []Failure {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Failure(nil), f.fs...)
}

func start(t *testing.T, spec Spec, opts Options) (*Action, *failures) {
	t.Helper()
	f := &failures{}
	a, err := New(spec.Type+"#0", "r", spec, opts, f.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return a, f
}

func do(t *testing.T, a *Action, outs ...*stream.Output) {
	t.Helper()
	for _, o := range outs {
		if err := a.Do(o, &Origin{Rule: "r", Topic: o.Topic}); err != nil {
			t.Fatal(err)
		}
	}
}

// flaky is a webhook endpoint that fails the first n requests with code.
type flaky struct {
	n, code int
	calls   atomic.Int64
	mu      sync.Mutex
	ok      []string
	headers []http.Header
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.calls.Add(1) <= int64(f.n) {
		http.Error(w, "try later", f.code)
		return
	}
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.ok = append(f.ok, r.Method+" "+r.URL.Path+" "+string(b))
	f.headers = append(f.headers, r.Header.Clone())
	f.mu.Unlock()
}

func (f *flaky) delivered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ok...)
}

func TestWebhookRetriesThenRecovers(t *testing.T) {
	h := &flaky{n: 3, code: http.StatusServiceUnavailable}
	srv := httptest.NewServer(h)
	defer srv.Close()
	a, f := start(t, Spec{Type: "webhook", URL: srv.URL + "/hook/${device}", Method: "put", BearerToken: "s3cret",
		Headers: map[string]string{"X-Device": "${device}"}, RetryBackoff: Duration(time.Millisecond)}, Options{})
	do(t, a, output("d1", 21.5, time.Unix(1, 0)))
	eventually(t, func() bool { return len(h.delivered()) == 1 }, "delivery after 3 failures")
	if got := h.delivered()[0]; got != `PUT /hook/d1 {"device":"d1","temp":21.5,"ts":"1970-01-01T00:00:01Z"}` {
		t.Fatalf("delivered %q", got)
	}
	if hd := h.headers[0]; hd.Get("Authorization") != "Bearer s3cret" || hd.Get("X-Device") != "d1" {
		t.Fatalf("headers %v", hd)
	}
	st := a.Stats()
	if st.Delivered != 1 || st.Retried != 3 || st.Failed != 0 || len(f.get()) != 0 || !strings.Contains(st.LastError, "503") {
		t.Fatalf("stats %+v failures %v", st, f.get())
	}
}

func TestWebhookGivesUp(t *testing.T) {
	for _, tc := range []struct {
		code     int
		attempts int
	}{
		{http.StatusBadGateway, 3}, // retried: 1 + MaxRetries attempts
		{http.StatusTooManyRequests, 3},
		{http.StatusNotFound, 1},     // permanent
		{http.StatusUnauthorized, 1}, // permanent
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			h := &flaky{n: 1 << 30, code: tc.code}
			srv := httptest.NewServer(h)
			defer srv.Close()
			a, f := start(t, Spec{Type: "webhook", URL: srv.URL, Username: "u", Password: "p", MaxRetries: 2, RetryBackoff: Duration(time.Millisecond)}, Options{})
			do(t, a, output("d1", 1, time.Unix(1, 0)))
			eventually(t, func() bool { return len(f.get()) == 1 }, "failure reported")
			fl := f.get()[0]
			if fl.Attempts != tc.attempts || fl.Action != "webhook#0" || !strings.Contains(fl.Error, fmt.Sprint(tc.code)) {
				t.Fatalf("failure %+v, want %d attempts", fl, tc.attempts)
			}
			if n := h.calls.Load(); n != int64(tc.attempts) {
				t.Fatalf("server saw %d requests, want %d", n, tc.attempts)
			}
		})
	}
}

func TestQueueFullNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	a, f := start(t, Spec{Type: "webhook", URL: srv.URL, QueueSize: 2}, Options{})
	var full int
	for i := range 10 {
		if err := a.Do(output("d", float64(i), time.Unix(1, 0)), &Origin{Rule: "r"}); errors.Is(err, ErrQueueFull) {
			full++
		}
	}
	// At most one item is in flight and two are queued.
	if full < 7 || a.Stats().Dropped != uint64(full) || len(f.get()) != full {
		t.Fatalf("full=%d stats=%+v failures=%d", full, a.Stats(), len(f.get()))
	}
}

func TestValidate(t *testing.T) {
	for _, s := range []Spec{
		{},
		{Type: "smtp"},
		{Type: "webhook"},
		{Type: "webhook", URL: "ftp://x"},
		{Type: "webhook", URL: "http://x", Method: "TRACE"},
		{Type: "amqp", URL: "http://x", Exchange: "e"},
		{Type: "amqp", URL: "amqp://x"},
		{Type: "nats", URL: "nats://x"},
		{Type: "postgres", URL: "postgres://x", Table: "t"},
		{Type: "archive", URL: "/srv/archive"},
		{Type: "tsdb"},                  // no PointWriter
		{Type: "republish", Topic: "a"}, // no Republisher
		{Type: "webhook", URL: "http://x", Body: "${unclosed"},
		{Type: "webhook", URL: "http://x", QueueSize: -1},
	} {
		if err := Validate(s, Options{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: err = %v, want ErrInvalid", s, err)
		}
	}
}

func TestArchiveToFiles(t *testing.T) {
	dir := t.TempDir()
	a, _ := start(t, Spec{Type: "archive", URL: "file://" + dir, Prefix: "telemetry", MaxBytes: 200}, Options{})
	const n = 25
	for i := range n {
		do(t, a, output(fmt.Sprintf("d%d", i), float64(i), time.Unix(int64(i), 0)))
	}
	if err := a.Close(context.Background()); err != nil { // flushes the open object
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".ndjson.gz") {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 2 {
		t.Fatalf("%d objects, want rotation by size into several", len(files))
	}
	seen := map[string]bool{}
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 6 || parts[0] != "telemetry" || !strings.HasPrefix(parts[5], "r-") {
			t.Fatalf("key %s, want telemetry/YYYY/MM/DD/HH/r-<ts>-<seq>.ndjson.gz", rel)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(zr)
		for sc.Scan() {
			var row map[string]any
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("%s: %q: %v", rel, sc.Text(), err)
			}
			seen[row["device"].(string)] = true
		}
		f.Close()
	}
	if len(seen) != n {
		t.Fatalf("read back %d distinct rows, want %d", len(seen), n)
	}
}

func TestArchiveRotatesByAge(t *testing.T) {
	dir := t.TempDir()
	a, _ := start(t, Spec{Type: "archive", URL: "file://" + dir, MaxAge: Duration(50 * time.Millisecond)}, Options{})
	do(t, a, output("d1", 1, time.Unix(1, 0)))
	eventually(t, func() bool {
		n := 0
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".ndjson.gz") {
				n++
			}
			return nil
		})
		return n == 1
	}, "object written after max_age without Close")
}

func TestTSDBThroughRealStore(t *testing.T) {
	db, err := tsdb.Open(context.Background(), tsdb.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, _ := start(t, Spec{Type: "tsdb", Measurement: "alerts", Tags: map[string]string{"device": "${device}"},
		Fields: map[string]string{"temp": "${temp}", "label": "hot-${device}", "n": "42"}}, Options{Points: db})
	at := time.Unix(1_700_000_000, 0)
	do(t, a, output("d7", 88.5, at))
	var series []tsdb.Series
	eventually(t, func() bool {
		series, err = db.Query(context.Background(), tsdb.Query{Measurement: "alerts", Start: at.Add(-time.Hour).UnixNano(), End: at.Add(time.Hour).UnixNano()})
		return err == nil && len(series) > 0
	}, "points stored")
	js, _ := json.Marshal(series)
	for _, want := range []string{`"d7"`, `88.5`, `hot-d7`, `42`} {
		if !strings.Contains(string(js), want) {
			t.Fatalf("stored %s lacks %s", js, want)
		}
	}
}

func TestAMQPPublish(t *testing.T) {
	url := testenv.Service(t, testenv.AMQP)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ex, q := unique("ew_ex"), unique("ew_q")
	if err := ch.ExchangeDeclare(ex, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.ExchangeDelete(ex, false, false)
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(q, false, false, false)
	if err := ch.QueueBind(q, "telemetry.#", ex, false, nil); err != nil {
		t.Fatal(err)
	}
	a, f := start(t, Spec{Type: "amqp", URL: url, Exchange: ex, RoutingKey: "telemetry.${device}"}, Options{})
	for i := range 20 {
		do(t, a, output(fmt.Sprintf("d%d", i), float64(i), time.Unix(1, 0)))
	}
	deliveries, err := ch.Consume(q, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		select {
		case d := <-deliveries:
			if d.RoutingKey != fmt.Sprintf("telemetry.d%d", i) || d.DeliveryMode != amqp.Persistent || !strings.Contains(string(d.Body), `"temp"`) {
				t.Fatalf("delivery %d: key %s mode %d body %s", i, d.RoutingKey, d.DeliveryMode, d.Body)
			}
		case <-time.After(waitFor):
			t.Fatalf("only %d of 20 messages arrived; failures %v", i, f.get())
		}
	}
	eventually(t, func() bool { return a.Stats().Delivered == 20 }, "confirms counted")
}

func TestAMQPUnknownExchangeRetriesThenFails(t *testing.T) {
	url := testenv.Service(t, testenv.AMQP)
	a, f := start(t, Spec{Type: "amqp", URL: url, Exchange: unique("missing"), RoutingKey: "k", MaxRetries: 1, RetryBackoff: Duration(time.Millisecond)}, Options{})
	do(t, a, output("d", 1, time.Unix(1, 0)))
	eventually(t, func() bool { return len(f.get()) == 1 }, "failure")
	if fl := f.get()[0]; fl.Attempts != 2 || !strings.Contains(fl.Error, "amqp") {
		t.Fatalf("failure %+v", fl)
	}
}

func TestNATSCoreAndJetStream(t *testing.T) {
	url := testenv.Service(t, testenv.NATS)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subj := unique("ew")
	sub, err := nc.SubscribeSync(subj + ".>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	a, _ := start(t, Spec{Type: "nats", URL: url, Subject: subj + ".${device}"}, Options{})
	do(t, a, output("d1", 1, time.Unix(1, 0)))
	m, err := sub.NextMsg(waitFor)
	if err != nil || m.Subject != subj+".d1" || !strings.Contains(string(m.Data), `"d1"`) {
		t.Fatalf("core: %v %v", m, err)
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := unique("EW")
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(ctx, name)
	ja, jf := start(t, Spec{Type: "nats", URL: url, Subject: name + ".${device}", JetStream: true}, Options{})
	for i := range 50 {
		do(t, ja, output(fmt.Sprintf("d%d", i), float64(i), time.Unix(1, 0)))
	}
	eventually(t, func() bool { return ja.Stats().Delivered == 50 }, "50 acks (failures %v)", jf.get())
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 50 {
		t.Fatalf("stream holds %v messages (%v), want 50", info.State.Msgs, err)
	}

	// No stream for the subject: JetStream does not ack, so it fails.
	na, nf := start(t, Spec{Type: "nats", URL: url, Subject: unique("nostream"), JetStream: true, MaxRetries: 1, RetryBackoff: Duration(time.Millisecond)}, Options{})
	do(t, na, output("d", 1, time.Unix(1, 0)))
	eventually(t, func() bool { return len(nf.get()) == 1 }, "jetstream failure reported")
}

func TestPostgresBatchedInsert(t *testing.T) {
	url := testenv.Service(t, testenv.Postgres)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	table := unique("ew_rules")
	if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (device text NOT NULL, temp double precision, at timestamptz, note text, n integer)"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "DROP TABLE "+table)
	a, f := start(t, Spec{Type: "postgres", URL: url, Table: table, BatchSize: 100, Columns: map[string]string{
		"device": "${device}", "temp": "${temp}", "at": "${ts}", "note": "from ${device}", "n": "7",
	}}, Options{})
	const n = 1000
	for i := range n {
		do(t, a, output(fmt.Sprintf("d%d", i), float64(i)/2, time.Unix(int64(i), 0)))
	}
	eventually(t, func() bool { return a.Stats().Delivered == n || len(f.get()) > 0 }, "rows inserted")
	if fs := f.get(); len(fs) > 0 {
		t.Fatalf("failures: %v", fs[0])
	}
	var count int
	var sum float64
	var note string
	if err := conn.QueryRow(ctx, "SELECT count(*), sum(temp), max(note) FROM "+table+" WHERE n = 7 AND at IS NOT NULL").Scan(&count, &sum, &note); err != nil {
		t.Fatal(err)
	}
	if count != n || sum != float64(n*(n-1))/4 || !strings.HasPrefix(note, "from d") {
		t.Fatalf("count %d sum %v note %q", count, sum, note)
	}

	// A row the table rejects is a permanent failure, reported once.
	b, bf := start(t, Spec{Type: "postgres", URL: url, Table: table, Columns: map[string]string{"device": "${device}", "n": "not a number"}}, Options{})
	do(t, b, output("d", 1, time.Unix(1, 0)))
	eventually(t, func() bool { return len(bf.get()) == 1 }, "permanent failure")
	if fl := bf.get()[0]; fl.Attempts != 1 {
		t.Fatalf("failure %+v, want no retries", fl)
	}
}

// TestPostgresBadRowIsolated: a batch (COPY from 16 rows, INSERT below)
// with a row the table rejects stores every other row and reports only the
// bad one, without retrying.
func TestPostgresBadRowIsolated(t *testing.T) {
	url := testenv.Service(t, testenv.Postgres)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	table := unique("ew_rows")
	if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (device text NOT NULL, temp double precision CHECK (temp < 100))"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "DROP TABLE "+table)
	for _, size := range []int{50, 5} {
		a, f := start(t, Spec{Type: "postgres", URL: url, Table: table, BatchSize: size, RetryBackoff: Duration(time.Hour),
			Columns: map[string]string{"device": "${device}", "temp": "${temp}"}}, Options{})
		if _, err := conn.Exec(ctx, "TRUNCATE "+table); err != nil {
			t.Fatal(err)
		}
		outs := make([]*stream.Output, size)
		for i := range outs {
			temp := float64(i)
			if i == size/2 {
				temp = 500
			}
			outs[i] = output(fmt.Sprintf("d%d", i), temp, time.Unix(int64(i), 0))
		}
		do(t, a, outs...)
		eventually(t, func() bool { st := a.Stats(); return st.Delivered+st.Failed == uint64(size) }, "batch of %d settled: %+v", size, a.Stats())
		if st := a.Stats(); st.Failed != 1 || st.Retried != 0 {
			t.Fatalf("batch of %d: %+v", size, st)
		}
		if fs := f.get(); len(fs) != 1 || !strings.Contains(fs[0].Error, "23514") {
			t.Fatalf("batch of %d: failures %+v", size, fs)
		}
		var count int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&count); err != nil || count != size-1 {
			t.Fatalf("batch of %d: %d rows stored (%v)", size, count, err)
		}
	}
}

// TestAMQPReconnects: when the connection to RabbitMQ breaks, the next
// batch fails, is retried on a new connection and arrives.
func TestAMQPReconnects(t *testing.T) {
	url := testenv.Service(t, testenv.AMQP)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q := unique("ew_reconnect")
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(q, false, false, false)
	a, f := start(t, Spec{Type: "amqp", URL: url, RoutingKey: q, RetryBackoff: Duration(time.Millisecond)}, Options{})
	do(t, a, output("d1", 1, time.Unix(1, 0)))
	eventually(t, func() bool { return a.Stats().Delivered == 1 }, "first delivery")
	s := a.r.sink.(*amqpSink)
	s.mu.Lock()
	s.conn.Close() // the broker connection drops
	s.mu.Unlock()
	do(t, a, output("d2", 2, time.Unix(1, 0)))
	eventually(t, func() bool { return a.Stats().Delivered == 2 }, "delivery after reconnect (failures %v)", f.get())
	eventually(t, func() bool {
		qi, err := ch.QueueDeclarePassive(q, false, true, false, false, nil)
		return err == nil && qi.Messages == 2
	}, "both messages in the queue")
}
