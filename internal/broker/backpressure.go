package broker

import (
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// Backpressure for QoS 1 and 2.
//
// A QoS 1/2 message from a client that finds the queue of an ONLINE
// subscriber full (Options.MaxQueued) is queued anyway, its PUBACK/PUBREC
// is sent, and the publisher's reader stops reading until the subscriber
// has drained its queue to three quarters of the limit (or went offline),
// at most Options.BackpressureWait. TCP flow control then slows the
// publisher down, so nothing the broker acknowledged is dropped because a
// subscriber was briefly slower than its publisher. Each publisher adds at
// most one message beyond the limit before it waits, so a queue holds at
// most MaxQueued plus one message per publisher feeding it.
//
// When the wait runs out the subscriber counts as stalled: what it holds
// beyond the limit goes by Options.QueuePolicy (Stats.DroppedQueue,
// Stats.BackpressureTimeouts), and until its queue has drained publishers
// no longer wait for it, so a stuck consumer costs every publisher at most
// one wait. Offline sessions, messages from the server (Publish, wills) and
// a session's own messages never wait: they use the queue policy at once.

// lowWater is the queue length at which waiting publishers go on.
func (s *Server) lowWater() int {
	return s.opts.MaxQueued - s.opts.MaxQueued/4
}

// pollClosed is how often a waiting reader checks whether its connection
// was closed (takeover, shutdown) while it waits.
const pollClosed = 100 * time.Millisecond

// waitRoom is called by the reader after the message just handled was
// queued beyond the limit for the sessions in r.full. It hands the read
// pass's messages to the hook and sends their acks, then waits for room
// in each of those sessions, bounded by Options.BackpressureWait. It
// clears r.full and returns false when the connection was closed while it
// waited.
func (c *conn) waitRoom(r *router) bool {
	s := c.srv
	full := r.full
	defer func() {
		clear(full)
		r.full = full[:0]
	}()
	if !c.flushBatch() {
		return false
	}
	s.stats.backpressured.Add(1)
	deadline := time.Now().Add(s.opts.BackpressureWait)
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for _, ss := range full {
		for {
			ch := ss.roomWait()
			if ch == nil {
				break
			}
			d := time.Until(deadline)
			if d <= 0 {
				ss.giveUp()
				break
			}
			if t == nil {
				t = time.NewTimer(min(d, pollClosed))
			} else {
				t.Reset(min(d, pollClosed))
			}
			select {
			case <-ch:
			case <-t.C:
				if c.isClosed() {
					return false
				}
			}
		}
	}
	return true
}

// isClosed reports whether the connection's output was closed (by a
// takeover, a server shutdown or a failed write).
func (c *conn) isClosed() bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.outClosed
}

// roomWait returns nil when publishers may go on sending to ss (its queue
// is at or below the low-water mark, it is offline, gone or stalled), and
// otherwise a channel closed when that changes.
func (ss *session) roomWait() <-chan struct{} {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.gone || ss.stalled || ss.conn.Load() == nil || ss.queueLen() <= ss.srv.lowWater() {
		return nil
	}
	if ss.room == nil {
		ss.room = make(chan struct{})
	}
	return ss.room
}

// roomLocked wakes waiting publishers and ends the stalled state once the
// queue has drained to the low-water mark or the session is offline or gone.
func (ss *session) roomLocked() {
	if !ss.gone && ss.conn.Load() != nil && ss.queueLen() > ss.srv.lowWater() {
		return
	}
	ss.stalled = false
	if ss.room != nil {
		close(ss.room)
		ss.room = nil
	}
}

// giveUp is called when a publisher waited Options.BackpressureWait for
// room in ss in vain: ss is stalled, and what it queues beyond the limit
// goes by the queue policy.
func (ss *session) giveUp() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.gone || ss.stalled {
		return
	}
	ss.srv.stats.backpressureTimeouts.Add(1)
	ss.srv.log.Info("broker: subscriber queue did not drain in time; dropping by queue policy",
		"client", ss.id, "queued", ss.queueLen())
	ss.stalled = true
	ss.trimLocked()
	if ss.room != nil {
		close(ss.room)
		ss.room = nil
	}
}

// trimLocked applies Options.QueuePolicy to the messages queued beyond
// Options.MaxQueued.
func (ss *session) trimLocked() {
	s := ss.srv
	dropped := false
	for ss.queueLen() > s.opts.MaxQueued {
		s.stats.droppedQueue.Add(1)
		dropped = true
		var m outMsg
		if s.opts.QueuePolicy == DropOldest {
			m = ss.popLocked()
		} else {
			last := len(ss.queue) - 1
			m = ss.queue[last]
			ss.queue[last] = outMsg{}
			ss.queue = ss.queue[:last]
		}
		ss.doneLocked(&m)
	}
	if dropped && s.opts.QueuePolicy == DropDisconnect {
		if c := ss.conn.Load(); c != nil {
			s.log.Info("broker: session queue full; disconnecting", "client", ss.id)
			c.disconnect(packets.QuotaExceeded)
		}
	}
}
