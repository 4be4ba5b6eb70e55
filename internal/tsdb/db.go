package tsdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// FsyncPolicy says when the WAL is fsynced and so what an acknowledged
// write survives.
type FsyncPolicy string

// Fsync policies.
const (
	// FsyncAlways (default): Write returns after the WAL is fsynced. Group
	// commit lets concurrent writers share one fsync. Survives power loss.
	FsyncAlways FsyncPolicy = "always"
	// FsyncInterval: Write returns after write(2) to the WAL, which is
	// fsynced every FsyncInterval. Survives kill -9, not power loss.
	FsyncInterval FsyncPolicy = "interval"
	// FsyncNever: the WAL is fsynced only when segments are cut and on
	// Close. Survives kill -9, not power loss.
	FsyncNever FsyncPolicy = "never"
)

// Options configures a DB. The zero value (with Dir set) is usable.
type Options struct {
	// stage, when set (by tests), is called at the crash-sensitive steps
	// of compaction and delete.
	stage func(string)

	Dir           string        // required: the directory owning wal/ and blocks/
	Logger        *slog.Logger  // nil discards logs
	Fsync         FsyncPolicy   // default FsyncAlways
	FsyncInterval time.Duration // for FsyncInterval; default 1s
	BlockDuration time.Duration // time span of one partition; default 2h
	FlushInterval time.Duration // how often the head is checked for flushable data; default 1m
	// MaxHeadSamples flushes the whole head when it holds more samples
	// (field values) than this; default 8M. Otherwise a partition is flushed
	// once the newest written timestamp is half a BlockDuration past the
	// partition's end.
	MaxHeadSamples int
	// MaxQuerySamples bounds the samples one query may decode or copy
	// (ErrQueryLimit beyond); 0 = unlimited. Query.MaxSamples overrides it.
	MaxQuerySamples int
	// Retention drops whole partitions that ended more than Retention
	// before now; 0 keeps data forever.
	Retention time.Duration
	// OutOfOrderWindow rejects points older than the newest point written
	// minus the window (ErrOutOfWindow); 0 accepts any age. Late points
	// within the window go to the head and are merged by compaction.
	OutOfOrderWindow time.Duration
	// MaxSeries rejects points that would create more series
	// (ErrSeriesLimit); 0 = unlimited. Exact under concurrent writers: a
	// batch's new series enter the index when it is admitted (see admit).
	MaxSeries int
	// CompactInterval is how often partitions with several blocks (or
	// deletions) are compacted; default FlushInterval.
	CompactInterval time.Duration
	// OnBlock, if set, is called (outside locks, from the background
	// goroutine or Flush) with the start of each partition that got a new
	// block from a flush; rollups hang on it.
	OnBlock func(partitionStart int64)
	// OnDelete, if set, runs each Delete (end 0 already made unbounded):
	// it must call del, which performs the deletion, and returns its
	// error; it may do more around it (rollups recompute their windows).
	OnDelete func(ctx context.Context, measurement string, ms []Matcher, start, end int64, del func() error) error
	// Now is the clock for retention; default time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		return errors.New("tsdb: Options.Dir is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch o.Fsync {
	case "":
		o.Fsync = FsyncAlways
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		return fmt.Errorf("tsdb: unknown fsync policy %q", o.Fsync)
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = time.Second
	}
	if o.BlockDuration <= 0 {
		o.BlockDuration = 2 * time.Hour
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Minute
	}
	if o.CompactInterval <= 0 {
		o.CompactInterval = o.FlushInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxHeadSamples <= 0 {
		o.MaxHeadSamples = 8 << 20
	}
	return nil
}

// Stats are counters describing the DB.
type Stats struct {
	Series         int   `json:"series"`             // series known (head and blocks)
	HeadSamples    int   `json:"head_samples"`       // field values in memory, not yet in blocks
	HeadPartitions int   `json:"head_partitions"`    // partitions in the head
	Blocks         int   `json:"blocks"`             // block files loaded
	BlockSamples   int64 `json:"block_samples"`      // field values stored in blocks
	WALBytes       int64 `json:"wal_bytes"`          // bytes in wal/
	BlockBytes     int64 `json:"block_bytes"`        // bytes in block files
	SamplesWritten int64 `json:"samples_written"`    // field values accepted by Write since Open
	PointsWritten  int64 `json:"points_written"`     // points accepted by Write since Open
	WriteBatches   int64 `json:"write_batches"`      // WAL writes (group commits) since Open
	Flushes        int64 `json:"flushes"`            // blocks written since Open
	Compactions    int64 `json:"compactions"`        // partitions compacted since Open
	RejectedLate   int64 `json:"rejected_late"`      // points outside the out-of-order window or retention
	RejectedSeries int64 `json:"rejected_series"`    // points refused by the series limit
	DroppedParts   int64 `json:"dropped_partitions"` // partitions dropped by retention
	Tombstones     int   `json:"tombstones"`         // deletions still applied at query time
}

