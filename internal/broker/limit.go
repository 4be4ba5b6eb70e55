package broker

import (
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what one listener accepts. The zero value accepts every
// connection.
type Limits struct {
	// MaxConnections is the most connections the listener keeps open at
	// once; a connection beyond it is closed right after accept, before any
	// byte is read (0 = no limit).
	MaxConnections int
	// ConnectRate is the sustained number of new connections per second the
	// listener admits (a token bucket; 0 = no limit). Connections arriving
	// faster are closed right after accept.
	ConnectRate float64
	// ConnectBurst is the bucket size: how many connections may arrive at
	// once after a quiet period (default: ConnectRate, at least 1).
	ConnectBurst int
}

// Refusal reasons counted by a limiter.
const (
	refusedNone = iota
	refusedMaxConnections
	refusedRate
)

// limiter enforces Limits and counts what it admits and refuses. It is
// shared by the TCP/TLS listener and the WebSocket handler.
type limiter struct {
	lim Limits

	mu     sync.Mutex // guards tokens and last
	tokens float64
	last   time.Time

	active      atomic.Int64
	accepted    atomic.Int64
	refusedMax  atomic.Int64
	refusedRate atomic.Int64
}

func newLimiter(l Limits) *limiter {
	if l.MaxConnections < 0 {
		l.MaxConnections = 0
	}
	if l.ConnectRate < 0 {
		l.ConnectRate = 0
	}
	if l.ConnectRate > 0 && l.ConnectBurst <= 0 {
		l.ConnectBurst = max(1, int(l.ConnectRate))
	}
	return &limiter{lim: l, tokens: float64(l.ConnectBurst)}
}

// admit decides about one new connection. On success the caller owns one
// active slot and must call release exactly once.
func (l *limiter) admit(now time.Time) int {
	if max := int64(l.lim.MaxConnections); max > 0 {
		if l.active.Add(1) > max {
			l.active.Add(-1)
			l.refusedMax.Add(1)
			return refusedMaxConnections
		}
	} else {
		l.active.Add(1)
	}
	if !l.take(now) {
		l.active.Add(-1)
		l.refusedRate.Add(1)
		return refusedRate
	}
	l.accepted.Add(1)
	return refusedNone
}

// take removes one token from the bucket, refilled at ConnectRate.
func (l *limiter) take(now time.Time) bool {
	if l.lim.ConnectRate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		if d := now.Sub(l.last).Seconds(); d > 0 {
			l.tokens = min(float64(l.lim.ConnectBurst), l.tokens+d*l.lim.ConnectRate)
		}
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

func (l *limiter) release() { l.active.Add(-1) }

func refusalText(r int) string {
	if r == refusedMaxConnections {
		return "max connections reached"
	}
	return "connect rate exceeded"
}
