package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/edgewise-iot/edgewise/internal/access"
	"github.com/edgewise-iot/edgewise/internal/influx/influxql"
)

// Access authenticates requests, manages API tokens and keeps the audit
// log (internal/access.Service).
type Access interface {
	Authenticate(ctx context.Context, secret string) (access.Principal, error)
	Record(ctx context.Context, e access.Entry) error
	Create(ctx context.Context, req access.CreateRequest, createdBy string) (access.Token, string, error)
	List(ctx context.Context, limit int, after string) ([]access.Token, string, error)
	Revoke(ctx context.Context, id string) (access.Token, error)
	Audit(ctx context.Context, f access.AuditFilter) ([]access.Entry, int64, error)
}

type principalKey struct{}

// principal returns who made the request (set by handle).
func principal(r *http.Request) access.Principal {
	p, _ := r.Context().Value(principalKey{}).(access.Principal)
	return p
}

// authenticate returns the principal of the request's bearer token.
func (a *API) authenticate(r *http.Request) (access.Principal, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return access.Principal{}, false
	}
	tok = strings.TrimSpace(tok)
	if a.opts.Access == nil {
		if !a.authorized(r) {
			return access.Principal{}, false
		}
		return access.Principal{Name: "admin", Scopes: []string{access.Admin}}, true
	}
	p, err := a.opts.Access.Authenticate(r.Context(), tok)
	return p, err == nil
}

// statusWriter remembers the status a handler wrote, for the audit log.
type statusWriter struct {
	http.ResponseWriter
	status int
	msg    string
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (a *API) audit(r *http.Request, pattern string, p access.Principal, sw *statusWriter) {
	actor := p.Actor()
	if actor == "" {
		actor = "unauthenticated"
	}
	e := access.Entry{Actor: actor, TokenID: p.TokenID, Action: pattern, Target: r.URL.Path, Status: sw.status, Message: sw.msg, Remote: r.RemoteAddr}
	// The change is done; a failed audit write must not undo or fail it,
	// but it must be visible.
	if err := a.opts.Access.Record(context.WithoutCancel(r.Context()), e); err != nil {
		a.log.Error("audit record failed", "action", pattern, "target", r.URL.Path, "actor", actor, "err", err)
	}
}

// influxScoped marks Influx requests with the scope they need: writes and
// deletes of points (also InfluxQL DELETE, DROP SERIES and SELECT INTO)
// need telemetry:write, creating or dropping buckets or databases admin,
// everything else telemetry:read.
func influxScoped(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scope := access.TelemetryRead
		if r.URL.Path == "/write" || r.URL.Path == "/api/v2/write" {
			scope = access.TelemetryWrite
		}
		if r.URL.Path == "/api/v2/delete" {
			scope = access.TelemetryWrite
		}
		if strings.HasPrefix(r.URL.Path, "/api/v2/buckets") && r.Method != http.MethodGet && r.Method != http.MethodHead {
			scope = access.Admin
		}
		if r.URL.Path == "/query" {
			// InfluxQL can also change data and databases.
			switch influxql.RequiredPrivilege(r.FormValue("q")) {
			case influxql.PrivWrite:
				scope = access.TelemetryWrite
			case influxql.PrivAdmin:
				scope = access.Admin
			}
		}
		h.ServeHTTP(w, r.WithContext(access.WithScope(r.Context(), scope)))
	})
}

func (a *API) accessRoutes() {
	if a.opts.Access == nil {
		return
	}
	a.handle("POST /api/v1/tokens", a.createToken)
	a.handle("GET /api/v1/tokens", a.listTokens)
	a.handle("DELETE /api/v1/tokens/{id}", a.revokeToken)
	a.handle("GET /api/v1/audit", a.listAudit)
}

func accessError(err error) error {
	switch {
	case errors.Is(err, access.ErrInvalid):
		return badRequest("%v", err)
	case errors.Is(err, access.ErrNotFound):
		return notFound("%v", err)
	}
	return err
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		access.CreateRequest
		ReadOnly bool `json:"read_only"`
	}
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.ReadOnly {
		if len(req.Scopes) > 0 {
			return badRequest("give either read_only or scopes, not both")
		}
		req.Scopes = access.ReadOnly
	}
	t, secret, err := a.opts.Access.Create(r.Context(), req.CreateRequest, principal(r).Actor())
	if err != nil {
		return accessError(err)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": t, "secret": secret})
	return nil
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := page(r)
	if err != nil {
		return err
	}
	ts, next, err := a.opts.Access.List(r.Context(), limit, after)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": ts, "next": encodeCursor(next)})
	return nil
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) error {
	t, err := a.opts.Access.Revoke(r.Context(), r.PathValue("id"))
	if err != nil {
		return accessError(err)
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := page(r)
	if err != nil {
		return err
	}
	f := access.AuditFilter{Limit: limit, Actor: r.URL.Query().Get("actor"), Target: r.URL.Query().Get("target")}
	if after != "" {
		if f.Before, err = strconv.ParseInt(after, 10, 64); err != nil {
			return badRequest("next is not a cursor returned by this API")
		}
	}
	es, next, err := a.opts.Access.Audit(r.Context(), f)
	if err != nil {
		return err
	}
	cur := ""
	if next > 0 {
		cur = encodeCursor(strconv.FormatInt(next, 10))
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": es, "next": cur})
	return nil
}
