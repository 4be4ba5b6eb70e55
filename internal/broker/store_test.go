package broker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

func openStore(t *testing.T, dir string, opts FileStoreOptions) *FileStore {
	t.Helper()
	fs, err := OpenFileStore(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs
}

func syncAll(t *testing.T, fs *FileStore, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := fs.Sync(ctx, seq); err != nil {
		t.Fatal(err)
	}
}

// storeScript appends a representative history and returns the state it
// must leave.
func storeScript(t *testing.T, fs *FileStore) *StoredState {
	exp := time.Unix(2000000000, 0)
	m1 := &StoredMessage{ID: 10, Topic: "a/b", Payload: []byte("one"), QoS: 2, Properties: &packets.Properties{
		ContentType: "text/plain", CorrelationData: []byte{1}, User: []packets.UserProperty{{Key: "k", Value: "v"}}}}
	m2 := &StoredMessage{ID: 11, Topic: "a/c", Payload: []byte("two"), QoS: 1, Expiry: exp}
	ret := &StoredMessage{ID: 12, Topic: "r", Payload: []byte("kept"), QoS: 1, Retain: true}
	off := time.Unix(1700000000, 5)
	var seq uint64
	for _, r := range []*Record{
		{Op: OpSession, ClientID: "c1", Expiry: 300},
		{Op: OpSubscribe, ClientID: "c1", Sub: StoredSub{Filter: "a/#", QoS: 2, SubID: 5}},
		{Op: OpSubscribe, ClientID: "c1", Sub: StoredSub{Filter: "$share/g/x", QoS: 1, RetainAsPublished: true}},
		{Op: OpSubscribe, ClientID: "c1", Sub: StoredSub{Filter: "gone"}},
		{Op: OpUnsubscribe, ClientID: "c1", Sub: StoredSub{Filter: "gone"}},
		{Op: OpEnqueue, ClientID: "c1", Seq: 20, Msg: m1, QoS: 2, SubIDs: []int{5}},
		{Op: OpSent, ClientID: "c1", Seq: 20, PacketID: 7},
		{Op: OpEnqueue, ClientID: "c1", Seq: 21, Msg: m2, QoS: 1},
		{Op: OpEnqueue, ClientID: "c1", Seq: 22, Msg: m1, QoS: 1},
		{Op: OpDone, ClientID: "c1", Seq: 22},
		{Op: OpEnqueue, ClientID: "c1", Seq: 23, Msg: m1, QoS: 2},
		{Op: OpSent, ClientID: "c1", Seq: 23, PacketID: 8},
		{Op: OpReleased, ClientID: "c1", Seq: 23},
		{Op: OpInbound, ClientID: "c1", PacketID: 3},
		{Op: OpInbound, ClientID: "c1", PacketID: 4},
		{Op: OpInboundDone, ClientID: "c1", PacketID: 3},
		{Op: OpSession, ClientID: "c1", Expiry: 300, OfflineAt: off},
		{Op: OpSession, ClientID: "c2", Expiry: 60},
		{Op: OpEnqueue, ClientID: "c2", Seq: 24, Msg: m2, QoS: 1},
		{Op: OpSessionGone, ClientID: "c2"},
		{Op: OpRetain, Msg: ret},
		{Op: OpRetain, Msg: &StoredMessage{Topic: "r2", Payload: []byte("x")}},
		{Op: OpRetainClear, Topic: "r2"},
	} {
		seq = fs.Append(r)
	}
	syncAll(t, fs, seq)
	return &StoredState{
		Sessions: []StoredSession{{ClientID: "c1", Expiry: 300, OfflineAt: off,
			Subs: []StoredSub{{Filter: "$share/g/x", QoS: 1, RetainAsPublished: true}, {Filter: "a/#", QoS: 2, SubID: 5}},
			Deliveries: []StoredDelivery{
				{Seq: 20, Msg: m1, QoS: 2, SubIDs: []int{5}, PacketID: 7},
				{Seq: 21, Msg: m2, QoS: 1},
				{Seq: 23, Msg: m1, QoS: 2, PacketID: 8, Released: true},
			},
			Inbound: []uint16{4},
		}},
		Retained: []*StoredMessage{ret},
	}
}

func checkState(t *testing.T, fs *FileStore, want *StoredState) {
	t.Helper()
	got, err := fs.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("state after reopen:\n got %s\nwant %s", dumpState(got), dumpState(want))
	}
}

func dumpState(st *StoredState) string {
	s := ""
	for _, ss := range st.Sessions {
		s += fmt.Sprintf("session %+v\n", ss)
		for _, d := range ss.Deliveries {
			s += fmt.Sprintf("  delivery %+v msg %+v\n", d, *d.Msg)
		}
	}
	for _, m := range st.Retained {
		s += fmt.Sprintf("retained %+v\n", *m)
	}
	return s
}