// DB is an embedded time-series database. All methods are safe for
// concurrent use.
type DB struct {
	opts     Options
	log      *slog.Logger
	blockDur int64
	blockDir string

	// closeMu: Write (while enqueueing) and Query hold it shared; Close
	// holds it exclusively.
	closeMu sync.RWMutex
	closed  bool

	// mu guards index (series and field types), head and blocks.
	mu     sync.RWMutex
	index  *seriesIndex
	head   *head
	blocks []*block // by seq ascending (newer wins)

	wal      *wal // owned by the writer goroutine after Open
	writeCh  chan *writeReq
	cutCh    chan *cutReq
	quit     chan struct{}
	done     chan struct{}
	flushMu  sync.Mutex // serialises flushes
	nextSeq  atomic.Uint64
	bgCancel context.CancelFunc
	bgDone   chan struct{}
	walErr   error      // sticky WAL failure; writer goroutine only
	byNum    []*series  // writer goroutine only: see numbered
	syncDone chan error // writer goroutine only: the fsync of a commit
	order    []int32    // writer goroutine only: see seriesOrder
	orderAt  []int32
	// tidyAfter is how long writes must pause before tidyHead runs
	// (tidyAfter the constant; tests change it before writing).
	tidyAfter time.Duration
	scratch   sync.Pool // *writeScratch

	samplesWritten, pointsWritten, batches, flushes         atomic.Int64
	compactions, rejectedLate, rejectedSeries, droppedParts atomic.Int64
	maxT                                                    atomic.Int64 // newest point time applied
	tombs                                                   []tombstone  // guarded by mu
	retention                                               atomic.Int64 // ns; 0 = forever
}

// setRetention changes the retention; it applies from the next check.
func (db *DB) setRetention(d time.Duration) { db.retention.Store(int64(d)) }

type writeReq struct {
	pts  []preparedPoint
	rec  []byte // framed WAL record
	done chan error

	// partial: drop conflicting points instead of failing the request;
	// idx maps pts to the caller's indexes (nil = identity); rejected is
	// filled by the writer before done.
	partial  bool
	idx      []int
	rejected []PointError
	// nseries is one more than the largest batch series number in pts
	// (set by the writer; see preparedPoint.bs).
	nseries int
}

type cutReq struct {
	all  bool
	resp chan cutResult
}

type cutResult struct {
	upTo  uint64
	parts []*headPartition
	err   error
}

// Open opens (creating if needed) the database in opts.Dir: it loads the
// block indexes, replays the WAL into the head (truncating a torn tail)
// and starts the WAL writer and the background flusher.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	db := &DB{
		opts:      opts,
		log:       opts.Logger,
		blockDur:  int64(opts.BlockDuration),
		blockDir:  filepath.Join(opts.Dir, "blocks"),
		index:     newSeriesIndex(),
		head:      newHead(),
		writeCh:   make(chan *writeReq, 1024),
		syncDone:  make(chan error, 1),
		tidyAfter: tidyAfter,
		cutCh:     make(chan *cutReq),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		bgDone:    make(chan struct{}),
	}
	if err := os.MkdirAll(db.blockDir, 0o755); err != nil {
		return nil, fmt.Errorf("tsdb: create blocks dir: %w", err)
	}
	files, err := listBlocks(db.blockDir)
	if err != nil {
		return nil, fmt.Errorf("tsdb: list blocks: %w", err)
	}
	for _, bf := range files {
		if err := ctx.Err(); err != nil {
			db.closeBlocks()
			return nil, err
		}
		b, err := openBlock(bf.path, bf.seq, db.index)
		if err != nil {
			// A damaged block must not keep the node down; it is left in
			// place for inspection.
			db.log.Error("tsdb: skipping unreadable block", "path", bf.path, "err", err)
			continue
		}
		db.blocks = append(db.blocks, b)
		db.nextSeq.Store(max(db.nextSeq.Load(), bf.seq))
	}
	replayed := 0
	w, err := openWAL(filepath.Join(opts.Dir, "wal"), db.log, func(pts []preparedPoint) {
		for i := range pts {
			p := &pts[i]
			if r := opts.Retention; r > 0 && p.Time < opts.Now().UnixNano()-int64(r)-db.blockDur {
				continue // its partition is dropped by retention
			}
			s := db.index.getOrCreate(p.key, p.Measurement, p.Tags)
			if conflict(s, p, nil) != "" {
				db.log.Warn("tsdb: dropping WAL point with conflicting field type", "series", p.Measurement)
				continue
			}
			db.apply(s, p)
			replayed++
		}
	})
	if err != nil {
		db.closeBlocks()
		return nil, fmt.Errorf("tsdb: open wal: %w", err)
	}
	db.wal = w
	db.retention.Store(int64(opts.Retention))
	if err := db.loadTombstones(); err != nil {
		db.closeBlocks()
		w.close()
		return nil, err
	}
	db.log.Info("tsdb: opened", "dir", opts.Dir, "blocks", len(db.blocks), "series", len(db.index.byID),
		"replayed_points", replayed, "head_samples", db.head.samples)
	go db.writer()
	bg, cancel := context.WithCancel(context.Background())
	db.bgCancel = cancel
	go db.flusher(bg)
	return db, nil
}

