package tsdb

import (
	"slices"
)

// series is one measurement+tags combination. measurement, tags and key
// never change after creation; fields is guarded by DB.mu.
type series struct {
	id          uint64
	key         string
	measurement string
	tags        []Tag
	fields      map[string]ValueType
}

// tagValue returns the value of tag k ("" when absent).
func (s *series) tagValue(k string) string {
	for _, t := range s.tags {
		if t.Key == k {
			return t.Value
		}
	}
	return ""
}

// seriesIndex maps series keys to series and keeps postings lists
// (measurement -> ids, measurement+tag=value -> ids). Ids are assigned in
// increasing order, so postings stay sorted by appending. The index is
// process-local: it is rebuilt from block indexes and the WAL on Open.
type seriesIndex struct {
	byKey    map[string]*series
	byID     []*series // index id-1
	byMeas   map[string][]uint64
	postings map[string][]uint64 // measurement \xff key \xff value
}

func newSeriesIndex() *seriesIndex {
	return &seriesIndex{
		byKey:    make(map[string]*series),
		byMeas:   make(map[string][]uint64),
		postings: make(map[string][]uint64),
	}
}

func postingKey(measurement, k, v string) string {
	return measurement + "\xff" + k + "\xff" + v
}

// getOrCreate returns the series for key, creating it (tags must be sorted
// and are retained).
func (ix *seriesIndex) getOrCreate(key, measurement string, tags []Tag) *series {
	if s, ok := ix.byKey[key]; ok {
		return s
	}
	s := &series{
		id:          uint64(len(ix.byID) + 1),
		key:         key,
		measurement: measurement,
		tags:        slices.Clone(tags),
		fields:      make(map[string]ValueType),
	}
	ix.byKey[key] = s
	ix.byID = append(ix.byID, s)
	ix.byMeas[measurement] = append(ix.byMeas[measurement], s.id)
	for _, t := range s.tags {
		pk := postingKey(measurement, t.Key, t.Value)
		ix.postings[pk] = append(ix.postings[pk], s.id)
	}
	return s
}

func (ix *seriesIndex) get(id uint64) *series { return ix.byID[id-1] }

// match returns the series of measurement whose tags equal every matcher
// (a matcher with an empty value matches series without that tag).
func (ix *seriesIndex) match(measurement string, matchers []Tag) []*series {
	ids := ix.byMeas[measurement]
	var empty []Tag
	for _, m := range matchers {
		if m.Value == "" {
			empty = append(empty, m)
			continue
		}
		ids = intersect(ids, ix.postings[postingKey(measurement, m.Key, m.Value)])
		if len(ids) == 0 {
			return nil
		}
	}
	out := make([]*series, 0, len(ids))
next:
	for _, id := range ids {
		s := ix.get(id)
		for _, m := range empty {
			if s.tagValue(m.Key) != "" {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

func intersect(a, b []uint64) []uint64 {
	var out []uint64
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
