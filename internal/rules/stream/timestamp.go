package stream

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

var errTimestamp = errors.New("bad event timestamp")

// layouts accepted for string timestamps (the device API's, see
// internal/ingest), tried in order.
var layouts = [...]string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
}

// eventTime converts a payload timestamp value to UnixNano.
func eventTime(v any) (int64, error) {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		for _, l := range layouts {
			if t, err := time.Parse(l, s); err == nil {
				return t.UnixNano(), nil
			}
		}
		return 0, fmt.Errorf("stream: %w: %.64q is not ISO-8601", errTimestamp, x)
	case int64:
		return epoch(float64(x), x)
	case float64:
		return epoch(x, 0)
	}
	return 0, fmt.Errorf("stream: %w: want a string or a number", errTimestamp)
}

// epoch converts seconds, ms, µs or ns since the epoch (by magnitude).
func epoch(f float64, exact int64) (int64, error) {
	if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("stream: %w: %g is not a valid epoch time", errTimestamp, f)
	}
	switch {
	case f < 1e11:
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1000).UnixNano(), nil
	case f < 1e14:
		if exact != 0 {
			return exact * 1e6, nil
		}
		return int64(f) * 1e6, nil
	case f < 1e17:
		if exact != 0 {
			return exact * 1e3, nil
		}
		return int64(f) * 1e3, nil
	case f < 9.2e18:
		if exact != 0 {
			return exact, nil
		}
		return int64(f), nil
	}
	return 0, fmt.Errorf("stream: %w: %g out of range", errTimestamp, f)
}
