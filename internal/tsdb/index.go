package tsdb

import (
	"strings"
)

// series is one measurement+tags combination. measurement, tags and key
// never change after creation; fields is guarded by DB.mu.
type series struct {
	id          uint64
	key         string
	measurement string
	tags        []Tag
	fields      map[string]ValueType
	// hint lists the series' fields (up to maxHints) with the index's own
	// name strings, in the order they were first written, so the write path
	// finds a field's type by comparing names instead of hashing, and
	// swaps a point's keys for these strings. Every entry is also in
	// fields. Guarded like fields.
	hint []fieldHint
	// headPart and headSeries cache where the series' last point went in
	// the head, so the next point of the same partition skips two map
	// lookups. Guarded by DB.mu; cleared when the partition leaves
	// head.parts (head.release), so they never keep flushed data alive.
	headPart   *headPartition
	headSeries *headSeries
}

type fieldHint struct {
	name string
	typ  ValueType
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

// measIndex is the part of the series index for one measurement: all its
// series ids and the postings lists key -> value -> ids (sorted, as ids
// are assigned in increasing order), plus the union of field types.
type measIndex struct {
	ids    []uint64
	tags   map[string]map[string][]uint64
	fields map[string]ValueType
}

// seriesIndex maps series keys to series and keeps postings lists per
// measurement. The index is process-local: it is rebuilt from block
// indexes and the WAL on Open.
type seriesIndex struct {
	byKey map[string]*series
	byID  []*series // index id-1; nil once a series is dropped
	meas  map[string]*measIndex
}

func newSeriesIndex() *seriesIndex {
	return &seriesIndex{
		byKey: make(map[string]*series),
		meas:  make(map[string]*measIndex),
	}
}

// getOrCreate returns the series for key, creating it (tags must be
// sorted). A new series keeps copies of the key, measurement and tag
// strings: writers may hand in strings that alias buffers they reuse (the
// broker's messages do), and the index keeps them for its lifetime.
func (ix *seriesIndex) getOrCreate(key, measurement string, tags []Tag) *series {
	if s, ok := ix.byKey[key]; ok {
		return s
	}
	owned := make([]Tag, len(tags))
	for i, t := range tags {
		owned[i] = Tag{Key: strings.Clone(t.Key), Value: strings.Clone(t.Value)}
	}
	key, measurement = strings.Clone(key), strings.Clone(measurement)
	s := &series{
		id:          uint64(len(ix.byID) + 1),
		key:         key,
		measurement: measurement,
		tags:        owned,
		fields:      make(map[string]ValueType),
	}
	ix.byKey[key] = s
	ix.byID = append(ix.byID, s)
	mi := ix.meas[measurement]
	if mi == nil {
		mi = &measIndex{tags: make(map[string]map[string][]uint64), fields: make(map[string]ValueType)}
		ix.meas[measurement] = mi
	}
	mi.ids = append(mi.ids, s.id)
	for _, t := range s.tags {
		vals := mi.tags[t.Key]
		if vals == nil {
			vals = make(map[string][]uint64)
			mi.tags[t.Key] = vals
		}
		vals[t.Value] = append(vals[t.Value], s.id)
	}
	return s
}

// setField (i: the field's position in the point, -1 if none) records the
// type of a field of s (first type wins) and returns the index's own copy
// of name, which callers may keep (name may alias a caller's buffer).
func (ix *seriesIndex) setField(s *series, name string, typ ValueType, i int) string {
	if j := s.hintIndex(name, i); j >= 0 {
		return s.hint[j].name
	}
	name = internName(name) // a copy, kept: see getOrCreate
	if t, ok := s.fields[name]; ok {
		s.setHint(name, t, i)
		return name
	}
	s.fields[name] = typ
	s.setHint(name, typ, i)
	if mi := ix.meas[s.measurement]; mi != nil {
		if _, ok := mi.fields[name]; !ok {
			mi.fields[name] = typ
		}
	}
	return name
}

func (ix *seriesIndex) get(id uint64) *series { return ix.byID[id-1] }

// match returns the series of measurement whose tags satisfy every
// equality tag (an empty value matches series without the tag) and every
// matcher. Equality and selective regexp matchers are answered from the
// postings lists; the others filter the candidates one by one.
func (ix *seriesIndex) match(measurement string, tags []Tag, ms []Matcher) []*series {
	mi := ix.meas[measurement]
	if mi == nil {
		return nil
	}
	all := make([]Matcher, 0, len(tags)+len(ms))
	for _, t := range tags {
		all = append(all, Matcher{Key: t.Key, Op: MatchEqual, Value: t.Value})
	}
	all = append(all, ms...)
	ids := mi.ids
	var rest []Matcher
	for _, m := range all {
		switch {
		case m.Op == MatchEqual && m.Value != "":
			ids = intersect(ids, mi.tags[m.Key][m.Value])
		case m.Op == MatchRegexp && m.re != nil && !m.re.MatchString(""):
			var union []uint64
			for v, p := range mi.tags[m.Key] {
				if m.re.MatchString(v) {
					union = unionIDs(union, p)
				}
			}
			ids = intersect(ids, union)
		default:
			rest = append(rest, m)
			continue
		}
		if len(ids) == 0 {
			return nil
		}
	}
	out := make([]*series, 0, len(ids))
next:
	for _, id := range ids {
		s := ix.get(id)
		for _, m := range rest {
			if !m.Matches(s.tagValue(m.Key)) {
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

func unionIDs(a, b []uint64) []uint64 {
	out := make([]uint64, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// maxHints bounds the fields a series keeps hints for.
const maxHints = 64

// hintIndex returns the index of name among the hints, trying position i
// first (points usually name their fields in the same order: callers pass
// one past the previous field's index, which also holds when a point
// leaves out a field), or -1.
func (s *series) hintIndex(name string, i int) int {
	if i >= 0 && i < len(s.hint) && s.hint[i].name == name {
		return i
	}
	for j := range s.hint {
		if s.hint[j].name == name {
			return j
		}
	}
	return -1
}

// setHint adds a field missing from the hints: appended while there is
// room (a series with up to maxHints fields keeps every field's name once),
// else at the point's position i.
func (s *series) setHint(name string, typ ValueType, i int) {
	switch {
	case len(s.hint) < maxHints:
		s.hint = append(s.hint, fieldHint{name, typ})
	case i >= 0 && i < len(s.hint):
		s.hint[i] = fieldHint{name, typ}
	}
}
