package influx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/influx/lineproto"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
	"github.com/klauspost/compress/gzip"
)

// maxReportedLines bounds how many bad lines an error message quotes.
const maxReportedLines = 10

func (h *Handler) writeV1(w http.ResponseWriter, r *http.Request) {
	if !h.writePreamble(w, r) {
		return
	}
	q := r.URL.Query()
	name := q.Get("db")
	if name == "" {
		h.fail(w, r, http.StatusBadRequest, "", "database is required")
		return
	}
	db, ok := h.database(w, r, name, q.Get("rp"))
	if !ok {
		return
	}
	h.write(w, r, db, q.Get("precision"))
}

func (h *Handler) writeV2(w http.ResponseWriter, r *http.Request) {
	if !h.writePreamble(w, r) {
		return
	}
	q := r.URL.Query()
	bucket := q.Get("bucket")
	if bucket == "" {
		h.fail(w, r, http.StatusBadRequest, "", "bucket is required")
		return
	}
	// 1.8's compatibility API: bucket "db/rp".
	name, rp, _ := strings.Cut(bucket, "/")
	db, ok := h.database(w, r, name, rp)
	if !ok {
		return
	}
	h.write(w, r, db, q.Get("precision"))
}

func (h *Handler) writePreamble(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, http.StatusMethodNotAllowed, "", "writes use POST")
		return false
	}
	return h.authorize(w, r)
}

// database resolves the target database and retention policy name.
func (h *Handler) database(w http.ResponseWriter, r *http.Request, name, rp string) (*tsdb.DB, bool) {
	db, err := h.cat.DB(name)
	if errors.Is(err, tsdb.ErrDatabaseNotFound) {
		if isV2(r) {
			h.fail(w, r, http.StatusNotFound, "", fmt.Sprintf("bucket %q not found", name))
		} else {
			h.fail(w, r, http.StatusNotFound, "", fmt.Sprintf("database not found: %q", name))
		}
		return nil, false
	}
	if err != nil {
		h.storeError(w, r, err)
		return nil, false
	}
	if rp != "" {
		for _, info := range h.cat.Databases() {
			if info.Name == name && info.Retention.Name != rp {
				h.fail(w, r, http.StatusNotFound, "", fmt.Sprintf("retention policy not found: %s", rp))
				return nil, false
			}
		}
	}
	return db, true
}

func (h *Handler) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, tsdb.ErrClosed):
		h.fail(w, r, http.StatusServiceUnavailable, "", "the server is shutting down")
	default:
		h.log.Error("influx: write failed", "path", r.URL.Path, "err", err)
		h.fail(w, r, http.StatusInternalServerError, "", "write failed: "+err.Error())
	}
}

// readBody reads the (possibly gzipped) body up to MaxBodyBytes.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) (*bytes.Buffer, bool) {
	var rd io.Reader = r.Body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, _ := h.gzips.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(r.Body)
		} else {
			err = zr.Reset(r.Body)
		}
		if err != nil {
			h.fail(w, r, http.StatusBadRequest, "", "invalid gzip body: "+err.Error())
			return nil, false
		}
		defer func() {
			zr.Close()
			h.gzips.Put(zr)
		}()
		rd = zr
	default:
		h.fail(w, r, http.StatusUnsupportedMediaType, "", fmt.Sprintf("unsupported Content-Encoding %q (use gzip or none)", enc))
		return nil, false
	}
	buf, _ := h.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	if r.ContentLength > 0 && r.ContentLength <= h.opts.MaxBodyBytes {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(rd, h.opts.MaxBodyBytes+1))
	if n > h.opts.MaxBodyBytes {
		h.putBuf(buf)
		h.fail(w, r, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("request body larger than %d bytes", h.opts.MaxBodyBytes))
		return nil, false
	}
	if err != nil {
		h.putBuf(buf)
		h.fail(w, r, http.StatusBadRequest, "", "reading the body: "+err.Error())
		return nil, false
	}
	return buf, true
}

