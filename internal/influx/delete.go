package influx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// deleteV2 serves InfluxDB 2.x's POST /api/v2/delete?org=&bucket= (or
// bucketID=, see BucketID): the
// JSON body names an inclusive time range and an optional predicate of
// key="value" terms joined by AND (_measurement selects the measurement;
// without it every measurement of the bucket is affected). The samples go
// on the engine's tombstones, applied at query time and dropped by
// compaction.
func (h *Handler) deleteV2(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, http.StatusMethodNotAllowed, "", "deletes use POST")
		return
	}
	if !h.authorize(w, r) {
		return
	}
	bucket := r.URL.Query().Get("bucket")
	if id := r.URL.Query().Get("bucketID"); bucket == "" && id != "" { // DeleteAPI.Delete sends IDs
		info, ok := h.bucketByID(id)
		if !ok {
			h.fail(w, r, http.StatusNotFound, "", fmt.Sprintf("bucket %q not found", id))
			return
		}
		bucket = info.Name
	}
	if bucket == "" {
		h.fail(w, r, http.StatusBadRequest, "", "bucket is required")
		return
	}
	name, rp, _ := strings.Cut(bucket, "/")
	db, ok := h.database(w, r, name, rp)
	if !ok {
		return
	}
	var req struct {
		Start     string `json:"start"`
		Stop      string `json:"stop"`
		Predicate string `json:"predicate"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		h.fail(w, r, http.StatusBadRequest, "invalid", "invalid delete body: "+err.Error())
		return
	}
	start, err1 := time.Parse(time.RFC3339Nano, req.Start)
	stop, err2 := time.Parse(time.RFC3339Nano, req.Stop)
	if err := errors.Join(err1, err2); err != nil || req.Start == "" || req.Stop == "" {
		h.fail(w, r, http.StatusBadRequest, "invalid", "start and stop must be RFC3339 times")
		return
	}
	if stop.Before(start) {
		h.fail(w, r, http.StatusBadRequest, "invalid", "stop is before start")
		return
	}
	meas, ms, err := ParseDeletePredicate(req.Predicate)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	measurements := []string{meas}
	if meas == "" {
		if measurements, err = db.Measurements(r.Context()); err != nil {
			h.storeError(w, r, err)
			return
		}
	}
	end := stop.UnixNano() + 1 // stop is inclusive
	if end < stop.UnixNano() {
		end = 0
	}
	for _, m := range measurements {
		if err := db.Delete(r.Context(), m, ms, start.UnixNano(), end); err != nil {
			if errors.Is(err, tsdb.ErrInvalidQuery) {
				h.fail(w, r, http.StatusBadRequest, "invalid", err.Error())
				return
			}
			h.storeError(w, r, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// ParseDeletePredicate parses InfluxDB 2.x's delete predicate syntax:
// key="value" terms joined by AND (keys may be double-quoted, values may
// use \" and \\). It returns the _measurement value ("" when absent) and
// equality matchers for the tags. OR, regexps, other operators and
// _field are rejected, as InfluxDB does.
func ParseDeletePredicate(s string) (string, []tsdb.Matcher, error) {
	var meas string
	var ms []tsdb.Matcher
	rest := strings.TrimSpace(s)
	for rest != "" {
		key, after, err := predicateToken(rest)
		if err != nil {
			return "", nil, err
		}
		after = strings.TrimSpace(after)
		if !strings.HasPrefix(after, "=") || strings.HasPrefix(after, "=~") {
			return "", nil, fmt.Errorf("delete predicate: after %q expected =, the only operator supported", key)
		}
		after = strings.TrimSpace(after[1:])
		if !strings.HasPrefix(after, `"`) {
			return "", nil, fmt.Errorf("delete predicate: the value of %q must be a double-quoted string", key)
		}
		val, after, err := predicateToken(after)
		if err != nil {
			return "", nil, err
		}
		switch key {
		case "_measurement":
			if meas != "" && meas != val {
				return "", nil, errors.New("delete predicate: _measurement given twice")
			}
			meas = val
		case "_field":
			return "", nil, errors.New("delete predicate: deleting by _field is not supported")
		default:
			m, err := tsdb.NewMatcher(key, tsdb.MatchEqual, val)
			if err != nil {
				return "", nil, err
			}
			ms = append(ms, m)
		}
		rest = strings.TrimSpace(after)
		if rest == "" {
			break
		}
		word, tail, _ := strings.Cut(rest, " ")
		if !strings.EqualFold(word, "and") {
			return "", nil, fmt.Errorf("delete predicate: expected AND at %q (OR is not supported)", rest)
		}
		rest = strings.TrimSpace(tail)
		if rest == "" {
			return "", nil, errors.New("delete predicate: nothing after AND")
		}
	}
	return meas, ms, nil
}

// predicateToken reads a bare word (letters, digits, _ - . :) or a
// double-quoted string from the front of s.
func predicateToken(s string) (string, string, error) {
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch c := s[i]; c {
			case '\\':
				if i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				}
			case '"':
				return b.String(), s[i+1:], nil
			default:
				b.WriteByte(c)
			}
		}
		return "", "", fmt.Errorf("delete predicate: unterminated string in %q", s)
	}
	i := 0
	for i < len(s) && (s[i] == '_' || s[i] == '-' || s[i] == '.' || s[i] == ':' || s[i] >= '0' && s[i] <= '9' ||
		s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= 0x80) {
		i++
	}
	if i == 0 {
		return "", "", fmt.Errorf("delete predicate: expected a tag key at %q", s)
	}
	return s[:i], s[i:], nil
}
