package topics

import (
	"runtime"
	"strconv"
	"testing"
)

// fleet builds a trie with one devices/{id}/command subscription per
// device plus a few wildcard subscriptions, like a broker serving n
// devices and some back-end consumers.
func fleet(n int) *Trie[int] {
	tr := New[int]()
	for i := range n {
		tr.Add("devices/"+strconv.Itoa(i)+"/command", i)
	}
	tr.Add("devices/+/telemetry", -1)
	tr.Add("devices/+/state", -2)
	tr.Add("devices/#", -3)
	tr.Add("$SYS/#", -4)
	return tr
}

func benchMatch(b *testing.B, n int, topic string) {
	tr := fleet(n)
	hits := 0
	fn := func(string, int) bool { hits++; return true }
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tr.Match(topic, fn)
	}
	if hits == 0 {
		b.Fatal("no match")
	}
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run("command/"+strconv.Itoa(n), func(b *testing.B) { benchMatch(b, n, "devices/4242/command") })
		b.Run("telemetry/"+strconv.Itoa(n), func(b *testing.B) { benchMatch(b, n, "devices/4242/telemetry") })
	}
}

func BenchmarkMatchParallel(b *testing.B) {
	tr := fleet(100_000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		fn := func(string, int) bool { return true }
		for pb.Next() {
			tr.Match("devices/4242/command", fn)
		}
	})
}

func BenchmarkAddRemove(b *testing.B) {
	tr := fleet(10_000)
	b.ReportAllocs()
	for b.Loop() {
		tr.Add("devices/x/command", -9)
		tr.Remove("devices/x/command", -9)
	}
}

// BenchmarkFleetMemory reports the heap held per subscription for a trie
// of 100k devices/{id}/command subscriptions.
func BenchmarkFleetMemory(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tr := fleet(n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/sub")
		runtime.KeepAlive(tr)
	}
}
