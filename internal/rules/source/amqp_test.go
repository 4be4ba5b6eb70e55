package source_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/ingest"
	"github.com/edgewise-iot/edgewise/internal/rules"
	"github.com/edgewise-iot/edgewise/internal/rules/action"
	"github.com/edgewise-iot/edgewise/internal/rules/source"
	"github.com/edgewise-iot/edgewise/internal/store"
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

// server is the real broker, store, ingest pipeline and rule manager wired
// as the app wires them.
type server struct {
	broker *broker.Server
	addr   string
	ts     *tsdb.DB
	rules  *rules.Manager
}

type lateHook struct{ h broker.PublishHook }

func (l *lateHook) OnPublish(ctx context.Context, b []*broker.Message) error {
	return l.h.OnPublish(ctx, b)
}

func newServer(t testing.TB) *server {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	ts, err := tsdb.Open(ctx, tsdb.Options{Dir: filepath.Join(dir, "tsdb")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	pipe, err := ingest.NewPipeline(ingest.Options{Points: ts})
	if err != nil {
		t.Fatal(err)
	}
	hook := &lateHook{}
	b, err := broker.New(broker.Options{Hook: hook, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(ln)
	t.Cleanup(func() { b.Close(context.Background()) })
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m, err := rules.New(ctx, db, rules.Options{Publisher: b, Ingest: pipe})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	hook.h = broker.ChainHooks(pipe, m)
	return &server{broker: b, addr: ln.Addr().String(), ts: ts, rules: m}
}

func unique(p string) string { return fmt.Sprintf("%s_%d_%d", p, os.Getpid(), time.Now().UnixNano()) }

// rabbit declares a unique queue (with a dead-letter queue) and returns a
// channel to publish on.
func rabbit(t *testing.T) (url, queue, dlq string, ch *amqp.Channel) {
	url = testenv.Service(t, testenv.AMQP)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if ch, err = conn.Channel(); err != nil {
		t.Fatal(err)
	}
	queue, dlq = unique("ew_src"), unique("ew_dlq")
	if _, err := ch.QueueDeclare(dlq, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, false, false, false, amqp.Table{
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq,
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch.QueueDelete(queue, false, false, false)
		ch.QueueDelete(dlq, false, false, false)
	})
	return url, queue, dlq, ch
}

func publish(t *testing.T, ch *amqp.Channel, queue string, headers amqp.Table, body string) {
	t.Helper()
	if err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{Headers: headers, Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
}

// TestAMQPSourceFeedsStorageRulesAndSubscribers: a gateway speaking AMQP
// reaches storage, MQTT subscribers and the rules; a message whose topic
// cannot be rendered is dead-lettered.
func TestAMQPSourceFeedsStorageRulesAndSubscribers(t *testing.T) {
	srv := newServer(t)
	url, queue, dlq, ch := rabbit(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := srv.rules.Create(ctx, rules.Rule{Name: "hot", Enabled: true,
		SQL:     "SELECT topic(2) AS device, data.temp AS temp FROM 'devices/+/telemetry' WHERE data.temp > 50",
		Actions: []action.Spec{{Type: "republish", Topic: "alerts/${device}"}}}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	sub := mqtt3.NewClient(mqtt3.NewClientOptions().AddBroker("tcp://" + srv.addr).SetClientID("sub"))
	if tok := sub.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("#", 1, func(_ mqtt3.Client, m mqtt3.Message) { got <- m.Topic() + " " + string(m.Payload()) }); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	src, err := source.NewAMQP(source.Config{URL: url, Queue: queue, Topic: "devices/${headers.device_id}/telemetry", Prefetch: 10}, srv.rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	now := time.Now().UTC()
	publish(t, ch, queue, amqp.Table{"device_id": "gw7"}, fmt.Sprintf(`{"device_id":"gw7","timestamp":%q,"data":{"temp":71.5}}`, now.Format(time.RFC3339Nano)))
	publish(t, ch, queue, nil, `{"data":{"temp":1}}`) // no device_id header: rejected

	want := map[string]bool{
		fmt.Sprintf(`devices/gw7/telemetry {"device_id":"gw7","timestamp":%q,"data":{"temp":71.5}}`, now.Format(time.RFC3339Nano)): true,
		`alerts/gw7 {"device":"gw7","temp":71.5}`: true,
	}
	for len(want) > 0 {
		select {
		case m := <-got:
			if !want[m] {
				t.Fatalf("unexpected MQTT message %s (want %v)", m, want)
			}
			delete(want, m)
		case <-time.After(waitFor):
			t.Fatalf("missing MQTT messages %v", want)
		}
	}
	eventually(t, func() bool {
		series, err := srv.ts.Query(ctx, tsdb.Query{Measurement: "telemetry", Tags: []tsdb.Tag{{Key: "device_id", Value: "gw7"}}})
		return err == nil && len(series) == 1
	}, "telemetry stored")
	eventually(t, func() bool {
		st := src.Stats()
		return st.Injected == 1 && st.Rejected == 1 && st.Received == 2
	}, "source stats %+v", src.Stats())
	eventually(t, func() bool {
		q, err := ch.QueueDeclarePassive(dlq, false, false, false, false, nil)
		return err == nil && q.Messages == 1
	}, "rejected message dead-lettered")
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil || q.Messages != 0 {
		t.Fatalf("queue holds %d messages (%v), want all settled", q.Messages, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestAMQPSourceRequeuesWhenStorageFails: a message is acknowledged only
// after it was stored; while storage fails it stays in RabbitMQ.
func TestAMQPSourceRequeuesWhenStorageFails(t *testing.T) {
	srv := newServer(t)
	srv.ts.Close() // every write now fails
	url, queue, _, ch := rabbit(t)
	ctx, cancel := context.WithCancel(context.Background())
	src, err := source.NewAMQP(source.Config{URL: url, Queue: queue, Topic: "devices/${payload.device_id}/telemetry"}, srv.rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	publish(t, ch, queue, nil, `{"device_id":"d1","data":{"temp":1}}`)
	eventually(t, func() bool { return src.Stats().Requeued >= 2 }, "requeued while storage fails")
	if st := src.Stats(); st.Injected != 0 || !strings.Contains(st.LastError, "store") {
		t.Fatalf("stats %+v", st)
	}
	cancel()
	<-done
	eventually(t, func() bool {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		return err == nil && q.Messages == 1
	}, "message back in the queue after the source stopped")
}

func TestNewAMQPValidates(t *testing.T) {
	two := byte(2)
	for _, c := range []source.Config{
		{URL: "http://x", Queue: "q", Topic: "t"},
		{URL: "amqp://x", Topic: "t"},
		{URL: "amqp://x", Queue: "q"},
		{URL: "amqp://x", Queue: "q", Topic: "a/${"},
		{URL: "amqp://x", Queue: "q", Topic: "t", QoS: &two},
	} {
		if _, err := source.NewAMQP(c, nil, nil); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestAMQPSourceReconnects: RabbitMQ cancels the consumer (its queue is
// deleted); the source reconnects with backoff until the queue exists
// again and consumes what is published after, and every message of a
// burst is settled with grouped acknowledgements.
func TestAMQPSourceReconnects(t *testing.T) {
	srv := newServer(t)
	url, queue, dlq, ch := rabbit(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, err := source.NewAMQP(source.Config{URL: url, Queue: queue, Topic: "devices/${payload.device_id}/telemetry", Prefetch: 50}, srv.rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	const burst = 300
	for i := range burst {
		publish(t, ch, queue, nil, fmt.Sprintf(`{"device_id":"a%d","data":{"n":%d}}`, i%7, i))
	}
	eventually(t, func() bool { return src.Stats().Injected == burst }, "burst injected: %+v", src.Stats())
	eventually(t, func() bool {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		return err == nil && q.Messages == 0 && q.Consumers == 1
	}, "burst acknowledged")
	if st := src.Stats(); st.Received != burst || st.Acks == 0 || st.Acks > burst {
		t.Fatalf("after the burst: %+v", st)
	}
	t.Logf("%d messages settled with %d basic.ack frames", burst, src.Stats().Acks)

	// RabbitMQ ends the consumer: the queue goes away.
	if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return !src.Stats().Connected }, "source noticed the cancel")
	if _, err := ch.QueueDeclare(queue, false, false, false, false, amqp.Table{
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq,
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return src.Stats().Connected }, "source reconnected: %+v", src.Stats())
	publish(t, ch, queue, nil, `{"device_id":"after","data":{"n":1}}`)
	eventually(t, func() bool { return src.Stats().Injected == burst+1 }, "message after reconnect injected: %+v", src.Stats())
	if st := src.Stats(); st.Reconnects == 0 {
		t.Fatalf("no reconnect counted: %+v", st)
	}
	eventually(t, func() bool {
		series, err := srv.ts.Query(ctx, tsdb.Query{Measurement: "telemetry", Tags: []tsdb.Tag{{Key: "device_id", Value: "after"}}})
		return err == nil && len(series) == 1
	}, "message after reconnect stored")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// BenchmarkAMQPSource: messages/s from a RabbitMQ queue into the broker,
// storage and rules (no rules loaded), acknowledging each message versus
// grouped acknowledgements (the default, prefetch/2).
func BenchmarkAMQPSource(b *testing.B) {
	for _, ackBatch := range []int{1, 0} {
		name := "ack_each"
		if ackBatch == 0 {
			name = "ack_batch"
		}
		b.Run(name, func(b *testing.B) {
			benchSource(b, ackBatch)
		})
	}
}

func benchSource(b *testing.B, ackBatch int) {
	url := os.Getenv("EDGEWISE_TEST_AMQP")
	if url == "" {
		b.Skip("EDGEWISE_TEST_AMQP not set")
	}
	srv := newServer(b)
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	queue := unique("ew_bench")
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	defer ch.QueueDelete(queue, false, false, false)
	body := []byte(`{"device_id":"d1","data":{"temp":21.5}}`)
	for range b.N {
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	eventuallyB(b, func() bool {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		return err == nil && q.Messages == b.N
	})
	src, err := source.NewAMQP(source.Config{URL: url, Queue: queue, Topic: "devices/${payload.device_id}/telemetry", Prefetch: 200, AckBatch: ackBatch}, srv.rules, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	begin := time.Now()
	go src.Run(ctx)
	eventuallyB(b, func() bool { return src.Stats().Injected == uint64(b.N) })
	el := time.Since(begin)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(src.Stats().Acks), "acks")
}

func eventuallyB(b *testing.B, cond func() bool) {
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("condition not met")
		}
		time.Sleep(time.Millisecond)
	}
}
