package access

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Entry is one audit record: who changed what, when, and how it ended.
type Entry struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	TokenID string    `json:"token_id,omitempty"`
	// Action is the route, e.g. "POST /api/v1/things".
	Action string `json:"action"`
	// Target is the request path, e.g. "/api/v1/things/sensor-1".
	Target string `json:"target"`
	Status int    `json:"status"`
	// Result is "ok" (2xx), "denied" (401, 403) or "error".
	Result  string `json:"result"`
	Message string `json:"message,omitempty"`
	Remote  string `json:"remote,omitempty"`
}

// ResultOf classifies an HTTP status.
func ResultOf(status int) string {
	switch {
	case status < 400:
		return "ok"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "denied"
	}
	return "error"
}

// Record appends an entry (At and Result are filled in when zero). Every
// 1,000 records the log is trimmed to Options.AuditMaxEntries.
func (s *Service) Record(ctx context.Context, e Entry) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	if e.Result == "" {
		e.Result = ResultOf(e.Status)
	}
	if len(e.Message) > 1024 {
		e.Message = e.Message[:1024]
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO audit_log (at, actor, token_id, action, target, status, result, message, remote) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.At.UTC().UnixMicro(), e.Actor, e.TokenID, e.Action, e.Target, e.Status, e.Result, e.Message, e.Remote); err != nil {
		return fmt.Errorf("access: audit: %w", err)
	}
	s.auditMu.Lock()
	s.inserts++
	trim := s.inserts%1000 == 0
	s.auditMu.Unlock()
	if trim {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM audit_log WHERE id <= (SELECT MAX(id) FROM audit_log) - ?`, s.max); err != nil {
			return fmt.Errorf("access: audit trim: %w", err)
		}
	}
	return nil
}

// AuditFilter selects audit entries.
type AuditFilter struct {
	Limit  int
	Before int64  // cursor: only entries with a smaller id (0: from the newest)
	Actor  string // exact actor, or a token id
	Target string // path prefix
}

// Audit returns entries newest first and the cursor of the next page (0
// after the last).
func (s *Service) Audit(ctx context.Context, f AuditFilter) ([]Entry, int64, error) {
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := `SELECT id, at, actor, token_id, action, target, status, result, message, remote FROM audit_log WHERE 1 = 1`
	var args []any
	if f.Before > 0 {
		q += ` AND id < ?`
		args = append(args, f.Before)
	}
	if f.Actor != "" {
		q += ` AND (actor = ? OR token_id = ?)`
		args = append(args, f.Actor, f.Actor)
	}
	if f.Target != "" {
		q += ` AND substr(target, 1, ?) = ?`
		args = append(args, len(f.Target), f.Target)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("access: audit: %w", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		var e Entry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.TokenID, &e.Action, &e.Target, &e.Status, &e.Result, &e.Message, &e.Remote); err != nil {
			return nil, 0, fmt.Errorf("access: audit: %w", err)
		}
		e.At = time.UnixMicro(at).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("access: audit: %w", err)
	}
	var next int64
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// RouteScope returns the scope an API route pattern ("METHOD /path")
// needs. Reads need :read, other methods :write, of the resource the first
// path segment after /api/v1/ names; telemetry reads under /things need
// telemetry:read; tokens, audit, apply, export and anything unknown need
// admin; GET /api/v1/stats only a valid token.
func RouteScope(pattern string) string {
	method, path, _ := strings.Cut(pattern, " ")
	read := method == http.MethodGet || method == http.MethodHead
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return Admin
	}
	seg, _, _ := strings.Cut(rest, "/")
	pick := func(r, w string) string {
		if read {
			return r
		}
		return w
	}
	switch seg {
	case "stats":
		return ""
	case "things":
		if strings.HasSuffix(path, "/telemetry") {
			return pick(TelemetryRead, TelemetryWrite)
		}
		return pick(ThingsRead, ThingsWrite)
	case "thing-types", "thing-groups", "search":
		return pick(ThingsRead, ThingsWrite)
	case "rules":
		return pick(RulesRead, RulesWrite)
	case "jobs":
		return pick(JobsRead, JobsWrite)
	}
	return Admin
}
