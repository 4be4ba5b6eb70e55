package tsdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
)

// A delete in a rollup's source leaves the rollup's windows computed from
// the deleted samples. The catalog therefore runs every Delete of a
// rollup source (Options.OnDelete) as follows, holding rollupMu so that no
// rollup job computes windows meanwhile:
//
//  1. the delete is recorded as pending in catalog.json;
//  2. the source deletes the samples;
//  3. for each rollup of the source, the target deletes the windows that
//     overlap the deleted range, for the series the delete matched, and
//     the first and last of those windows, when they reach outside the
//     deleted range (only they can keep source samples), are recomputed
//     from the source; rollups of the target are then treated the same
//     way for the windows it changed;
//  4. the pending record is removed.
//
// After a crash between 1 and 4, OpenCatalog recomputes every window in
// the pending range from what the source holds, which is right whether or
// not the source delete happened.

// rollupDelete is a pending delete in catalog.json.
type rollupDelete struct {
	Database    string       `json:"database"`
	Measurement string       `json:"measurement"`
	Matchers    []matcherDoc `json:"matchers,omitempty"`
	Start       int64        `json:"start"`
	End         int64        `json:"end"` // exclusive
}

func (d rollupDelete) matchers() ([]Matcher, error) {
	var ms []Matcher
	for _, x := range d.Matchers {
		m, err := NewMatcher(x.Key, x.Op, x.Value)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// onDelete is a DB's OnDelete hook.
func (c *Catalog) onDelete(source string) func(context.Context, string, []Matcher, int64, int64, func() error) error {
	return func(ctx context.Context, m string, ms []Matcher, start, end int64, del func() error) error {
		if !slices.ContainsFunc(c.Rollups(), func(r Rollup) bool { return r.Source == source }) {
			return del()
		}
		c.rollupMu.Lock()
		defer c.rollupMu.Unlock()
		pd := rollupDelete{Database: source, Measurement: m, Start: start, End: end}
		for _, x := range ms {
			pd.Matchers = append(pd.Matchers, matcherDoc{Key: x.Key, Op: x.Op, Value: x.Value})
		}
		if err := c.setPending(pd, true); err != nil {
			return err
		}
		if err := del(); err != nil {
			// The source may be partly deleted (a tombstone saved, its
			// flush failed): recompute the whole range.
			if ferr := c.fixRollups(ctx, source, m, ms, start, end, [][2]int64{{start, end}}, nil); ferr == nil {
				c.setPending(pd, false)
			}
			return err
		}
		if err := c.fixRollups(ctx, source, m, ms, start, end, nil, nil); err != nil {
			return fmt.Errorf("tsdb: deleted, but updating the rollups failed (retried on the next start): %w", err)
		}
		return c.setPending(pd, false)
	}
}

// setPending adds (or removes) a pending delete and saves catalog.json.
func (c *Catalog) setPending(pd rollupDelete, add bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.pending
	if add {
		c.pending = append(slices.Clone(c.pending), pd)
	} else {
		i := slices.IndexFunc(c.pending, func(x rollupDelete) bool { return rollupDeleteEqual(x, pd) })
		if i < 0 {
			return nil
		}
		c.pending = slices.Delete(slices.Clone(c.pending), i, i+1)
	}
	if err := c.save(); err != nil {
		c.pending = old
		return err
	}
	return nil
}

func rollupDeleteEqual(a, b rollupDelete) bool {
	return a.Database == b.Database && a.Measurement == b.Measurement && a.Start == b.Start && a.End == b.End &&
		slices.Equal(a.Matchers, b.Matchers)
}

// fixRollups (rollupMu held) makes the rollups of source consistent after
// the samples of measurement m matching ms in [start, end) changed: they
// were deleted, except in the ranges of keep, where the source may hold
// samples (nil after a plain delete; the whole range when the outcome is
// unknown). See the comment at the top of the file.
func (c *Catalog) fixRollups(ctx context.Context, source, m string, ms []Matcher, start, end int64, keep [][2]int64, seen []string) error {
	seen = append(seen, source)
	var errs []error
	for _, r := range c.Rollups() {
		if r.Source != source || slices.Contains(seen, r.Target) {
			continue // a cycle of rollups is cut at its second visit
		}
		src, err := c.DB(r.Source)
		if err != nil {
			return err
		}
		dst, err := c.DB(r.Target)
		if errors.Is(err, ErrDatabaseNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		every := int64(r.Every)
		lo, hi := windowSpan(start, end, every)
		if err := dst.deleteAndNotify(ctx, m, ms, lo, hi); err != nil {
			errs = append(errs, fmt.Errorf("rollup %s -> %s: %w", r.Source, r.Target, err))
			continue
		}
		// Recompute the windows that may still have source samples: those
		// reaching outside [start, end) and those overlapping keep.
		var spans [][2]int64
		if lo < start {
			spans = append(spans, [2]int64{lo, lo + every})
		}
		if end < hi {
			spans = append(spans, [2]int64{hi - every, hi})
		}
		for _, k := range keep {
			x, y := windowSpan(k[0], k[1], every)
			spans = append(spans, [2]int64{x, y})
		}
		spans = mergeSpans(spans)
		for _, sp := range spans {
			if err := c.rollupWindows(ctx, r, src, dst, m, ms, sp[0], sp[1]); err != nil {
				errs = append(errs, fmt.Errorf("rollup %s -> %s: %w", r.Source, r.Target, err))
			}
		}
		// The target lost its windows in [lo, hi) but those of spans:
		// rollups of the target follow.
		errs = append(errs, c.fixRollups(ctx, r.Target, m, ms, lo, hi, spans, seen))
	}
	return errors.Join(errs...)
}

// mergeSpans sorts ranges and merges those that overlap or touch.
func mergeSpans(spans [][2]int64) [][2]int64 {
	slices.SortFunc(spans, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var out [][2]int64
	for _, s := range spans {
		if n := len(out); n > 0 && s[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], s[1])
			continue
		}
		out = append(out, s)
	}
	return out
}

// windowSpan widens [start, end) to whole windows of every, staying clear
// of int64 overflow at the extremes.
func windowSpan(start, end, every int64) (lo, hi int64) {
	start = max(start, math.MinInt64+every)
	end = min(end, math.MaxInt64-every)
	lo = floorDiv(start, every) * every
	hi = (floorDiv(end-1, every) + 1) * every
	return lo, hi
}

// resumeRollupDeletes (OpenCatalog) finishes the deletes a crash left
// pending: every window in their ranges is recomputed from the source.
func (c *Catalog) resumeRollupDeletes(ctx context.Context) {
	c.rollupMu.Lock()
	defer c.rollupMu.Unlock()
	for _, pd := range slices.Clone(c.pending) {
		ms, err := pd.matchers()
		if err == nil {
			err = c.fixRollups(ctx, pd.Database, pd.Measurement, ms, pd.Start, pd.End, [][2]int64{{pd.Start, pd.End}}, nil)
		}
		if err == nil {
			err = c.setPending(pd, false)
		}
		if err != nil {
			c.log.Error("tsdb: finishing the rollup update of an interrupted delete", "database", pd.Database,
				"measurement", pd.Measurement, "err", err)
			continue
		}
		c.log.Info("tsdb: finished the rollup update of an interrupted delete", "database", pd.Database, "measurement", pd.Measurement)
	}
}
