package tsdb

import (
	"context"
	"slices"
	"sort"
)

// FieldInfo names a field of a measurement and its type.
type FieldInfo struct {
	Key  string
	Type ValueType
}

// readIndex runs fn under the read lock unless the DB is closed.
func (db *DB) readIndex(ctx context.Context, fn func(ix *seriesIndex)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	fn(db.index)
	return nil
}

// Measurements returns the names of the measurements that have series,
// sorted.
func (db *DB) Measurements(ctx context.Context) ([]string, error) {
	var out []string
	err := db.readIndex(ctx, func(ix *seriesIndex) {
		for m, mi := range ix.meas {
			if len(mi.ids) > 0 {
				out = append(out, m)
			}
		}
	})
	slices.Sort(out)
	return out, err
}

// TagKeys returns the tag keys used by the series of measurement, sorted.
func (db *DB) TagKeys(ctx context.Context, measurement string) ([]string, error) {
	var out []string
	err := db.readIndex(ctx, func(ix *seriesIndex) {
		if mi := ix.meas[measurement]; mi != nil {
			for k := range mi.tags {
				out = append(out, k)
			}
		}
	})
	slices.Sort(out)
	return out, err
}

// TagValues returns the distinct values of tag key among the series of
// measurement that satisfy every matcher, sorted. Series without the tag
// contribute nothing.
func (db *DB) TagValues(ctx context.Context, measurement, key string, ms []Matcher) ([]string, error) {
	ms, err := compileMatchers(ms)
	if err != nil {
		return nil, err
	}
	var out []string
	err = db.readIndex(ctx, func(ix *seriesIndex) {
		mi := ix.meas[measurement]
		if mi == nil {
			return
		}
		if len(ms) == 0 {
			for v := range mi.tags[key] {
				out = append(out, v)
			}
			return
		}
		seen := make(map[string]struct{})
		for _, s := range ix.match(measurement, nil, ms) {
			if v := s.tagValue(key); v != "" {
				if _, ok := seen[v]; !ok {
					seen[v] = struct{}{}
					out = append(out, v)
				}
			}
		}
	})
	slices.Sort(out)
	return out, err
}

// FieldKeys returns the fields of measurement with the type each was
// first written with, sorted by key.
func (db *DB) FieldKeys(ctx context.Context, measurement string) ([]FieldInfo, error) {
	var out []FieldInfo
	err := db.readIndex(ctx, func(ix *seriesIndex) {
		if mi := ix.meas[measurement]; mi != nil {
			for k, t := range mi.fields {
				out = append(out, FieldInfo{Key: k, Type: t})
			}
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, err
}

// SeriesTags returns the tag sets (sorted by key) of the series of
// measurement that satisfy every matcher, ordered by tags. The slices
// must not be modified.
func (db *DB) SeriesTags(ctx context.Context, measurement string, ms []Matcher) ([][]Tag, error) {
	ms, err := compileMatchers(ms)
	if err != nil {
		return nil, err
	}
	var out [][]Tag
	err = db.readIndex(ctx, func(ix *seriesIndex) {
		for _, s := range ix.match(measurement, nil, ms) {
			out = append(out, s.tags)
		}
	})
	slices.SortFunc(out, compareTags)
	return out, err
}
