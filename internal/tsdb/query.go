package tsdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Aggregate names a windowed aggregate function.
type Aggregate string

// Aggregates (Flux aggregateWindow functions).
const (
	Mean  Aggregate = "mean"
	Sum   Aggregate = "sum"
	Min   Aggregate = "min"
	Max   Aggregate = "max"
	Count Aggregate = "count"
	First Aggregate = "first"
	Last  Aggregate = "last"
)

// Query selects one measurement's series and fields over a time range,
// either raw or aggregated into windows.
type Query struct {
	Measurement string
	Tags        []Tag         // equality matchers, all must match (missing tag = empty value)
	Field       string        // "" = all fields
	Start, End  int64         // [Start, End) unix ns; End 0 = no upper bound
	Every       time.Duration // 0 = raw points
	Fn          Aggregate     // required when Every > 0
	Limit       int           // max points per series, 0 = unlimited

	// Matchers select series by tag (ANDed with Tags); see Matcher.
	Matchers []Matcher
	// Fields selects several fields (ANDed with Field when both are set;
	// both empty = all fields).
	Fields []string
	// Desc returns samples newest first; Limit then keeps the newest.
	Desc bool
	// MaxSamples bounds the samples one query may materialise (decoded or
	// returned); 0 uses Options.MaxQuerySamples. Exceeding it fails the
	// query with ErrQueryLimit.
	MaxSamples int
	// Filters keep only samples whose value passes all of them (raw
	// queries on numeric fields; Limit counts passing samples). See Filter.
	Filters []Filter
}

// Sample is one timestamped value.
type Sample struct {
	Time  int64
	Value Value
}

// Series is the result for one series field.
type Series struct {
	Measurement string
	Tags        []Tag
	Field       string
	Samples     []Sample
}

func (q *Query) validate() error {
	switch {
	case q.Measurement == "":
		return fmt.Errorf("%w: measurement is required", ErrInvalidQuery)
	case q.End != 0 && q.End < q.Start:
		return fmt.Errorf("%w: end %d before start %d", ErrInvalidQuery, q.End, q.Start)
	case q.Every < 0:
		return fmt.Errorf("%w: negative window %v", ErrInvalidQuery, q.Every)
	case q.Limit < 0:
		return fmt.Errorf("%w: negative limit", ErrInvalidQuery)
	case q.Every == 0 && q.Fn != "":
		return fmt.Errorf("%w: aggregate %q needs a window (Every)", ErrInvalidQuery, q.Fn)
	case q.Every > 0 && len(q.Filters) > 0:
		return fmt.Errorf("%w: filters apply to raw queries only", ErrInvalidQuery)
	}
	if err := validateFilters(q.Filters); err != nil {
		return err
	}
	if q.Every > 0 {
		switch q.Fn {
		case Mean, Sum, Min, Max, Count, First, Last:
		case "":
			return fmt.Errorf("%w: a window (Every) needs an aggregate (Fn)", ErrInvalidQuery)
		default:
			return fmt.Errorf("%w: unknown aggregate %q", ErrInvalidQuery, q.Fn)
		}
	}
	return nil
}

// numericOnly reports whether fn needs a numeric field.
func numericOnly(fn Aggregate) bool { return fn == Mean || fn == Sum || fn == Min || fn == Max }

// source is one piece of a series field: a block chunk or head samples.
// prio orders sources by age (higher = newer, wins on equal timestamps).
type source struct {
	minT, maxT int64
	prio       int
	blk        *block
	chunk      *chunkMeta
	samples    []Sample   // head data, already range-filtered
	del        [][2]int64 // ranges [start, end) hidden by tombstones
}

type fieldPlan struct {
	s       *series
	field   string
	typ     ValueType
	sources []source
}

