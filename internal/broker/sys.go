package broker

import (
	"context"
	"encoding/json"
	"math"
	"runtime/debug"
	"strconv"
	"time"
)

// SysOptions configure the $SYS statistics publisher (Server.RunSys).
type SysOptions struct {
	// Interval between publications; 0 or negative disables $SYS.
	Interval time.Duration
	// Version is published on $SYS/broker/version (default: the module
	// version from the build information).
	Version string
	// Listeners, when set, returns the listener counters published under
	// $SYS/broker/listeners/{name}/.
	Listeners func() []ListenerStats
}

// SysPrefix starts every statistics topic. Topics starting with '$' are
// not matched by subscriptions that start with a wildcard, so "#"
// subscribers never see them; the default Authorizer (and internal/auth)
// lets only admins subscribe to them.
const SysPrefix = "$SYS/broker/"

// RunSys publishes the server's statistics as retained QoS 0 messages
// under $SYS/broker/ every o.Interval until ctx is done or the server
// closes, in the tree Mosquitto users know:
//
//	version, uptime ("N seconds"), timestamp (start, RFC 3339)
//	clients/connected, clients/disconnected, clients/total, clients/maximum
//	connects/total, subscriptions/count, retained messages/count
//	messages/received, messages/sent, bytes/received, bytes/sent
//	dropped/total, dropped/slow, dropped/queue, dropped/too_large, dropped/expired
//	denied, auth_failures, protocol_errors
//	load/{messages/received,messages/sent,bytes/received,bytes/sent,connections}/{1min,5min,15min}
//	listeners/{name}/{connections,accepted,refused/max_connections,refused/rate}
//	stats (the whole Stats as JSON)
//
// Load figures are per-minute rates, exponentially averaged over 1, 5 and
// 15 minutes like Unix load averages. A value is republished only when it
// changed. Uptime counts from the call.
func (s *Server) RunSys(ctx context.Context, o SysOptions) error {
	if o.Interval <= 0 {
		return nil
	}
	if o.Version == "" {
		o.Version = buildVersion()
	}
	sys := newSysState(time.Now(), o.Version)
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		var ls []ListenerStats
		if o.Listeners != nil {
			ls = o.Listeners()
		}
		for _, m := range sys.sample(s.Stats(), ls, time.Now()) {
			if err := s.Publish(ctx, m.topic, m.payload, 0, true); err != nil {
				if ctx.Err() != nil || s.closing.Load() {
					return nil
				}
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

type sysMsg struct {
	topic   string
	payload []byte
}

// loadAvg is one exponentially averaged per-minute rate over three windows.
type loadAvg struct {
	name string
	last int64
	avg  [3]float64
}

var loadWindows = [3]struct {
	suffix string
	d      time.Duration
}{{"1min", time.Minute}, {"5min", 5 * time.Minute}, {"15min", 15 * time.Minute}}

func (l *loadAvg) update(v int64, dt time.Duration) {
	perMin := float64(v-l.last) / dt.Minutes()
	l.last = v
	for i, w := range loadWindows {
		decay := math.Exp(-dt.Seconds() / w.d.Seconds())
		l.avg[i] = l.avg[i]*decay + perMin*(1-decay)
	}
}

// sysState turns successive Stats snapshots into $SYS messages.
type sysState struct {
	start   time.Time
	version string
	prev    time.Time
	maxConn int64
	loads   []*loadAvg
	sent    map[string]string // last payload per topic
	msgs    []sysMsg
}

func newSysState(start time.Time, version string) *sysState {
	return &sysState{
		start: start, version: version, sent: make(map[string]string),
		loads: []*loadAvg{
			{name: "messages/received"}, {name: "messages/sent"},
			{name: "bytes/received"}, {name: "bytes/sent"}, {name: "connections"},
		},
	}
}

func (y *sysState) put(topic, v string) {
	topic = SysPrefix + topic
	if old, ok := y.sent[topic]; ok && old == v {
		return
	}
	y.sent[topic] = v
	y.msgs = append(y.msgs, sysMsg{topic: topic, payload: []byte(v)})
}

func (y *sysState) putInt(topic string, v int64) { y.put(topic, strconv.FormatInt(v, 10)) }

// sample returns the messages whose value changed since the last sample.
func (y *sysState) sample(st Stats, listeners []ListenerStats, now time.Time) []sysMsg {
	y.msgs = y.msgs[:0]
	y.put("version", "edgewise "+y.version)
	y.put("timestamp", y.start.UTC().Format(time.RFC3339))
	y.put("uptime", strconv.FormatInt(int64(now.Sub(y.start).Seconds()), 10)+" seconds")
	y.maxConn = max(y.maxConn, st.Connections)
	y.putInt("clients/connected", st.Connections)
	y.putInt("clients/disconnected", max(0, st.Sessions-st.Connections))
	y.putInt("clients/total", st.Sessions)
	y.putInt("clients/maximum", y.maxConn)
	y.putInt("connects/total", st.ConnectsTotal)
	y.putInt("subscriptions/count", st.Subscriptions)
	y.putInt("retained messages/count", st.Retained)
	y.putInt("messages/received", st.MessagesIn)
	y.putInt("messages/sent", st.MessagesOut)
	y.putInt("bytes/received", st.BytesIn)
	y.putInt("bytes/sent", st.BytesOut)
	y.putInt("dropped/total", st.Dropped)
	y.putInt("dropped/slow", st.DroppedSlow)
	y.putInt("dropped/queue", st.DroppedQueue)
	y.putInt("dropped/too_large", st.DroppedTooLarge)
	y.putInt("dropped/expired", st.DroppedExpired)
	y.putInt("denied", st.Denied)
	y.putInt("auth_failures", st.AuthFailures)
	y.putInt("protocol_errors", st.ProtocolErrors)
	vals := []int64{st.MessagesIn, st.MessagesOut, st.BytesIn, st.BytesOut, st.ConnectsTotal}
	if y.prev.IsZero() {
		for i, l := range y.loads {
			l.last = vals[i]
		}
	} else if dt := now.Sub(y.prev); dt > 0 {
		for i, l := range y.loads {
			l.update(vals[i], dt)
		}
	}
	y.prev = now
	for _, l := range y.loads {
		for i, w := range loadWindows {
			y.put("load/"+l.name+"/"+w.suffix, strconv.FormatFloat(l.avg[i], 'f', 2, 64))
		}
	}
	for _, ls := range listeners {
		p := "listeners/" + ls.Name + "/"
		y.putInt(p+"connections", ls.Connections)
		y.putInt(p+"accepted", ls.Accepted)
		y.putInt(p+"refused/max_connections", ls.RefusedMaxConnections)
		y.putInt(p+"refused/rate", ls.RefusedRate)
	}
	if b, err := json.Marshal(st); err == nil {
		y.put("stats", string(b))
	}
	return y.msgs
}
