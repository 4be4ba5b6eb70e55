package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// ListenerOptions configure a Listener.
type ListenerOptions struct {
	// Name identifies the listener in logs, statistics and $SYS topics
	// ("tcp", "tls", "ws", ...; default "tcp").
	Name string
	// Limits bound the connections the listener admits.
	Limits Limits
	// TLS, when set, makes the listener speak TLS (see TLSOptions.Config).
	// The handshake runs on the connection's goroutine, never in Accept,
	// and only for connections the limits admitted.
	TLS *tls.Config
	// Logger receives refusals at debug level; nil discards.
	Logger *slog.Logger
}

// ListenerStats are the counters of one listener.
type ListenerStats struct {
	Name                  string `json:"name"`
	Addr                  string `json:"addr"`
	Connections           int64  `json:"connections"`             // open now
	Accepted              int64  `json:"accepted"`                // admitted since start
	RefusedMaxConnections int64  `json:"refused_max_connections"` // closed at accept: MaxConnections reached
	RefusedRate           int64  `json:"refused_rate"`            // closed at accept: ConnectRate exceeded
}

// Listener is a net.Listener for Server.Serve that enforces per-listener
// Limits and optionally terminates TLS. Refused connections are closed
// before anything is read from them and never reach the Server.
type Listener struct {
	inner net.Listener
	name  string
	tls   *tls.Config
	lim   *limiter
	log   *slog.Logger
}

// Listen announces on the local network address (network "tcp", "tcp4" or
// "tcp6") and returns a Listener with opts.
func Listen(network, addr string, opts ListenerOptions) (*Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %s %s: %w", opts.name(), addr, err)
	}
	return NewListener(ln, opts), nil
}

// NewListener wraps ln with opts. Closing the Listener closes ln.
func NewListener(ln net.Listener, opts ListenerOptions) *Listener {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{inner: ln, name: opts.name(), tls: opts.TLS, lim: newLimiter(opts.Limits), log: log}
}

func (o ListenerOptions) name() string {
	if o.Name == "" {
		return "tcp"
	}
	return o.Name
}

// Accept returns the next admitted connection (a *tls.Conn when the
// listener has a TLS config).
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.inner.Accept()
		if err != nil {
			return nil, err
		}
		if r := l.lim.admit(time.Now()); r != refusedNone {
			l.log.Debug("broker: connection refused at accept", "listener", l.name,
				"remote", nc.RemoteAddr().String(), "reason", refusalText(r))
			_ = nc.Close()
			continue
		}
		var c net.Conn = &countedConn{Conn: nc, lim: l.lim}
		if l.tls != nil {
			c = tls.Server(c, l.tls)
		}
		return c, nil
	}
}

// Close stops the listener; open connections are not affected.
func (l *Listener) Close() error { return l.inner.Close() }

// Addr is the listener's network address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Name is the listener's name from its options.
func (l *Listener) Name() string { return l.name }

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats { return l.lim.stats(l.name, l.inner.Addr()) }

func (l *limiter) stats(name string, addr net.Addr) ListenerStats {
	st := ListenerStats{
		Name:                  name,
		Connections:           l.active.Load(),
		Accepted:              l.accepted.Load(),
		RefusedMaxConnections: l.refusedMax.Load(),
		RefusedRate:           l.refusedRate.Load(),
	}
	if addr != nil {
		st.Addr = addr.String()
	}
	return st
}

// countedConn gives its limiter slot back when closed (once).
type countedConn struct {
	net.Conn
	lim    *limiter
	closed atomic.Bool
}

// SyscallConn exposes the socket (for waiting on idle connections without
// a read buffer) when the wrapped connection has one.
func (c *countedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoRawConn
}

var errNoRawConn = errors.New("broker: connection has no socket")

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.lim.release()
	}
	return c.Conn.Close()
}

// errListenerClosed is returned by Accept of a closed WebSocket listener.
var errListenerClosed = fmt.Errorf("broker: listener closed: %w", net.ErrClosed)
