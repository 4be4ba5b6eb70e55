package topics

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// refMatch is the reference matcher: it splits filter and topic into
// levels and compares them one by one.
func refMatch(filter, topic string) bool {
	f := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	if len(topic) > 0 && topic[0] == '$' && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, lv := range f {
		if lv == "#" {
			return i == len(f)-1
		}
		if i >= len(tl) {
			return false
		}
		if lv != "+" && lv != tl[i] {
			return false
		}
	}
	return len(f) == len(tl)
}

func matches(t *Trie[int], topic string) []string {
	var out []string
	t.Match(topic, func(filter string, v int) bool {
		out = append(out, fmt.Sprintf("%s=%d", filter, v))
		return true
	})
	slices.Sort(out)
	return out
}

func TestMatchTable(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		// MQTT 3.1.1 / 5.0 section 4.7 examples
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true},
		{"#", "sport/tennis", true},
		{"sport/tennis/#", "sport/tennis", true},
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player2", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"#", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		// exact and empty levels
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"a/b", "a//b", false},
		{"/", "/", true},
		{"+/+", "/", true},
		{"+", "", true},
		{"#", "", true},
		{"a/", "a", false},
		{"a/#", "a/", true},
		{"+/#", "a", true},
		{"+/#", "$a", false},
		{"$a/+", "$a/b", true},
		{"a/$b", "a/$b", true},
		{"+/$b", "a/$b", true},
		{"A", "a", false},
		{"devices/+/command", "devices/d1/command", true},
		{"devices/+/command", "devices/d1/telemetry", false},
	}
	for _, tt := range tests {
		if got := refMatch(tt.filter, tt.topic); got != tt.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
		tr := New[int]()
		tr.Add(tt.filter, 1)
		got := len(matches(tr, tt.topic)) == 1
		if got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestAddRemoveLen(t *testing.T) {
	tr := New[int]()
	steps := []struct {
		op     string
		filter string
		v      int
		want   bool
		length int
	}{
		{"add", "a/b", 1, true, 1},
		{"add", "a/b", 1, false, 1},
		{"add", "a/b", 2, true, 2},
		{"add", "a/#", 1, true, 3},
		{"add", "a/+", 1, true, 4},
		{"remove", "a/c", 1, false, 4},
		{"remove", "a/b", 3, false, 4},
		{"remove", "a", 1, false, 4},
		{"remove", "a/b", 1, true, 3},
		{"remove", "a/b", 1, false, 3},
		{"remove", "a/#", 1, true, 2},
		{"remove", "a/+", 1, true, 1},
		{"remove", "a/b", 2, true, 0},
	}
	for i, s := range steps {
		var got bool
		if s.op == "add" {
			got = tr.Add(s.filter, s.v)
		} else {
			got = tr.Remove(s.filter, s.v)
		}
		if got != s.want || tr.Len() != s.length {
			t.Fatalf("step %d %s(%q, %d) = %v len %d, want %v len %d", i, s.op, s.filter, s.v, got, tr.Len(), s.want, s.length)
		}
	}
	if !tr.root.empty() {
		t.Fatalf("root not pruned: %+v", tr.root)
	}
}

func TestManyValuesOneFilter(t *testing.T) {
	tr := New[int]()
	const n = 1000
	for i := range n {
		if !tr.Add("x/+", i) {
			t.Fatalf("add %d", i)
		}
	}
	if tr.Add("x/+", 500) {
		t.Fatal("duplicate add succeeded")
	}
	for i := 0; i < n; i += 2 {
		if !tr.Remove("x/+", i) {
			t.Fatalf("remove %d", i)
		}
	}
	got := matches(tr, "x/y")
	if len(got) != n/2 {
		t.Fatalf("got %d matches, want %d", len(got), n/2)
	}
	for i := 1; i < n; i += 2 {
		if tr.Add("x/+", i) {
			t.Fatalf("re-add %d succeeded", i)
		}
		if !tr.Remove("x/+", i) {
			t.Fatalf("remove %d", i)
		}
	}
	if tr.Len() != 0 || !tr.root.empty() {
		t.Fatalf("len %d, root empty %v", tr.Len(), tr.root.empty())
	}
}

func TestMatchStops(t *testing.T) {
	tr := New[int]()
	for i := range 10 {
		tr.Add("#", i)
		tr.Add("a/+", i)
		tr.Add("a/b", i)
	}
	calls := 0
	tr.Match("a/b", func(string, int) bool { calls++; return calls < 5 })
	if calls != 5 {
		t.Fatalf("fn called %d times after asking to stop at 5", calls)
	}
}

var (
	randLevels  = []string{"a", "b", "", "$s", "+", "#"}
	topicLevels = []string{"a", "b", "", "$s", "c"}
)

func randPath(r *rand.Rand, levels []string) string {
	n := 1 + r.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = levels[r.IntN(len(levels))]
	}
	return strings.Join(parts, "/")
}

