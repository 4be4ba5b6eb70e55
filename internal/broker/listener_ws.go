package broker

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocketOptions configure a WebSocketListener.
type WebSocketOptions struct {
	// Name identifies the listener in logs and statistics (default "ws").
	Name string
	// Limits bound the connections admitted; a refused upgrade gets HTTP
	// 503 (max connections) or 429 (connect rate) before any WebSocket
	// handshake.
	Limits Limits
	// CheckOrigin decides about browser Origin headers; nil accepts every
	// origin (MQTT authenticates in CONNECT, not with cookies).
	CheckOrigin func(r *http.Request) bool
	// Logger receives refusals at debug level; nil discards.
	Logger *slog.Logger
}

// WebSocketListener carries MQTT over WebSocket: it is an http.Handler
// (mount it on "/mqtt" of any HTTP server) and a net.Listener for
// Server.Serve that yields each upgraded connection as a net.Conn. Binary
// frames carry the MQTT byte stream (packets may span frames and frames may
// hold several packets); the subprotocol "mqtt" (or "mqttv3.1") is selected
// when the client offers it. A text frame closes the connection, as MQTT
// requires.
type WebSocketListener struct {
	name     string
	addr     net.Addr
	lim      *limiter
	log      *slog.Logger
	upgrader websocket.Upgrader
	conns    chan net.Conn
	done     chan struct{}
	once     sync.Once
}

// NewWebSocketListener returns a listener whose Addr reports addr (the HTTP
// server's address, may be nil).
func NewWebSocketListener(addr net.Addr, opts WebSocketOptions) *WebSocketListener {
	if opts.Name == "" {
		opts.Name = "ws"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	check := opts.CheckOrigin
	if check == nil {
		check = func(*http.Request) bool { return true }
	}
	return &WebSocketListener{
		name: opts.Name,
		addr: addr,
		lim:  newLimiter(opts.Limits),
		log:  opts.Logger,
		upgrader: websocket.Upgrader{
			Subprotocols:    []string{"mqtt", "mqttv3.1"},
			CheckOrigin:     check,
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
		},
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
	}
}

// ServeHTTP upgrades the request and hands the connection to Accept.
func (l *WebSocketListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-l.done:
		wsRefuse(w, http.StatusServiceUnavailable, "the MQTT server is shutting down")
		return
	default:
	}
	if !websocket.IsWebSocketUpgrade(r) {
		wsRefuse(w, http.StatusBadRequest, "this endpoint carries MQTT over WebSocket; send a WebSocket upgrade request")
		return
	}
	if why := l.lim.admit(time.Now()); why != refusedNone {
		l.log.Debug("broker: WebSocket connection refused", "listener", l.name, "remote", r.RemoteAddr, "reason", refusalText(why))
		code := http.StatusServiceUnavailable
		if why == refusedRate {
			code = http.StatusTooManyRequests
		}
		wsRefuse(w, code, "MQTT listener "+l.name+": "+refusalText(why))
		return
	}
	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader already answered with an HTTP error.
		l.lim.release()
		l.log.Debug("broker: WebSocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := &wsConn{ws: ws, lim: l.lim}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		// wss:// with a client certificate the TLS server verified:
		// the Authenticator sees it as on the TLS listener.
		c.peer = r.TLS.PeerCertificates
	}
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	case <-r.Context().Done():
		_ = c.Close()
	}
}

func wsRefuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Accept returns the next upgraded connection.
func (l *WebSocketListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, errListenerClosed
	}
}

// Close makes Accept return an error and refuses further upgrades. It does
// not close the HTTP server the handler is mounted on.
func (l *WebSocketListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the address given to NewWebSocketListener.
func (l *WebSocketListener) Addr() net.Addr {
	if l.addr == nil {
		return wsAddr{}
	}
	return l.addr
}

// Name is the listener's name from its options.
func (l *WebSocketListener) Name() string { return l.name }

// Stats returns the listener's counters.
func (l *WebSocketListener) Stats() ListenerStats { return l.lim.stats(l.name, l.Addr()) }

type wsAddr struct{}

func (wsAddr) Network() string { return "ws" }
func (wsAddr) String() string  { return "websocket" }

// errTextFrame ends a connection that sent a text frame.
var errTextFrame = errors.New("broker: WebSocket text frame; MQTT needs binary frames")

// wsConn adapts a WebSocket to the byte stream a net.Conn carries. Reads
// continue across frames; each Write is one binary frame (the broker's
// writer already batches packets per Write).
type wsConn struct {
	ws     *websocket.Conn
	lim    *limiter
	r      io.Reader // current frame
	wmu    sync.Mutex
	closed atomic.Bool
	// wdl is the write deadline (unix ns, 0 = none). gorilla keeps its own
	// deadline in a plain field read by writes, so it is handed over under
	// wmu; SetWriteDeadline also sets it on the socket at once to
	// interrupt a write in progress, as net.Conn promises.
	wdl atomic.Int64
	// peer is the verified client certificate chain of a wss://
	// connection (leaf first), nil otherwise.
	peer []*x509.Certificate
}

// PeerCertificates returns the verified client certificate chain of a
// wss:// connection, or nil.
func (c *wsConn) PeerCertificates() []*x509.Certificate { return c.peer }

// peerCertificates is implemented by connections that carry a verified
// client certificate chain without being a *tls.Conn (WebSocket over TLS).
type peerCertificates interface {
	PeerCertificates() []*x509.Certificate
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				_ = c.ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseUnsupportedData, "MQTT needs binary frames"),
					time.Now().Add(time.Second))
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var dl time.Time
	if ns := c.wdl.Load(); ns != 0 {
		dl = time.Unix(0, ns)
	}
	_ = c.ws.SetWriteDeadline(dl)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close sends a close frame (best effort) and closes the connection.
func (c *wsConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.lim.release()
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(100*time.Millisecond))
	return c.ws.Close()
}

func (c *wsConn) LocalAddr() net.Addr               { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr              { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.wdl.Store(ns)
	return c.ws.NetConn().SetWriteDeadline(t)
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
