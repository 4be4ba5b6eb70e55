package tsdb

import "fmt"

func seriesLimitError(limit int) error {
	return fmt.Errorf("%w: %d series (storage max_series)", ErrSeriesLimit, limit)
}

// reserveSeries enforces Options.MaxSeries (limit > 0) for a batch: it
// creates in the index, under the write lock, the series that points of
// pts at or after floor would add, as long as the index stays within
// limit, and returns the keys of the series it refused. With all set
// (Write: the batch is stored whole or not at all) it creates none when
// any would be refused.
//
// Creating the series here rather than when the writer goroutine applies
// the batch is what makes the limit exact: a concurrent batch counts them
// at once. When every series of the batch exists, the cost is one read
// lock and a map lookup per point.
func (db *DB) reserveSeries(pts []preparedPoint, floor int64, limit int, all bool) map[string]bool {
	var fresh []int // first point of each series missing from the index
	var seen map[string]bool
	db.mu.RLock()
	for i := range pts {
		p := &pts[i]
		if p.Time < floor || db.index.byKey[p.key] != nil || seen[p.key] {
			continue
		}
		if seen == nil {
			seen = make(map[string]bool)
		}
		seen[p.key] = true
		fresh = append(fresh, i)
	}
	db.mu.RUnlock()
	if len(fresh) == 0 {
		return nil
	}

	db.mu.Lock()
	defer db.mu.Unlock()
	// Another batch may have created some of them since the read lock.
	missing := fresh[:0]
	for _, i := range fresh {
		if db.index.byKey[pts[i].key] == nil {
			missing = append(missing, i)
		}
	}
	room := max(limit-len(db.index.byKey), 0)
	var refused map[string]bool
	if len(missing) > room {
		refused = make(map[string]bool, len(missing)-room)
		for _, i := range missing[room:] {
			refused[pts[i].key] = true
		}
		if all {
			return refused
		}
		missing = missing[:room]
	}
	for _, i := range missing {
		p := &pts[i]
		db.index.getOrCreate(p.key, p.Measurement, p.Tags)
	}
	return refused
}
