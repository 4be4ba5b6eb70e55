package stream

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules/sql"
)

// stateVersion is the format of State; Restore refuses other versions.
const stateVersion = 1

type stateDoc struct {
	Version int          `json:"version"`
	SQL     string       `json:"sql_sha256"`
	Stats   RuleStats    `json:"stats"`
	Groups  []groupState `json:"groups"`
}

type groupState struct {
	Key      string       `json:"key"`
	MaxT     int64        `json:"max_t"`
	Closed   int64        `json:"closed"`
	LastSeen time.Time    `json:"last_seen"`
	Since    int          `json:"since,omitempty"`
	Windows  []winState   `json:"windows,omitempty"`
	Entries  []entryState `json:"entries,omitempty"`
}

type winState struct {
	Start int64     `json:"start"`
	End   int64     `json:"end"`
	LastT int64     `json:"last_t"`
	Last  msgState  `json:"last"`
	Accs  []sql.Acc `json:"accs"`
}

type entryState struct {
	T       int64    `json:"t"`
	Emitted bool     `json:"emitted,omitempty"`
	M       msgState `json:"m"`
}

type msgState struct {
	Topic     string    `json:"topic"`
	Payload   []byte    `json:"payload"`
	ClientID  string    `json:"client_id,omitempty"`
	Principal string    `json:"principal,omitempty"`
	QoS       byte      `json:"qos,omitempty"`
	Received  time.Time `json:"received"`
}

func toMsgState(m *Message) msgState {
	return msgState{m.Topic, m.Payload, m.ClientID, m.Principal, m.QoS, m.Received}
}

func (s msgState) message() *Message {
	return &Message{Topic: s.Topic, Payload: s.Payload, ClientID: s.ClientID, Principal: s.Principal, QoS: s.QoS, Received: s.Received}
}

func sqlHash(src string) string {
	h := sha256.Sum256([]byte(src))
	return hex.EncodeToString(h[:])
}

// State serialises the rule's open windows and counters (JSON) so that a
// restarted rule with the same SQL continues where it stopped; every
// window type is covered. Per-message rules have only counters.
func (r *Rule) State() ([]byte, error) {
	d := stateDoc{Version: stateVersion, SQL: sqlHash(r.src), Stats: r.stats}
	for _, g := range r.groups {
		gs := groupState{Key: g.key, MaxT: g.maxT, Closed: g.closed, LastSeen: g.lastSeen, Since: g.since}
		for _, w := range g.open {
			gs.Windows = append(gs.Windows, winState{Start: w.start, End: w.end, LastT: w.lastT, Last: toMsgState(w.last), Accs: w.accs})
		}
		for _, e := range g.entries {
			gs.Entries = append(gs.Entries, entryState{T: e.t, Emitted: e.emitted, M: toMsgState(e.m)})
		}
		d.Groups = append(d.Groups, gs)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("stream: rule %s: state: %w", r.name, err)
	}
	return b, nil
}

// Restore replaces the rule's windows and counters with a State taken from
// a rule with the same SQL. Windows that should have closed while the rule
// was stopped close on the next Tick (idle timeout) or on the next message.
func (r *Rule) Restore(b []byte) error {
	var d stateDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("stream: rule %s: restore: %w", r.name, err)
	}
	if d.Version != stateVersion {
		return fmt.Errorf("stream: rule %s: restore: state version %d, want %d", r.name, d.Version, stateVersion)
	}
	if d.SQL != sqlHash(r.src) {
		return fmt.Errorf("stream: rule %s: restore: the state belongs to a different SQL", r.name)
	}
	groups := map[string]*group{}
	for _, gs := range d.Groups {
		if r.win == nil {
			return fmt.Errorf("stream: rule %s: restore: window state for a rule without windows", r.name)
		}
		g := &group{key: gs.Key, maxT: gs.MaxT, closed: gs.Closed, lastSeen: gs.LastSeen, since: gs.Since}
		for _, ws := range gs.Windows {
			if len(ws.Accs) != len(r.st.Aggs) {
				return fmt.Errorf("stream: rule %s: restore: window has %d aggregates, want %d", r.name, len(ws.Accs), len(r.st.Aggs))
			}
			for i, a := range ws.Accs {
				if a.Name != r.st.Aggs[i].Name {
					return fmt.Errorf("stream: rule %s: restore: aggregate %d is %s, want %s", r.name, i, a.Name, r.st.Aggs[i].Name)
				}
			}
			g.open = append(g.open, &twin{start: ws.Start, end: ws.End, lastT: ws.LastT, last: ws.Last.message(), accs: ws.Accs})
		}
		for _, es := range gs.Entries {
			g.entries = append(g.entries, entry{t: es.T, emitted: es.Emitted, m: es.M.message()})
		}
		groups[g.key] = g
	}
	if r.win != nil {
		r.groups = groups
		r.buffered = 0
		for _, g := range groups {
			r.buffered += len(g.entries)
		}
	}
	r.stats = d.Stats
	return nil
}