func (db *DB) closeBlocks() {
	for _, b := range db.blocks {
		b.f.Close()
	}
}

// conflict returns a description of the first field of p whose type
// differs from the stored type (or from pending, types accepted earlier in
// the same group commit), or "".
func conflict(s *series, p *preparedPoint, pending map[string]ValueType) string {
	for _, f := range p.Fields {
		want, ok := ValueType(0), false
		if s != nil {
			want, ok = s.fields[f.Key]
		}
		if !ok && pending != nil {
			want, ok = pending[p.key+"\x00"+f.Key]
		}
		if ok && want != f.Value.typ() {
			return fmt.Sprintf("field %q is %s, got %s", f.Key, want, f.Value.typ())
		}
	}
	return ""
}

// apply adds a point to the index field types and the head; db.mu must be
// held exclusively (or Open be running).
func (db *DB) apply(s *series, p *preparedPoint) {
	if !p.hinted {
		// The keys become the index's strings, which the head keeps.
		for i, f := range p.Fields {
			p.Fields[i].Key = db.index.setField(s, f.Key, f.Value.typ(), i)
		}
	}
	db.head.add(s, p, db.blockDur)
	if p.Time > db.maxT.Load() {
		db.maxT.Store(p.Time)
	}
}

// Write validates and stores points. Either the whole batch is accepted or
// the error (wrapping ErrInvalidPoint or ErrFieldTypeConflict) names the
// first failing point's index. When Write returns nil the points are in
// the WAL as the FsyncPolicy describes and visible to queries. If ctx ends
// while the batch is being committed, Write still waits for the outcome.
func (db *DB) Write(ctx context.Context, points []Point) error {
	if len(points) == 0 {
		return nil
	}
	pts := make([]preparedPoint, len(points))
	var pr preparer
	for i := range points {
		if err := pr.prepareTo(&pts[i], &points[i]); err != nil {
			return fmt.Errorf("point %d: %w: %v", i, ErrInvalidPoint, err)
		}
	}
	if _, rej := db.admit(pts, nil); len(rej) > 0 {
		return rej[0]
	}
	_, err := db.submit(ctx, &writeReq{pts: pts}, nil)
	return err
}

// PointError names a point that WritePartial dropped and why (wrapping
// ErrInvalidPoint, ErrFieldTypeConflict or ErrOutOfWindow).
type PointError struct {
	Index int // index in the written slice
	Err   error
}

func (e PointError) Error() string { return fmt.Sprintf("point %d: %v", e.Index, e.Err) }

func (e PointError) Unwrap() error { return e.Err }

// WritePartial stores the acceptable points of a batch and drops the
// others, as InfluxDB's partial writes do: it returns the dropped points
// (sorted by index) and an error only when the batch could not be stored
// at all (then nothing of it is stored). Durability and visibility are as
// for Write.
func (db *DB) WritePartial(ctx context.Context, points []Point) ([]PointError, error) {
	sc := db.getScratch()
	defer db.putScratch(sc)
	pts := slices.Grow(sc.pts[:0], len(points))
	sc.pts = pts
	var idx []int
	var rejected []PointError
	var pr preparer
	// Each point is encoded for the WAL right after it is prepared, while
	// its fields are in cache; the record is used unless admit drops
	// points.
	enc := &sc.enc
	enc.reset(sc.body)
	for i := range points {
		pts = pts[:len(pts)+1]
		err := pr.prepareTo(&pts[len(pts)-1], &points[i])
		if err != nil {
			pts = pts[:len(pts)-1]
			rejected = append(rejected, PointError{Index: i, Err: fmt.Errorf("%w: %v", ErrInvalidPoint, err)})
			if idx == nil {
				idx = make([]int, 0, len(points))
				for j := 0; j < i; j++ {
					idx = append(idx, j)
				}
			}
			continue
		}
		enc.add(&pts[len(pts)-1])
		if idx != nil {
			idx = append(idx, i)
		}
	}
	encoded := len(pts)
	if len(pts) < len(points) && idx == nil {
		idx = make([]int, len(pts))
		for i := range idx {
			idx[i] = i
		}
	}
	var late []PointError
	pts, late = db.admit(pts, &idx)
	if len(late) > 0 {
		rejected = append(rejected, late...)
		slices.SortFunc(rejected, func(a, b PointError) int { return a.Index - b.Index })
	}
	if len(pts) == 0 {
		return rejected, nil
	}
	req := &writeReq{pts: pts, idx: idx, partial: true}
	if len(pts) == encoded { // admit kept every point: the record is ready
		req.rec, sc.body = encodeRecordWith(sc.rec, enc)
		sc.rec = req.rec
	}
	more, err := db.submit(ctx, req, sc)
	if err != nil {
		return nil, err
	}
	if len(more) > 0 {
		rejected = append(rejected, more...)
		slices.SortFunc(rejected, func(a, b PointError) int { return a.Index - b.Index })
	}
	return rejected, nil
}

