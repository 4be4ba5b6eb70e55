package tsdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// tombstone is a deletion applied to blocks with seq <= MaxSeq: samples of
// matching series with Start <= t < End are hidden at query time and
// dropped by compaction.
type tombstone struct {
	Measurement string       `json:"measurement"`
	Matchers    []matcherDoc `json:"matchers,omitempty"`
	Start       int64        `json:"start"`
	End         int64        `json:"end"` // exclusive
	MaxSeq      uint64       `json:"max_seq"`
	ms          []Matcher
}

type matcherDoc struct {
	Key   string  `json:"key"`
	Op    MatchOp `json:"op"`
	Value string  `json:"value"`
}

const tombstoneFile = "tombstones.json"

func (t *tombstone) matches(s *series) bool {
	if s.measurement != t.Measurement {
		return false
	}
	for _, m := range t.ms {
		if !m.Matches(s.tagValue(m.Key)) {
			return false
		}
	}
	return true
}

func (db *DB) loadTombstones() error {
	b, err := os.ReadFile(filepath.Join(db.opts.Dir, tombstoneFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tsdb: read tombstones: %w", err)
	}
	var ts []tombstone
	if err := json.Unmarshal(b, &ts); err != nil {
		return fmt.Errorf("tsdb: %s: %w: %v", tombstoneFile, ErrCorrupt, err)
	}
	for i := range ts {
		for _, d := range ts[i].Matchers {
			m, err := NewMatcher(d.Key, d.Op, d.Value)
			if err != nil {
				return fmt.Errorf("tsdb: %s: %w", tombstoneFile, err)
			}
			ts[i].ms = append(ts[i].ms, m)
		}
	}
	db.tombs = ts
	return nil
}

// saveTombstones writes the tombstone file atomically (db.mu held).
func (db *DB) saveTombstones() error {
	path := filepath.Join(db.opts.Dir, tombstoneFile)
	if len(db.tombs) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("tsdb: remove tombstones: %w", err)
		}
		return nil
	}
	b, err := json.Marshal(db.tombs)
	if err != nil {
		return fmt.Errorf("tsdb: encode tombstones: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err == nil {
		_, err = f.Write(b)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tsdb: write tombstones: %w", err)
	}
	return syncDir(db.opts.Dir)
}

// deleteRange removes the samples of the series of measurement that satisfy
// every matcher, with start <= t < end (end 0 = no bound), written before
// Delete returns. The head is flushed first; blocks are masked by a
// tombstone at query time until compaction rewrites them.
func (db *DB) deleteRange(ctx context.Context, measurement string, ms []Matcher, start, end int64) error {
	if measurement == "" {
		return fmt.Errorf("%w: delete needs a measurement", ErrInvalidQuery)
	}
	ms, err := compileMatchers(ms)
	if err != nil {
		return err
	}
	if end == 0 {
		end = 1<<63 - 1
	}
	if end <= start {
		return fmt.Errorf("%w: delete range end %d not after start %d", ErrInvalidQuery, end, start)
	}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	if _, err := db.flushLocked(ctx, true); err != nil {
		return err
	}
	t := tombstone{Measurement: measurement, Start: start, End: end, ms: ms}
	for _, m := range ms {
		t.Matchers = append(t.Matchers, matcherDoc{Key: m.Key, Op: m.Op, Value: m.Value})
	}
	db.mu.Lock()
	t.MaxSeq = db.nextSeq.Load()
	// Points written since the flush are still in the head: a delete
	// covers them too. They are also in the WAL, so the head is flushed
	// again below, which checkpoints them away.
	removed := db.head.remove(&t)
	db.tombs = append(db.tombs, t)
	if err := db.saveTombstones(); err != nil {
		db.tombs = db.tombs[:len(db.tombs)-1]
		db.mu.Unlock()
		return err
	}
	db.mu.Unlock()
	db.stage("delete-tombstoned")
	if _, err := db.flushLocked(ctx, true); err != nil {
		return err
	}
	db.log.Info("tsdb: delete", "measurement", measurement, "matchers", len(ms), "start", start, "end", end, "head_samples_removed", removed)
	return nil
}