func TestFileStoreReopen(t *testing.T) {
	dir := t.TempDir()
	fs := openStore(t, dir, FileStoreOptions{})
	want := storeScript(t, fs)
	checkState(t, fs, want)
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	checkState(t, openStore(t, dir, FileStoreOptions{}), want)
}

// TestFileStoreTornTail cuts the log in the middle of records (as a crash
// during a write leaves it) and checks that reopening keeps every complete
// record, drops the rest and keeps working.
func TestFileStoreTornTail(t *testing.T) {
	dir := t.TempDir()
	fs := openStore(t, dir, FileStoreOptions{})
	want := storeScript(t, fs)
	fs.Close()
	wal := filepath.Join(dir, "wal-0000000000000000")
	size := func() int64 {
		st, err := os.Stat(wal)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	for _, inHeader := range []bool{false, true} {
		before := size()
		fs = openStore(t, dir, FileStoreOptions{})
		syncAll(t, fs, fs.Append(&Record{Op: OpSubscribe, ClientID: "c1", Sub: StoredSub{Filter: "torn/#", QoS: 1}}))
		fs.Close()
		after := size()
		cut := int64(3) // inside the body
		if inHeader {
			cut = after - before - 4 // inside the frame header
		}
		if err := os.Truncate(wal, after-cut); err != nil {
			t.Fatal(err)
		}
		fs = openStore(t, dir, FileStoreOptions{})
		checkState(t, fs, want)
		fs.Close()
		if got := size(); got != before {
			t.Fatalf("log is %d bytes after cutting the torn record, want %d", got, before)
		}
	}
	// Garbage at the end is cut off too, and appending continues.
	f, _ := os.OpenFile(wal, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{9, 0, 0, 0, 1, 2, 3, 4, 5})
	f.Close()
	fs = openStore(t, dir, FileStoreOptions{})
	seq := fs.Append(&Record{Op: OpInbound, ClientID: "c1", PacketID: 9})
	syncAll(t, fs, seq)
	fs.Close()
	want.Sessions[0].Inbound = []uint16{4, 9}
	checkState(t, openStore(t, dir, FileStoreOptions{}), want)
}

// TestFileStoreCompaction makes the log grow past CompactSize with
// deliveries that complete, and checks that a snapshot replaces it and
// the live state survives reopening.
func TestFileStoreCompaction(t *testing.T) {
	dir := t.TempDir()
	fs := openStore(t, dir, FileStoreOptions{CompactSize: 4 << 10})
	want := storeScript(t, fs)
	payload := make([]byte, 200)
	var seq uint64
	for i := range 500 {
		m := &StoredMessage{ID: uint64(1000 + i), Topic: "bulk", Payload: payload, QoS: 1}
		fs.Append(&Record{Op: OpEnqueue, ClientID: "c1", Seq: uint64(5000 + i), Msg: m, QoS: 1})
		seq = fs.Append(&Record{Op: OpDone, ClientID: "c1", Seq: uint64(5000 + i)})
		if i%50 == 0 {
			syncAll(t, fs, seq)
		}
	}
	syncAll(t, fs, seq)
	if _, err := os.Stat(filepath.Join(dir, "snapshot")); err != nil {
		t.Fatalf("no snapshot after %d bytes of log: %v", 500*260, err)
	}
	ents, _ := os.ReadDir(dir)
	var total int64
	for _, e := range ents {
		info, _ := e.Info()
		total += info.Size()
	}
	if total > 64<<10 {
		t.Fatalf("store holds %d bytes for a small live state", total)
	}
	checkState(t, fs, want)
	fs.Close()
	checkState(t, openStore(t, dir, FileStoreOptions{CompactSize: 4 << 10}), want)
}

// TestSessionsSurviveRestart runs a broker with a FileStore, leaves a
// persistent v5 session offline with QoS 1 and 2 messages queued and
// in flight and a retained message, restarts the broker on the same
// directory and checks that the session resumes with everything.
func TestSessionsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	start := func() (*Server, string, *FileStore) {
		fs, err := OpenFileStore(dir, FileStoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Options{AllowAnonymous: true, SessionStore: fs, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		ln, addr := listen(t)
		go s.Serve(ln)
		return s, addr, fs
	}
	stop := func(s *Server, fs *FileStore) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := fs.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cp := func() *packets.Connect {
		return &packets.Connect{ClientID: "durable", Properties: packets.Properties{SessionExpiry: u32(3600)}}
	}
	s, addr, fs := start()
	sub := dialRaw(t, addr, packets.V5)
	sub.connect(cp())
	sub.send(packets.AppendSubscribe(nil, packets.V5, &packets.Subscribe{PacketID: 1, Properties: packets.Properties{SubscriptionIDs: []int{42}},
		Subscriptions: []packets.Subscription{{Filter: "d/#", QoS: 2}}}))
	sub.expect(packets.SUBACK)
	pub := dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "durable-pub", CleanStart: true})
	// Two QoS 2 messages in flight: one unanswered, one released.
	for i := uint16(1); i <= 2; i++ {
		pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "d/q2", QoS: 2, PacketID: i, Payload: fmt.Appendf(nil, "inflight-%d", i)}))
		expectAck(t, pub, packets.PUBREC, i, packets.Success)
	}
	p1, p2 := sub.expectPublish(), sub.expectPublish()
	sub.send(packets.AppendAck(nil, packets.V5, &packets.Ack{Type: packets.PUBREC, PacketID: p2.PacketID}))
	expectAck(t, sub, packets.PUBREL, p2.PacketID, packets.Success)
	sub.nc.Close()
	eventually(t, func() bool { return s.Stats().Connections == 1 }, "subscriber offline")
	// Queued while offline: QoS 1 and QoS 2, and a retained message.
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "d/q1", QoS: 1, PacketID: 3, Payload: []byte("queued-1")}))
	expectAck(t, pub, packets.PUBACK, 3, packets.Success)
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "d/q2", QoS: 2, PacketID: 4, Payload: []byte("queued-2")}))
	expectAck(t, pub, packets.PUBREC, 4, packets.Success)
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "ret/x", QoS: 1, PacketID: 5, Retain: true, Payload: []byte("kept")}))
	expectAck(t, pub, packets.PUBACK, 5, packets.Success)
	// A persistent publisher leaves an inbound QoS 2 id awaiting PUBREL.
	pp := dialRaw(t, addr, packets.V311)
	pp.connect(&packets.Connect{ClientID: "durable-pp"})
	pp.send(packets.AppendPublish(nil, packets.V311, &packets.Publish{Topic: "elsewhere", QoS: 2, PacketID: 9, Payload: []byte("p")}))
	expectAck(t, pp, packets.PUBREC, 9, packets.Success)
	stop(s, fs)

	s, addr, fs = start()
	defer stop(s, fs)
	sub = dialRaw(t, addr, packets.V5)
	if ca := sub.connect(cp()); !ca.SessionPresent {
		t.Fatal("session not present after restart")
	}
	again := sub.expectPublish()
	if !again.Dup || again.PacketID != p1.PacketID || string(again.Payload) != "inflight-1" {
		t.Fatalf("inflight resend: dup %v id %d (want %d) %q", again.Dup, again.PacketID, p1.PacketID, again.Payload)
	}
	expectAck(t, sub, packets.PUBREL, p2.PacketID, packets.Success)
	for _, want := range []struct {
		payload string
		qos     byte
	}{{"queued-1", 1}, {"queued-2", 2}} {
		p := sub.expectPublish()
		if string(p.Payload) != want.payload || p.QoS != want.qos || len(p.Properties.SubscriptionIDs) != 1 || p.Properties.SubscriptionIDs[0] != 42 {
			t.Fatalf("queued: %q qos %d ids %v, want %q qos %d ids [42]", p.Payload, p.QoS, p.Properties.SubscriptionIDs, want.payload, want.qos)
		}
	}
	// The subscription survived: live messages still arrive.
	pub = dialRaw(t, addr, packets.V5)
	pub.connect(&packets.Connect{ClientID: "durable-pub", CleanStart: true})
	pub.send(packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "d/live", Payload: []byte("live")}))
	if p := sub.expectPublish(); string(p.Payload) != "live" {
		t.Fatalf("live message %q", p.Payload)
	}
	// The retained message too.
	c := connectV5(t, addr, "durable-ret", true)
	c.sub(t, paho.SubscribeOptions{Topic: "ret/#"})
	if p := c.recv.next(t); string(p.Payload) != "kept" || !p.Retain {
		t.Fatalf("retained %q retain %v", p.Payload, p.Retain)
	}
	// The publisher's PUBLISH resent before PUBREL is not routed twice;
	// its PUBREL completes.
	pp = dialRaw(t, addr, packets.V311)
	if ca := pp.connect(&packets.Connect{ClientID: "durable-pp"}); !ca.SessionPresent {
		t.Fatal("publisher session not present")
	}
	pp.send(packets.AppendAck(nil, packets.V311, &packets.Ack{Type: packets.PUBREL, PacketID: 9}))
	expectAck(t, pp, packets.PUBCOMP, 9, packets.Success)
}
