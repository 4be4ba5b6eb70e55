package influx

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// Version is reported in X-Influxdb-Version and /health, so clients that
// branch on the server version take their 1.8-compatible path.
const Version = "1.8.10-edgewise"

// TokenChecker validates an API token.
type TokenChecker interface {
	CheckToken(ctx context.Context, token string) bool
}

// StaticToken is a TokenChecker accepting one token (the admin token).
type StaticToken string

// CheckToken compares in constant time.
func (s StaticToken) CheckToken(_ context.Context, token string) bool {
	return s != "" && subtle.ConstantTimeCompare([]byte(s), []byte(token)) == 1
}

// Options configure a Handler.
type Options struct {
	Catalog *tsdb.Catalog // required
	Auth    TokenChecker  // nil accepts no token (only anonymous requests, if allowed)
	// AllowAnonymous accepts requests that carry no credentials at all.
	AllowAnonymous bool
	Logger         *slog.Logger
	// DefaultDatabase is used by writes that name no db/bucket; default
	// the catalog's default database.
	DefaultDatabase string
	// MaxBodyBytes bounds a write body after decompression; default 64 MiB.
	MaxBodyBytes int64
	// QueryTimeout bounds one query request (default 30s); QueryMaxPoints
	// the samples one query statement may materialise (default 50M).
	QueryTimeout   time.Duration
	QueryMaxPoints int
	// Org names the organisation of the v2 API (default "edgewise"); any
	// name a client sends is accepted, as writes and queries do.
	Org string
}

// Handler is the Influx-compatible HTTP API.
type Handler struct {
	opts Options
	log  *slog.Logger
	cat  *tsdb.Catalog
	mux  *http.ServeMux
	// bufs and gzips recycle write bodies and gzip readers between
	// requests (an ingest-heavy server otherwise spends its time growing
	// buffers and building Huffman tables).
	bufs  sync.Pool // *bytes.Buffer
	gzips sync.Pool // *gzip.Reader
	// pointBufs recycles the arrays parsed points live in (*pointBuf).
	pointBufs sync.Pool
}

// New returns a Handler with all its routes registered.
func New(opts Options) (*Handler, error) {
	if opts.Catalog == nil {
		return nil, errors.New("influx: Options.Catalog is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DefaultDatabase == "" {
		opts.DefaultDatabase = opts.Catalog.DefaultDatabase()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 20
	}
	h := &Handler{opts: opts, log: opts.Logger, cat: opts.Catalog, mux: http.NewServeMux()}
	h.mux.HandleFunc("/ping", h.ping)
	h.mux.HandleFunc("/health", h.health)
	h.mux.HandleFunc("/write", h.writeV1)
	h.mux.HandleFunc("/api/v2/write", h.writeV2)
	h.mux.HandleFunc("/api/v2/delete", h.deleteV2)
	h.mux.HandleFunc("/api/v2/orgs", h.orgs)
	h.mux.HandleFunc("/api/v2/orgs/", h.orgs)
	h.mux.HandleFunc("/api/v2/buckets", h.buckets)
	h.mux.HandleFunc("/api/v2/buckets/", h.buckets)
	if q, ok := any(h).(interface{ registerQueryRoutes() }); ok {
		q.registerQueryRoutes()
	} else {
		for _, p := range []string{"/query", "/api/v2/query"} {
			h.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
				h.fail(w, r, http.StatusNotImplemented, "", "queries are not available in this build")
			})
		}
	}
	return h, nil
}

// Paths are the URL paths the Handler serves, for mounting it.
func Paths() []string {
	return []string{"/ping", "/health", "/write", "/api/v2/write", "/query", "/api/v2/query", "/api/v2/delete",
		"/api/v2/orgs", "/api/v2/orgs/", "/api/v2/buckets", "/api/v2/buckets/"}
}

// ServeHTTP dispatches to the Influx routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Influxdb-Version", Version)
	w.Header().Set("X-Influxdb-Build", "OSS")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) ping(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.fail(w, r, http.StatusMethodNotAllowed, "", "use GET or HEAD")
		return
	}
	if r.URL.Query().Get("verbose") == "true" {
		writeJSON(w, http.StatusOK, map[string]string{"version": Version})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "influxdb", "message": "ready for queries and writes", "status": "pass",
		"checks": []any{}, "version": Version,
	})
}

// credentials extracts the token a request carries and whether it
// carried any credentials at all.
func credentials(r *http.Request) (token string, present bool) {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, rest, _ := strings.Cut(a, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToLower(scheme) {
		case "token", "bearer":
			return rest, true
		case "basic":
			raw, err := base64.StdEncoding.DecodeString(rest)
			if err != nil {
				return "", true
			}
			_, p, _ := strings.Cut(string(raw), ":")
			return p, true
		}
		return "", true
	}
	q := r.URL.Query()
	if q.Has("p") || q.Has("u") {
		return q.Get("p"), true
	}
	return "", false
}

// authorize checks the request's credentials, answering 401 in the
// API version's error shape when they do not pass. It returns whether the
// handler may go on.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) bool {
	tok, present := credentials(r)
	if !present {
		if h.opts.AllowAnonymous {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="InfluxDB"`)
		h.fail(w, r, http.StatusUnauthorized, "", "unable to parse authentication credentials (send Authorization: Token <token>, or run the server with --allow-anonymous)")
		return false
	}
	if tok != "" && h.opts.Auth != nil && h.opts.Auth.CheckToken(r.Context(), tok) {
		return true
	}
	h.fail(w, r, http.StatusUnauthorized, "", "authorization failed")
	return false
}

// isV2 reports whether the request belongs to the 2.x API.
func isV2(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/v2/") }

// v2Code maps a status to InfluxDB 2.x's error code.
func v2Code(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not found"
	case http.StatusMethodNotAllowed:
		return "method not allowed"
	case http.StatusRequestEntityTooLarge:
		return "request too large"
	case http.StatusUnprocessableEntity:
		return "unprocessable entity"
	case http.StatusTooManyRequests:
		return "too many requests"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusNotImplemented:
		return "not implemented"
	}
	return "internal error"
}

// fail answers an error: {"error": msg} on 1.x paths,
// {"code": code, "message": msg} on /api/v2 paths (code "" derives
// InfluxDB's code from the status).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if isV2(r) {
		if code == "" {
			code = v2Code(status)
		}
		writeJSON(w, status, map[string]string{"code": code, "message": msg})
		return
	}
	w.Header().Set("X-Influxdb-Error", msg)
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing left to tell it
}