// remove drops head samples matching t (db.mu held) and returns how many.
func (h *head) remove(t *tombstone) int {
	n := 0
	for _, p := range h.parts {
		for _, hs := range p.series {
			if !t.matches(hs.s) {
				continue
			}
			for _, f := range hs.fields {
				keep := 0
				for i, ts := range f.ts {
					if ts >= t.Start && ts < t.End {
						continue
					}
					f.ts[keep] = ts
					if f.typ == String {
						f.strs[keep] = f.strs[i]
					} else {
						f.vals[keep] = f.vals[i]
					}
					keep++
				}
				d := len(f.ts) - keep
				f.ts = f.ts[:keep]
				if f.typ == String {
					f.strs = f.strs[:keep]
				} else {
					f.vals = f.vals[:keep]
				}
				f.findEnds()
				p.samples -= d
				h.samples -= d
				n += d
			}
		}
	}
	return n
}

// deletedRanges returns the time ranges hidden by tombstones for series s
// in block b (db.mu held).
func (db *DB) deletedRanges(s *series, b *block) [][2]int64 {
	var out [][2]int64
	for i := range db.tombs {
		t := &db.tombs[i]
		if b.seq <= t.MaxSeq && t.Start <= b.maxT && t.End > b.minT && t.matches(s) {
			out = append(out, [2]int64{t.Start, t.End})
		}
	}
	return out
}

// enforceRetention drops blocks and head partitions that ended more than
// the retention ago.
func (db *DB) enforceRetention() error {
	r := db.retention.Load()
	if r <= 0 {
		return nil
	}
	cutoff := db.opts.Now().UnixNano() - r
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	db.mu.Lock()
	var drop []*block
	kept := db.blocks[:0]
	for _, b := range db.blocks {
		if b.part+db.blockDur <= cutoff {
			drop = append(drop, b)
			continue
		}
		kept = append(kept, b)
	}
	clear(db.blocks[len(kept):])
	db.blocks = kept
	parts := map[int64]bool{}
	for start, p := range db.head.parts {
		if start+db.blockDur <= cutoff {
			db.head.samples -= p.samples
			db.head.release(p)
			delete(db.head.parts, start)
			parts[start] = true
		}
	}
	db.mu.Unlock()
	var errs []error
	for _, b := range drop {
		parts[b.part] = true
		b.retire()
		if err := os.Remove(b.path); err != nil {
			errs = append(errs, err)
		}
	}
	for p := range parts {
		dir := filepath.Join(db.blockDir, fmt.Sprint(p))
		os.Remove(dir) // only succeeds when empty
		db.droppedParts.Add(1)
		db.log.Info("tsdb: retention dropped partition", "start", p, "blocks", len(drop))
	}
	if len(parts) > 0 {
		db.gcTombstones()
	}
	return errors.Join(errs...)
}

// gcTombstones forgets tombstones no loaded block is old enough to need.
func (db *DB) gcTombstones() {
	db.mu.Lock()
	defer db.mu.Unlock()
	if len(db.tombs) == 0 {
		return
	}
	minSeq := uint64(1<<64 - 1)
	for _, b := range db.blocks {
		minSeq = min(minSeq, b.seq)
	}
	kept := db.tombs[:0]
	for _, t := range db.tombs {
		if t.MaxSeq >= minSeq {
			kept = append(kept, t)
		}
	}
	if len(kept) != len(db.tombs) {
		db.tombs = kept
		if err := db.saveTombstones(); err != nil {
			db.log.Error("tsdb: saving tombstones", "err", err)
		}
	}
}

// Compact merges, per partition, all blocks into one when the partition
// has several blocks or blocks masked by a tombstone: overlapping and
// overwritten samples are resolved (newest block wins) and deleted
// samples dropped. It returns the number of partitions compacted.
func (db *DB) Compact(ctx context.Context) (int, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return 0, ErrClosed
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	db.mu.RLock()
	byPart := map[int64][]*block{}
	for _, b := range db.blocks {
		byPart[b.part] = append(byPart[b.part], b)
	}
	var todo []int64
	for p, bs := range byPart {
		masked := false
		for _, t := range db.tombs {
			for _, b := range bs {
				masked = masked || b.seq <= t.MaxSeq && t.Start <= b.maxT && t.End > b.minT
			}
		}
		if len(bs) > 1 || masked {
			todo = append(todo, p)
		}
	}
	db.mu.RUnlock()
	sort.Slice(todo, func(i, j int) bool { return todo[i] < todo[j] })
	n := 0
	for _, p := range todo {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := db.compactPartition(byPart[p]); err != nil {
			return n, fmt.Errorf("tsdb: compact partition %d: %w", p, err)
		}
		n++
	}
	if n > 0 {
		db.stage("compact-gc")
		db.gcTombstones()
	}
	return n, nil
}

