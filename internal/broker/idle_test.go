package broker

import (
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// BenchmarkIdleConnections measures the memory held per idle connection
// (CONNECT + SUBSCRIBE, then silence): heap plus goroutine stacks, divided
// by the number of connections. The client sockets live in the same
// process and are included, so the figure is an upper bound.
func BenchmarkIdleConnections(b *testing.B) {
	const n = 5000
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		s, addr := startServer(b, Options{AllowAnonymous: true})
		beforeHeap, beforeStack := memInUse()
		b.StartTimer()
		conns := make([]net.Conn, 0, n)
		var buf []byte
		for i := range n {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			buf = packets.AppendConnect(buf[:0], &packets.Connect{ProtocolVersion: packets.V311, ClientID: fmt.Sprintf("idle-%d", i), CleanStart: true, KeepAlive: 600})
			buf = packets.AppendSubscribe(buf, packets.V311, &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: fmt.Sprintf("devices/%d/command", i), QoS: 1}}})
			if _, err := nc.Write(buf); err != nil {
				b.Fatal(err)
			}
			conns = append(conns, nc)
		}
		// Read CONNACK (4 bytes) + SUBACK (5 bytes) from each.
		ack := make([]byte, 9)
		for _, nc := range conns {
			if _, err := readFull(nc, ack); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		afterHeap, afterStack := memInUse()
		b.ReportMetric(float64(afterHeap-beforeHeap+afterStack-beforeStack)/n, "bytes/conn")
		b.ReportMetric(float64(afterStack-beforeStack)/n, "stack-bytes/conn")
		if st := s.Stats(); st.Connections != n {
			b.Fatalf("connections %d", st.Connections)
		}
		for _, nc := range conns {
			_ = nc.Close()
		}
	}
}

func readFull(nc net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := nc.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func memInUse() (heap, stack int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse), int64(ms.StackInuse)
}
