package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/access"
	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/shadow"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// Registry is what the API needs of the device registry.
type Registry interface {
	CreateThing(ctx context.Context, t registry.Thing) (registry.Thing, registry.Credentials, error)
	GetThing(ctx context.Context, name string) (registry.Thing, error)
	ListThings(ctx context.Context, o registry.ListOptions) ([]registry.Thing, string, error)
	DeleteThing(ctx context.Context, name string) error
	ResetCredentials(ctx context.Context, name string) (registry.Credentials, error)
}

// States reads device state documents.
type States interface {
	Get(ctx context.Context, thing string) (shadow.State, error)
	Delete(ctx context.Context, thing string) error
}

// Store queries the time-series store.
type Store interface {
	Query(ctx context.Context, q tsdb.Query) ([]tsdb.Series, error)
}

// Options configure the API.
type Options struct {
	Logger      *slog.Logger
	Token       string // required: the admin bearer token
	Registry    Registry
	States      States
	Store       Store
	Measurement string        // telemetry measurement, default "telemetry"
	Stats       func() any    // body of GET /api/v1/stats
	Rules       Rules         // nil: no /api/v1/rules routes
	QueryLimit  time.Duration // per-query timeout, default 30s
	MaxPoints   int           // most points one telemetry request may return, default 100000
	Now         func() time.Time
	// Influx serves the InfluxDB-compatible paths (influx.Paths) when set.
	Influx      http.Handler
	InfluxPaths []string
	Shadows     Shadows  // optional: shadow routes
	Commands    Commands // optional: command routes
	Jobs        Jobs     // optional: job routes
	Fleet       Fleet    // optional: thing types, groups, PATCH things
	Search      Search   // optional: fleet search
	// Access, when set, authenticates API tokens with scopes, audits
	// every change and serves /api/v1/tokens and /api/v1/audit; without
	// it only Token is accepted.
	Access   Access
	Apply    Applier  // optional: POST /api/v1/apply, GET /api/v1/export
	Certs    Certs    // optional: certificate and CA routes
	Policies Policies // optional: policy routes
	Agents   Agents   // optional: edge agent routes
	Pprof    bool     // serve net/http/pprof under /debug/pprof/ (admin token)
}

// API is the HTTP API.
type API struct {
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
}

// New returns the API; Handler serves it.
func New(opts Options) (*API, error) {
	if opts.Token == "" || opts.Registry == nil || opts.States == nil || opts.Store == nil {
		return nil, errors.New("api: Token, Registry, States and Store are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Measurement == "" {
		opts.Measurement = "telemetry"
	}
	if opts.QueryLimit <= 0 {
		opts.QueryLimit = 30 * time.Second
	}
	if opts.MaxPoints <= 0 {
		opts.MaxPoints = 100000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &API{opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	a.routes()
	return a, nil
}

func (a *API) routes() {
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.handle("GET /api/v1/stats", a.stats)
	a.handle("POST /api/v1/things", a.createThing)
	a.handle("GET /api/v1/things", a.listThings)
	a.handle("GET /api/v1/things/{name}", a.getThing)
	a.handle("DELETE /api/v1/things/{name}", a.deleteThing)
	a.handle("POST /api/v1/things/{name}/credentials", a.resetCredentials)
	a.handle("GET /api/v1/things/{name}/state", a.getState)
	a.handle("GET /api/v1/things/{name}/telemetry", a.telemetry)
	if a.opts.Influx != nil {
		for _, p := range a.opts.InfluxPaths {
			a.mux.Handle(p, influxScoped(a.opts.Influx))
		}
	}
	a.rulesRoutes()
	a.deviceRoutes()
	a.fleetRoutes()
	a.accessRoutes()
	a.applyRoutes()
	a.certRoutes()
	a.policyRoutes()
	a.agentRoutes()
	if a.opts.Pprof {
		a.pprofRoutes()
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
}

// Handler returns the API's HTTP handler.
func (a *API) Handler() http.Handler { return a.mux }

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers an authenticated route whose errors become JSON errors.
// The caller needs the route's scope (access.RouteScope); with Options.Access
// every request other than GET and HEAD is recorded in the audit log.
func (a *API) handle(pattern string, h handlerFunc) {
	scope := access.RouteScope(pattern)
	write := !strings.HasPrefix(pattern, "GET ") && !strings.HasPrefix(pattern, "HEAD ")
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.authenticate(r)
		var sw *statusWriter
		if write && a.opts.Access != nil {
			sw = &statusWriter{ResponseWriter: w}
			w = sw
			defer func() { a.audit(r, pattern, p, sw) }()
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edgewise"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or invalid bearer token (send Authorization: Bearer <token>)")
			return
		}
		if !p.Allows(scope) {
			msg := fmt.Sprintf("token %q lacks scope %s needed for %s", p.Name, scope, pattern)
			if write {
				msg += " (read-only tokens cannot change anything)"
			}
			if sw != nil {
				sw.msg = msg
			}
			writeError(w, http.StatusForbidden, "forbidden", msg)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		if err := h(w, r); err != nil {
			if sw != nil {
				sw.msg = err.Error()
			}
			a.fail(w, r, err)
		}
	})
}

func (a *API) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(a.opts.Token)) == 1
}

