package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
	"github.com/edgewise-iot/edgewise/internal/broker/topics"
)

// counters are the atomic counters behind Stats.
type counters struct {
	connections, connectsTotal, sessions, subscriptions  atomic.Int64
	messagesIn, messagesOut, bytesIn, bytesOut           atomic.Int64
	droppedSlow, droppedQueue, droppedTooLarge           atomic.Int64
	droppedExpired, denied, authFailures, protocolErrors atomic.Int64
	panics, throttled                                    atomic.Int64
	backpressured, backpressureTimeouts                  atomic.Int64
}

// Server is an MQTT 3.1.1 and 5.0 broker. Create it with New, feed it
// listeners with Serve and stop it with Close.
type Server struct {
	opts      Options
	log       *slog.Logger
	receiver  Receiver // the Authorizer's, if it is one
	subs      *topics.Trie[*subscription]
	retained  retainedStore
	stats     counters
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	routers   sync.Pool // *router for Publish and wills
	readBufs  sync.Pool // *[]byte of bigReadBuf bytes
	smallBufs sync.Pool // *[]byte of smallReadBuf bytes (idle connections hold none)
	outBufs   sync.Pool // *[]byte output buffers released by idle writers
	boxes     sync.Pool // empty *[]byte wrappers for the two pools above
	nextUID   atomic.Uint64
	closing   atomic.Bool
	store     SessionStore  // nil: nothing persists
	nextSeq   atomic.Uint64 // message and delivery ids in the store

	shareMu sync.Mutex // guards shares
	shares  map[string]*shareGroup

	mu        sync.Mutex // guards the fields below
	sessions  map[string]*session
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
}

// New returns a Server configured by opts.
func New(opts Options) (*Server, error) {
	if opts.MaxPacketSize < 0 || opts.MaxInflight < 0 || opts.MaxQueued < 0 || opts.MaxOutboundBytes < 0 ||
		opts.PublishRate < 0 || opts.PublishBurst < 0 {
		return nil, fmt.Errorf("broker: negative limit in options")
	}
	o := opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:      o,
		log:       o.Logger,
		subs:      topics.New[*subscription](),
		ctx:       ctx,
		cancel:    cancel,
		sessions:  make(map[string]*session),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
	}
	s.retained.init()
	s.receiver, _ = o.Authorizer.(Receiver)
	s.routers.New = func() any { return newRouter() }
	if o.SessionStore != nil {
		s.store = o.SessionStore
		if err := s.restore(); err != nil {
			cancel()
			return nil, fmt.Errorf("broker: restore sessions: %w", err)
		}
	}
	return s, nil
}

// Serve accepts connections on ln until Close is called, then returns nil.
// It may be called concurrently for several listeners.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				if backoff == 0 {
					backoff = 5 * time.Millisecond
				} else if backoff < time.Second {
					backoff *= 2
				}
				s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-s.ctx.Done():
					return nil
				}
				continue
			}
			return fmt.Errorf("broker: accept: %w", err)
		}
		backoff = 0
		if !s.serveConn(nc) {
			return nil
		}
	}
}

// serveConn starts the connection goroutine for nc. It returns false (and
// closes nc) when the server is closing.
func (s *Server) serveConn(nc net.Conn) bool {
	c := newConn(s, nc)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		_ = nc.Close()
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go c.run()
	return true
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Publish routes a server-originated message like a client's (it is not
// passed to the Hook). For QoS 1 and 2 it returns once the deliveries to
// persistent sessions are durable in the SessionStore.
func (s *Server) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	return s.PublishWithProperties(ctx, topic, payload, qos, retain, packets.Properties{})
}

// Close stops accepting, sends v5 clients DISCONNECT 0x8B, flushes and closes
// all connections and waits for the server's goroutines, bounded by ctx.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		_ = ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()

	for _, c := range conns {
		c.disconnect(packets.ServerShuttingDown)
	}
	for _, ss := range sessions {
		ss.stopTimers()
	}

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			_ = c.nc.Close()
		}
		s.mu.Unlock()
		err = fmt.Errorf("broker: close: %w", ctx.Err())
	}
	s.cancel()
	return err
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Connections:     c.connections.Load(),
		ConnectsTotal:   c.connectsTotal.Load(),
		Sessions:        c.sessions.Load(),
		Subscriptions:   c.subscriptions.Load(),
		Retained:        int64(s.retained.len()),
		MessagesIn:      c.messagesIn.Load(),
		MessagesOut:     c.messagesOut.Load(),
		BytesIn:         c.bytesIn.Load(),
		BytesOut:        c.bytesOut.Load(),
		DroppedSlow:     c.droppedSlow.Load(),
		DroppedQueue:    c.droppedQueue.Load(),
		DroppedTooLarge: c.droppedTooLarge.Load(),
		DroppedExpired:  c.droppedExpired.Load(),
		Denied:          c.denied.Load(),
		AuthFailures:    c.authFailures.Load(),
		ProtocolErrors:  c.protocolErrors.Load(),
		Panics:          c.panics.Load(),
		Throttled:       c.throttled.Load(),

		Backpressured:        c.backpressured.Load(),
		BackpressureTimeouts: c.backpressureTimeouts.Load(),
	}
	st.Dropped = st.DroppedSlow + st.DroppedQueue + st.DroppedTooLarge + st.DroppedExpired
	return st
}

// canPublish applies the '$' rule and the Authorizer.
func (s *Server) canPublish(p *Principal, topic string) bool {
	if s.opts.Authorizer == nil {
		return len(topic) == 0 || topic[0] != '$'
	}
	return s.opts.Authorizer.CanPublish(p, topic)
}

func (s *Server) canSubscribe(p *Principal, filter string) bool {
	if s.opts.Authorizer == nil {
		return true
	}
	return s.opts.Authorizer.CanSubscribe(p, filter)
}
