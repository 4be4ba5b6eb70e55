package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// ParseTime reads a query time: RFC 3339, "now", or a duration relative to
// now such as -1h, -30m, -7d, -2w (Flux style; d = 24h, w = 7d).
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" || s == "now()" {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		d, err := ParseDuration(s)
		if err == nil {
			return now.Add(d), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-01-02T15:04:05Z), now, nor relative like -1h or -7d", s)
}

// maxDuration bounds relative times: about 290 years.
const maxDuration = time.Duration(1<<63 - 1)

// ParseDuration is time.ParseDuration plus the units d (24h) and w (7d),
// which come first when combined with others (1w2d3h).
func ParseDuration(s string) (time.Duration, error) {
	invalid := fmt.Errorf("invalid duration %q", s)
	sign, body := time.Duration(1), s
	if rest, ok := strings.CutPrefix(body, "-"); ok {
		sign, body = -1, rest
	} else {
		body = strings.TrimPrefix(body, "+")
	}
	if body == "" {
		return 0, invalid
	}
	var total time.Duration
	for body != "" {
		i := strings.IndexAny(body, "dw")
		if i < 0 {
			d, err := time.ParseDuration(body)
			if err != nil || d < 0 || total > maxDuration-d {
				return 0, invalid
			}
			total += d
			break
		}
		n, err := strconv.ParseInt(body[:i], 10, 64)
		unit := 24 * time.Hour
		if body[i] == 'w' {
			unit *= 7
		}
		if err != nil || n < 0 || n > int64(maxDuration/unit) || total > maxDuration-time.Duration(n)*unit {
			return 0, invalid
		}
		total += time.Duration(n) * unit
		body = body[i+1:]
	}
	return sign * total, nil
}

type pointJSON struct {
	Time  time.Time  `json:"time"`
	Value tsdb.Value `json:"value"`
}

type seriesJSON struct {
	Field  string            `json:"field"`
	Tags   map[string]string `json:"tags"`
	Points []pointJSON       `json:"points"`
}

type telemetryResponse struct {
	Thing       string       `json:"thing"`
	Measurement string       `json:"measurement"`
	Start       time.Time    `json:"start"`
	Stop        time.Time    `json:"stop"`
	Every       string       `json:"every,omitempty"`
	Fn          string       `json:"fn,omitempty"`
	Series      []seriesJSON `json:"series"`
}

var aggregates = map[string]tsdb.Aggregate{
	"mean": "mean", "sum": "sum", "min": "min", "max": "max", "count": "count", "first": "first", "last": "last",
}

func (a *API) telemetry(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "field", "start", "stop", "every", "fn", "limit":
		default:
			return badRequest("unknown query parameter %q (use field, start, stop, every, fn, limit)", k)
		}
	}
	now := a.opts.Now()
	start, stop := now.Add(-time.Hour), now
	var err error
	if s := q.Get("start"); s != "" {
		if start, err = ParseTime(s, now); err != nil {
			return badRequest("start: %v", err)
		}
	}
	if s := q.Get("stop"); s != "" {
		if stop, err = ParseTime(s, now); err != nil {
			return badRequest("stop: %v", err)
		}
	}
	if !start.Before(stop) {
		return badRequest("start (%s) must be before stop (%s)", start.Format(time.RFC3339Nano), stop.Format(time.RFC3339Nano))
	}
	tq := tsdb.Query{
		Measurement: a.opts.Measurement,
		Tags:        []tsdb.Tag{{Key: "device_id", Value: name}},
		Field:       q.Get("field"),
		Start:       start.UnixNano(),
		End:         stop.UnixNano(),
	}
	resp := telemetryResponse{Thing: name, Measurement: a.opts.Measurement, Start: start.UTC(), Stop: stop.UTC(), Series: []seriesJSON{}}
	if s := q.Get("every"); s != "" {
		d, err := ParseDuration(s)
		if err != nil || d <= 0 {
			return badRequest("every %q must be a positive duration like 10s, 1m, 1h or 1d", s)
		}
		if (stop.Sub(start))/d > time.Duration(a.opts.MaxPoints) {
			return badRequest("every %s over %s gives more than %d windows; widen every or narrow the range", s, stop.Sub(start), a.opts.MaxPoints)
		}
		tq.Every = d
		fn := q.Get("fn")
		if fn == "" {
			fn = "mean"
		}
		agg, ok := aggregates[fn]
		if !ok {
			return badRequest("fn %q must be one of mean, sum, min, max, count, first, last", fn)
		}
		tq.Fn = agg
		resp.Every, resp.Fn = s, fn
	} else if q.Get("fn") != "" {
		return badRequest("fn needs every (the window length), e.g. every=1m&fn=mean")
	}
	tq.Limit = a.opts.MaxPoints
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > a.opts.MaxPoints {
			return badRequest("limit %q must be an integer from 1 to %d", s, a.opts.MaxPoints)
		}
		tq.Limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.opts.QueryLimit)
	defer cancel()
	series, err := a.opts.Store.Query(ctx, tq)
	if err != nil {
		return err
	}
	if len(series) == 0 {
		if _, err := a.opts.Registry.GetThing(r.Context(), name); err != nil {
			return err
		}
	}
	for _, s := range series {
		sj := seriesJSON{Field: s.Field, Tags: map[string]string{}, Points: make([]pointJSON, len(s.Samples))}
		for _, t := range s.Tags {
			sj.Tags[t.Key] = t.Value
		}
		for i, p := range s.Samples {
			sj.Points[i] = pointJSON{Time: time.Unix(0, p.Time).UTC(), Value: p.Value}
		}
		resp.Series = append(resp.Series, sj)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
