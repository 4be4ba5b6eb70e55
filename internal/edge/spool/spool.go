package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the spool.
var (
	ErrFull     = errors.New("spool: full")
	ErrTooLarge = errors.New("spool: record larger than the spool")
	ErrClosed   = errors.New("spool: closed")
)

// Fsync is when appended records are forced to disk.
type Fsync int

const (
	FsyncAlways   Fsync = iota // before Append returns (group commit)
	FsyncInterval              // every Options.FsyncInterval in the background
	FsyncNever                 // left to the operating system
)

// ParseFsync reads "always", "interval" or "never".
func ParseFsync(s string) (Fsync, error) {
	switch s {
	case "", "always":
		return FsyncAlways, nil
	case "interval":
		return FsyncInterval, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("spool: fsync %q must be always, interval or never", s)
}

// DropPolicy says what happens when the spool is full.
type DropPolicy int

const (
	DropOldest DropPolicy = iota // delete the oldest segment (default)
	RejectNew                    // fail Append with ErrFull
)

// ParseDropPolicy reads "drop_oldest" or "reject_new".
func ParseDropPolicy(s string) (DropPolicy, error) {
	switch s {
	case "", "drop_oldest":
		return DropOldest, nil
	case "reject_new":
		return RejectNew, nil
	}
	return 0, fmt.Errorf("spool: drop policy %q must be drop_oldest or reject_new", s)
}

// Options configure a Spool. The zero value (plus Dir) is usable.
type Options struct {
	Dir string
	// MaxBytes bounds the segment files (default 256 MiB).
	MaxBytes int64
	// MaxAge drops records older than this (0: no age limit).
	MaxAge time.Duration
	// SegmentBytes is the size at which a segment is sealed (default
	// MaxBytes/16, between 64 KiB and 16 MiB).
	SegmentBytes  int64
	Fsync         Fsync
	FsyncInterval time.Duration // default 1s
	Policy        DropPolicy
	// AckInterval is how often the acknowledged head is written (default
	// 200ms).
	AckInterval time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

// Stats are the spool's counters.
type Stats struct {
	Queued        uint64  `json:"queued"`         // records not yet acknowledged
	Bytes         int64   `json:"bytes"`          // size of the segment files
	Segments      int     `json:"segments"`       // segment files
	OldestAgeSec  float64 `json:"oldest_age_sec"` // age of the oldest queued record
	Head          uint64  `json:"head"`           // lowest unacknowledged sequence number
	Next          uint64  `json:"next"`           // sequence number of the next record
	Appended      uint64  `json:"appended"`       // records appended since start
	Acked         uint64  `json:"acked"`          // records acknowledged since start
	DroppedSize   uint64  `json:"dropped_size"`   // unacknowledged records dropped for max_bytes
	DroppedAge    uint64  `json:"dropped_age"`    // unacknowledged records dropped for max_age
	Rejected      uint64  `json:"rejected"`       // appends refused (reject_new)
	Corrupt       uint64  `json:"corrupt"`        // damaged records found by Open
	MaxBytes      int64   `json:"max_bytes"`
	MaxAgeSec     float64 `json:"max_age_sec"`
	FsyncPolicy   string  `json:"fsync"`
	DropPolicyStr string  `json:"drop_policy"`
}

type segment struct {
	base, next  uint64 // first sequence number, and the one after the last record
	size        int64
	first, last time.Time
	path        string
}

// Spool is a disk-backed FIFO. It is safe for concurrent use.
type Spool struct {
	opts    Options
	log     *slog.Logger
	rollAge time.Duration

	mu       sync.Mutex
	segs     []*segment // last is the active one
	active   *os.File
	next     uint64
	head     uint64
	acked    map[uint64]struct{}
	bytes    int64
	notify   chan struct{}
	closed   bool
	ackDirty bool
	ackFile  *os.File
	headTime struct {
		seq uint64
		t   time.Time
	}

	syncMu sync.Mutex
	synced uint64 // records below this are on disk

	appended, ackedN, droppedSize, droppedAge, rejected, corrupt atomic.Uint64

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens (or creates) the spool in opts.Dir and recovers it.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("spool: Dir is required")
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = min(max(opts.MaxBytes/16, 64<<10), 16<<20)
	}
	if opts.FsyncInterval <= 0 {
		opts.FsyncInterval = time.Second
	}
	if opts.AckInterval <= 0 {
		opts.AckInterval = 200 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{opts: opts, log: opts.Logger, acked: map[uint64]struct{}{}, notify: make(chan struct{}), stop: make(chan struct{})}
	if opts.MaxAge > 0 {
		s.rollAge = opts.MaxAge / 8
	}
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, err
	}
	s.wg.Add(1)
	go s.background()
	return s, nil
}

func segPath(dir string, base uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.seg", base))
}

// recover reads the ack file and scans the segments.
func (s *Spool) recover() error {
	var err error
	if s.ackFile, err = os.OpenFile(filepath.Join(s.opts.Dir, "ack"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var ab [12]byte
	if n, _ := s.ackFile.ReadAt(ab[:], 0); n == len(ab) && crc32.Checksum(ab[:8], castagnoli) == binary.LittleEndian.Uint32(ab[8:]) {
		s.head = binary.LittleEndian.Uint64(ab[:8])
	} else if n > 0 {
		s.log.Warn("spool ack file unreadable; resending from the oldest record")
	}
	ents, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var bases []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		b, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		bases = append(bases, b)
	}
	slices.Sort(bases)
	for i, base := range bases {
		last := i == len(bases)-1
		sg, err := s.scan(base, last)
		if err != nil {
			return err
		}
		if n := len(s.segs); n > 0 && sg.base < s.segs[n-1].next {
			s.log.Error("spool segment overlaps its predecessor; ignoring it", "segment", sg.path)
			s.corrupt.Add(sg.next - sg.base)
			continue
		}
		if sg.size == 0 && !last {
			_ = os.Remove(sg.path)
			continue
		}
		s.segs = append(s.segs, sg)
		s.bytes += sg.size
	}
	if s.head == 0 {
		s.head = 1
	}
	s.next = s.head
	if n := len(s.segs); n > 0 {
		s.next = max(s.next, s.segs[n-1].next)
		if s.head < s.segs[0].base {
			s.head = s.segs[0].base
		}
	}
	s.skipGapLocked()
	s.dropAckedSegmentsLocked()
	// Reopen the last segment for appending, or start a new one.
	if n := len(s.segs); n > 0 && s.segs[n-1].size < s.opts.SegmentBytes && s.segs[n-1].next == s.next {
		if s.active, err = os.OpenFile(s.segs[n-1].path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	} else if err := s.newSegmentLocked(); err != nil {
		return err
	}
	s.synced = s.next
	s.log.Info("spool opened", "dir", s.opts.Dir, "queued", s.next-s.head, "segments", len(s.segs), "bytes", s.bytes)
	return nil
}

// scan validates one segment file; on the last segment a damaged tail is
// truncated.
func (s *Spool) scan(base uint64, last bool) (*segment, error) {
	sg := &segment{base: base, next: base, path: segPath(s.opts.Dir, base)}
	b, err := os.ReadFile(sg.path)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	off := 0
	var bad error
	for off < len(b) {
		r, n, ok, err := ReadRecord(b[off:])
		if err == nil && ok && r.Seq != sg.next {
			err = fmt.Errorf("%w: sequence %d, want %d", ErrCorrupt, r.Seq, sg.next)
		}
		if err != nil {
			bad = err
			break
		}
		if !ok {
			bad = io.ErrUnexpectedEOF
			break
		}
		if sg.next == base {
			sg.first = r.Time
		}
		sg.last = r.Time
		sg.next++
		off += n
	}
	sg.size = int64(off)
	if bad != nil {
		if errors.Is(bad, ErrCorrupt) {
			s.corrupt.Add(1)
		}
		s.log.Warn("spool segment damaged; keeping the records before the damage", "segment", sg.path,
			"kept", sg.next-base, "lost_bytes", len(b)-off, "err", bad)
		if last {
			if err := os.Truncate(sg.path, int64(off)); err != nil {
				return nil, fmt.Errorf("spool: truncate damaged tail: %w", err)
			}
		}
	}
	return sg, nil
}

func (s *Spool) newSegmentLocked() error {
	if s.active != nil {
		if s.opts.Fsync != FsyncNever {
			if err := s.active.Sync(); err != nil {
				return fmt.Errorf("spool: sync segment: %w", err)
			}
		}
		s.active.Close()
		s.active = nil
	}
	sg := &segment{base: s.next, next: s.next, path: segPath(s.opts.Dir, s.next)}
	f, err := os.OpenFile(sg.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: new segment: %w", err)
	}
	if s.opts.Fsync == FsyncAlways {
		syncDir(s.opts.Dir)
	}
	s.active = f
	s.segs = append(s.segs, sg)
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Append queues recs in order, assigning each its Seq (and Time when
// zero). With FsyncAlways the records are on disk when it returns nil.
func (s *Spool) Append(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	now := s.opts.Now()
	var total int64
	for i := range recs {
		if recs[i].Time.IsZero() {
			recs[i].Time = now
		}
		total += int64(recs[i].Size())
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.expireLocked(now)
	if err := s.makeRoomLocked(total, len(recs)); err != nil {
		s.mu.Unlock()
		return err
	}
	sg := s.segs[len(s.segs)-1]
	if sg.size > 0 && (sg.size+total > s.opts.SegmentBytes || (s.rollAge > 0 && now.Sub(sg.first) > s.rollAge)) {
		if err := s.newSegmentLocked(); err != nil {
			s.mu.Unlock()
			return err
		}
		sg = s.segs[len(s.segs)-1]
	}
	buf := make([]byte, 0, total)
	for i := range recs {
		recs[i].Seq = s.next + uint64(i)
		buf = appendRecord(buf, &recs[i])
	}
	if _, err := s.active.Write(buf); err != nil {
		// Undo a partial write so the segment stays readable.
		_ = s.active.Truncate(sg.size)
		s.mu.Unlock()
		return fmt.Errorf("spool: append: %w", err)
	}
	if sg.size == 0 {
		sg.first = recs[0].Time
	}
	sg.last = recs[len(recs)-1].Time
	sg.size += int64(len(buf))
	s.bytes += int64(len(buf))
	s.next += uint64(len(recs))
	sg.next = s.next
	last := s.next
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	s.appended.Add(uint64(len(recs)))
	if s.opts.Fsync == FsyncAlways {
		return s.syncTo(last)
	}
	return nil
}

// syncTo makes every record below seq durable; concurrent callers share
// one fsync.
func (s *Spool) syncTo(seq uint64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= seq {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		return ErrClosed
	}
	target := s.next
	if err := s.active.Sync(); err != nil {
		return fmt.Errorf("spool: fsync: %w", err)
	}
	s.synced = target
	return nil
}

// makeRoomLocked applies MaxBytes to an append of n records of total bytes.
func (s *Spool) makeRoomLocked(total int64, n int) error {
	if total > s.opts.MaxBytes {
		s.rejected.Add(uint64(n))
		return fmt.Errorf("%w (%d bytes, max_bytes %d)", ErrTooLarge, total, s.opts.MaxBytes)
	}
	for s.bytes+total > s.opts.MaxBytes {
		if s.opts.Policy == RejectNew {
			s.rejected.Add(uint64(n))
			return fmt.Errorf("%w: %d bytes queued, max_bytes %d", ErrFull, s.bytes, s.opts.MaxBytes)
		}
		if len(s.segs) == 1 {
			if s.segs[0].size == 0 {
				return nil
			}
			if err := s.newSegmentLocked(); err != nil {
				return err
			}
		}
		s.droppedSize.Add(s.dropFirstLocked())
	}
	return nil
}

// expireLocked drops whole segments whose newest record is older than
// MaxAge (the active one is sealed first).
func (s *Spool) expireLocked(now time.Time) {
	if s.opts.MaxAge <= 0 {
		return
	}
	for len(s.segs) > 0 && s.segs[0].size > 0 && now.Sub(s.segs[0].last) > s.opts.MaxAge {
		if len(s.segs) == 1 {
			if err := s.newSegmentLocked(); err != nil {
				s.log.Error("spool: cannot seal an expired segment", "err", err)
				return
			}
		}
		s.droppedAge.Add(s.dropFirstLocked())
	}
}

// dropFirstLocked deletes the oldest segment and returns how many of its
// records were not acknowledged.
func (s *Spool) dropFirstLocked() uint64 {
	sg := s.segs[0]
	var lost uint64
	if sg.next > s.head {
		lost = sg.next - max(sg.base, s.head)
		for k := range s.acked {
			if k < sg.next {
				lost--
				delete(s.acked, k)
			}
		}
		s.head = sg.next
		s.ackDirty = true
		s.log.Warn("spool full or expired: dropped the oldest segment", "records", lost, "bytes", sg.size)
	}
	s.removeFirstLocked()
	return lost
}

func (s *Spool) removeFirstLocked() {
	sg := s.segs[0]
	if err := os.Remove(sg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Error("spool: remove segment", "segment", sg.path, "err", err)
	}
	s.bytes -= sg.size
	s.segs = s.segs[1:]
}

// dropAckedSegmentsLocked deletes sealed segments below the head.
func (s *Spool) dropAckedSegmentsLocked() {
	for len(s.segs) > 1 && s.segs[0].next <= s.head {
		s.removeFirstLocked()
	}
}

// Ack marks a record as delivered. Acks may come in any order; the head
// moves over every acknowledged record.
func (s *Spool) Ack(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < s.head || seq >= s.next {
		return
	}
	if _, dup := s.acked[seq]; dup {
		return
	}
	s.ackedN.Add(1)
	if seq != s.head {
		s.acked[seq] = struct{}{}
		return
	}
	s.head++
	for {
		s.skipGapLocked()
		if _, ok := s.acked[s.head]; !ok {
			break
		}
		delete(s.acked, s.head)
		s.head++
	}
	s.ackDirty = true
	s.dropAckedSegmentsLocked()
}

// skipGapLocked moves the head over sequence numbers that no segment holds
// (records lost to damage found by Open).
func (s *Spool) skipGapLocked() {
	for _, sg := range s.segs {
		if s.head < sg.next {
			s.head = max(s.head, sg.base)
			return
		}
	}
}

// IsAcked reports whether seq was acknowledged (or dropped).
func (s *Spool) IsAcked(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < s.head {
		return true
	}
	_, ok := s.acked[seq]
	return ok
}

// Head is the lowest unacknowledged sequence number.
func (s *Spool) Head() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head
}

// Next is the sequence number the next appended record gets.
func (s *Spool) Next() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// Notify returns a channel closed at the next Append.
func (s *Spool) Notify() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notify
}

// background syncs (FsyncInterval), writes the ack file and expires old
// segments.
func (s *Spool) background() {
	defer s.wg.Done()
	ackT := time.NewTicker(s.opts.AckInterval)
	defer ackT.Stop()
	syncT := time.NewTicker(s.opts.FsyncInterval)
	defer syncT.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-ackT.C:
			s.mu.Lock()
			s.expireLocked(s.opts.Now())
			s.mu.Unlock()
			if err := s.writeAck(s.opts.Fsync != FsyncNever); err != nil {
				s.log.Error("spool: write ack file", "err", err)
			}
		case <-syncT.C:
			if s.opts.Fsync == FsyncInterval {
				if err := s.syncTo(s.Next()); err != nil && !errors.Is(err, ErrClosed) {
					s.log.Error("spool: background fsync", "err", err)
				}
			}
		}
	}
}

func (s *Spool) writeAck(sync bool) error {
	s.mu.Lock()
	if !s.ackDirty || s.ackFile == nil {
		s.mu.Unlock()
		return nil
	}
	head := s.head
	s.ackDirty = false
	f := s.ackFile
	s.mu.Unlock()
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], head)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	if _, err := f.WriteAt(b[:], 0); err != nil {
		return err
	}
	if sync {
		return f.Sync()
	}
	return nil
}

