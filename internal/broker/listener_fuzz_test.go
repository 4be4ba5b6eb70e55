package broker

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// FuzzWebSocketFrames sends arbitrary bytes to the broker over WebSocket,
// cut into binary frames of fuzzed sizes (and, when the first byte is odd,
// a text frame at the end). The broker must neither panic nor keep the
// connection slot after the client is gone, whatever the framing.
func FuzzWebSocketFrames(f *testing.F) {
	connect := packets.AppendConnect(nil, &packets.Connect{ProtocolVersion: packets.V5, ClientID: "fz", CleanStart: true})
	sub := packets.AppendSubscribe(nil, packets.V5, &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "a/#"}}})
	pub := packets.AppendPublish(nil, packets.V5, &packets.Publish{Topic: "a/b", Payload: []byte("hello")})
	f.Add([]byte{3, 1, 7}, append(append(append([]byte{}, connect...), sub...), pub...))
	f.Add([]byte{0}, connect)
	f.Add([]byte{1, 255}, append(append([]byte{}, connect...), 0xE0, 0x00))
	f.Add([]byte{2}, []byte{0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F})

	s, err := New(Options{AllowAnonymous: true, ConnectTimeout: 2 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	wl := NewWebSocketListener(nil, WebSocketOptions{})
	hs := httptest.NewServer(wl)
	go func() { _ = s.Serve(wl) }()
	f.Cleanup(func() {
		hs.Close()
		_ = s.Close(f.Context())
	})
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}

	f.Fuzz(func(t *testing.T, cuts []byte, data []byte) {
		ws, resp, err := d.Dial(url, http.Header{})
		if err != nil {
			t.Skip("dial:", err) // the machine, not the input
		}
		resp.Body.Close()
		_ = ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)])+1)
			}
			if ws.WriteMessage(websocket.BinaryMessage, rest[:n]) != nil {
				break
			}
			rest = rest[n:]
		}
		if len(cuts) > 0 && cuts[0]%2 == 1 {
			_ = ws.WriteMessage(websocket.TextMessage, []byte("text"))
		}
		_ = ws.Close()
		deadline := time.Now().Add(10 * time.Second)
		for wl.Stats().Connections != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := wl.Stats().Connections; n != 0 {
			t.Fatalf("%d WebSocket connections still held after the client left", n)
		}
		if p := s.Stats().Panics; p != 0 {
			t.Fatalf("%d connection goroutines panicked", p)
		}
	})
}
