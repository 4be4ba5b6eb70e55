package influx

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/influx/flux"
	"github.com/edgewise-iot/edgewise/internal/influx/influxql"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// Query limit defaults.
const (
	DefaultQueryTimeout   = 30 * time.Second
	DefaultQueryMaxPoints = 50_000_000
)

// QueryOptions configure the query endpoints (/query and /api/v2/query).
type QueryOptions struct {
	// Timeout bounds one request's execution (default 30s; <0 = none).
	Timeout time.Duration
	// MaxPoints bounds the samples/values one statement may materialise
	// (default 50M; <0 = unlimited).
	MaxPoints int
	// DefaultDatabase is used when a request names none.
	DefaultDatabase string
	// Now is the clock for now(); default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// QueryAPI serves the InfluxQL (/query) and Flux (/api/v2/query)
// endpoints over a catalog. Authentication is the caller's (the influx
// Handler wraps these handlers).
type QueryAPI struct {
	opts  QueryOptions
	store catalogStore
	ql    *influxql.Executor
}

// NewQueryAPI returns the query endpoints over cat.
func NewQueryAPI(cat *tsdb.Catalog, opts QueryOptions) *QueryAPI {
	if opts.Timeout == 0 {
		opts.Timeout = DefaultQueryTimeout
	}
	if opts.MaxPoints == 0 {
		opts.MaxPoints = DefaultQueryMaxPoints
	}
	if opts.MaxPoints < 0 {
		opts.MaxPoints = 0
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DefaultDatabase == "" {
		opts.DefaultDatabase = cat.DefaultDatabase()
	}
	st := catalogStore{cat: cat, maxSamples: opts.MaxPoints}
	return &QueryAPI{opts: opts, store: st,
		ql: influxql.NewExecutor(st, influxql.Options{Now: opts.Now, MaxPoints: opts.MaxPoints, Logger: opts.Logger})}
}

// Register mounts the query endpoints on mux, each wrapped by wrap (for
// authentication; nil = none).
func (q *QueryAPI) Register(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	if wrap == nil {
		wrap = func(h http.Handler) http.Handler { return h }
	}
	mux.Handle("/query", wrap(http.HandlerFunc(q.ServeInfluxQL)))
	mux.Handle("/api/v2/query", wrap(http.HandlerFunc(q.ServeFlux)))
}

func (q *QueryAPI) context(r *http.Request) (context.Context, context.CancelFunc) {
	if q.opts.Timeout > 0 {
		return context.WithTimeout(r.Context(), q.opts.Timeout)
	}
	return context.WithCancel(r.Context())
}

// registerQueryRoutes mounts /query and /api/v2/query behind the
// Handler's authentication (New calls it).
func (h *Handler) registerQueryRoutes() {
	q := NewQueryAPI(h.cat, QueryOptions{Timeout: h.opts.QueryTimeout, MaxPoints: h.opts.QueryMaxPoints,
		DefaultDatabase: h.opts.DefaultDatabase, Logger: h.log})
	q.Register(h.mux, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h.authorize(w, r) {
				next.ServeHTTP(w, r)
			}
		})
	})
}

// explain turns execution errors into the sentences users see.
func (q *QueryAPI) explain(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("query timeout: the query ran longer than %v (query.timeout)", q.opts.Timeout)
	case errors.Is(err, tsdb.ErrQueryLimit), errors.Is(err, influxql.ErrBudget), errors.Is(err, flux.ErrBudget):
		return fmt.Sprintf("query exceeds the memory budget of %d points (query.max_points): narrow the time range or the series selected", q.opts.MaxPoints)
	case errors.Is(err, context.Canceled):
		return "query cancelled"
	}
	return err.Error()
}

