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

// parseISO is the fast path of the common ISO-8601 forms:
// YYYY-MM-DD[(T| )hh:mm[:ss[.f{1,9}]][Z|±hh:mm|±hhmm]]. It declines (ok
// false) whatever it does not cover, and then time.Parse decides.
func parseISO[S string | []byte](s S) (ns int64, ok bool) {
	n := len(s)
	num := func(i, w int) (int, bool) {
		v := 0
		for j := i; j < i+w; j++ {
			c := s[j]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	if n < 10 || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 2)
	d, ok3 := num(8, 2)
	if !ok1 || !ok2 || !ok3 || mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, y) {
		return 0, false
	}
	var h, mi, sec, frac int
	i := 10
	if n > 10 {
		sep := s[10]
		if sep != 'T' && sep != ' ' || n < 16 || s[13] != ':' {
			return 0, false
		}
		var okh, okm bool
		h, okh = num(11, 2)
		mi, okm = num(14, 2)
		if !okh || !okm || h > 23 || mi > 59 {
			return 0, false
		}
		i = 16
		if i < n && s[i] == ':' {
			if n < 19 {
				return 0, false
			}
			var oks bool
			if sec, oks = num(17, 2); !oks || sec > 59 {
				return 0, false
			}
			i = 19
			if i < n && s[i] == '.' {
				j := i + 1
				for j < n && j-i-1 < 10 && s[j] >= '0' && s[j] <= '9' {
					j++
				}
				digits := j - i - 1
				if digits == 0 || digits > 9 {
					return 0, false
				}
				frac, _ = num(i+1, digits)
				for k := digits; k < 9; k++ {
					frac *= 10
				}
				i = j
			}
		} else if sep != 'T' {
			return 0, false
		}
		if i < n {
			// Zone.
			off := 0
			hasSec := n >= 19 && s[16] == ':'
			switch c := s[i]; {
			case c == 'Z' && i+1 == n:
			case c == '+' || c == '-':
				var mStart int
				switch {
				case i+6 == n && s[i+3] == ':':
					mStart = i + 4
				case i+5 == n && sep == 'T' && hasSec && s[i+3] != ':':
					mStart = i + 3
				default:
					return 0, false
				}
				oh, ok1 := num(i+1, 2)
				om, ok2 := num(mStart, 2)
				if !ok1 || !ok2 || oh > 23 || om > 59 {
					return 0, false
				}
				off = oh*3600 + om*60
				if c == '-' {
					off = -off
				}
			default:
				return 0, false
			}
			t := time.Date(y, time.Month(mo), d, h, mi, sec, frac, time.UTC)
			return t.UnixNano() - int64(off)*1e9, true
		}
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, frac, time.UTC).UnixNano(), true
}

func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// eventTime converts a payload timestamp value to UnixNano.
func eventTime(v any) (int64, error) {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		if ns, ok := parseISO(s); ok {
			return ns, nil
		}
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
