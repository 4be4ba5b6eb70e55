package influxql

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// memStore is a simple in-memory Storage used to test the executor in
// isolation; the tests through the real tsdb live in internal/influx.
type memStore struct {
	mu  sync.Mutex
	dbs map[string]*memDB
}

type memDB struct {
	mu     sync.Mutex
	points []tsdb.Point
}

func newMemStore() *memStore { return &memStore{dbs: map[string]*memDB{}} }

func (s *memStore) Databases(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.dbs {
		out = append(out, k)
	}
	return out, nil
}

func (s *memStore) CreateDatabase(_ context.Context, name string, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dbs[name] == nil {
		s.dbs[name] = &memDB{}
	}
	return nil
}

func (s *memStore) DropDatabase(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dbs[name] == nil {
		return ErrDatabaseNotFound
	}
	delete(s.dbs, name)
	return nil
}

func (s *memStore) Database(_ context.Context, name string) (Database, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.dbs[name]; d != nil {
		return d, nil
	}
	return nil, ErrDatabaseNotFound
}

func sortTags(t []tsdb.Tag) []tsdb.Tag {
	t = slices.Clone(t)
	slices.SortFunc(t, func(a, b tsdb.Tag) int { return strings.Compare(a.Key, b.Key) })
	return t
}

func (d *memDB) Write(_ context.Context, pts []tsdb.Point) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range pts {
		p.Tags = sortTags(p.Tags)
		d.points = append(d.points, p)
	}
	return nil
}

func (d *memDB) Measurements(context.Context) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := map[string]bool{}
	for _, p := range d.points {
		set[p.Measurement] = true
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

func (d *memDB) TagKeys(_ context.Context, m string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := map[string]bool{}
	for _, p := range d.points {
		if p.Measurement == m {
			for _, t := range p.Tags {
				set[t.Key] = true
			}
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

func (d *memDB) FieldKeys(_ context.Context, m string) ([]FieldKey, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := map[string]tsdb.ValueType{}
	for _, p := range d.points {
		if p.Measurement == m {
			for _, f := range p.Fields {
				if set[f.Key] == 0 {
					set[f.Key] = f.Value.Type()
				}
			}
		}
	}
	var out []FieldKey
	for k, t := range set {
		out = append(out, FieldKey{k, t})
	}
	slices.SortFunc(out, func(a, b FieldKey) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func matchAll(ms []Matcher, tags []tsdb.Tag) bool {
	for _, m := range ms {
		if !m.Matches(tagValue(tags, m.Key)) {
			return false
		}
	}
	return true
}

func (d *memDB) Series(_ context.Context, m string, ms []Matcher) ([][]tsdb.Tag, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[string]bool{}
	var out [][]tsdb.Tag
	for _, p := range d.points {
		k := tagsKey(p.Tags)
		if p.Measurement == m && !seen[k] && matchAll(ms, p.Tags) {
			seen[k] = true
			out = append(out, p.Tags)
		}
	}
	slices.SortFunc(out, compareTags)
	return out, nil
}

func (d *memDB) Read(_ context.Context, r ReadRequest) ([]tsdb.Series, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	type key struct{ tags, field string }
	byKey := map[key]*tsdb.Series{}
	for _, p := range d.points {
		if p.Measurement != r.Measurement || !matchAll(r.Matchers, p.Tags) || p.Time < r.Start || (r.End != 0 && p.Time >= r.End) {
			continue
		}
		for _, f := range p.Fields {
			if len(r.Fields) > 0 && !slices.Contains(r.Fields, f.Key) {
				continue
			}
			k := key{tagsKey(p.Tags), f.Key}
			s := byKey[k]
			if s == nil {
				s = &tsdb.Series{Measurement: p.Measurement, Tags: p.Tags, Field: f.Key}
				byKey[k] = s
			}
			if !memFilter(r.Filters, f.Value) {
				continue
			}
			s.Samples = append(s.Samples, tsdb.Sample{Time: p.Time, Value: f.Value})
		}
	}
	var out []tsdb.Series
	for _, s := range byKey {
		slices.SortStableFunc(s.Samples, func(a, b tsdb.Sample) int { return int(a.Time - b.Time) })
		if r.Every > 0 {
			s.Samples = memWindows(s.Samples, r)
		} else if r.Limit > 0 && len(s.Samples) > r.Limit {
			if r.Desc {
				s.Samples = s.Samples[len(s.Samples)-r.Limit:]
			} else {
				s.Samples = s.Samples[:r.Limit]
			}
		}
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b tsdb.Series) int {
		if c := compareTags(a.Tags, b.Tags); c != 0 {
			return c
		}
		return strings.Compare(a.Field, b.Field)
	})
	return out, nil
}

func memWindows(in []tsdb.Sample, r ReadRequest) []tsdb.Sample {
	ev := int64(r.Every)
	var out []tsdb.Sample
	for i := 0; i < len(in); {
		k := floorDiv(in[i].Time, ev)
		j := i
		for j < len(in) && floorDiv(in[j].Time, ev) == k {
			j++
		}
		a := acc{}
		for _, s := range in[i:j] {
			a.add(s.Time, s.Value)
		}
		stop := (k + 1) * ev
		if stop < k*ev {
			stop = math.MaxInt64
		}
		if r.End != 0 && r.End < stop {
			stop = r.End
		}
		var v tsdb.Value
		switch r.Fn {
		case tsdb.Count:
			v = tsdb.IntValue(a.n)
		default:
			v, _, _ = a.result(string(r.Fn), 0)
		}
		out = append(out, tsdb.Sample{Time: stop, Value: v})
		i = j
	}
	return out
}

// render prints results compactly for golden comparisons.
func render(res []Result) string {
	var b strings.Builder
	for _, r := range res {
		if r.Err != nil {
			fmt.Fprintf(&b, "%d error: %v\n", r.StatementID, r.Err)
			continue
		}
		for _, s := range r.Series {
			fmt.Fprintf(&b, "%d %s", r.StatementID, s.Name)
			for _, t := range s.Tags {
				fmt.Fprintf(&b, " %s=%s", t.Key, t.Value)
			}
			fmt.Fprintf(&b, " [%s]\n", strings.Join(s.Columns, ","))
			for i := 0; i < s.Len(); i++ {
				var cells []string
				if s.Time != nil {
					cells = append(cells, s.FormatTime(s.Time[i]))
				}
				for c := range s.Cols {
					v := s.Cols[c][i]
					if isNull(v) {
						cells = append(cells, "null")
					} else {
						cells = append(cells, v.String())
					}
				}
				fmt.Fprintf(&b, "  %s\n", strings.Join(cells, " "))
			}
		}
	}
	return b.String()
}

func run(t *testing.T, e *Executor, q string) string {
	t.Helper()
	stmts, err := ParseQuery(q)
	if err != nil {
		t.Fatalf("parse %q: %v", q, err)
	}
	return render(e.Execute(context.Background(), stmts, "db"))
}

func memFilter(fs []tsdb.Filter, v tsdb.Value) bool {
	x, _ := v.Float()
	for _, f := range fs {
		ok := map[tsdb.FilterOp]bool{tsdb.FilterLT: x < f.Value, tsdb.FilterLE: x <= f.Value, tsdb.FilterGT: x > f.Value,
			tsdb.FilterGE: x >= f.Value, tsdb.FilterEQ: x == f.Value, tsdb.FilterNE: x != f.Value}[f.Op]
		if !ok {
			return false
		}
	}
	return true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
