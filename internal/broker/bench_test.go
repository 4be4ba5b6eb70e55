package broker

import (
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// benchSubscriber counts PUBLISH packets arriving on a raw connection.
type benchSubscriber struct {
	nc    net.Conn
	count atomic.Int64
	done  chan struct{}
}

func newBenchSubscriber(b *testing.B, addr, id, filter string, qos byte, persistent bool) *benchSubscriber {
	r := dialRaw(b, addr, packets.V311)
	r.connect(&packets.Connect{ClientID: id, CleanStart: !persistent, KeepAlive: 60})
	r.subscribe(1, packets.Subscription{Filter: filter, QoS: qos})
	s := &benchSubscriber{nc: r.nc, done: make(chan struct{})}
	go s.loop(qos)
	return s
}

func (s *benchSubscriber) loop(qos byte) {
	defer close(s.done)
	buf := make([]byte, 256<<10)
	var acks []byte
	end := 0
	for {
		n, err := s.nc.Read(buf[end:])
		if n == 0 && err != nil {
			return
		}
		end += n
		off := 0
		var c int64
		for {
			h, ok, err := packets.ParseFixedHeader(buf[off:end], 0)
			if err != nil {
				return
			}
			if !ok || end-off < h.Len+h.Remaining {
				break
			}
			if h.Type == packets.PUBLISH {
				c++
				if qos == 1 {
					body := buf[off+h.Len : off+h.Len+h.Remaining]
					tl := int(body[0])<<8 | int(body[1])
					acks = append(acks, packets.PUBACK<<4, 2, body[2+tl], body[3+tl])
				}
			}
			off += h.Len + h.Remaining
		}
		if len(acks) > 0 {
			if _, err := s.nc.Write(acks); err != nil {
				return
			}
			acks = acks[:0]
		}
		s.count.Add(c)
		end = copy(buf, buf[off:end])
	}
}

// benchRoute publishes b.N messages of 64 bytes from one connection to subs
// subscribers and reports delivered msgs/s.
func benchRoute(b *testing.B, subs int, qos byte) { benchRouteStore(b, subs, qos, false) }

// benchRouteStore is benchRoute with, when durable is set, persistent
// (3.1.1 clean session off) subscribers and a FileStore, so every QoS 1
// delivery is stored and every PUBACK waits for a group commit.
func benchRouteStore(b *testing.B, subs int, qos byte, durable bool) {
	// BROKER_BENCH_ADDR runs the same load against another broker
	// (for example Mosquitto) for a side-by-side figure.
	addr := os.Getenv("BROKER_BENCH_ADDR")
	var s *Server
	if addr == "" || durable {
		opts := Options{AllowAnonymous: true, MaxOutboundBytes: 4 << 20, MaxInflight: 1000, MaxQueued: 100_000, ReceiveMaximum: 65535}
		if durable {
			fs, err := OpenFileStore(b.TempDir(), FileStoreOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { fs.Close() })
			opts.SessionStore = fs
		}
		s, addr = startServer(b, opts)
	}
	dropped := func() int64 {
		if s == nil {
			return 0
		}
		return s.Stats().Dropped
	}
	var ss []*benchSubscriber
	for i := range subs {
		ss = append(ss, newBenchSubscriber(b, addr, fmt.Sprintf("sub%d", i), "bench/+/t", qos, durable))
	}
	pub := dialRaw(b, addr, packets.V311)
	pub.connect(&packets.Connect{ClientID: "pub", CleanStart: true, KeepAlive: 60})
	const chunk = 512
	payload := make([]byte, 64)
	var acked atomic.Int64
	var wg sync.WaitGroup
	if qos == 1 {
		wg.Add(1)
		go func() { // count PUBACKs so the publisher can keep a window
			defer wg.Done()
			for {
				h, _, err := pub.read()
				if err != nil {
					return
				}
				if h.Type == packets.PUBACK {
					acked.Add(1)
				}
			}
		}()
	}
	var batch []byte
	id := uint16(0)
	encode := func(n int) {
		batch = batch[:0]
		for range n {
			id++
			if id == 0 {
				id = 1
			}
			batch = packets.AppendPublish(batch, packets.V311, &packets.Publish{Topic: "bench/x/t", QoS: qos, PacketID: id, Payload: payload})
		}
	}
	encode(chunk)
	full := append([]byte(nil), batch...)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N {
		n := min(chunk, b.N-sent)
		out := full
		if n < chunk || qos == 1 {
			encode(n)
			out = batch
		}
		if qos == 1 {
			// Bound what is in flight (broker PUBACKs
			// and subscriber deliveries) so no session queue overflows.
			for int64(sent)-acked.Load() > 8*chunk || int64(sent)-ss[0].count.Load() > 2*chunk {
				time.Sleep(50 * time.Microsecond)
			}
		}
		pub.send(out)
		sent += n
	}
	want := int64(b.N) * int64(subs)
	var got, last int64
	lastProgress := time.Now()
	for {
		got = 0
		for _, sb := range ss {
			got += sb.count.Load()
		}
		if got+dropped() >= want {
			break
		}
		if got != last {
			last, lastProgress = got, time.Now()
		} else if time.Since(lastProgress) > 3*time.Second {
			b.Logf("stalled at %d of %d deliveries", got, want)
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(got)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(dropped()), "dropped")
	if s != nil && s.Stats().Dropped > 0 {
		b.Logf("drops: %+v", s.Stats())
	}
	for _, sb := range ss {
		_ = sb.nc.Close()
		<-sb.done
	}
	_ = pub.nc.Close()
	wg.Wait()
}

// BenchmarkRouteQoS0 is one publisher to one subscriber over TCP loopback.
func BenchmarkRouteQoS0(b *testing.B) { benchRoute(b, 1, 0) }

// BenchmarkRouteQoS0FanOut is one publisher to 100 subscribers.
func BenchmarkRouteQoS0FanOut(b *testing.B) { benchRoute(b, 100, 0) }

// BenchmarkRouteQoS1 is one publisher to one subscriber, both acking.
func BenchmarkRouteQoS1(b *testing.B) { benchRoute(b, 1, 1) }

// BenchmarkRouteQoS1Durable is BenchmarkRouteQoS1 to a persistent session
// with the FileStore: the cost of persistence on the QoS 1 path.
func BenchmarkRouteQoS1Durable(b *testing.B) { benchRouteStore(b, 1, 1, true) }