// admit drops points outside the write window or beyond the series limit.
// idx (nil for Write) maps pts to caller indexes and is updated; with idx
// nil the first rejection is enough (the batch fails).
//
// With MaxSeries set, the limit is exact under concurrency: the series a
// batch may create are created in the index here, under the write lock,
// before the batch is queued, so concurrent batches count each other's
// new series. Points of existing series cost one read-locked lookup per
// batch, as before. A series created here whose batch then fails (WAL
// error, field type conflict, cancelled context) stays in the index,
// without data, until the next Open; InfluxDB behaves the same.
func (db *DB) admit(pts []preparedPoint, idx *[]int) ([]preparedPoint, []PointError) {
	floor := int64(math.MinInt64)
	if w := int64(db.opts.OutOfOrderWindow); w > 0 {
		floor = db.maxT.Load() - w
	}
	if r := db.retention.Load(); r > 0 {
		floor = max(floor, db.opts.Now().UnixNano()-r)
	}
	limit := db.opts.MaxSeries
	if floor == math.MinInt64 && limit <= 0 {
		return pts, nil // no window, no retention, no series limit
	}
	var refused map[string]bool // new series keys beyond the limit
	if limit > 0 {
		refused = db.reserveSeries(pts, floor, limit, idx == nil)
	}
	var rej []PointError
	kept := pts[:0]
	var keptIdx []int
	for i := range pts {
		p := &pts[i]
		orig := i
		if idx != nil && *idx != nil {
			orig = (*idx)[i]
		}
		var err error
		switch {
		case p.Time < floor:
			db.rejectedLate.Add(1)
			err = fmt.Errorf("%w: time %d is older than %d (out-of-order window %v, retention %v)",
				ErrOutOfWindow, p.Time, floor, db.opts.OutOfOrderWindow, time.Duration(db.retention.Load()))
		case refused[p.key]:
			db.rejectedSeries.Add(1)
			err = seriesLimitError(limit)
		}
		if err != nil {
			rej = append(rej, PointError{Index: orig, Err: err})
			if idx == nil {
				return nil, rej
			}
			continue
		}
		kept = append(kept, *p)
		if idx != nil && *idx != nil {
			keptIdx = append(keptIdx, orig)
		}
	}
	if idx != nil && *idx != nil {
		*idx = keptIdx
	}
	return kept, rej
}

// writeScratch holds the arrays of one write that are free again once it
// returns (the writer goroutine keeps nothing of a request after answering
// it), pooled in DB.scratch: fresh megabytes per batch cost page faults and
// zeroing on the ingest hot path.
type writeScratch struct {
	pts       []preparedPoint
	rec, body []byte
	enc       recordEncoder
}

func (db *DB) getScratch() *writeScratch {
	if sc, ok := db.scratch.Get().(*writeScratch); ok {
		return sc
	}
	return new(writeScratch)
}

func (db *DB) putScratch(sc *writeScratch) {
	if cap(sc.rec) <= 16<<20 && cap(sc.pts) <= 1<<18 {
		sc.pts = sc.pts[:0]
		db.scratch.Put(sc)
	}
}

// submit encodes req's WAL record (in sc's arrays when sc is not nil) and
// hands it to the writer goroutine.
func (db *DB) submit(ctx context.Context, req *writeReq, sc *writeScratch) ([]PointError, error) {
	switch {
	case req.rec != nil: // encoded by the caller
	case sc != nil:
		req.rec, sc.body = encodeRecordScratch(sc.rec, sc.body, req.pts)
		sc.rec = req.rec
	default:
		req.rec = encodeRecord(req.pts)
	}
	if len(req.rec) > maxRecordSize {
		return nil, fmt.Errorf("%w: batch of %d bytes exceeds %d, split it", ErrInvalidPoint, len(req.rec), maxRecordSize)
	}
	req.done = make(chan error, 1)
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case db.writeCh <- req:
	case <-ctx.Done():
		db.closeMu.RUnlock()
		return nil, ctx.Err()
	}
	db.closeMu.RUnlock()
	err := <-req.done
	return req.rejected, err
}

func encodeRecord(pts []preparedPoint) []byte {
	rec, _ := encodeRecordScratch(nil, nil, pts)
	return rec
}

// encodeRecordScratch encodes into rec and body (reused, returned).
func encodeRecordScratch(rec, body []byte, pts []preparedPoint) ([]byte, []byte) {
	var e recordEncoder
	e.encode(body, pts)
	return encodeRecordWith(rec, &e)
}