// putPointBuf recycles point arrays unless they grew unusually large.
func (h *Handler) putPointBuf(pb *pointBuf) {
	if cap(pb.fields) <= 1<<20 {
		h.pointBufs.Put(pb)
	}
}

// putBuf recycles a body buffer unless it grew unusually large.
func (h *Handler) putBuf(b *bytes.Buffer) {
	if b.Cap() <= 16<<20 {
		h.bufs.Put(b)
	}
}

func (h *Handler) write(w http.ResponseWriter, r *http.Request, db *tsdb.DB, precision string) {
	prec, err := lineproto.ParsePrecision(precision)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, "", strings.TrimPrefix(err.Error(), "lineproto: "))
		return
	}
	buf, ok := h.readBody(w, r)
	if !ok {
		return
	}
	// Points copies what it keeps, so the body goes back to the pool once
	// the write is done.
	defer h.putBuf(buf)
	pb, _ := h.pointBufs.Get().(*pointBuf)
	if pb == nil {
		pb = new(pointBuf)
	}
	defer h.putPointBuf(pb)
	pts, bad := parsePoints(pb, buf.Bytes(), prec, time.Now().UnixNano())
	if len(pts) == 0 && len(bad) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	rejected, err := db.WritePartial(r.Context(), pts)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	if len(bad) == 0 && len(rejected) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var msgs []string
	for i, e := range bad {
		if i == maxReportedLines {
			msgs = append(msgs, fmt.Sprintf("(%d more lines not shown)", len(bad)-i))
			break
		}
		msgs = append(msgs, e.Error())
	}
	status := http.StatusBadRequest
	if len(rejected) > 0 {
		// As InfluxDB: the first reason, then how many points were dropped.
		msgs = append(msgs, fmt.Sprintf("partial write: %s dropped=%d",
			strings.TrimPrefix(rejected[0].Err.Error(), "tsdb: "), len(rejected)))
		if len(bad) == 0 && isV2(r) {
			status = http.StatusUnprocessableEntity
		}
	}
	h.log.Debug("influx: partial write", "path", r.URL.Path, "bad_lines", len(bad), "rejected", len(rejected), "stored", len(pts)-len(rejected))
	h.fail(w, r, status, "", strings.Join(msgs, "\n"))
}

// Points converts a line protocol body into points: timestamps scaled by
// prec, lines without one stamped now (unix ns). Strings are shared among
// the points of the body (tag sets repeat). Bad lines are returned apart.
func Points(body []byte, prec lineproto.Precision, now int64) ([]tsdb.Point, []*lineproto.LineError) {
	return parsePoints(new(pointBuf), body, prec, now)
}

// pointBuf holds the arrays a body's points and fields live in, kept
// between writes: a fresh megabyte per body costs page faults and zeroing
// on the ingest hot path. The store keeps nothing of a written point, so
// the arrays are free again once the write returns.
type pointBuf struct {
	pts    []tsdb.Point
	fields []tsdb.Field
}

// seriesEntry is what the lines of one series in a body share: the
// measurement, the tag slice and the field key strings.
type seriesEntry struct {
	meas string
	tags []tsdb.Tag
	// fieldKeys holds the series' field keys in the order lines first
	// named them (at most maxSeriesKeys), so that a line's keys are
	// found by comparing with the expected one, also when a line leaves
	// out a field (TSBS iot leaves out about one in ten).
	fieldKeys []string
}

const maxSeriesKeys = 64

// fieldKey returns the string for key b, expected at fieldKeys[*next]
// (advanced past the match), else found among fieldKeys, else the store's
// interned name (see tsdb.InternName), remembered.
func (se *seriesEntry) fieldKey(b []byte, next *int) string {
	if i := *next; i < len(se.fieldKeys) && se.fieldKeys[i] == string(b) {
		*next = i + 1
		return se.fieldKeys[i]
	}
	for i, k := range se.fieldKeys {
		if k == string(b) {
			*next = i + 1
			return k
		}
	}
	k := tsdb.InternName(b)
	if len(se.fieldKeys) < maxSeriesKeys {
		se.fieldKeys = append(se.fieldKeys, k)
		*next = len(se.fieldKeys)
	}
	return k
}