// TestRandomAgainstReference adds and removes random pairs and compares
// Match with the reference matcher over the current contents.
func TestRandomAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tr := New[int]()
	type pair struct {
		f string
		v int
	}
	set := map[pair]bool{}
	for round := 0; round < 3000; round++ {
		p := pair{randPath(r, randLevels), r.IntN(3)}
		if r.IntN(3) == 0 {
			if got := tr.Remove(p.f, p.v); got != set[p] {
				t.Fatalf("Remove(%q,%d) = %v, want %v", p.f, p.v, got, set[p])
			}
			delete(set, p)
		} else {
			if got := tr.Add(p.f, p.v); got == set[p] {
				t.Fatalf("Add(%q,%d) = %v with present=%v", p.f, p.v, got, set[p])
			}
			set[p] = true
		}
		if tr.Len() != len(set) {
			t.Fatalf("Len %d, want %d", tr.Len(), len(set))
		}
		topic := randPath(r, topicLevels)
		var want []string
		for q := range set {
			if refMatch(q.f, topic) {
				want = append(want, fmt.Sprintf("%s=%d", q.f, q.v))
			}
		}
		slices.Sort(want)
		if got := matches(tr, topic); !slices.Equal(got, want) {
			t.Fatalf("Match(%q):\n got %v\nwant %v", topic, got, want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	tr := New[int]()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				f := fmt.Sprintf("d/%d/+", i%50)
				tr.Add(f, w)
				tr.Match(fmt.Sprintf("d/%d/x", i%50), func(string, int) bool { return true })
				tr.Remove(f, w)
			}
		}()
	}
	wg.Wait()
	if tr.Len() != 0 {
		t.Fatalf("Len = %d after balanced adds and removes", tr.Len())
	}
}

func TestMatchAllocs(t *testing.T) {
	tr := New[int]()
	for i := range 1000 {
		tr.Add(fmt.Sprintf("devices/%d/command", i), i)
	}
	tr.Add("devices/+/command", -1)
	tr.Add("devices/#", -2)
	n := 0
	fn := func(string, int) bool { n++; return true }
	allocs := testing.AllocsPerRun(100, func() { tr.Match("devices/42/command", fn) })
	if allocs != 0 {
		t.Fatalf("Match allocates %.1f times", allocs)
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("sport/tennis/+\nsport/#\n#", "sport/tennis/player1")
	f.Add("+/monitor/Clients\n$SYS/#", "$SYS/monitor/Clients")
	f.Add("a//b\n+/+/+", "a//b")
	f.Add("", "")
	f.Add("/+\n+", "/finance")
	f.Fuzz(func(t *testing.T, filters, topic string) {
		tr := New[int]()
		fs := strings.Split(filters, "\n")
		if len(fs) > 64 {
			fs = fs[:64]
		}
		for i, fl := range fs {
			tr.Add(fl, i)
		}
		var got []int
		tr.Match(topic, func(fl string, v int) bool {
			if fl != fs[v] {
				t.Fatalf("filter %q reported for value %d (added with %q)", fl, v, fs[v])
			}
			got = append(got, v)
			return true
		})
		slices.Sort(got)
		var want []int
		for i, fl := range fs {
			if refMatch(fl, topic) {
				want = append(want, i)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q) over %q = %v, want %v", topic, fs, got, want)
		}
		for i, fl := range fs {
			tr.Remove(fl, i)
		}
		if tr.Len() != 0 || !tr.root.empty() {
			t.Fatalf("not empty after removing all")
		}
	})
}

// TestManyChildren crosses the slice-to-map threshold for literal children
// in both directions.
func TestManyChildren(t *testing.T) {
	tr := New[int]()
	const n = 3 * maxKids
	for i := range n {
		tr.Add(fmt.Sprintf("x/%d", i), i)
	}
	for i := range n {
		if got := matches(tr, fmt.Sprintf("x/%d", i)); len(got) != 1 || got[0] != fmt.Sprintf("x/%d=%d", i, i) {
			t.Fatalf("x/%d: %v", i, got)
		}
	}
	if got := matches(tr, fmt.Sprintf("x/%d", n)); len(got) != 0 {
		t.Fatalf("unexpected match %v", got)
	}
	for i := range n {
		if !tr.Remove(fmt.Sprintf("x/%d", i), i) {
			t.Fatalf("remove x/%d", i)
		}
		for j := i + 1; j < n; j++ {
			if len(matches(tr, fmt.Sprintf("x/%d", j))) != 1 {
				t.Fatalf("x/%d lost after removing x/%d", j, i)
			}
		}
	}
	if tr.Len() != 0 || !tr.root.empty() {
		t.Fatalf("len %d, root empty %v", tr.Len(), tr.root.empty())
	}
}
