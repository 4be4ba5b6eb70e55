package shadow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/store"
)

// memBackend is an in-memory Backend that counts calls and can be made to fail.
type memBackend struct {
	mu      sync.Mutex
	rows    map[string]Record
	saves   int
	saved   int // records written
	failErr error
}

func newMem() *memBackend { return &memBackend{rows: make(map[string]Record)} }

func (m *memBackend) Load(_ context.Context, thing, name string) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rows[thing+"\x00"+name]
	return r, ok, nil
}

func (m *memBackend) Save(_ context.Context, recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failErr != nil {
		return m.failErr
	}
	m.saves++
	m.saved += len(recs)
	for _, r := range recs {
		m.rows[r.Thing+"\x00"+r.Name] = r
	}
	return nil
}

func (m *memBackend) Delete(_ context.Context, thing, name string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.rows[thing+"\x00"+name]
	delete(m.rows, thing+"\x00"+name)
	return ok, nil
}

func (m *memBackend) Names(_ context.Context, thing string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for _, r := range m.rows {
		if r.Thing == thing && r.Name != "" {
			names = append(names, r.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

func (m *memBackend) row(thing string) (Record, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rows[thing+"\x00"]
	return r, ok
}

func (m *memBackend) setFail(err error) {
	m.mu.Lock()
	m.failErr = err
	m.mu.Unlock()
}

func (m *memBackend) counts() (saves, saved int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves, m.saved
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newMemStore(t *testing.T, opts Options) (*Store, *memBackend) {
	t.Helper()
	b := newMem()
	if opts.FlushInterval == 0 {
		opts.FlushInterval = time.Hour // tests flush explicitly
	}
	s, err := NewWithBackend(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, b
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func obj(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return m
}

type point struct {
	X int `json:"x"`
	Y int `json:"y"`
}

func TestMergeSemantics(t *testing.T) {
	tests := []struct {
		name    string
		initial string         // JSON document before the patch ("" = no state)
		patch   map[string]any // the patch (Go values, to exercise normalization)
		want    string         // JSON document after
	}{
		{"first report", "", map[string]any{"temp": 21.5}, `{"temp":21.5}`},
		{"add key", `{"a":1}`, map[string]any{"b": 2}, `{"a":1,"b":2}`},
		{"replace scalar", `{"a":1}`, map[string]any{"a": "x"}, `{"a":"x"}`},
		{"null deletes", `{"a":1,"b":2}`, map[string]any{"a": nil}, `{"b":2}`},
		{"null on missing key", `{"a":1}`, map[string]any{"zz": nil}, `{"a":1}`},
		{"nested merge", `{"net":{"ip":"1.2.3.4","rssi":-60}}`, map[string]any{"net": map[string]any{"rssi": -70}}, `{"net":{"ip":"1.2.3.4","rssi":-70}}`},
		{"deep nested merge", `{"a":{"b":{"c":1,"d":2}}}`, map[string]any{"a": map[string]any{"b": map[string]any{"d": 3, "e": 4}}}, `{"a":{"b":{"c":1,"d":3,"e":4}}}`},
		{"nested null deletes", `{"net":{"ip":"1.2.3.4","rssi":-60}}`, map[string]any{"net": map[string]any{"ip": nil}}, `{"net":{"rssi":-60}}`},
		{"deleting last nested key keeps object", `{"net":{"ip":"x"}}`, map[string]any{"net": map[string]any{"ip": nil}}, `{"net":{}}`},
		{"null deletes whole object", `{"net":{"ip":"x"},"a":1}`, map[string]any{"net": nil}, `{"a":1}`},
		{"object replaces scalar, nulls dropped", `{"a":1}`, map[string]any{"a": map[string]any{"b": 1, "c": nil, "d": map[string]any{"e": nil}}}, `{"a":{"b":1,"d":{}}}`},
		{"scalar replaces object", `{"a":{"b":1}}`, map[string]any{"a": true}, `{"a":true}`},
		{"arrays replace", `{"a":[1,2,3]}`, map[string]any{"a": []any{4}}, `{"a":[4]}`},
		{"nulls inside arrays stay", `{}`, map[string]any{"a": []any{1, nil, map[string]any{"x": nil}}}, `{"a":[1,null,{"x":null}]}`},
		{"empty patch", `{"a":1}`, map[string]any{}, `{"a":1}`},
		{"nil patch", `{"a":1}`, nil, `{"a":1}`},
		{"go ints become numbers", `{}`, map[string]any{"i": 3, "u": uint8(4), "i64": int64(-5), "f32": float32(0.5)}, `{"f32":0.5,"i":3,"i64":-5,"u":4}`},
		{"json.Number", `{}`, map[string]any{"n": json.Number("12.5")}, `{"n":12.5}`},
		{"struct via JSON", `{}`, map[string]any{"p": point{1, 2}, "s": []string{"a"}}, `{"p":{"x":1,"y":2},"s":["a"]}`},
		{"invalid UTF-8 is replaced", `{}`, map[string]any{"k\xff": "v\xfe"}, "{\"k\uFFFD\":\"v\uFFFD\"}"},
		{"html is not escaped", `{}`, map[string]any{"h": "<b>&"}, `{"h":"<b>&"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := newMemStore(t, Options{})
			var wantVersion int64 = 1
			if tc.initial != "" {
				if _, err := s.UpdateReported(ctx, "dev", obj(t, tc.initial), time.Time{}); err != nil {
					t.Fatal(err)
				}
				wantVersion = 2
			}
			st, err := s.UpdateReported(ctx, "dev", tc.patch, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if got := mustJSON(t, st.Reported); got != tc.want {
				t.Errorf("reported = %s, want %s", got, tc.want)
			}
			if st.Version != wantVersion {
				t.Errorf("version = %d, want %d", st.Version, wantVersion)
			}
			// The in-memory document must equal its reload from storage.
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			doc, err := decode(mustRow(t, s, "dev").Reported)
			if err != nil {
				t.Fatal(err)
			}
			if got := mustJSON(t, doc); got != tc.want {
				t.Errorf("stored = %s, want %s", got, tc.want)
			}
		})
	}
}

func mustRow(t *testing.T, s *Store, thing string) Record {
	t.Helper()
	r, ok, err := s.backend.Load(context.Background(), thing, "")
	if err != nil || !ok {
		t.Fatalf("no stored row for %q: %v", thing, err)
	}
	return r
}

func TestMergeDoesNotMutateInputs(t *testing.T) {
	ctx := context.Background()
	s, _ := newMemStore(t, Options{})
	patch := map[string]any{"a": map[string]any{"b": 1, "c": nil}}
	if _, err := s.UpdateReported(ctx, "dev", patch, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := patch["a"].(map[string]any)["c"]; !ok {
		t.Error("caller's patch was modified")
	}
	st, err := s.Get(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	st.Reported["a"].(map[string]any)["b"] = "mutated"
	st2, _ := s.Get(ctx, "dev")
	if got := mustJSON(t, st2.Reported); got != `{"a":{"b":1}}` {
		t.Errorf("stored document changed through a returned State: %s", got)
	}
}

func TestUpdateErrors(t *testing.T) {
	ctx := context.Background()
	deep := map[string]any{"v": 1}
	for range 4 {
		deep = map[string]any{"n": deep}
	}
	tests := []struct {
		name  string
		thing string
		patch map[string]any
		want  error
	}{
		{"too large", "dev", map[string]any{"big": strings.Repeat("x", 200)}, ErrTooLarge},
		{"too deep object", "dev", deep, ErrInvalid},
		{"too deep array", "dev", map[string]any{"a": []any{[]any{[]any{[]any{[]any{1}}}}}}, ErrInvalid},
		{"NaN", "dev", map[string]any{"x": math.NaN()}, ErrInvalid},
		{"Inf", "dev", map[string]any{"x": math.Inf(1)}, ErrInvalid},
		{"bad json.Number", "dev", map[string]any{"x": json.Number("1e999")}, ErrInvalid},
		{"not JSON", "dev", map[string]any{"c": make(chan int)}, ErrInvalid},
		{"empty thing", "", map[string]any{"a": 1}, ErrInvalid},
		{"long thing", strings.Repeat("t", 129), map[string]any{"a": 1}, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newMemStore(t, Options{MaxDocumentBytes: 100, MaxDepth: 4})
			if _, err := s.UpdateReported(ctx, "dev", map[string]any{"keep": 1}, time.Time{}); err != nil {
				t.Fatal(err)
			}
			_, err := s.UpdateReported(ctx, tc.thing, tc.patch, time.Time{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("UpdateReported = %v, want %v", err, tc.want)
			}
			st, err := s.Get(ctx, "dev")
			if err != nil {
				t.Fatal(err)
			}
			if st.Version != 1 || mustJSON(t, st.Reported) != `{"keep":1}` {
				t.Errorf("failed update changed the document: %+v", st)
			}
		})
	}
}

func TestSizeLimitCountsMergedDocument(t *testing.T) {
	ctx := context.Background()
	s, _ := newMemStore(t, Options{MaxDocumentBytes: 64})
	// Each patch alone fits; together they do not.
	if _, err := s.UpdateReported(ctx, "dev", map[string]any{"a": strings.Repeat("x", 30)}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateReported(ctx, "dev", map[string]any{"b": strings.Repeat("y", 30)}, time.Time{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("second patch = %v, want ErrTooLarge", err)
	}
	// Deleting makes room again.
	if _, err := s.UpdateReported(ctx, "dev", map[string]any{"a": nil, "b": strings.Repeat("y", 30)}, time.Time{}); err != nil {
		t.Fatalf("replacing patch = %v", err)
	}
}

func TestVersionAndTimestamps(t *testing.T) {
	ctx := context.Background()
	s, _ := newMemStore(t, Options{})
	server := time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.UTC)
	s.now = func() time.Time { return server }
	device := time.Date(2030, 5, 6, 7, 8, 0, 999, time.FixedZone("x", 3600))
	st, err := s.UpdateReported(ctx, "dev", map[string]any{"a": 1}, device)
	if err != nil {
		t.Fatal(err)
	}
	if st.Thing != "dev" || st.Version != 1 {
		t.Errorf("state %+v", st)
	}
	if !st.UpdatedAt.Equal(server.Truncate(time.Microsecond)) || st.UpdatedAt.Location() != time.UTC {
		t.Errorf("UpdatedAt = %v", st.UpdatedAt)
	}
	if !st.Timestamp.Equal(device.Truncate(time.Microsecond)) || st.Timestamp.Location() != time.UTC {
		t.Errorf("Timestamp = %v", st.Timestamp)
	}
	server = server.Add(time.Second)
	st, err = s.UpdateReported(ctx, "dev", map[string]any{"a": 2}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != 2 || !st.Timestamp.IsZero() || !st.UpdatedAt.Equal(server.Truncate(time.Microsecond)) {
		t.Errorf("second update: %+v", st)
	}
}

func TestGetAndDelete(t *testing.T) {
	ctx := context.Background()
	s, b := newMemStore(t, Options{})
	for _, thing := range []string{"never", "", strings.Repeat("x", 200)} {
		if _, err := s.Get(ctx, thing); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v", thing, err)
		}
		if err := s.Delete(ctx, thing); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(%q) = %v", thing, err)
		}
	}
	for range 3 {
		if _, err := s.UpdateReported(ctx, "dev", map[string]any{"a": 1}, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	// Delete before and after the first flush.
	if err := s.Delete(ctx, "dev"); err != nil {
		t.Fatalf("Delete of unflushed state = %v", err)
	}
	if _, err := s.Get(ctx, "dev"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after delete = %v", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.row("dev"); ok {
		t.Error("deleted state was flushed")
	}
	st, err := s.UpdateReported(ctx, "dev", map[string]any{"b": 2}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != 1 || mustJSON(t, st.Reported) != `{"b":2}` {
		t.Errorf("update after delete: %+v", st)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.row("dev"); ok {
		t.Error("Delete did not write through")
	}
	if err := s.Delete(ctx, "dev"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v", err)
	}
}

func TestFlushCoalesces(t *testing.T) {
	ctx := context.Background()
	s, b := newMemStore(t, Options{})
	for i := range 100 {
		for _, thing := range []string{"a", "b", "c"} {
			if _, err := s.UpdateReported(ctx, thing, map[string]any{"i": i}, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	saves, saved := b.counts()
	if saves != 1 || saved != 3 {
		t.Errorf("300 updates of 3 things took %d transactions writing %d rows, want 1 and 3", saves, saved)
	}
	if r, _ := b.row("b"); r.Version != 100 || string(r.Reported) != `{"i":99}` {
		t.Errorf("stored %+v", r)
	}
	// Nothing changed: nothing written.
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if saves2, _ := b.counts(); saves2 != saves {
		t.Error("a flush without changes wrote")
	}
}

func TestBackgroundFlush(t *testing.T) {
	ctx := context.Background()
	s, b := newMemStore(t, Options{FlushInterval: 10 * time.Millisecond})
	if _, err := s.UpdateReported(ctx, "dev", map[string]any{"a": 1}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the background flush", func() bool { _, ok := b.row("dev"); return ok })
}

func TestFlushFailureRetries(t *testing.T) {
	ctx := context.Background()
	s, b := newMemStore(t, Options{})
	b.setFail(errors.New("disk full"))
	if _, err := s.UpdateReported(ctx, "dev", map[string]any{"a": 1}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err == nil {
		t.Fatal("flush succeeded with a failing backend")
	}
	b.setFail(nil)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if r, ok := b.row("dev"); !ok || r.Version != 1 {
		t.Errorf("document not written after the backend recovered: %+v", r)
	}
}

func TestCloseFlushesAndRejects(t *testing.T) {
	ctx := context.Background()
	b := newMem()
	s, err := NewWithBackend(b, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateReported(ctx, "dev", map[string]any{"a": 1}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.row("dev"); !ok {
		t.Error("Close did not flush")
	}
	if _, err := s.UpdateReported(ctx, "dev", map[string]any{"a": 2}, time.Time{}); !errors.Is(err, ErrClosed) {
		t.Errorf("UpdateReported after Close = %v", err)
	}
	if _, err := s.Get(ctx, "dev"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v", err)
	}
	if err := s.Delete(ctx, "dev"); !errors.Is(err, ErrClosed) {
		t.Errorf("Delete after Close = %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestEviction(t *testing.T) {
	ctx := context.Background()
	s, _ := newMemStore(t, Options{MaxCachedDocuments: 10})
	for i := range 50 {
		if _, err := s.UpdateReported(ctx, fmt.Sprintf("dev-%d", i), map[string]any{"i": i}, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	// Dirty documents are never evicted.
	s.flushMu.Lock()
	s.evictLocked()
	s.flushMu.Unlock()
	if n := s.cached(); n != 50 {
		t.Fatalf("%d cached before flush, want 50 (all dirty)", n)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.flushMu.Lock()
	s.evictLocked()
	s.flushMu.Unlock()
	if n := s.cached(); n > 10 {
		t.Fatalf("%d cached after eviction, want <= 10", n)
	}
	for i := range 50 {
		st, err := s.Get(ctx, fmt.Sprintf("dev-%d", i))
		if err != nil || st.Reported["i"] != float64(i) || st.Version != 1 {
			t.Fatalf("dev-%d after eviction: %+v %v", i, st, err)
		}
	}
	st, err := s.UpdateReported(ctx, "dev-3", map[string]any{"j": 1}, time.Time{})
	if err != nil || st.Version != 2 || mustJSON(t, st.Reported) != `{"i":3,"j":1}` {
		t.Fatalf("update after reload: %+v %v", st, err)
	}
}

func TestConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	s, b := newMemStore(t, Options{FlushInterval: time.Millisecond, MaxCachedDocuments: 2})
	const things, writers, updates = 4, 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range updates {
				thing := fmt.Sprintf("dev-%d", (w+i)%things)
				patch := map[string]any{fmt.Sprintf("w%d", w): map[string]any{"i": i}}
				if _, err := s.UpdateReported(ctx, thing, patch, time.Time{}); err != nil {
					errs <- err
					return
				}
				if _, err := s.Get(ctx, thing); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var total int64
	for k := range things {
		thing := fmt.Sprintf("dev-%d", k)
		st, err := s.Get(ctx, thing)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Version
		r, _ := b.row(thing)
		if r.Version != st.Version || string(r.Reported) != mustJSON(t, st.Reported) {
			t.Errorf("%s: stored v%d %s, memory v%d %s", thing, r.Version, r.Reported, st.Version, mustJSON(t, st.Reported))
		}
	}
	if total != writers*updates {
		t.Errorf("versions sum to %d, want %d (lost updates)", total, writers*updates)
	}
}

func TestSQLitePersistence(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	open := func() (*Store, func()) {
		db, err := store.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(ctx, db, Options{})
		if err != nil {
			db.Close()
			t.Fatal(err)
		}
		return s, func() {
			if err := s.Close(ctx); err != nil {
				t.Error(err)
			}
			db.Close()
		}
	}
	device := time.Date(2031, 1, 2, 3, 4, 5, 6000, time.UTC)
	s, closeFn := open()
	if _, err := s.UpdateReported(ctx, "dev", map[string]any{"temp": 21.5, "net": map[string]any{"ip": "10.0.0.1"}}, device); err != nil {
		t.Fatal(err)
	}
	want, err := s.UpdateReported(ctx, "dev", map[string]any{"net": map[string]any{"rssi": -61}}, device)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateReported(ctx, "other", map[string]any{"x": 1}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	closeFn()

	// Reopen twice: migrations are idempotent and the state is intact.
	for range 2 {
		s, closeFn = open()
		got, err := s.Get(ctx, "dev")
		if err != nil {
			t.Fatal(err)
		}
		if mustJSON(t, got) != mustJSON(t, want) {
			t.Errorf("after reopen:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
		}
		if _, err := s.Get(ctx, "other"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted state after reopen: %v", err)
		}
		closeFn()
	}
	s, closeFn = open()
	defer closeFn()
	st, err := s.UpdateReported(ctx, "dev", map[string]any{"temp": nil}, time.Time{})
	if err != nil || st.Version != 3 || mustJSON(t, st.Reported) != `{"net":{"ip":"10.0.0.1","rssi":-61}}` {
		t.Errorf("update after reopen: %+v %v", st, err)
	}
}

func TestNewWithBackendNil(t *testing.T) {
	if _, err := NewWithBackend(nil, Options{}); err == nil {
		t.Error("nil backend accepted")
	}
}