// encodeRecordWith frames e's payload as a WAL record in rec (reused) and
// returns it and e's point section array for reuse.
func encodeRecordWith(rec []byte, e *recordEncoder) ([]byte, []byte) {
	// Encode behind room for the frame header instead of copying the
	// payload into a record afterwards.
	rec = slices.Grow(rec[:0], walHeaderSize+len(e.body)+64*len(e.series)+16*len(e.names)+16)[:walHeaderSize]
	rec, body := e.finish(rec)
	payload := rec[walHeaderSize:]
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(payload, castagnoli))
	return rec, body
}

// writer is the single goroutine that owns the WAL: it batches queued
// writes into one write(2) (and one fsync under FsyncAlways), applies them
// to the head in WAL order, and performs cuts for flushes.
func (db *DB) writer() {
	defer close(db.done)
	var tick <-chan time.Time
	if db.opts.Fsync == FsyncInterval {
		t := time.NewTicker(db.opts.FsyncInterval)
		defer t.Stop()
		tick = t.C
	}
	dirty := false
	batch := make([]*writeReq, 0, 256)
	var buf []byte
	// When writes pause, head fields left out of order are sorted.
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer idle.Stop()
	for {
		select {
		case <-idle.C:
			db.tidyHead(func() bool {
				select {
				case <-db.quit:
					return true
				default:
					return len(db.writeCh) > 0
				}
			})
		case req := <-db.writeCh:
			idle.Reset(db.tidyAfter)
			batch = append(batch[:0], req)
			for len(batch) < cap(batch) {
				select {
				case r := <-db.writeCh:
					batch = append(batch, r)
					continue
				default:
				}
				break
			}
			buf = db.commit(batch, buf[:0])
			dirty = db.opts.Fsync != FsyncAlways
			// Do not keep the last group's points or a huge record
			// buffer alive between bursts.
			clear(batch)
			if cap(buf) > 4<<20 {
				buf = nil
			}
		case c := <-db.cutCh:
			c.resp <- db.cut(c.all)
		case <-tick:
			if dirty && db.walErr == nil {
				if err := db.wal.sync(); err != nil {
					db.walErr = err
					db.log.Error("tsdb: wal fsync failed", "err", err)
				}
				dirty = false
			}
		case <-db.quit:
			for {
				select {
				case req := <-db.writeCh:
					buf = db.commit([]*writeReq{req}, buf[:0])
					continue
				default:
				}
				break
			}
			if err := db.wal.close(); err != nil {
				db.log.Error("tsdb: closing wal", "err", err)
			}
			return
		}
	}
}

// tidyAfter is how long writes must pause before the head is tidied.
const tidyAfter = 250 * time.Millisecond

// tidyHead (writer goroutine) sorts and de-duplicates the head fields that
// concurrent writers left out of order, so that reads take the sorted
// paths (binary search, LIMIT from the end) instead of scanning and
// sorting per query. Each field is sorted under the read lock and swapped
// in under the write lock, so queries and deletes wait for one field at
// most; a field that changed meanwhile (a delete) is left for next time.
// stop (a queued write or Close, in the writer) ends the tidy after the
// current field.
// Partitions being flushed are not touched.
func (db *DB) tidyHead(stop func() bool) {
	type item struct {
		part *headPartition
		f    *headField
	}
	var todo []item
	db.mu.RLock()
	for _, p := range db.head.parts {
		for _, hs := range p.series {
			for _, f := range hs.fields {
				if !f.sorted {
					todo = append(todo, item{p, f})
				}
			}
		}
	}
	db.mu.RUnlock()
	for _, it := range todo {
		if stop() {
			return // writes come first; the rest waits for the next pause
		}
		f := it.f
		db.mu.RLock()
		n, data := len(f.ts), unsafe.SliceData(f.ts)
		ts, vals, strs := f.sortedCopy()
		db.mu.RUnlock()
		db.mu.Lock()
		if len(f.ts) == n && unsafe.SliceData(f.ts) == data && db.head.parts[it.part.start] == it.part {
			f.ts, f.vals, f.strs, f.sorted = ts, vals, strs, true
			f.findEnds()
			d := n - len(ts) // overwritten samples dropped
			it.part.samples -= d
			db.head.samples -= d
		}
		db.mu.Unlock()
	}
}