func writeV1Error(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ServeInfluxQL answers GET/POST /query?db=&q=&epoch=&chunked=&chunk_size=&pretty=
// in InfluxDB 1.x JSON, or CSV when the client accepts application/csv.
func (q *QueryAPI) ServeInfluxQL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeV1Error(w, http.StatusMethodNotAllowed, "method not allowed: use GET or POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<20)
	text := r.FormValue("q")
	if strings.TrimSpace(text) == "" {
		writeV1Error(w, http.StatusBadRequest, `missing required parameter "q"`)
		return
	}
	epoch := r.FormValue("epoch")
	div, err := epochDivisor(epoch)
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, err.Error())
		return
	}
	stmts, err := influxql.ParseQuery(text)
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, err.Error())
		return
	}
	db := r.FormValue("db")
	if db == "" {
		db = q.opts.DefaultDatabase
	}
	ctx, cancel := q.context(r)
	defer cancel()
	results := q.ql.Execute(ctx, stmts, db)
	for _, res := range results {
		if res.Err != nil {
			q.opts.Logger.Debug("influxql statement failed", "err", res.Err, "statement", res.StatementID)
		}
	}
	if wantsCSV(r.Header.Get("Accept")) {
		q.writeCSV(w, results, div)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	pretty := r.FormValue("pretty") == "true"
	if r.FormValue("chunked") == "true" {
		size, _ := strconv.Atoi(r.FormValue("chunk_size"))
		if size <= 0 {
			size = 10000
		}
		w.WriteHeader(http.StatusOK)
		for _, res := range results {
			for _, part := range chunkResult(res, size) {
				buf := q.encodeResults([]influxql.Result{part.res}, div, pretty, part.partial)
				w.Write(buf)
				w.Write([]byte("\n"))
			}
		}
		return
	}
	buf := q.encodeResults(results, div, pretty, nil)
	w.WriteHeader(http.StatusOK)
	w.Write(buf)
	w.Write([]byte("\n"))
}

func wantsCSV(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(mt, "application/csv") || strings.EqualFold(mt, "text/csv") {
			return true
		}
	}
	return false
}

func epochDivisor(epoch string) (int64, error) {
	switch epoch {
	case "":
		return 0, nil
	case "ns", "n":
		return 1, nil
	case "u", "us", "µ":
		return 1e3, nil
	case "ms":
		return 1e6, nil
	case "s":
		return 1e9, nil
	case "m":
		return 60e9, nil
	case "h":
		return 3600e9, nil
	}
	return 0, fmt.Errorf("invalid epoch %q: use ns, u, ms, s, m or h", epoch)
}

type chunk struct {
	res     influxql.Result
	partial []bool // per series: more chunks of it follow
}

// chunkResult splits a result into pieces of at most size rows per series,
// one series per piece, as InfluxDB's chunked responses.
func chunkResult(res influxql.Result, size int) []chunk {
	if res.Err != nil || len(res.Series) == 0 {
		return []chunk{{res: res}}
	}
	var out []chunk
	for _, s := range res.Series {
		n := s.Len()
		for lo := 0; lo < n || lo == 0; lo += size {
			hi := min(lo+size, n)
			part := &influxql.Row{Name: s.Name, Tags: s.Tags, Columns: s.Columns, Loc: s.Loc, Cols: make([][]tsdb.Value, len(s.Cols))}
			if s.Time != nil {
				part.Time = s.Time[lo:hi]
			}
			for c := range s.Cols {
				part.Cols[c] = s.Cols[c][lo:hi]
			}
			out = append(out, chunk{res: influxql.Result{StatementID: res.StatementID, Series: []*influxql.Row{part}},
				partial: []bool{hi < n}})
			if n == 0 {
				break
			}
		}
	}
	return out
}

// encodeResults renders InfluxDB 1.x JSON by hand: it is the hot path of
// large responses and must keep integers, floats and times exact.
func (q *QueryAPI) encodeResults(results []influxql.Result, div int64, pretty bool, partial []bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"results":[`)
	for i, res := range results {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"statement_id":%d`, res.StatementID)
		if res.Err != nil {
			b.WriteString(`,"error":`)
			writeJSONString(&b, q.explain(res.Err))
			b.WriteByte('}')
			continue
		}
		if len(res.Series) > 0 {
			b.WriteString(`,"series":[`)
			for si, s := range res.Series {
				if si > 0 {
					b.WriteByte(',')
				}
				writeSeriesJSON(&b, s, div)
				if si < len(partial) && partial[si] {
					b.Truncate(b.Len() - 1)
					b.WriteString(`,"partial":true}`)
				}
			}
			b.WriteByte(']')
		}
		if len(partial) > 0 && partial[0] {
			b.WriteString(`,"partial":true`)
		}
		b.WriteByte('}')
	}
	b.WriteString("]}")
	if pretty {
		var out bytes.Buffer
		if json.Indent(&out, b.Bytes(), "", "    ") == nil {
			return out.Bytes()
		}
	}
	return b.Bytes()
}

