package tsdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// QueryNewest answers a raw query for the newest q.Limit samples of each
// series field (q.Desc is implied; q.Every must be 0). Unlike Query with
// Desc, which reads the whole range before keeping the newest, it loads
// the runs of block chunks and head samples from the newest backwards and
// stops once it has Limit samples, so "latest point" queries cost about
// one chunk per series field. Samples are returned newest first.
func (db *DB) QueryNewest(ctx context.Context, q Query) ([]Series, error) {
	if q.Limit <= 0 || q.Every != 0 {
		return nil, fmt.Errorf("%w: QueryNewest needs a raw query with a positive Limit", ErrInvalidQuery)
	}
	q.Desc = false
	if err := q.validate(); err != nil {
		return nil, err
	}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return nil, ErrClosed
	}
	ms, err := compileMatchers(q.Matchers)
	if err != nil {
		return nil, err
	}
	q.Matchers = ms
	if q.MaxSamples <= 0 {
		q.MaxSamples = db.opts.MaxQuerySamples
	}
	plans, blocks, err := db.plan(&q, true)
	defer func() {
		for _, b := range blocks {
			b.release()
		}
	}()
	if err != nil {
		return nil, err
	}
	b := budget{max: q.MaxSamples}
	for i := range plans {
		for _, s := range plans[i].sources {
			if err := b.take(len(s.samples)); err != nil {
				return nil, err
			}
		}
	}
	out := make([]Series, 0, len(plans))
	for i := range plans {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := &plans[i]
		runs := groupSources(p.sources)
		var samples []Sample
		for r := len(runs) - 1; r >= 0 && len(samples) < q.Limit; r-- {
			if g := runs[r]; len(q.Filters) > 0 && len(g) == 1 && g[0].chunk != nil && !chunkMayMatch(p.typ, g[0].chunk, q.Filters) {
				continue
			}
			if q.Limit-len(samples) == 1 && len(q.Filters) == 0 && summaryOnly(p.typ, runs[r], q) {
				c := runs[r][0].chunk // the newest sample is the chunk's last
				samples = append(samples, Sample{Time: c.maxT, Value: numValue(p.typ, c.last)})
				continue
			}
			smp, err := load(runs[r], p.typ, q.Start, q.End, &b)
			if err != nil {
				if errors.Is(err, ErrQueryLimit) {
					return nil, err
				}
				return nil, fmt.Errorf("tsdb: query %s %s: %w", p.s.key, p.field, err)
			}
			if len(q.Filters) > 0 {
				smp = filterSamples(smp, q.Filters)
			}
			for j := len(smp) - 1; j >= 0 && len(samples) < q.Limit; j-- {
				samples = append(samples, smp[j])
			}
		}
		if len(samples) == 0 {
			continue
		}
		out = append(out, Series{Measurement: p.s.measurement, Tags: p.s.tags, Field: p.field, Samples: slices.Clip(samples)})
	}
	return out, nil
}

// summaryOnly reports whether run g is one whole block chunk inside the
// query range with nothing deleted, so that its first and last samples
// are in its summary (strings keep no summary values).
func summaryOnly(typ ValueType, g []source, q Query) bool {
	if len(g) != 1 || g[0].chunk == nil || len(g[0].del) > 0 || typ == String {
		return false
	}
	c := g[0].chunk
	return c.minT >= q.Start && (q.End == 0 || c.maxT < q.End)
}