// commit runs one group commit.
func (db *DB) commit(batch []*writeReq, buf []byte) []byte {
	if db.walErr != nil {
		for _, r := range batch {
			r.done <- fmt.Errorf("tsdb: wal unusable after earlier failure: %w", db.walErr)
		}
		return buf
	}
	accepted := batch[:0:0]
	var pending map[string]ValueType
	db.mu.RLock()
	for _, r := range batch {
		// Types first seen in this request, checked for points later in
		// the same request and merged into pending when it is accepted.
		var mine map[string]ValueType
		bad := ""
		badIdx := 0
		byNum := db.numbered(r.pts)
		r.nseries = len(byNum)
		for i := range r.pts {
			p := &r.pts[i]
			var s *series
			if p.bs > 0 {
				if s = byNum[p.bs]; s == nil {
					s = db.index.byKey[p.key]
					if s == nil {
						s = notStored
					}
					byNum[p.bs] = s
				}
				if s == notStored {
					s = nil
				}
			} else {
				s = db.index.byKey[p.key]
			}
			p.s = s
			hinted := s != nil
			next := 0 // hint index expected for the next field
			for fi, f := range p.Fields {
				if s != nil {
					if j := s.hintIndex(f.Key, next); j >= 0 {
						next = j + 1
						if t := s.hint[j].typ; t != f.Value.typ() {
							bad = fmt.Sprintf("field %q is %s, got %s", f.Key, t, f.Value.typ())
						}
						p.Fields[fi].Key = s.hint[j].name // equal; see preparedPoint.hinted
						continue
					}
					hinted = false
					if t, ok := s.fields[f.Key]; ok {
						if t != f.Value.typ() {
							bad = fmt.Sprintf("field %q is %s, got %s", f.Key, t, f.Value.typ())
						}
						continue
					}
				}
				// A field new to the series: check the types accepted
				// earlier in this group and in this request.
				k := p.key + "\x00" + f.Key
				t, ok := pending[k]
				if !ok {
					t, ok = mine[k]
				}
				if ok {
					if t != f.Value.typ() {
						bad = fmt.Sprintf("field %q is %s, got %s", f.Key, t, f.Value.typ())
					}
					continue
				}
				if mine == nil {
					mine = make(map[string]ValueType)
				}
				mine[k] = f.Value.typ()
			}
			p.hinted = hinted
			if bad != "" {
				badIdx = i
				break
			}
		}
		if bad != "" && r.partial {
			mine = db.dropConflicts(r, pending)
			if len(r.pts) == 0 {
				r.done <- nil
				continue
			}
			bad = ""
		}
		if bad != "" {
			r.done <- fmt.Errorf("point %d: %w: %s", badIdx, ErrFieldTypeConflict, bad)
			continue
		}
		if len(mine) > 0 && pending == nil {
			pending = make(map[string]ValueType)
		}
		for k, v := range mine {
			pending[k] = v
		}
		accepted = append(accepted, r)
		buf = append(buf, r.rec...)
	}
	db.mu.RUnlock()
	if len(accepted) == 0 {
		return buf
	}
	err := db.wal.write(buf)
	if err != nil {
		db.walErr = err
		db.log.Error("tsdb: wal write failed; further writes are refused", "err", err)
		for _, r := range accepted {
			r.done <- err
		}
		return buf
	}
	// The fsync runs while the points go into the head, so a commit costs
	// the longer of the two instead of their sum (the core would idle
	// during the fsync otherwise). Clients hear back only after both: what
	// is acknowledged is durable. Queries may see points a moment before
	// they are durable; if the fsync fails, the requests get the error
	// although their points stay in the head (a retry rewrites the same
	// values), and later writes are refused.
	var synced chan error
	if db.opts.Fsync == FsyncAlways {
		synced = db.syncDone
		go func() { synced <- db.wal.sync() }()
	}
	samples := 0
	points := 0
	db.mu.Lock()
	for _, r := range accepted {
		var created []*series // by batch series number
		order := db.seriesOrder(r.pts, r.nseries)
		for k := range r.pts {
			i := k
			if order != nil {
				i = int(order[k])
			}
			p := &r.pts[i]
			s := p.s
			if s == nil {
				if p.bs > 0 {
					if created == nil {
						created = make([]*series, r.nseries)
					}
					if s = created[p.bs]; s == nil {
						s = db.index.getOrCreate(p.key, p.Measurement, p.Tags)
						created[p.bs] = s
					}
				} else {
					s = db.index.getOrCreate(p.key, p.Measurement, p.Tags)
				}
			}
			db.apply(s, p)
			samples += len(p.Fields)
		}
		points += len(r.pts)
	}
	db.mu.Unlock()
	if synced != nil {
		if err := <-synced; err != nil {
			db.walErr = err
			db.log.Error("tsdb: wal fsync failed; further writes are refused", "err", err)
			for _, r := range accepted {
				r.done <- err
			}
			return buf
		}
	}
	db.samplesWritten.Add(int64(samples))
	db.pointsWritten.Add(int64(points))
	db.batches.Add(1)
	for _, r := range accepted {
		r.done <- nil
	}
	return buf
}

// seriesOrder (writer goroutine) returns the indexes of pts grouped by
// batch series number, series in the order of their numbers (that is, of
// their first points) and points of a series in request order, or nil
// when pts are not all numbered below nseries. Applying a request in this
// order appends a series' points one after another, so each field's buffer
// tails stay in cache across them; in arrival order, a body interleaving
// hundreds of series touches thousands of buffers between two appends to
// one. Only points of one series can overwrite each other, and those keep
// their order, so the result is the same.
func (db *DB) seriesOrder(pts []preparedPoint, nseries int) []int32 {
	if len(pts) < 64 || nseries < 2 {
		return nil
	}
	if cap(db.orderAt) < nseries+1 {
		db.orderAt = make([]int32, nseries+1)
	}
	at := db.orderAt[:nseries+1]
	clear(at)
	for i := range pts {
		b := pts[i].bs
		if b <= 0 || int(b) >= nseries {
			return nil
		}
		at[b+1]++
	}
	for b := 1; b <= nseries; b++ {
		at[b] += at[b-1]
	}
	if cap(db.order) < len(pts) {
		db.order = make([]int32, len(pts))
	}
	order := db.order[:len(pts)]
	for i := range pts {
		b := pts[i].bs
		order[at[b]] = int32(i)
		at[b]++
	}
	return order
}

