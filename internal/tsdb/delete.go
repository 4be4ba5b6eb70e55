package tsdb

import (
	"context"
	"fmt"
	"math"
)

// Delete removes the samples of the series of measurement that satisfy
// every matcher, with start <= t < end (end 0 = no bound), written before
// Delete returns. The head is flushed first; blocks are masked by a
// tombstone at query time until compaction rewrites them. With
// Options.OnDelete set (a Catalog sets it), the hook runs the deletion:
// the catalog's rollups of this database are consistent with it when
// Delete returns.
func (db *DB) Delete(ctx context.Context, measurement string, ms []Matcher, start, end int64) error {
	if measurement == "" {
		return fmt.Errorf("%w: delete needs a measurement", ErrInvalidQuery)
	}
	if _, err := compileMatchers(ms); err != nil {
		return err
	}
	if end == 0 {
		end = math.MaxInt64
	}
	if end <= start {
		return fmt.Errorf("%w: delete range end %d not after start %d", ErrInvalidQuery, end, start)
	}
	del := func() error { return db.deleteAndNotify(ctx, measurement, ms, start, end) }
	if db.opts.OnDelete == nil {
		return del()
	}
	return db.opts.OnDelete(ctx, measurement, ms, start, end, del)
}

// deleteAndNotify deletes without running Options.OnDelete. It flushes
// through Flush first, so that OnBlock hears of the partitions that flush
// completes (deleteRange's own flushes do not report them).
func (db *DB) deleteAndNotify(ctx context.Context, measurement string, ms []Matcher, start, end int64) error {
	if err := db.Flush(ctx); err != nil {
		return err
	}
	return db.deleteRange(ctx, measurement, ms, start, end)
}