// compactPartition rewrites the blocks of one partition (sorted by seq) as
// one block (flushMu held, so no flush adds blocks meanwhile).
func (db *DB) compactPartition(in []*block) error {
	db.mu.RLock()
	ids := map[uint64]*series{}
	for _, b := range in {
		for id, bs := range b.series {
			ids[id] = bs.s
		}
	}
	var data []blockSeriesData
	var err error
	var inSamples int
	for _, b := range in {
		inSamples += b.samples
	}
	for _, s := range ids {
		sd := blockSeriesData{s: s}
		names := map[string]ValueType{}
		for _, b := range in {
			if bs := b.series[s.id]; bs != nil {
				for name, bf := range bs.fields {
					names[name] = bf.typ
				}
			}
		}
		for name, typ := range names {
			var src []source
			for prio, b := range in {
				bs := b.series[s.id]
				if bs == nil || bs.fields[name] == nil || bs.fields[name].typ != typ {
					continue
				}
				del := db.deletedRanges(s, b)
				for i := range bs.fields[name].chunks {
					c := &bs.fields[name].chunks[i]
					src = append(src, source{minT: c.minT, maxT: c.maxT, prio: prio, blk: b, chunk: c, del: del})
				}
			}
			fd := blockFieldData{name: name, typ: typ}
			for _, g := range groupSources(src) {
				var smp []Sample
				smp, err = load(g, typ, -1<<63, 0, &budget{})
				if err != nil {
					break
				}
				for _, x := range smp {
					fd.ts = append(fd.ts, x.Time)
					if typ == String {
						fd.strs = append(fd.strs, x.Value.str())
					} else {
						fd.vals = append(fd.vals, x.Value.n)
					}
				}
			}
			if err != nil {
				break
			}
			if len(fd.ts) > 0 {
				sd.fields = append(sd.fields, fd)
			}
		}
		if err != nil {
			break
		}
		if len(sd.fields) > 0 {
			slices.SortFunc(sd.fields, func(a, b blockFieldData) int { return compareStrings(a.name, b.name) })
			data = append(data, sd)
		}
	}
	db.mu.RUnlock()
	if err != nil {
		return err
	}
	var nb *block
	if len(data) > 0 {
		seq := db.nextSeq.Add(1)
		path, err := writeBlock(db.blockDir, in[0].part, seq, data)
		if err != nil {
			return err
		}
		db.stage("compact-written")
		db.mu.Lock()
		nb, err = openBlock(path, seq, db.index)
		db.mu.Unlock()
		if err != nil {
			return err
		}
	}
	db.mu.Lock()
	kept := db.blocks[:0]
	for _, b := range db.blocks {
		if !slices.Contains(in, b) {
			kept = append(kept, b)
		}
	}
	clear(db.blocks[len(kept):])
	db.blocks = kept
	if nb != nil {
		db.blocks = append(db.blocks, nb)
	}
	db.mu.Unlock()
	// Queries planned before the swap may still read the inputs: the files
	// are unlinked now and closed when the last such query ends.
	for i, b := range in {
		os.Remove(b.path)
		b.retire()
		if i == 0 {
			db.stage("compact-removing")
		}
	}
	if err := syncDir(filepath.Join(db.blockDir, fmt.Sprint(in[0].part))); err != nil {
		return err
	}
	db.compactions.Add(1)
	outSamples := 0
	if nb != nil {
		outSamples = nb.samples
	}
	db.log.Info("tsdb: compacted partition", "start", in[0].part, "blocks", len(in), "samples_in", inSamples, "samples_out", outSamples)
	return nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