// parsePoints is Points into pb's arrays, which it may replace by larger
// ones.
func parsePoints(pb *pointBuf, body []byte, prec lineproto.Precision, now int64) ([]tsdb.Point, []*lineproto.LineError) {
	d := lineproto.NewDecoder(body)
	// Size the backing arrays from the newline count, then sub-slice them.
	est := bytes.Count(body, []byte{'\n'}) + 1
	if cap(pb.pts) < est {
		pb.pts = make([]tsdb.Point, 0, est)
	}
	pts := pb.pts[:0]
	if cap(pb.fields) == 0 {
		pb.fields = make([]tsdb.Field, 0, est*8)
	}
	intern := make(map[string]string)
	str := func(b []byte) string {
		if s, ok := intern[string(b)]; ok {
			return s
		}
		s := string(b)
		intern[s] = s
		return s
	}
	series := make(map[string]*seriesEntry)
	// Lines of a series seen before skip tag parsing: the decoder asks
	// and the entry found is used below.
	var known *seriesEntry
	d.Known = func(key []byte) bool {
		known = series[string(key)]
		return known != nil
	}
	fieldBuf := pb.fields[:0]
	spilled := 0 // fields in full chunks before fieldBuf
	var bad []*lineproto.LineError
	for {
		l, err := d.Next()
		if err == lineproto.ErrEOF {
			break
		}
		if err != nil {
			var le *lineproto.LineError
			if errors.As(err, &le) {
				bad = append(bad, le)
				continue
			}
			bad = append(bad, &lineproto.LineError{Msg: err.Error()})
			continue
		}
		ts := now
		if l.HasTime {
			if ts, err = prec.ToNanos(l.Time); err != nil {
				bad = append(bad, &lineproto.LineError{Number: l.Number, Text: fmt.Sprintf("%s ... %d", l.Series, l.Time), Msg: err.Error()})
				continue
			}
		} else if prec != lineproto.Nanosecond {
			ts -= ts % int64(prec)
		}
		se := known
		known = nil
		if l.Measurement != nil || se == nil {
			se = series[string(l.Series)]
		}
		if se == nil {
			se = &seriesEntry{meas: str(l.Measurement)}
			if len(l.Tags) > 0 {
				se.tags = make([]tsdb.Tag, len(l.Tags))
				for i, t := range l.Tags {
					se.tags[i] = tsdb.Tag{Key: str(t.Key), Value: str(t.Value)}
				}
				slices.SortFunc(se.tags, func(a, b tsdb.Tag) int { return strings.Compare(a.Key, b.Key) })
			}
			series[string(l.Series)] = se
		}
		if len(fieldBuf)+len(l.Fields) > cap(fieldBuf) {
			spilled += len(fieldBuf)
			fieldBuf = make([]tsdb.Field, 0, max(1024, len(l.Fields)*64, cap(fieldBuf)/2))
		}
		f0 := len(fieldBuf)
		next := 0 // where the series' next field key is expected
		for _, f := range l.Fields {
			var v tsdb.Value
			switch f.Type {
			case lineproto.Float:
				v = tsdb.FloatValue(f.Float)
			case lineproto.Integer:
				v = tsdb.IntValue(f.Int)
			case lineproto.Unsigned:
				v = tsdb.UintValue(f.Uint)
			case lineproto.Boolean:
				v = tsdb.BoolValue(f.Bool)
			case lineproto.String:
				v = tsdb.StringValue(string(f.Str))
			}
			fieldBuf = append(fieldBuf, tsdb.Field{Key: se.fieldKey(f.Key, &next), Value: v})
		}
		pts = append(pts, tsdb.Point{
			Measurement: se.meas,
			Tags:        se.tags,
			Fields:      fieldBuf[f0:len(fieldBuf):len(fieldBuf)],
			Time:        ts,
		})
	}
	pb.pts = pts[:0]
	if spilled > 0 { // next time one array for all
		pb.fields = make([]tsdb.Field, 0, spilled+len(fieldBuf)+(spilled+len(fieldBuf))/8)
	}
	return pts, bad
}
