package rules

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
	"github.com/edgewise-iot/edgewise/internal/rules/action"
	"github.com/edgewise-iot/edgewise/internal/rules/spool"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// The benchmarks below drive the real broker over TCP: publishers write
// pipelined QoS 0 PUBLISH packets for devices/d<i>/telemetry (the seed's
// payload, event time advancing 100µs per message so each of 10k devices
// sends one message per event-time second), the broker hands every read
// pass to the Manager, and the run ends when the rules have processed (or
// dropped) every message. msgs/s is messages through the rules per second
// of wall time; dropped counts messages lost to full rule queues.

const benchPublishers = 4

func benchPayload(dst []byte, dev int, tsMillis int64, temp float64) []byte {
	dst = append(dst, `{"device_id":"d`...)
	dst = strconv.AppendInt(dst, int64(dev), 10)
	dst = append(dst, `","timestamp":`...)
	dst = strconv.AppendInt(dst, tsMillis, 10)
	dst = append(dst, `,"data":{"temp":`...)
	dst = strconv.AppendFloat(dst, temp, 'f', 1, 64)
	return append(dst, `,"humidity":40.5}}`...)
}

func dialMQTT(b *testing.B, addr, id string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c.Write(packets.AppendConnect(nil, &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: packets.V311, CleanStart: true, ClientID: id}))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		b.Fatalf("connack %x %v", ack, err)
	}
	return c
}

func benchThroughBroker(b *testing.B, devices int, defs []Rule, opts Options, matches func(dev int) bool) {
	benchThroughBrokerQoS(b, 0, devices, defs, opts, matches)
}

// benchThroughBrokerQoS is benchThroughBroker with the publishers' QoS;
// QoS 1 publishers pipeline without waiting, and their PUBACKs (sent after
// the hook returned) are read and discarded.
func benchThroughBrokerQoS(b *testing.B, qos byte, devices int, defs []Rule, opts Options, matches func(dev int) bool) {
	slot := &hookSlot{}
	srv, addr := startBroker(b, slot)
	opts.Publisher = srv
	if opts.QueueSize == 0 {
		opts.QueueSize = 200000
	}
	m := newManager(b, openDB(b, b.TempDir()), opts)
	slot.set(m)
	ctx := context.Background()
	for _, d := range defs {
		if _, err := m.Create(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	// A subscriber on the republished topics keeps the broker routing work real.
	sub := dialMQTT(b, addr, "bench-sub")
	defer sub.Close()
	sub.Write(packets.AppendSubscribe(nil, packets.V311, &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "alerts/#"}}}))
	go io.Copy(io.Discard, sub)

	conns := make([]net.Conn, benchPublishers)
	for i := range conns {
		conns[i] = dialMQTT(b, addr, fmt.Sprintf("bench-pub-%d", i))
		defer conns[i].Close()
		if qos > 0 {
			go io.Copy(io.Discard, conns[i])
		}
	}
	base, baseIn := m.Summary(), slot.seen.Load()
	start0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	for p, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := bufio.NewWriterSize(c, 64<<10)
			var pl, pkt []byte
			for k := p; k < b.N; k += benchPublishers {
				dev := k % devices
				pl = benchPayload(pl[:0], dev, start0+int64(k)/10, float64(20+k%60))
				pub := &packets.Publish{Topic: "devices/d" + strconv.Itoa(dev) + "/telemetry", Payload: pl}
				if qos > 0 {
					pub.QoS, pub.PacketID = qos, uint16(k%65535+1)
				}
				pkt = packets.AppendPublish(pkt[:0], packets.V311, pub)
				w.Write(pkt)
			}
			w.Flush()
		}()
	}
	wg.Wait()
	var want uint64
	for k := range b.N {
		if matches(k % devices) {
			want++
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		s := m.Summary()
		devIn := slot.seen.Load() - baseIn
		done := s.Matched+s.Dropped-base.Matched-base.Dropped >= want && devIn >= int64(b.N) && actionsIdle(ctx, m, defs)
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	s := m.Summary()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(s.Matched-base.Matched)/elapsed.Seconds(), "rule-msgs/s")
	b.ReportMetric(float64(s.Dropped-base.Dropped), "dropped")
	b.ReportMetric(float64(s.Passed-base.Passed), "outputs")
	var actionDropped uint64
	for _, d := range defs {
		st, _ := m.Stats(ctx, d.Name)
		for _, a := range st.Actions {
			actionDropped += a.Dropped
		}
	}
	b.ReportMetric(float64(actionDropped), "action-dropped")
	bs := srv.Stats()
	b.ReportMetric(float64(bs.DroppedSlow+bs.DroppedQueue), "broker-dropped")
}

