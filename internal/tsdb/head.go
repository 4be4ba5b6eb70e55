package tsdb

import (
	"cmp"
	"slices"
)

// head holds the data not yet in blocks, per time partition. It is guarded
// by DB.mu; partitions being flushed move to flushing and stay visible to
// queries until their block is loaded.
type head struct {
	parts    map[int64]*headPartition
	flushing []*headPartition
	samples  int
	maxT     int64
	hasData  bool
}

func newHead() *head { return &head{parts: make(map[int64]*headPartition)} }

type headPartition struct {
	start   int64
	series  map[uint64]*headSeries
	samples int
}

type headSeries struct {
	s      *series
	fields []*headField // few per series: a slice searched from a position hint
}

// field returns the field called name and its index (nil, -1 if absent),
// trying position hint first: points usually list their fields in the same
// order, so callers pass one past the previous field's index.
func (hs *headSeries) field(name string, hint int) (*headField, int) {
	if hint < len(hs.fields) && hs.fields[hint].name == name {
		return hs.fields[hint], hint
	}
	for i, f := range hs.fields {
		if f.name == name {
			return f, i
		}
	}
	return nil, -1
}

// headField is an append buffer of one series field. vals holds the value
// bits (float bits, int64, uint64, 0/1); strs holds strings instead for
// String fields. sorted is false once a sample arrived out of order.
type headField struct {
	name   string
	typ    ValueType
	ts     []int64
	vals   []uint64
	strs   []string
	sorted bool
	// oldest indexes the sample with the smallest time and newest[:nnew]
	// those with the headNewest largest distinct times, newest first (the
	// last written among equal times), so that "last point" queries on an
	// unsorted field need no scan. oldest is valid when ts is not empty.
	oldest int
	newest [headNewest]int
	nnew   int
	// lastT, oldT and newT cache the times of the last appended sample,
	// of oldest and of newest[j]: an append then reads nothing from the
	// sample arrays, whose tails (one pair per field, thousands of fields)
	// are mostly out of cache. Valid when ts is not empty.
	lastT, oldT int64
	newT        [headNewest]int64
}

// headNewest is how many newest samples a head field tracks: LIMIT 1
// reads 1, a raw subquery's LIMIT 1 under an outer GROUP BY reads one more
// (see influxql's rawLimitRuns).
const headNewest = 2

func (f *headField) append(t int64, v Value) {
	n := len(f.ts)
	switch {
	case n == 0:
		f.oldest, f.oldT, f.nnew = 0, t, 0
	case t <= f.lastT:
		f.sorted = false
		if t <= f.oldT {
			f.oldest, f.oldT = n, t
		}
	}
	f.lastT = t
	if f.nnew == headNewest && t > f.newT[0] { // in order: the common case
		copy(f.newest[1:], f.newest[:headNewest-1])
		copy(f.newT[1:], f.newT[:headNewest-1])
		f.newest[0], f.newT[0] = n, t
	} else {
		f.noteNewest(t, n)
	}
	f.ts = append(f.ts, t)
	if f.typ == String {
		f.strs = append(f.strs, v.str())
	} else {
		f.vals = append(f.vals, v.n)
	}
}

// noteNewest enters sample i (time t) into the newest list.
func (f *headField) noteNewest(t int64, i int) {
	for j := 0; j < f.nnew; j++ {
		tj := f.newT[j]
		if t == tj {
			f.newest[j] = i // the later write of a time wins
			return
		}
		if t > tj {
			copy(f.newest[j+1:], f.newest[j:])
			copy(f.newT[j+1:], f.newT[j:])
			f.newest[j], f.newT[j] = i, t
			f.nnew = min(f.nnew+1, headNewest)
			return
		}
	}
	if f.nnew < headNewest {
		f.newest[f.nnew], f.newT[f.nnew] = i, t
		f.nnew++
	}
}

// ends answers a LIMIT query of at most headNewest newest samples, or the
// oldest one, from the tracked indexes; ok is false when they do not
// answer it (fewer tracked, or outside [start, end)).
func (f *headField) ends(start, end int64, limit int, newest bool) (out []Sample, ok bool) {
	switch {
	case len(f.ts) == 0 || limit <= 0:
		return nil, false
	case !newest:
		if limit != 1 || !inRange(f.ts[f.oldest], start, end) {
			return nil, false
		}
		return []Sample{{Time: f.ts[f.oldest], Value: f.value(f.oldest)}}, true
	case limit > f.nnew:
		return nil, false
	}
	out = make([]Sample, limit)
	for j := 0; j < limit; j++ {
		i := f.newest[limit-1-j] // ascending
		if !inRange(f.ts[i], start, end) {
			return nil, false
		}
		out[j] = Sample{Time: f.ts[i], Value: f.value(i)}
	}
	return out, true
}