// notStored marks, in the writer's per-request series table, a series key
// looked up and not found.
var notStored = &series{}

// numbered returns the writer goroutine's table from batch series numbers
// to resolved series, cleared and sized for pts.
func (db *DB) numbered(pts []preparedPoint) []*series {
	n := int(maxBatchSeries(pts)) + 1
	if cap(db.byNum) < n {
		db.byNum = make([]*series, n)
	}
	t := db.byNum[:n]
	clear(t)
	return t
}

// dropConflicts (writer goroutine, db.mu read-held) removes from a partial
// request the points whose field types conflict with stored types, with
// types accepted earlier in the group (pending) or with earlier points of
// the request, records them as rejected, re-encodes the WAL record and
// returns the types the remaining points introduce.
func (db *DB) dropConflicts(r *writeReq, pending map[string]ValueType) map[string]ValueType {
	mine := make(map[string]ValueType)
	kept := r.pts[:0]
	var keptIdx []int
	for i := range r.pts {
		p := &r.pts[i]
		orig := i
		if r.idx != nil {
			orig = r.idx[i]
		}
		s := db.index.byKey[p.key]
		msg := conflict(s, p, pending)
		if msg == "" {
			msg = conflict(nil, p, mine)
		}
		if msg != "" {
			r.rejected = append(r.rejected, PointError{Index: orig, Err: fmt.Errorf("%w: %s on measurement %q", ErrFieldTypeConflict, msg, p.Measurement)})
			continue
		}
		for _, f := range p.Fields {
			if s != nil {
				if _, ok := s.fields[f.Key]; ok {
					continue
				}
			}
			k := p.key + "\x00" + f.Key
			if _, ok := pending[k]; !ok {
				mine[k] = f.Value.typ()
			}
		}
		kept = append(kept, *p)
		keptIdx = append(keptIdx, orig)
	}
	r.pts, r.idx = kept, keptIdx
	if len(kept) > 0 {
		r.rec = encodeRecord(kept)
	}
	return mine
}

// cut (writer goroutine) picks the partitions to flush, moves them to
// head.flushing and cuts the WAL so that every record of those partitions
// is in a segment <= upTo.
func (db *DB) cut(all bool) cutResult {
	db.mu.Lock()
	defer db.mu.Unlock()
	h := db.head
	all = all || h.samples > db.opts.MaxHeadSamples
	var parts []*headPartition
	for start, p := range h.parts {
		if all || start+db.blockDur+db.blockDur/2 <= h.maxT {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return cutResult{}
	}
	if db.walErr != nil {
		return cutResult{err: db.walErr}
	}
	upTo, err := db.wal.cut()
	if err != nil {
		db.walErr = err
		return cutResult{err: err}
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].start < parts[j].start })
	for _, p := range parts {
		delete(h.parts, p.start)
		h.release(p)
		h.samples -= p.samples
		h.flushing = append(h.flushing, p)
	}
	return cutResult{upTo: upTo, parts: parts}
}

// Flush writes all head data to blocks now and checkpoints the WAL.
func (db *DB) Flush(ctx context.Context) error {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	return db.flush(ctx, true)
}

func (db *DB) flush(ctx context.Context, all bool) error {
	db.flushMu.Lock()
	parts, err := db.flushLocked(ctx, all)
	db.flushMu.Unlock()
	if db.opts.OnBlock != nil {
		for _, p := range parts {
			db.opts.OnBlock(p)
		}
	}
	return err
}

// flushLocked flushes with flushMu held and returns the partitions that
// got a block.
func (db *DB) flushLocked(ctx context.Context, all bool) ([]int64, error) {
	req := &cutReq{all: all, resp: make(chan cutResult, 1)}
	select {
	case db.cutCh <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-db.done:
		return nil, ErrClosed
	}
	res := <-req.resp
	if res.err != nil {
		return nil, fmt.Errorf("tsdb: flush: %w", res.err)
	}
	if len(res.parts) == 0 {
		return nil, nil
	}
	flushed := make(map[int64]bool)
	var errs []error
	for _, p := range res.parts {
		b, err := db.writePartition(p)
		db.mu.Lock()
		for i, f := range db.head.flushing {
			if f == p {
				db.head.flushing = slices.Delete(db.head.flushing, i, i+1) // clears the freed slot
				break
			}
		}
		if err != nil {
			db.head.mergeBack(p)
		} else {
			if b != nil {
				db.blocks = append(db.blocks, b)
			}
			flushed[p.start] = true
		}
		db.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		db.flushes.Add(1)
	}
	if len(flushed) > 0 {
		// Records of partitions that failed to flush are kept: they are
		// back in the head and their partition is not in flushed.
		err := db.wal.checkpoint(res.upTo, func(p *preparedPoint) bool {
			return !flushed[partitionStart(p.Time, db.blockDur)]
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("checkpoint: %w", err))
		}
	}
	var done []int64
	for p := range flushed {
		done = append(done, p)
	}
	slices.Sort(done)
	if err := errors.Join(errs...); err != nil {
		return done, fmt.Errorf("tsdb: flush: %w", err)
	}
	return done, nil
}