func all(int) bool { return true }

// actionsIdle reports whether every action has settled every row its rule
// emitted.
func actionsIdle(ctx context.Context, m *Manager, defs []Rule) bool {
	for _, d := range defs {
		st, _ := m.Stats(ctx, d.Name)
		if st.Queued > 0 {
			return false
		}
		for _, a := range st.Actions {
			if a.Queued > 0 || a.Delivered+a.Failed+a.Dropped < st.Passed {
				return false
			}
		}
	}
	return true
}

var republishAlert = []action.Spec{{Type: "republish", Topic: "alerts/${device}"}}

// BenchmarkThroughNoRules is the peer: the same load through the same
// broker with the rule manager as hook but no rules.
func BenchmarkThroughNoRules(b *testing.B) {
	benchThroughBroker(b, 10000, nil, Options{}, func(int) bool { return false })
}

// BenchmarkThroughFilterRepublish: one per-message rule, half the
// messages pass and are republished.
func BenchmarkThroughFilterRepublish(b *testing.B) {
	benchThroughBroker(b, 10000, []Rule{{Name: "hot", Enabled: true, Actions: republishAlert,
		SQL: "SELECT data.temp AS temp, topic(2) AS device FROM 'devices/+/telemetry' WHERE data.temp > 50"}}, Options{}, all)
}

// BenchmarkThroughTumblingAvg10kDevices: a 10 s tumbling average grouped
// by device over 10k devices; each window closes with 10 messages.
func BenchmarkThroughTumblingAvg10kDevices(b *testing.B) {
	benchThroughBroker(b, 10000, []Rule{{Name: "avg", Enabled: true, Actions: republishAlert,
		SQL: "SELECT topic(2) AS device, avg(data.temp) AS temp FROM 'devices/+/telemetry' GROUP BY topic(2), TUMBLINGWINDOW(ss, 10)"}},
		Options{IdleTimeout: -1}, all)
}

// BenchmarkThrough1000Rules: 1,000 per-device rules loaded (rule i reads
// devices/d<i>/telemetry); messages spread over 10k devices, so 10% of
// them match a rule.
func BenchmarkThrough1000Rules(b *testing.B) {
	defs := make([]Rule, 1000)
	for i := range defs {
		defs[i] = Rule{Name: fmt.Sprintf("r%d", i), Enabled: true, Actions: republishAlert,
			SQL: fmt.Sprintf("SELECT data.temp AS temp, topic(2) AS device FROM 'devices/d%d/telemetry' WHERE data.temp > 50", i)}
	}
	benchThroughBroker(b, 10000, defs, Options{}, func(dev int) bool { return dev < 1000 })
}

// The spool benchmarks: QoS 1 publishers, one rule storing every message
// to the time-series store (its WAL synced on an interval, so the
// difference between runs is the action spool): the queue in memory
// (durable: false), spooled with fsync always, and spooled with fsync
// interval. With the spool, each PUBACK waits until the outputs of the
// read pass are on disk.
func benchSpool(b *testing.B, durable bool, fsync spool.Fsync) {
	ts, err := tsdb.Open(context.Background(), tsdb.Options{Dir: b.TempDir(), Fsync: tsdb.FsyncInterval})
	if err != nil {
		b.Fatal(err)
	}
	defer ts.Close()
	opts := Options{Points: ts, SpoolDir: b.TempDir(), Spool: spool.Options{Fsync: fsync}}
	d := durable
	benchThroughBrokerQoS(b, 1, 10000, []Rule{{Name: "store", Enabled: true,
		Actions: []action.Spec{{Type: "tsdb", Measurement: "t", Tags: map[string]string{"device": "${device}"}, Durable: &d}},
		SQL:     "SELECT topic(2) AS device, data.temp AS temp FROM 'devices/+/telemetry'"}}, opts, all)
}

func BenchmarkSpoolQoS1Memory(b *testing.B)        { benchSpool(b, false, spool.FsyncAlways) }
func BenchmarkSpoolQoS1FsyncAlways(b *testing.B)   { benchSpool(b, true, spool.FsyncAlways) }
func BenchmarkSpoolQoS1FsyncInterval(b *testing.B) { benchSpool(b, true, spool.FsyncInterval) }