// Query runs q. Results are sorted by tags then field; samples by time.
func (db *DB) Query(ctx context.Context, q Query) ([]Series, error) {
	var out []Series
	err := db.QueryEach(ctx, q, func(s []Series) error {
		out = append(out, s...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// QueryEach runs q like Query but hands the result to fn one series at a
// time (its fields sorted by name), so that a caller folding the samples
// never holds the whole result. fn must not keep the slice (the Series in
// it may be kept); an error from fn ends the query with that error.
func (db *DB) QueryEach(ctx context.Context, q Query, fn func([]Series) error) error {
	if err := q.validate(); err != nil {
		return err
	}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	ms, err := compileMatchers(q.Matchers)
	if err != nil {
		return err
	}
	q.Matchers = ms
	if q.MaxSamples <= 0 {
		q.MaxSamples = db.opts.MaxQuerySamples
	}
	plans, blocks, err := db.plan(&q, q.Desc)
	defer func() {
		for _, b := range blocks {
			b.release()
		}
	}()
	if err != nil {
		return err
	}
	// The budget counts samples decoded or copied from the head; Desc
	// needs every sample of the range before it can keep the newest.
	b := budget{max: q.MaxSamples}
	for i := range plans {
		for _, s := range plans[i].sources {
			if err := b.take(len(s.samples)); err != nil {
				return err
			}
		}
	}
	eff := q
	if q.Desc {
		eff.Limit = 0
	}
	var batch []Series
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := fn(batch)
		batch = batch[:0]
		return err
	}
	for i := range plans {
		if err := ctx.Err(); err != nil {
			return err
		}
		if i > 0 && plans[i].s != plans[i-1].s {
			if err := flush(); err != nil {
				return err
			}
		}
		p := &plans[i]
		var samples []Sample
		var err error
		if q.Every > 0 {
			samples, err = aggregate(p, &eff, &b)
		} else {
			samples, err = raw(p, &eff, &b)
		}
		if err != nil {
			if errors.Is(err, ErrQueryLimit) {
				return err
			}
			return fmt.Errorf("tsdb: query %s %s: %w", p.s.key, p.field, err)
		}
		if len(samples) == 0 {
			continue
		}
		if q.Desc {
			slices.Reverse(samples)
		}
		if q.Limit > 0 && len(samples) > q.Limit {
			samples = samples[:q.Limit]
		}
		batch = append(batch, Series{Measurement: p.s.measurement, Tags: p.s.tags, Field: p.field, Samples: samples})
	}
	return flush()
}

// plan takes a consistent snapshot under the read lock: matching series,
// their fields, the block chunks overlapping the range and copies of the
// head samples in range.
//
// A raw query with a Limit copies at most Limit head samples per head
// partition, from the newest end when newest is set: the merged answer's
// first (or last) Limit samples can only come from those.
func (db *DB) plan(q *Query, newest bool) ([]fieldPlan, []*block, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	blocks := slices.Clone(db.blocks)
	for _, b := range blocks {
		b.acquire()
	}
	matched := db.index.match(q.Measurement, q.Tags, q.Matchers)
	slices.SortFunc(matched, func(a, b *series) int { return compareTags(a.tags, b.tags) })
	inRange := func(minT, maxT int64) bool {
		return maxT >= q.Start && (q.End == 0 || minT < q.End)
	}
	var plans []fieldPlan
	for _, s := range matched {
		names := make([]string, 0, len(s.fields))
		for name := range s.fields {
			if (q.Field == "" || q.Field == name) && (len(q.Fields) == 0 || slices.Contains(q.Fields, name)) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			typ := s.fields[name]
			if len(q.Filters) > 0 && (typ == Boolean || typ == String) {
				return nil, blocks, fmt.Errorf("%w: filters need a numeric field, %q is %s", ErrInvalidQuery, name, typ)
			}
			if q.Every > 0 && numericOnly(q.Fn) && (typ == Boolean || typ == String) {
				return nil, blocks, fmt.Errorf("%w: aggregate %s is not supported for %s field %q (use count, first or last)",
					ErrInvalidQuery, q.Fn, typ, name)
			}
			p := fieldPlan{s: s, field: name, typ: typ}
			prio := 0
			for _, b := range db.blocks {
				prio++
				if !inRange(b.minT, b.maxT) {
					continue
				}
				bs := b.series[s.id]
				if bs == nil {
					continue
				}
				bf := bs.fields[name]
				if bf == nil || bf.typ != typ {
					continue
				}
				var del [][2]int64
				if len(db.tombs) > 0 {
					del = db.deletedRanges(s, b)
				}
				for i := range bf.chunks {
					c := &bf.chunks[i]
					if inRange(c.minT, c.maxT) {
						p.sources = append(p.sources, source{minT: c.minT, maxT: c.maxT, prio: prio, blk: b, chunk: c, del: del})
					}
				}
			}
			addHead := func(hp *headPartition) {
				prio++
				hs := hp.series[s.id]
				if hs == nil {
					return
				}
				hf, _ := hs.field(name, 0)
				if hf == nil || hf.typ != typ {
					return
				}
				limit := 0
				if q.Every == 0 && len(q.Filters) == 0 {
					limit = q.Limit
				}
				var smp []Sample
				ok := false
				if q.Every == 0 && len(q.Filters) > 0 && q.Limit > 0 && newest {
					smp, ok = hf.newestMatching(q.Start, q.End, q.Limit, q.Filters)
				}
				if !ok {
					smp = hf.samplesIn(q.Start, q.End, limit, newest)
				}
				if len(smp) > 0 {
					p.sources = append(p.sources, source{minT: smp[0].Time, maxT: smp[len(smp)-1].Time, prio: prio, samples: smp})
				}
			}
			for _, hp := range db.head.flushing {
				addHead(hp)
			}
			// Head partitions are disjoint in time, so their order among
			// themselves does not matter; they are newer than every block
			// and than partitions being flushed.
			for _, hp := range db.head.parts {
				addHead(hp)
			}
			if len(p.sources) > 0 {
				plans = append(plans, p)
			}
		}
	}
	return plans, blocks, nil
}

// groupSources sorts sources by time and splits them into runs: a run is
// one source or a maximal set of sources with intersecting time ranges
// (which must be merged sample by sample).
func groupSources(src []source) [][]source {
	slices.SortFunc(src, func(a, b source) int {
		if c := cmp.Compare(a.minT, b.minT); c != 0 {
			return c
		}
		return cmp.Compare(a.prio, b.prio)
	})
	var out [][]source
	for i := 0; i < len(src); {
		j, end := i+1, src[i].maxT
		for j < len(src) && src[j].minT <= end {
			end = max(end, src[j].maxT)
			j++
		}
		out = append(out, src[i:j])
		i = j
	}
	return out
}

// load returns the samples of a group in [start, end), merged: sorted by
// time, the newest source winning on equal timestamps.
func load(g []source, typ ValueType, start, end int64, b *budget) ([]Sample, error) {
	type tagged struct {
		Sample
		prio int
	}
	var all []tagged
	var single []Sample
	for _, s := range g {
		smp := s.samples
		if s.chunk != nil {
			if err := b.take(s.chunk.count); err != nil {
				return nil, err
			}
			var err error
			smp, err = s.blk.readChunk(typ, s.chunk)
			if err != nil {
				return nil, err
			}
			if s.minT < start || (end != 0 && s.maxT >= end) {
				lo, _ := slices.BinarySearchFunc(smp, start, func(x Sample, t int64) int { return cmp.Compare(x.Time, t) })
				hi := len(smp)
				if end != 0 {
					hi, _ = slices.BinarySearchFunc(smp, end, func(x Sample, t int64) int { return cmp.Compare(x.Time, t) })
				}
				smp = smp[lo:hi]
			}
			if len(s.del) > 0 {
				smp = slices.DeleteFunc(smp, func(x Sample) bool {
					for _, d := range s.del {
						if x.Time >= d[0] && x.Time < d[1] {
							return true
						}
					}
					return false
				})
			}
		}
		if len(g) == 1 {
			single = smp
			break
		}
		for _, x := range smp {
			all = append(all, tagged{x, s.prio})
		}
	}
	if len(g) == 1 {
		return single, nil
	}
	slices.SortStableFunc(all, func(a, b tagged) int {
		if c := cmp.Compare(a.Time, b.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.prio, b.prio)
	})
	out := make([]Sample, 0, len(all))
	for _, x := range all {
		if n := len(out); n > 0 && out[n-1].Time == x.Time {
			out[n-1] = x.Sample
			continue
		}
		out = append(out, x.Sample)
	}
	return out, nil
}

func raw(p *fieldPlan, q *Query, b *budget) ([]Sample, error) {
	groups := groupSources(p.sources)
	var out []Sample
	if q.Limit == 0 && len(groups) > 1 {
		n := 0 // an upper bound: growing by appends dominated long scans
		for _, s := range p.sources {
			if s.chunk != nil {
				n += s.chunk.count
			} else {
				n += len(s.samples)
			}
		}
		out = make([]Sample, 0, n)
	}
	for _, g := range groups {
		if q.Limit > 0 && len(out) >= q.Limit {
			break
		}
		if len(q.Filters) > 0 && len(g) == 1 && g[0].chunk != nil && !chunkMayMatch(p.typ, g[0].chunk, q.Filters) {
			continue
		}
		if q.Limit-len(out) == 1 && len(q.Filters) == 0 && summaryOnly(p.typ, g, *q) {
			c := g[0].chunk // the oldest sample is the chunk's first
			out = append(out, Sample{Time: c.minT, Value: numValue(p.typ, c.first)})
			continue
		}
		smp, err := load(g, p.typ, q.Start, q.End, b)
		if err != nil {
			return nil, err
		}
		if len(q.Filters) > 0 {
			smp = filterSamples(smp, q.Filters)
		}
		if len(groups) == 1 {
			return smp, nil // already a fresh slice: no copy
		}
		out = append(out, smp...)
	}
	return out, nil
}

// window accumulates one aggregate window.
type window struct {
	k           int64 // window index
	n           int64
	sumF        float64
	sumI        uint64 // integer/unsigned sums (wrapping)
	min, max    Value
	first, last Value
	has         bool
}

func (w *window) reset(k int64) { *w = window{k: k} }

func less(a, b Value) bool {
	switch a.typ() {
	case Float:
		return math.Float64frombits(a.n) < math.Float64frombits(b.n)
	case Integer:
		return int64(a.n) < int64(b.n)
	case String:
		return false // strings have no order here; n is their length
	default:
		return a.n < b.n
	}
}

func (w *window) add(v Value) { w.merge(v.typ(), v, v, v, v, 1, v.n) }

// addChunk folds a whole chunk summary into the window.
func (w *window) addChunk(typ ValueType, c *chunkMeta) {
	mk := func(bits uint64) Value {
		if typ == String {
			return StringValue("") // chunks keep no string summaries
		}
		return numValue(typ, bits)
	}
	w.merge(typ, mk(c.first), mk(c.min), mk(c.max), mk(c.last), int64(c.count), c.sum)
}

// merge folds n values summarised by first, min, max, last and the bits of
// their sum (a float64 for Float, an integer otherwise) into the window.
func (w *window) merge(typ ValueType, first, mn, mx, last Value, n int64, sum uint64) {
	if !w.has {
		w.first, w.min, w.max, w.has = first, mn, mx, true
	} else {
		if less(mn, w.min) {
			w.min = mn
		}
		if less(w.max, mx) {
			w.max = mx
		}
	}
	w.last = last
	w.n += n
	switch typ {
	case Float:
		w.sumF += math.Float64frombits(sum)
	case Integer:
		w.sumI += sum
		w.sumF += float64(int64(sum))
	case Unsigned:
		w.sumI += sum
		w.sumF += float64(sum)
	}
}

func (w *window) result(fn Aggregate, typ ValueType) Value {
	switch fn {
	case Mean:
		return FloatValue(w.sumF / float64(w.n))
	case Sum:
		switch typ {
		case Integer:
			return IntValue(int64(w.sumI))
		case Unsigned:
			return UintValue(w.sumI)
		}
		return FloatValue(w.sumF)
	case Min:
		return w.min
	case Max:
		return w.max
	case Count:
		return IntValue(w.n)
	case First:
		return w.first
	default:
		return w.last
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// aggregate computes Flux aggregateWindow semantics: epoch-aligned windows
// [k*every, (k+1)*every), each labelled by its stop time (clipped to End),
// empty windows omitted. Whole chunks inside one window and the range are
// folded in from their summaries without decoding.
func aggregate(p *fieldPlan, q *Query, b *budget) ([]Sample, error) {
	every := int64(q.Every)
	var out []Sample
	var w window
	w.k = math.MinInt64
	emit := func() {
		if !w.has {
			return
		}
		stop := (w.k + 1) * every
		if stop < w.k*every { // overflow at the end of time
			stop = math.MaxInt64
		}
		if q.End != 0 && q.End < stop {
			stop = q.End
		}
		out = append(out, Sample{Time: stop, Value: w.result(q.Fn, p.typ)})
	}
	feed := func(t int64) {
		if k := floorDiv(t, every); k != w.k {
			emit()
			w.reset(k)
		}
	}
	summaryOK := p.typ != String || q.Fn == Count
	for _, g := range groupSources(p.sources) {
		if q.Limit > 0 && len(out) > q.Limit {
			break
		}
		if len(g) == 1 && g[0].chunk != nil && summaryOK && len(g[0].del) == 0 {
			c := g[0].chunk
			if c.minT >= q.Start && (q.End == 0 || c.maxT < q.End) && floorDiv(c.minT, every) == floorDiv(c.maxT, every) {
				feed(c.minT)
				w.addChunk(p.typ, c)
				continue
			}
		}
		smp, err := load(g, p.typ, q.Start, q.End, b)
		if err != nil {
			return nil, err
		}
		for _, s := range smp {
			feed(s.Time)
			w.add(s.Value)
		}
	}
	emit()
	return out, nil
}

// budget counts the samples a query materialises against its limit.
type budget struct {
	max, used int
}

func (b *budget) take(n int) error {
	b.used += n
	if b.max > 0 && b.used > b.max {
		return fmt.Errorf("%w: query needs more than %d samples; narrow the time range or the series, or raise the limit", ErrQueryLimit, b.max)
	}
	return nil
}
