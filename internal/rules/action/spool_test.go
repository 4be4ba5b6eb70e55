package action

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules/stream"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

func TestItemCodecRoundTrip(t *testing.T) {
	it := &Item{
		Origin:  &Origin{Rule: "r", Topic: "devices/a/telemetry", ClientID: "a", Principal: "p", Payload: []byte(`{"x":1}`), Hops: 2},
		Key:     "https://example.com/${x}",
		ID:      newID(),
		Body:    []byte(`{"temp":21.5}`),
		Headers: map[string]string{"X-A": "1", "X-B": ""},
		Values:  []any{nil, true, false, int64(-7), uint64(1 << 63), 2.5, "s", map[string]any{"k": 1.0}},
		Point: &tsdb.Point{Measurement: "m", Tags: []tsdb.Tag{{Key: "device", Value: "a"}}, Fields: []tsdb.Field{
			{Key: "f", Value: tsdb.FloatValue(1.5)}, {Key: "i", Value: tsdb.IntValue(-3)}, {Key: "u", Value: tsdb.UintValue(9)},
			{Key: "b", Value: tsdb.BoolValue(true)}, {Key: "s", Value: tsdb.StringValue("on")},
		}, Time: 1_700_000_000_123_456_789},
		Time: time.Unix(0, 1_700_000_000_123_456_789),
	}
	got, err := decodeItem(encodeItem(nil, it))
	if err != nil {
		t.Fatal(err)
	}
	want := *it
	want.Values = append([]any(nil), it.Values...)
	want.Values[7] = `{"k":1}` // objects come back as JSON text, as postgres gets them
	if !reflect.DeepEqual(got.Values, want.Values) || !reflect.DeepEqual(got.Origin, want.Origin) ||
		!pointEqual(got.Point, want.Point) || !reflect.DeepEqual(got.Headers, want.Headers) ||
		got.Key != want.Key || got.ID != want.ID || string(got.Body) != string(want.Body) || !got.Time.Equal(want.Time) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, &want)
	}
	if _, err := decodeItem(encodeItem(nil, &Item{})); err != nil {
		t.Fatalf("empty item: %v", err)
	}
}

// pointEqual is reflect.DeepEqual for points, comparing field values with
// tsdb.Value.Equal (equal strings need not share memory).
func pointEqual(a, b *tsdb.Point) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Measurement == b.Measurement && a.Time == b.Time && reflect.DeepEqual(a.Tags, b.Tags) &&
		(a.Fields == nil) == (b.Fields == nil) && slices.EqualFunc(a.Fields, b.Fields, func(x, y tsdb.Field) bool {
		return x.Key == y.Key && x.Value.Equal(y.Value)
	})
}

func TestPointEqual(t *testing.T) {
	p := func(s string) *tsdb.Point {
		return &tsdb.Point{Measurement: "m", Tags: []tsdb.Tag{{Key: "k", Value: "v"}}, Time: 1,
			Fields: []tsdb.Field{{Key: "f", Value: tsdb.FloatValue(1)}, {Key: "s", Value: tsdb.StringValue(s)}}}
	}
	if !pointEqual(p(string([]byte("on"))), p(string([]byte("on")))) || !pointEqual(nil, nil) {
		t.Error("equal points differ")
	}
	q := p("on")
	q.Fields[0].Value = tsdb.IntValue(1)
	if pointEqual(p("on"), p("off")) || pointEqual(p("on"), q) || pointEqual(p("on"), nil) {
		t.Error("different points are equal")
	}
}

