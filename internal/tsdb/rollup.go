package tsdb

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Rollup keeps a downsampled copy of a database in another one: for every
// numeric field f of every series, the points of each Every-wide window
// (aligned to the epoch, labelled with the window start) get the fields
// f_mean, f_min, f_max and f_count in Target, under the same measurement
// and tags. A rollup is maintained incrementally: each time a partition of
// Source gets a block (flush), that partition's windows are recomputed
// and rewritten (last write wins), so late data is folded in. Every must
// divide Source's BlockDuration.
type Rollup struct {
	Source string        `json:"source"`
	Target string        `json:"target"`
	Every  time.Duration `json:"every"`
	// Retention of Target when the rollup creates it (0 = forever).
	Retention time.Duration `json:"retention"`
}

type rollupJob struct {
	source string
	part   int64
}

// AddRollup registers (idempotently) a rollup, creating Target when
// missing, and recomputes the rollup for the data Source already holds in
// blocks. It is persisted in catalog.json.
func (c *Catalog) AddRollup(ctx context.Context, r Rollup) error {
	src, err := c.DB(r.Source)
	if err != nil {
		return err
	}
	if r.Every <= 0 || src.blockDur%int64(r.Every) != 0 {
		return fmt.Errorf("%w: rollup every %v must be positive and divide the block duration %v",
			ErrInvalidQuery, r.Every, time.Duration(src.blockDur))
	}
	if r.Target == r.Source {
		return fmt.Errorf("%w: a rollup needs a target other than its source", ErrInvalidQuery)
	}
	if _, err := c.CreateDatabase(ctx, r.Target, RetentionPolicy{Duration: r.Retention}); err != nil {
		return err
	}
	c.mu.Lock()
	if slices.ContainsFunc(c.rollups, func(x Rollup) bool { return x.Source == r.Source && x.Target == r.Target && x.Every == r.Every }) {
		c.mu.Unlock()
		return nil
	}
	c.rollups = append(c.rollups, r)
	err = c.save()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	src.mu.RLock()
	parts := map[int64]bool{}
	for _, b := range src.blocks {
		parts[b.part] = true
	}
	src.mu.RUnlock()
	for p := range parts {
		if err := c.runRollup(ctx, r, p); err != nil {
			return err
		}
	}
	return nil
}

// Rollups lists the registered rollups.
func (c *Catalog) Rollups() []Rollup {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.rollups)
}

// onBlock is a source DB's OnBlock hook: it queues the partition.
func (c *Catalog) onBlock(source string) func(int64) {
	return func(part int64) {
		select {
		case c.jobs <- rollupJob{source: source, part: part}:
		default:
			c.log.Warn("tsdb: rollup queue full; partition skipped", "database", source, "partition", part)
		}
	}
}

// rollupWorker runs queued rollup jobs until quit.
func (c *Catalog) rollupWorker() {
	defer close(c.workerDone)
	for {
		select {
		case <-c.quit:
			return
		case j := <-c.jobs:
			for _, r := range c.Rollups() {
				if r.Source != j.source {
					continue
				}
				if err := c.runRollup(context.Background(), r, j.part); err != nil {
					c.log.Error("tsdb: rollup failed", "source", r.Source, "target", r.Target, "partition", j.part, "err", err)
				}
			}
		}
	}
}

var rollupFns = []Aggregate{Mean, Min, Max, Count}

// runRollup recomputes the windows of one partition of r.Source.
func (c *Catalog) runRollup(ctx context.Context, r Rollup, part int64) error {
	src, err := c.DB(r.Source)
	if err != nil {
		return err
	}
	dst, err := c.DB(r.Target)
	if err != nil {
		return err
	}
	c.rollupMu.Lock()
	defer c.rollupMu.Unlock()
	meas, err := src.Measurements(ctx)
	if err != nil {
		return err
	}
	for _, m := range meas {
		if err := c.rollupWindows(ctx, r, src, dst, m, nil, part, part+src.blockDur); err != nil {
			return err
		}
	}
	return nil
}

// rollupWindows recomputes r's windows in [start, end) (multiples of
// r.Every) for the series of measurement m that satisfy ms, and writes them
// to dst (last write wins). Windows without source data are not written.
func (c *Catalog) rollupWindows(ctx context.Context, r Rollup, src, dst *DB, m string, ms []Matcher, start, end int64) error {
	every := int64(r.Every)
	fields, err := src.FieldKeys(ctx, m)
	if err != nil {
		return err
	}
	var numeric []string
	for _, f := range fields {
		if f.Type != Boolean && f.Type != String {
			numeric = append(numeric, f.Key)
		}
	}
	if len(numeric) == 0 {
		return nil
	}
	type key struct {
		series string
		t      int64
	}
	points := map[key]*Point{}
	var order []key
	for _, fn := range rollupFns {
		res, err := src.Query(ctx, Query{Measurement: m, Matchers: ms, Fields: numeric, Start: start, End: end, Every: r.Every, Fn: fn})
		if err != nil {
			return err
		}
		for _, s := range res {
			sk := seriesKey(m, s.Tags)
			for _, x := range s.Samples {
				k := key{sk, x.Time - every}
				p := points[k]
				if p == nil {
					p = &Point{Measurement: m, Tags: s.Tags, Time: k.t}
					points[k] = p
					order = append(order, k)
				}
				p.Fields = append(p.Fields, Field{Key: s.Field + "_" + string(fn), Value: x.Value})
			}
		}
	}
	batch := make([]Point, 0, len(order))
	for _, k := range order {
		batch = append(batch, *points[k])
	}
	for len(batch) > 0 {
		n := min(len(batch), 10000)
		rej, err := dst.WritePartial(ctx, batch[:n])
		if err != nil {
			return err
		}
		if len(rej) > 0 {
			c.log.Debug("tsdb: rollup points refused by the target", "target", r.Target, "count", len(rej), "first", rej[0].Err)
		}
		batch = batch[n:]
	}
	return nil
}