// Stats returns the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		Queued: s.next - s.head - uint64(len(s.acked)), Bytes: s.bytes, Segments: len(s.segs),
		Head: s.head, Next: s.next, MaxBytes: s.opts.MaxBytes, MaxAgeSec: s.opts.MaxAge.Seconds(),
	}
	head, cached, cachedT := s.head, s.headTime.seq, s.headTime.t
	s.mu.Unlock()
	st.Appended, st.Acked = s.appended.Load(), s.ackedN.Load()
	st.DroppedSize, st.DroppedAge = s.droppedSize.Load(), s.droppedAge.Load()
	st.Rejected, st.Corrupt = s.rejected.Load(), s.corrupt.Load()
	st.FsyncPolicy = [...]string{"always", "interval", "never"}[s.opts.Fsync]
	st.DropPolicyStr = [...]string{"drop_oldest", "reject_new"}[s.opts.Policy]
	if st.Queued > 0 {
		if cached != head {
			r := s.NewReader(head)
			if recs, err := r.Next(1, 0); err == nil && len(recs) == 1 {
				cachedT = recs[0].Time
				s.mu.Lock()
				s.headTime.seq, s.headTime.t = head, cachedT
				s.mu.Unlock()
			}
			r.Close()
		}
		if !cachedT.IsZero() {
			st.OldestAgeSec = s.opts.Now().Sub(cachedT).Seconds()
		}
	}
	return st
}

// Close writes the ack file, syncs and closes the spool.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	var errs []error
	if s.opts.Fsync != FsyncNever {
		if err := s.syncTo(s.Next()); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	s.ackDirty = true
	s.mu.Unlock()
	if err := s.writeAck(true); err != nil {
		errs = append(errs, fmt.Errorf("spool: ack file: %w", err))
	}
	s.closeFiles()
	return errors.Join(errs...)
}

func (s *Spool) closeFiles() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil {
		s.active.Close()
		s.active = nil
	}
	if s.ackFile != nil {
		s.ackFile.Close()
		s.ackFile = nil
	}
}