func FuzzDecodeItem(f *testing.F) {
	f.Add(encodeItem(nil, &Item{Key: "k", Body: []byte("b"), Values: []any{int64(1), "x"}}))
	f.Add(encodeItem(nil, &Item{Origin: &Origin{Rule: "r"}, Point: &tsdb.Point{Measurement: "m", Fields: []tsdb.Field{{Key: "f", Value: tsdb.FloatValue(1)}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := decodeItem(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same way.
		again, err := decodeItem(encodeItem(nil, it))
		if err != nil || again.Key != it.Key || len(again.Values) != len(it.Values) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

// TestArchiveDurableAcksAfterWrite: rows in the open archive object are
// neither counted as delivered nor removed from the spool before the
// object is written.
func TestArchiveDurableAcksAfterWrite(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	spec := Spec{Type: "archive", URL: "file://" + filepath.Join(dir, "bucket"), MaxAge: Duration(time.Hour)}
	if err := os.MkdirAll(filepath.Join(dir, "bucket"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, _ := start(t, spec, Options{SpoolDir: spoolDir})
	const n = 50
	for i := range n {
		do(t, a, output(fmt.Sprintf("d%d", i), float64(i), time.Unix(int64(i), 0)))
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	// Let the runner take every item into the open object.
	time.Sleep(50 * time.Millisecond)
	if st := a.Stats(); !st.Durable || st.Delivered != 0 || st.Queued != n {
		t.Fatalf("before the object is written: %+v", st)
	}
	if err := a.Close(context.Background()); err != nil { // writes the open object
		t.Fatal(err)
	}
	if st := a.Stats(); st.Delivered != n {
		t.Fatalf("after the object was written: %+v", st)
	}
	var objects int
	filepath.WalkDir(filepath.Join(dir, "bucket"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".ndjson.gz") {
			objects++
		}
		return nil
	})
	if objects != 1 {
		t.Fatalf("%d objects", objects)
	}
	// Nothing is replayed: the spool was acknowledged.
	b, _ := start(t, spec, Options{SpoolDir: spoolDir})
	if st := b.Stats(); st.Recovered != 0 || st.Queued != 0 {
		t.Fatalf("reopened: %+v", st)
	}
}

// TestArchiveMemoryCountsAtWrite: without a spool, archive rows also count
// as delivered only once their object is written.
func TestArchiveMemoryCountsAtWrite(t *testing.T) {
	dir := t.TempDir()
	a, _ := start(t, Spec{Type: "archive", URL: "file://" + dir, MaxAge: Duration(time.Hour)}, Options{})
	do(t, a, output("d", 1, time.Unix(1, 0)))
	eventually(t, func() bool { return a.Stats().Queued == 0 }, "item taken")
	if st := a.Stats(); st.Delivered != 0 {
		t.Fatalf("counted before the write: %+v", st)
	}
	a.Close(context.Background())
	if st := a.Stats(); st.Delivered != 1 {
		t.Fatalf("after the write: %+v", st)
	}
}

// BenchmarkPostgresBatch: rows/s stored by the postgres sink in batches of
// 500, with COPY and with multi-row INSERT.
func BenchmarkPostgresBatch(b *testing.B) {
	url := os.Getenv("EDGEWISE_TEST_POSTGRES")
	if url == "" {
		b.Skip("EDGEWISE_TEST_POSTGRES not set")
	}
	for _, mode := range []string{"copy", "insert"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			table := unique("ew_bench")
			s := &postgresSink{url: url, table: quoteTable(table), ident: tableIdent(table), columns: []string{"device", "temp", "n"}}
			defer s.close(ctx)
			s.noCopy.Store(mode == "insert")
			batch := make([]*Item, 500)
			for i := range batch {
				batch[i] = &Item{Values: []any{fmt.Sprintf("d%d", i), float64(i) / 3, int64(i)}}
			}
			if err := s.deliver(ctx, batch[:1]); err == nil {
				b.Fatal("table exists")
			}
			s.mu.Lock()
			_, err := s.pool.Exec(ctx, "CREATE TABLE "+s.table+" (device text, temp double precision, n bigint)")
			s.mu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
			defer s.pool.Exec(ctx, "DROP TABLE "+s.table)
			b.ResetTimer()
			begin := time.Now()
			for range b.N {
				if err := s.deliver(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/time.Since(begin).Seconds(), "rows/s")
		})
	}
}

// TestWebhookBatchPartialFailure: a batch whose third request fails is
// retried from the third row on; rows already delivered are not sent
// again, and each row keeps its Idempotency-Key across attempts.
func TestWebhookBatchPartialFailure(t *testing.T) {
	var mu sync.Mutex
	var bodies, keys []string
	calls := 0
	// The first request waits until every row is queued, so the rows after
	// it travel in one batch and the third request fails in its middle.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		<-release
		mu.Lock()
		defer mu.Unlock()
		calls++
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		if calls == 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		bodies = append(bodies, string(b))
	}))
	defer srv.Close()
	a, f := start(t, Spec{Type: "webhook", URL: srv.URL, BatchSize: 5, RetryBackoff: Duration(time.Millisecond)}, Options{})
	outs := make([]*stream.Output, 5)
	for i := range outs {
		outs[i] = output(fmt.Sprintf("d%d", i), float64(i), time.Unix(int64(i), 0))
	}
	do(t, a, outs...)
	close(release)
	eventually(t, func() bool { return a.Stats().Delivered == 5 }, "delivered: %+v", a.Stats())
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]int{}
	for _, b := range bodies {
		seen[b]++
	}
	if len(bodies) != 5 || len(seen) != 5 || len(f.get()) != 0 {
		t.Fatalf("bodies %d (distinct %d), failures %v", len(bodies), len(seen), f.get())
	}
	// The failed request was retried with the same key; all others differ.
	ks := map[string]int{}
	for _, k := range keys {
		if len(k) != 36 {
			t.Fatalf("Idempotency-Key %q", k)
		}
		ks[k]++
	}
	if calls != 6 || len(ks) != 5 || ks[keys[2]] != 2 {
		t.Fatalf("calls %d, keys %v", calls, keys)
	}
}