func (f *headField) value(i int) Value {
	if f.typ == String {
		return StringValue(f.strs[i])
	}
	return numValue(f.typ, f.vals[i])
}

// samplesIn copies the samples with start <= t < end (end 0 = unbounded)
// sorted by time, the last written winning on equal timestamps.
// With limit > 0 and sorted samples it copies only the limit oldest (or,
// with newest, newest) samples in range: a LIMIT query needs no more of
// the head, which just after a bulk load holds millions of samples.
func (f *headField) samplesIn(start, end int64, limit int, newest bool) []Sample {
	if f.sorted {
		lo, hi := f.bounds(start, end)
		if limit > 0 && hi-lo > limit {
			if newest {
				lo = hi - limit
			} else {
				hi = lo + limit
			}
		}
		return f.copyRange(lo, hi)
	}
	if out, ok := f.ends(start, end, limit, newest); ok {
		return out
	}
	if limit > 0 && limit <= 64 {
		// Out of order (concurrent writers of one series do that): keep
		// the limit oldest or newest in one pass instead of sorting all.
		best := make([]Sample, 0, limit+1)
		for i, t := range f.ts {
			if !inRange(t, start, end) {
				continue
			}
			j, found := slices.BinarySearchFunc(best, t, func(s Sample, t int64) int { return cmp.Compare(s.Time, t) })
			switch {
			case found:
				best[j] = Sample{Time: t, Value: f.value(i)} // the later write wins
			case len(best) < limit:
				best = slices.Insert(best, j, Sample{Time: t, Value: f.value(i)})
			case newest && j > 0:
				best = slices.Insert(best, j, Sample{Time: t, Value: f.value(i)})[1:]
			case !newest && j < limit:
				best = slices.Insert(best, j, Sample{Time: t, Value: f.value(i)})[:limit]
			}
		}
		return best
	}
	var out []Sample
	for i, t := range f.ts {
		if inRange(t, start, end) {
			out = append(out, Sample{Time: t, Value: f.value(i)})
		}
	}
	if !f.sorted {
		out = sortDedup(out)
	}
	return out
}

// newestMatching answers the head's part of a newest-first LIMIT query with
// field filters: the samples in [start, end) at or after the limit-th
// newest time whose last write passes fs, sorted and de-duplicated. The
// caller merges them with blocks and filters afterwards, so the samples
// between that time and the newest are returned too (a block value at such
// a time must lose to the head's). ok is false when that time cannot be
// found in two passes (fewer matches than limit, or too many overwritten);
// the caller then reads the whole field.
func (f *headField) newestMatching(start, end int64, limit int, fs []Filter) (out []Sample, ok bool) {
	if f.typ == String || limit <= 0 || limit > 56 || len(fs) == 0 {
		return nil, false
	}
	pass := func(i int) bool {
		x, _ := f.value(i).Float()
		for _, flt := range fs {
			if !flt.match(x) {
				return false
			}
		}
		return true
	}
	if f.sorted { // strictly increasing: no overwrites to mind
		lo, hi := f.bounds(start, end)
		n, i := 0, hi-1
		for ; i >= lo; i-- {
			if pass(i) {
				if n++; n == limit {
					break
				}
			}
		}
		if n < limit {
			return nil, false
		}
		return f.copyRange(i, hi), true
	}
	// Pass 1: the newest matching writes, a few more than needed.
	type cand struct {
		t    int64
		i    int
		dead bool
	}
	byTime := func(c cand, t int64) int { return cmp.Compare(c.t, t) }
	most := limit + 8
	cs := make([]cand, 0, most+1)
	for i, t := range f.ts {
		if !inRange(t, start, end) || !pass(i) {
			continue
		}
		j, found := slices.BinarySearchFunc(cs, t, byTime)
		switch {
		case found:
			cs[j].i = i
		case len(cs) < most:
			cs = slices.Insert(cs, j, cand{t: t, i: i})
		case j > 0:
			cs = slices.Insert(cs, j, cand{t: t, i: i})[1:]
		}
	}
	// Pass 2: the last write of each candidate's time decides.
	for i, t := range f.ts {
		j, found := slices.BinarySearchFunc(cs, t, byTime)
		if found && i > cs[j].i {
			cs[j].i, cs[j].dead = i, !pass(i)
		}
	}
	n, k := 0, len(cs)-1
	for ; k >= 0; k-- {
		if !cs[k].dead {
			if n++; n == limit {
				break
			}
		}
	}
	if n < limit {
		return nil, false
	}
	from := cs[k].t
	for i, t := range f.ts {
		if t >= from && inRange(t, start, end) {
			out = append(out, Sample{Time: t, Value: f.value(i)})
		}
	}
	return sortDedup(out), true
}

