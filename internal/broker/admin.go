package broker

// Receiver is an optional interface of an Authorizer: when the Authorizer
// implements it, every message is checked before it is delivered to a
// principal whose CheckReceive is set (live routing, queued QoS 1/2
// messages when they are sent, retained messages on subscribe). A refused
// message is dropped for that subscriber only and counted in
// Stats.Denied. Principals without CheckReceive are never asked about,
// which keeps the delivery path free of calls for them.
type Receiver interface {
	CanReceive(p *Principal, topic string) bool
}

// mayReceive applies the Receiver to one delivery.
func (s *Server) mayReceive(p *Principal, topic string) bool {
	if p == nil || !p.CheckReceive || s.receiver == nil {
		return true
	}
	if s.receiver.CanReceive(p, topic) {
		return true
	}
	s.stats.denied.Add(1)
	return false
}

// Disconnect closes the connection of clientID, sending a v5 client a
// DISCONNECT with reason (for example packets.NotAuthorized after its
// credentials were revoked). It reports whether the client was connected.
// The session itself follows its usual expiry rules.
func (s *Server) Disconnect(clientID string, reason byte) bool {
	s.mu.Lock()
	ss := s.sessions[clientID]
	var c *conn
	if ss != nil {
		c = ss.conn.Load()
	}
	s.mu.Unlock()
	if c == nil {
		return false
	}
	s.log.Info("broker: client disconnected by the server", "client", clientID, "reason", reason)
	c.disconnect(reason)
	return true
}

// DisconnectWhere closes every connected client for which match returns
// true (see Disconnect) and returns how many it closed. match is called
// with the server's session lock held and must not call the Server.
func (s *Server) DisconnectWhere(match func(clientID string, p *Principal) bool, reason byte) int {
	var victims []*conn
	s.mu.Lock()
	for id, ss := range s.sessions {
		if c := ss.conn.Load(); c != nil && match(id, c.principal) {
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		s.log.Info("broker: client disconnected by the server", "client", c.clientID, "reason", reason)
		c.disconnect(reason)
	}
	return len(victims)
}
