package influx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/influx/flux"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// fluxStore resolves Flux buckets ("db" or "db/rp") to catalog databases.
type fluxStore struct{ cat *tsdb.Catalog }

func (s fluxStore) Bucket(_ context.Context, name string) (flux.DB, error) {
	db, _, _ := strings.Cut(name, "/")
	d, err := s.cat.DB(db)
	if errors.Is(err, tsdb.ErrDatabaseNotFound) {
		return nil, fmt.Errorf("%w: %q", flux.ErrBucketNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (q *QueryAPI) fluxExecutor() *flux.Executor {
	return flux.NewExecutor(fluxStore{cat: q.store.cat}, flux.Options{Now: q.opts.Now, MaxPoints: q.opts.MaxPoints, Logger: q.opts.Logger})
}

func writeV2Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}

type fluxRequest struct {
	Query   string `json:"query"`
	Type    string `json:"type"`
	Now     string `json:"now"`
	Dialect *struct {
		Header      *bool    `json:"header"`
		Delimiter   string   `json:"delimiter"`
		Annotations []string `json:"annotations"`
	} `json:"dialect"`
}

// ServeFlux answers POST /api/v2/query?org= with a Flux program sent as
// application/json ({"query": ..., "type": "flux"}) or application/vnd.flux,
// in annotated CSV.
func (q *QueryAPI) ServeFlux(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeV2Error(w, http.StatusMethodNotAllowed, "method not allowed", "use POST for /api/v2/query")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeV2Error(w, http.StatusRequestEntityTooLarge, "invalid", "query body too large or unreadable: "+err.Error())
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	req := fluxRequest{Query: string(body)}
	switch {
	case ct == "application/vnd.flux":
	case ct == "application/json" || (ct == "" && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{"))):
		req = fluxRequest{}
		if err := json.Unmarshal(body, &req); err != nil {
			writeV2Error(w, http.StatusBadRequest, "invalid", "invalid JSON body: "+err.Error())
			return
		}
	default:
		writeV2Error(w, http.StatusUnsupportedMediaType, "invalid", fmt.Sprintf("unsupported content type %q: use application/json or application/vnd.flux", ct))
		return
	}
	if req.Type != "" && req.Type != "flux" {
		writeV2Error(w, http.StatusBadRequest, "invalid", fmt.Sprintf("unsupported query type %q: only flux is served here; send InfluxQL to /query", req.Type))
		return
	}
	if strings.TrimSpace(req.Query) == "" {
		writeV2Error(w, http.StatusBadRequest, "invalid", "query is empty")
		return
	}
	dialect := flux.DefaultDialect
	if d := req.Dialect; d != nil {
		if d.Delimiter != "" && d.Delimiter != "," {
			writeV2Error(w, http.StatusBadRequest, "invalid", "only the \",\" delimiter is supported")
			return
		}
		if d.Header != nil {
			dialect.Header = *d.Header
		}
		if d.Annotations != nil {
			dialect.Annotations = d.Annotations
		}
	}
	var now time.Time
	if req.Now != "" {
		if now, err = time.Parse(time.RFC3339Nano, req.Now); err != nil {
			writeV2Error(w, http.StatusBadRequest, "invalid", "now must be an RFC3339 time: "+err.Error())
			return
		}
	}
	ctx, cancel := q.context(r)
	defer cancel()
	results, err := q.fluxExecutor().Execute(ctx, req.Query, now)
	if err != nil {
		switch {
		case errors.Is(err, flux.ErrBucketNotFound):
			writeV2Error(w, http.StatusNotFound, "not found", err.Error())
		case errors.Is(err, flux.ErrParse), errors.Is(err, flux.ErrInvalid), errors.Is(err, tsdb.ErrInvalidQuery),
			errors.Is(err, flux.ErrBudget), errors.Is(err, tsdb.ErrQueryLimit), errors.Is(err, context.DeadlineExceeded):
			writeV2Error(w, http.StatusBadRequest, "invalid", q.explain(err))
		default:
			q.opts.Logger.Warn("flux query failed", "err", err)
			writeV2Error(w, http.StatusInternalServerError, "internal error", err.Error())
		}
		return
	}
	var buf bytes.Buffer
	if err := flux.WriteCSV(&buf, results, dialect); err != nil {
		writeV2Error(w, http.StatusInternalServerError, "internal error", err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}