// inRange reports whether start <= t < end (end 0 = unbounded).
func inRange(t, start, end int64) bool { return t >= start && (end == 0 || t < end) }

// bounds returns the index range of [start, end) in a sorted field.
func (f *headField) bounds(start, end int64) (lo, hi int) {
	lo, _ = slices.BinarySearch(f.ts, start)
	hi = len(f.ts)
	if end != 0 {
		hi, _ = slices.BinarySearch(f.ts, end)
	}
	return lo, hi
}

// copyRange copies samples lo..hi-1 (nil when empty).
func (f *headField) copyRange(lo, hi int) []Sample {
	if hi <= lo {
		return nil
	}
	out := make([]Sample, hi-lo)
	for i := lo; i < hi; i++ {
		out[i-lo] = Sample{Time: f.ts[i], Value: f.value(i)}
	}
	return out
}

// findEnds recomputes oldest, newest and the cached times after samples
// were removed or reordered.
func (f *headField) findEnds() {
	f.oldest, f.nnew = 0, 0
	for i, t := range f.ts {
		if i == 0 || t <= f.oldT {
			f.oldest, f.oldT = i, t
		}
		f.noteNewest(t, i)
	}
	if n := len(f.ts); n > 0 {
		f.lastT = f.ts[n-1]
	}
}

// sortDedup sorts samples by time keeping, among equal timestamps, the one
// that came last in the input.
func sortDedup(s []Sample) []Sample {
	slices.SortStableFunc(s, func(a, b Sample) int { return cmp.Compare(a.Time, b.Time) })
	out := s[:0]
	for i := range s {
		if len(out) > 0 && out[len(out)-1].Time == s[i].Time {
			out[len(out)-1] = s[i]
			continue
		}
		out = append(out, s[i])
	}
	return out
}

// sortedCopy returns the field's samples sorted and de-duplicated, as
// parallel slices (for block writing and tidying).
func (f *headField) sortedCopy() (ts []int64, vals []uint64, strs []string) {
	if f.sorted {
		return f.ts, f.vals, f.strs
	}
	// Concurrent writers leave the samples in ordered runs, a little out
	// of order with each other: a natural merge sort of (time, position)
	// pairs merges the runs in about log2(runs) passes, each a sequential
	// copy, and it is stable, so the last write of a time comes last.
	ps := make([]sampleAt, len(f.ts))
	for i, t := range f.ts {
		ps[i] = sampleAt{t, i}
	}
	ps = mergeRuns(ps)
	n := len(ps)
	ts = make([]int64, 0, n)
	if f.typ == String {
		strs = make([]string, 0, n)
	} else {
		vals = make([]uint64, 0, n)
	}
	for k, p := range ps {
		if k+1 < n && ps[k+1].t == p.t {
			continue // a later write of the same timestamp wins
		}
		ts = append(ts, p.t)
		if f.typ == String {
			strs = append(strs, f.strs[p.i])
		} else {
			vals = append(vals, f.vals[p.i])
		}
	}
	return ts, vals, strs
}

// sampleAt is a sample's time and position in its head field.
type sampleAt struct {
	t int64
	i int
}

// mergeRuns sorts ps by time, stably, by merging its non-decreasing runs
// bottom-up (the result is ps or a buffer of the same length).
func mergeRuns(ps []sampleAt) []sampleAt {
	bounds := []int{0}
	for i := 1; i < len(ps); i++ {
		if ps[i].t < ps[i-1].t {
			bounds = append(bounds, i)
		}
	}
	bounds = append(bounds, len(ps))
	if len(bounds) <= 2 {
		return ps
	}
	src, dst := ps, make([]sampleAt, len(ps))
	for len(bounds) > 2 {
		next := bounds[:1]
		k := 0
		for ; k+2 < len(bounds); k += 2 {
			lo, mid, hi := bounds[k], bounds[k+1], bounds[k+2]
			mergeTwo(dst[lo:hi], src[lo:mid], src[mid:hi])
			next = append(next, hi)
		}
		if k+1 < len(bounds) { // an odd run left over
			lo, hi := bounds[k], bounds[k+1]
			copy(dst[lo:hi], src[lo:hi])
			next = append(next, hi)
		}
		bounds = next
		src, dst = dst, src
	}
	return src
}

