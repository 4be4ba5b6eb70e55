package influxql

import (
	"time"
	// The zone database is embedded so that tz() answers the same on hosts
	// without /usr/share/zoneinfo (minimal containers, edge devices).
	_ "time/tzdata"
)

// loadLocation resolves a tz() argument as InfluxDB does (time.LoadLocation:
// IANA names, "UTC", "Local"); the error reads "unknown time zone X".
func loadLocation(name string) (*time.Location, error) {
	return time.LoadLocation(name)
}

// zoneOffset returns loc's offset from UTC at t, in nanoseconds.
func zoneOffset(loc *time.Location, t int64) int64 {
	if loc == nil {
		return 0
	}
	_, off := time.Unix(0, t).In(loc).Zone()
	return int64(off) * int64(time.Second)
}

// windowStart returns the start of the GROUP BY time(iv, off) window that
// holds t (see windowBounds).
func windowStart(t, iv, off int64, loc *time.Location) int64 {
	start, _ := windowBounds(t, iv, off, loc)
	return start
}

// windowBounds returns the GROUP BY time(iv, off) window [start, end) that
// holds t. With a location the windows are aligned on local time and
// adjusted across offset changes exactly as InfluxDB 1.x does
// (IteratorOptions.Window): a daily window starts at local midnight, and a
// window containing a DST switch is an hour shorter or longer.
func windowBounds(t, iv, off int64, loc *time.Location) (start, end int64) {
	t -= off
	zone := zoneOffset(loc, t)
	dt := (t + zone) % iv
	if dt < 0 {
		dt += iv
	}
	start = t - dt
	if loc != nil {
		// The offset at the start may differ from the one at t when a
		// switch lies between them.
		if o := zone - zoneOffset(loc, start); o != 0 && abs64(o) < iv {
			start += o
		}
	}
	start += off
	end = t + (iv - dt)
	if loc != nil {
		endOffset := zoneOffset(loc, end)
		if o := zone - endOffset; o != 0 && abs64(o) < iv {
			// Clocks going back add time to this window; clocks going
			// forward shorten it only when the switch lies inside it.
			if o > 0 || zoneOffset(loc, end+o) == endOffset {
				end += o
			}
		}
	}
	return start, end + off
}

// nextWindow advances the window start w by one interval for fill(),
// correcting for an offset change crossed on the way as InfluxDB's fill
// iterator does. offset holds the zone offset of the current window and
// is updated.
func nextWindow(w, iv int64, loc *time.Location, offset *int64) int64 {
	w += iv
	if loc == nil {
		return w
	}
	if o := zoneOffset(loc, w-1); o != *offset {
		if diff := *offset - o; abs64(diff) < iv {
			w += diff
		}
		*offset = o
	}
	return w
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