// writePartition writes one detached head partition as a block and loads it.
func (db *DB) writePartition(p *headPartition) (*block, error) {
	data := make([]blockSeriesData, 0, len(p.series))
	for _, hs := range p.series {
		sd := blockSeriesData{s: hs.s}
		for _, f := range hs.fields {
			name := f.name
			if len(f.ts) == 0 {
				continue // emptied by a delete
			}
			ts, vals, strs := f.sortedCopy()
			sd.fields = append(sd.fields, blockFieldData{name: name, typ: f.typ, ts: ts, vals: vals, strs: strs})
		}
		if len(sd.fields) == 0 {
			continue
		}
		sort.Slice(sd.fields, func(i, j int) bool { return sd.fields[i].name < sd.fields[j].name })
		data = append(data, sd)
	}
	if len(data) == 0 {
		return nil, nil // nothing left to store; the WAL is still checkpointed
	}
	seq := db.nextSeq.Add(1)
	path, err := writeBlock(db.blockDir, p.start, seq, data)
	if err != nil {
		return nil, err
	}
	// The index is only read here; series already exist, so getOrCreate
	// does not mutate it, but it is shared with the writer: hold the lock.
	db.mu.Lock()
	b, err := openBlock(path, seq, db.index)
	db.mu.Unlock()
	if err != nil {
		return nil, err
	}
	db.log.Debug("tsdb: block written", "path", path, "samples", b.samples, "bytes", b.size)
	return b, nil
}

// flusher periodically flushes partitions the policy says are complete.
func (db *DB) flusher(ctx context.Context) {
	defer close(db.bgDone)
	t := time.NewTicker(min(db.opts.FlushInterval, db.opts.CompactInterval))
	defer t.Stop()
	lastCompact := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := db.flush(ctx, false); err != nil && ctx.Err() == nil {
				db.log.Error("tsdb: background flush failed", "err", err)
			}
			if err := db.enforceRetention(); err != nil && ctx.Err() == nil {
				db.log.Error("tsdb: retention failed", "err", err)
			}
			if time.Since(lastCompact) >= db.opts.CompactInterval {
				lastCompact = time.Now()
				if _, err := db.Compact(ctx); err != nil && ctx.Err() == nil {
					db.log.Error("tsdb: background compaction failed", "err", err)
				}
			}
		}
	}
}

// Close flushes the partitions the flush policy considers complete, syncs
// and closes the WAL (the rest of the head is recovered from it on the
// next Open) and closes the block files. It is idempotent.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	db.closed = true
	db.closeMu.Unlock()
	db.bgCancel()
	<-db.bgDone
	err := db.flush(context.Background(), false)
	close(db.quit)
	<-db.done
	db.mu.Lock()
	db.closeBlocks()
	db.mu.Unlock()
	if err != nil {
		return fmt.Errorf("tsdb: close: %w", err)
	}
	return nil
}

// Stats returns current counters.
func (db *DB) Stats() Stats {
	db.mu.RLock()
	st := Stats{
		Series:         len(db.index.byID),
		HeadSamples:    db.head.samples,
		HeadPartitions: len(db.head.parts),
		Blocks:         len(db.blocks),
	}
	for _, p := range db.head.flushing {
		st.HeadSamples += p.samples
	}
	for _, b := range db.blocks {
		st.BlockBytes += b.size
		st.BlockSamples += int64(b.samples)
	}
	st.Tombstones = len(db.tombs)
	db.mu.RUnlock()
	st.WALBytes = walBytes(filepath.Join(db.opts.Dir, "wal"))
	st.Compactions = db.compactions.Load()
	st.RejectedLate = db.rejectedLate.Load()
	st.RejectedSeries = db.rejectedSeries.Load()
	st.DroppedParts = db.droppedParts.Load()
	st.SamplesWritten = db.samplesWritten.Load()
	st.PointsWritten = db.pointsWritten.Load()
	st.WriteBatches = db.batches.Load()
	st.Flushes = db.flushes.Load()
	return st
}

// stage reports a crash-sensitive step to Options.stage (tests only).
func (db *DB) stage(name string) {
	if db.opts.stage != nil {
		db.opts.stage(name)
	}
}