// httpError is an error with a status and a stable code.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, "not_found", fmt.Sprintf(format, args...)}
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.code, he.msg)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, shadow.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, registry.ErrExists):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, registry.ErrInvalid), errors.Is(err, tsdb.ErrInvalidQuery):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the request took longer than the server allows")
	case errors.Is(err, tsdb.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the server is shutting down")
	default:
		a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error (see the server log)")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// decodeBody reads a JSON request body of at most 1 MiB into v, rejecting
// unknown fields.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &httpError{http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("invalid JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("invalid JSON body: trailing data after the object")
	}
	return nil
}

func (a *API) stats(w http.ResponseWriter, r *http.Request) error {
	var body any = map[string]any{}
	if a.opts.Stats != nil {
		body = a.opts.Stats()
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

type createThingRequest struct {
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Attributes map[string]string `json:"attributes"`
}

func (a *API) createThing(w http.ResponseWriter, r *http.Request) error {
	var req createThingRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	t, creds, err := a.opts.Registry.CreateThing(r.Context(), registry.Thing{Name: req.Name, Type: req.Type, Attributes: req.Attributes})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/things/"+t.Name)
	writeJSON(w, http.StatusCreated, map[string]any{"thing": t, "credentials": creds})
	return nil
}

func (a *API) listThings(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	o := registry.ListOptions{After: q.Get("after"), Type: q.Get("type")}
	if s := q.Get("next"); s != "" {
		after, err := decodeCursor(s)
		if err != nil {
			return err
		}
		o.After = after
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit %q must be an integer from 1 to 1000", s)
		}
		o.Limit = n
	}
	things, next, err := a.opts.Registry.ListThings(r.Context(), o)
	if err != nil {
		return err
	}
	if things == nil {
		things = []registry.Thing{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"things": things, "next": encodeCursor(next)})
	return nil
}

func (a *API) getThing(w http.ResponseWriter, r *http.Request) error {
	t, err := a.opts.Registry.GetThing(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (a *API) deleteThing(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := a.opts.Registry.DeleteThing(r.Context(), name); err != nil {
		return err
	}
	if err := a.opts.States.Delete(r.Context(), name); err != nil && !errors.Is(err, shadow.ErrNotFound) {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) resetCredentials(w http.ResponseWriter, r *http.Request) error {
	creds, err := a.opts.Registry.ResetCredentials(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"credentials": creds})
	return nil
}

func (a *API) getState(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	st, err := a.opts.States.Get(r.Context(), name)
	if errors.Is(err, shadow.ErrNotFound) {
		if _, terr := a.opts.Registry.GetThing(r.Context(), name); terr != nil {
			return terr
		}
		return notFound("thing %q has not reported state yet", name)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
