package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgewise-iot/edgewise/internal/edge/agents"
	"github.com/edgewise-iot/edgewise/internal/rules"
)

// RuleSetState is the central rule set the agent runs (DATA/ruleset.json).
type RuleSetState struct {
	Version         int64      `json:"version"`
	Rules           []string   `json:"rules"`
	AppliedAt       *time.Time `json:"applied_at,omitempty"`
	RejectedVersion int64      `json:"rejected_version,omitempty"`
	Error           string     `json:"error,omitempty"`
}

func (a *Agent) rulesetPath() string { return filepath.Join(a.cfg.DataDir, "ruleset.json") }

func (a *Agent) loadRuleSet() {
	b, err := os.ReadFile(a.rulesetPath())
	if err != nil {
		return
	}
	var st RuleSetState
	if err := json.Unmarshal(b, &st); err != nil {
		a.log.Error("ruleset.json unreadable; waiting for the cloud to send the rule set again", "err", err)
		return
	}
	a.rsMu.Lock()
	a.ruleset = st
	a.rsMu.Unlock()
}

func (a *Agent) saveRuleSet(st RuleSetState) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := a.rulesetPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return err
	}
	return os.Rename(tmp, a.rulesetPath())
}

// applyCentral applies a rule set pushed by the cloud: rules of the
// previous central set that are not in the new one are deleted, the others
// created or updated. A set that does not compile is rejected as a whole
// and reported; the agent keeps running the previous version.
func (a *Agent) applyCentral(payload []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.rsMu.Lock()
	defer a.rsMu.Unlock()
	cur := a.ruleset
	var rs agents.RuleSet
	err := json.Unmarshal(payload, &rs)
	if err == nil && rs.Agent != "" && rs.Agent != a.cfg.Name {
		err = fmt.Errorf("rule set is for agent %q, this is %q", rs.Agent, a.cfg.Name)
	}
	if err == nil && (rs.Version <= cur.Version || rs.Version == cur.RejectedVersion) {
		return // already running it (a retained message seen again) or already rejected
	}
	if err == nil {
		names := map[string]bool{}
		for _, d := range rs.Rules {
			if names[d.Name] {
				err = fmt.Errorf("rule %q appears twice", d.Name)
			}
			names[d.Name] = true
		}
		if err == nil {
			_, err = a.rules.Apply(ctx, rs.Rules)
		}
		if err == nil {
			for _, old := range cur.Rules {
				if !names[old] {
					if derr := a.rules.Delete(ctx, old); derr != nil && !errors.Is(derr, rules.ErrNotFound) && err == nil {
						err = fmt.Errorf("delete rule %q: %w", old, derr)
					}
				}
			}
		}
	}
	next := cur
	if err != nil {
		next.RejectedVersion, next.Error = rs.Version, err.Error()
		a.log.Error("central rule set rejected", "version", rs.Version, "running", cur.Version, "err", err)
	} else {
		now := time.Now().UTC()
		next = RuleSetState{Version: rs.Version, AppliedAt: &now}
		for _, d := range rs.Rules {
			next.Rules = append(next.Rules, d.Name)
		}
		slices.Sort(next.Rules)
		a.log.Info("central rule set applied", "version", rs.Version, "rules", len(rs.Rules))
	}
	if serr := a.saveRuleSet(next); serr != nil {
		a.log.Error("save ruleset.json", "err", serr)
	}
	a.ruleset = next
	go a.publishStatus()
}

// status is the agent's report to the cloud.
func (a *Agent) status() agents.Status {
	a.rsMu.Lock()
	rs := a.ruleset
	a.rsMu.Unlock()
	return agents.Status{Agent: a.cfg.Name, RulesVersion: rs.Version, Rules: rs.Rules, RejectedVersion: rs.RejectedVersion,
		RulesError: rs.Error, AppliedAt: rs.AppliedAt, StartedAt: a.started.UTC(), LocalRules: len(a.rules.List(context.Background()))}
}

func (a *Agent) publishStatus() {
	b, _ := json.Marshal(a.status())
	a.bridge.SetStatus(b)
}

// handler serves /healthz, /api/v1/stats and /api/v1/rules.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "uplink_connected": a.bridge.Stats().Connected})
	})
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if a.cfg.HTTP.Token != "" {
				tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
				if tok != a.cfg.HTTP.Token {
					writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "unauthorized",
						"message": "missing or invalid bearer token (send Authorization: Bearer <token>)"}})
					return
				}
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /api/v1/stats", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Stats())
	}))
	mux.HandleFunc("GET /api/v1/rules", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"rules": a.rules.List(r.Context()), "central": a.status()})
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found",
			"message": fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)}})
	})
	return mux
}

// Stats is the body of the agent's GET /api/v1/stats.
func (a *Agent) Stats() map[string]any {
	return map[string]any{
		"agent":      a.cfg.Name,
		"started_at": a.started.UTC(),
		"broker":     a.broker.Stats(),
		"rules":      a.rules.Summary(),
		"ruleset":    a.status(),
		"spool":      a.spool.Stats(),
		"uplink":     a.bridge.Stats(),
		"process":    processStats(),
	}
}

// ProcessStats is the agent's footprint.
type ProcessStats struct {
	RSSBytes   int64   `json:"rss_bytes"`
	CPUUserSec float64 `json:"cpu_user_sec"`
	CPUSysSec  float64 `json:"cpu_sys_sec"`
	Goroutines int     `json:"goroutines"`
	HeapBytes  uint64  `json:"heap_bytes"`
}

func processStats() ProcessStats {
	var ps ProcessStats
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				ps.RSSBytes = kb << 10
			}
		}
		f.Close()
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		ps.CPUUserSec = time.Duration(ru.Utime.Nano()).Seconds()
		ps.CPUSysSec = time.Duration(ru.Stime.Nano()).Seconds()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ps.Goroutines, ps.HeapBytes = runtime.NumGoroutine(), ms.HeapAlloc
	return ps
}
