package broker

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

type nopHook struct{}

func (nopHook) OnPublish(context.Context, []*Message) error { return nil }

// fuzzSeeds are complete client byte streams: a CONNECT and what follows.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for _, v := range []byte{packets.V311, packets.V5} {
		b := packets.AppendConnect(nil, &packets.Connect{ProtocolVersion: v, ClientID: "f", CleanStart: true,
			WillFlag: true, WillTopic: "w", WillPayload: []byte("x"), KeepAlive: 10})
		seeds = append(seeds, append([]byte(nil), b...))
		b = packets.AppendSubscribe(b, v, &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{
			{Filter: "a/#", QoS: 1}, {Filter: "+/b", QoS: 0, NoLocal: true, RetainHandling: 1}}})
		b = packets.AppendPublish(b, v, &packets.Publish{Topic: "a/b", QoS: 1, PacketID: 2, Retain: true, Payload: []byte("p"),
			Properties: packets.Properties{MessageExpiry: u32(5), User: []packets.UserProperty{{Key: "k", Value: "v"}}}})
		b = packets.AppendPublish(b, v, &packets.Publish{Topic: "a/b", Payload: []byte("q")})
		b = packets.AppendAck(b, v, &packets.Ack{Type: packets.PUBACK, PacketID: 1})
		b = packets.AppendAck(b, v, &packets.Ack{Type: packets.PUBREL, PacketID: 9})
		b = packets.AppendUnsubscribe(b, v, &packets.Unsubscribe{PacketID: 3, Filters: []string{"a/#"}})
		b = packets.AppendPingreq(b)
		seeds = append(seeds, append([]byte(nil), b...))
		// QoS 2 both ways, shared subscriptions, aliases, subscription ids.
		b = packets.AppendSubscribe(b, v, &packets.Subscribe{PacketID: 4, Properties: packets.Properties{SubscriptionIDs: []int{3}},
			Subscriptions: []packets.Subscription{{Filter: "$share/g/a/+", QoS: 2}, {Filter: "a/b", QoS: 2}}})
		b = packets.AppendPublish(b, v, &packets.Publish{Topic: "a/b", QoS: 2, PacketID: 5, Payload: []byte("e"),
			Properties: packets.Properties{TopicAlias: u16(1), ResponseTopic: "r", CorrelationData: []byte{1}}})
		b = packets.AppendPublish(b, v, &packets.Publish{QoS: 2, PacketID: 5, Dup: true, Properties: packets.Properties{TopicAlias: u16(1)}})
		b = packets.AppendAck(b, v, &packets.Ack{Type: packets.PUBREL, PacketID: 5})
		b = packets.AppendAck(b, v, &packets.Ack{Type: packets.PUBREC, PacketID: 1})
		b = packets.AppendAck(b, v, &packets.Ack{Type: packets.PUBCOMP, PacketID: 1})
		seeds = append(seeds, append([]byte(nil), b...))
		b = packets.AppendDisconnect(b, v, &packets.Disconnect{ReasonCode: packets.DisconnectWithWill,
			Properties: packets.Properties{SessionExpiry: u32(0)}})
		seeds = append(seeds, b)
	}
	seeds = append(seeds, []byte{0x10, 0xff, 0xff, 0xff, 0x7f}, []byte("\x10\x0c\x00\x04MQTT\x05\x02\x00\x00\x00\x00\x00"))
	return seeds
}

// FuzzServerInput feeds arbitrary client byte streams to a connection and
// checks that the server never panics and releases the connection.
func FuzzServerInput(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	store, err := OpenFileStore(f.TempDir(), FileStoreOptions{})
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(Options{AllowAnonymous: true, Hook: nopHook{}, MaxPacketSize: 4096, ConnectTimeout: time.Second, SessionStore: store})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		_ = s.Close(context.Background())
		_ = store.Close()
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		drained := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, client)
			close(drained)
		}()
		if !s.serveConn(server) {
			t.Fatal("server closed")
		}
		_ = client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = client.Write(data)
		_ = client.Close()
		<-drained
		eventually(t, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.conns) == 0
		}, "connection not released")
		if p := s.Stats().Panics; p != 0 {
			t.Fatalf("%d panics", p)
		}
	})
}

// FuzzFileStoreLog opens a session store whose log holds arbitrary bytes:
// it must recover what is valid (or refuse with an error), never panic,
// and be able to append and reopen afterwards.
func FuzzFileStoreLog(f *testing.F) {
	var valid []byte
	m := &StoredMessage{ID: 1, Topic: "a/b", Payload: []byte("x"), QoS: 2, Properties: &packets.Properties{ContentType: "c"}}
	for _, r := range []*Record{
		{Op: OpSession, ClientID: "c", Expiry: 10},
		{Op: OpSubscribe, ClientID: "c", Sub: StoredSub{Filter: "a/#", QoS: 2, SubID: 3}},
		{Op: opMessage, Msg: m},
		{Op: OpEnqueue, ClientID: "c", Seq: 2, Msg: m, QoS: 2, SubIDs: []int{3}},
		{Op: OpSent, ClientID: "c", Seq: 2, PacketID: 5},
		{Op: OpInbound, ClientID: "c", PacketID: 6},
		{Op: OpRetain, Msg: m},
	} {
		valid = appendFrame(valid, r)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		wal := append([]byte(walMagic), make([]byte, 8)...)
		if err := os.WriteFile(filepath.Join(dir, "wal-0000000000000000"), append(wal, data...), 0o600); err != nil {
			t.Fatal(err)
		}
		fs, err := OpenFileStore(dir, FileStoreOptions{})
		if err != nil {
			return
		}
		st, err := fs.Load()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := fs.Sync(ctx, fs.Append(&Record{Op: OpSession, ClientID: "after", Expiry: 1})); err != nil {
			t.Fatal(err)
		}
		fs.Close()
		fs, err = OpenFileStore(dir, FileStoreOptions{})
		if err != nil {
			t.Fatalf("reopen after recovery: %v", err)
		}
		st2, _ := fs.Load()
		fs.Close()
		if len(st2.Sessions) != len(st.Sessions)+1 && len(st2.Sessions) != len(st.Sessions) {
			t.Fatalf("sessions %d then %d", len(st.Sessions), len(st2.Sessions))
		}
	})
}