func writeSeriesJSON(b *bytes.Buffer, s *influxql.Row, div int64) {
	b.WriteByte('{')
	if s.Name != "" {
		b.WriteString(`"name":`)
		writeJSONString(b, s.Name)
		b.WriteByte(',')
	}
	if len(s.Tags) > 0 {
		b.WriteString(`"tags":{`)
		for i, t := range s.Tags {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, t.Key)
			b.WriteByte(':')
			writeJSONString(b, t.Value)
		}
		b.WriteString("},")
	}
	b.WriteString(`"columns":[`)
	for i, c := range s.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(b, c)
	}
	b.WriteByte(']')
	if n := s.Len(); n > 0 {
		b.WriteString(`,"values":[`)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('[')
			first := true
			if s.Time != nil {
				writeTime(b, s, s.Time[i], div)
				first = false
			}
			for c := range s.Cols {
				if !first {
					b.WriteByte(',')
				}
				first = false
				writeValueJSON(b, s.Cols[c][i])
			}
			b.WriteByte(']')
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
}

// writeTime writes t as an epoch number (div > 0) or as an RFC3339
// string carrying the offset of the statement's tz() location.
func writeTime(b *bytes.Buffer, s *influxql.Row, t int64, div int64) {
	if div > 0 {
		b.WriteString(strconv.FormatInt(t/div, 10))
		return
	}
	b.WriteByte('"')
	b.WriteString(s.FormatTime(t))
	b.WriteByte('"')
}

func writeValueJSON(b *bytes.Buffer, v tsdb.Value) {
	switch v.Type() {
	case tsdb.Float:
		f, _ := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			b.WriteString("null")
			return
		}
		enc, _ := json.Marshal(f)
		b.Write(enc)
	case tsdb.Integer:
		i, _ := v.Int()
		b.WriteString(strconv.FormatInt(i, 10))
	case tsdb.Unsigned:
		u, _ := v.Uint()
		b.WriteString(strconv.FormatUint(u, 10))
	case tsdb.Boolean:
		x, _ := v.Bool()
		b.WriteString(strconv.FormatBool(x))
	case tsdb.String:
		s, _ := v.Str()
		writeJSONString(b, s)
	default:
		b.WriteString("null")
	}
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s)
	b.Write(enc)
}

// writeCSV renders results as InfluxDB's CSV: name,tags,time,columns...
func (q *QueryAPI) writeCSV(w http.ResponseWriter, results []influxql.Result, div int64) {
	w.Header().Set("Content-Type", "text/csv")
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	var lastHeader string
	status := http.StatusOK
	for _, res := range results {
		if res.Err != nil {
			if len(results) == 1 {
				status = http.StatusBadRequest
			}
			cw.Write([]string{"error"})
			cw.Write([]string{q.explain(res.Err)})
			lastHeader = ""
			continue
		}
		for _, s := range res.Series {
			header := append([]string{"name", "tags"}, s.Columns...)
			if h := strings.Join(header, ","); h != lastHeader {
				if lastHeader != "" {
					cw.Flush()
					b.WriteString("\n")
				}
				cw.Write(header)
				lastHeader = h
			}
			var tags []string
			for _, t := range s.Tags {
				tags = append(tags, t.Key+"="+t.Value)
			}
			tagStr := strings.Join(tags, ",")
			for i := 0; i < s.Len(); i++ {
				rec := []string{s.Name, tagStr}
				if s.Time != nil {
					d := div
					if d == 0 {
						d = 1
					}
					rec = append(rec, strconv.FormatInt(s.Time[i]/d, 10))
				}
				for c := range s.Cols {
					v := s.Cols[c][i]
					if v.Type() == 0 {
						rec = append(rec, "")
					} else {
						rec = append(rec, v.String())
					}
				}
				cw.Write(rec)
			}
		}
	}
	cw.Flush()
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