// mergeTwo merges sorted a and b into dst, a's element first on equal
// times (stable).
func mergeTwo(dst, a, b []sampleAt) {
	if len(a) == 0 || len(b) == 0 || a[len(a)-1].t <= b[0].t {
		copy(dst[copy(dst, a):], b)
		return
	}
	// Runs left by concurrent writers overlap at their ends only: a's
	// elements up to b[0] and b's from a's last on move in bulk.
	p, _ := slices.BinarySearchFunc(a, b[0].t+1, func(x sampleAt, t int64) int { return cmp.Compare(x.t, t) })
	q, _ := slices.BinarySearchFunc(b, a[len(a)-1].t, func(x sampleAt, t int64) int { return cmp.Compare(x.t, t) })
	k := copy(dst, a[:p])
	copy(dst[len(dst)-(len(b)-q):], b[q:])
	a, b = a[p:], b[:q]
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if b[j].t < a[i].t {
			dst[k] = b[j]
			j++
		} else {
			dst[k] = a[i]
			i++
		}
		k++
	}
	k += copy(dst[k:], a[i:])
	copy(dst[k:], b[j:])
}

// partitionStart is the start of the partition holding t (floor division,
// correct for negative times).
func partitionStart(t int64, d int64) int64 {
	m := t % d
	if m < 0 {
		m += d
	}
	return t - m
}

// add appends one validated point (series already resolved).
func (h *head) add(s *series, p *preparedPoint, blockDur int64) {
	start := partitionStart(p.Time, blockDur)
	var part *headPartition
	var hs, prev *headSeries
	if c := s.headPart; c != nil && c.start == start {
		part, hs = c, s.headSeries
	} else {
		if part = h.parts[start]; part == nil {
			part = &headPartition{start: start, series: make(map[uint64]*headSeries)}
			h.parts[start] = part
		}
		if hs = part.series[s.id]; hs == nil {
			hs = &headSeries{s: s, fields: make([]*headField, 0, len(p.Fields))}
			part.series[s.id] = hs
			prev = h.previous(s.id, start-blockDur)
		}
		s.headPart, s.headSeries = part, hs
	}
	next := 0 // where the next field is expected in hs.fields
	for i, f := range p.Fields {
		hf, j := hs.field(f.Key, next)
		if hf == nil {
			hf = &headField{name: f.Key, typ: f.Value.typ(), sorted: true} // the index's own string: see DB.apply
			if prev != nil {
				pf, _ := prev.field(f.Key, i)
				hf.reserve(pf)
			}
			hs.fields = append(hs.fields, hf)
			j = len(hs.fields) - 1
		}
		next = j + 1
		hf.append(p.Time, f.Value)
	}
	part.samples += len(p.Fields)
	h.samples += len(p.Fields)
	if !h.hasData || p.Time > h.maxT {
		h.maxT = p.Time
		h.hasData = true
	}
}

// previous returns series id's entry in the partition starting at start,
// in the head or being flushed (nil if there is none).
func (h *head) previous(id uint64, start int64) *headSeries {
	if p := h.parts[start]; p != nil {
		return p.series[id]
	}
	for _, p := range h.flushing {
		if p.start == start {
			return p.series[id]
		}
	}
	return nil
}

// reserve sizes a new field's buffers from the same field in the previous
// partition (nil: no hint): a steady series writes about as many samples
// per partition, and buffers grown by doubling would copy each sample about
// once more and leave up to half their capacity unused.
func (f *headField) reserve(prev *headField) {
	if prev == nil || len(prev.ts) < 16 {
		return
	}
	n := len(prev.ts) + len(prev.ts)/16
	f.ts = make([]int64, 0, n)
	if f.typ == String {
		f.strs = make([]string, 0, n)
	} else {
		f.vals = make([]uint64, 0, n)
	}
}

// release forgets the series caches pointing into p, which is leaving
// head.parts (see series.headPart).
func (h *head) release(p *headPartition) {
	for _, hs := range p.series {
		if hs.s.headPart == p {
			hs.s.headPart, hs.s.headSeries = nil, nil
		}
	}
}

// mergeBack returns a partition whose flush failed to the head, in front of
// any data written to the same partition since (so newer writes still win).
func (h *head) mergeBack(old *headPartition) {
	cur := h.parts[old.start]
	h.parts[old.start] = old
	h.samples += old.samples
	if cur == nil {
		return
	}
	h.release(cur)
	for id, cs := range cur.series {
		os := old.series[id]
		if os == nil {
			old.series[id] = cs
			continue
		}
		for _, cf := range cs.fields {
			of, _ := os.field(cf.name, 0)
			if of == nil {
				os.fields = append(os.fields, cf)
				continue
			}
			for i, t := range cf.ts {
				of.append(t, cf.value(i))
			}
		}
	}
	old.samples += cur.samples
}
