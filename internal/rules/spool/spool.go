package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors returned by the package.
var (
	// ErrFull is returned by Append when the record would take the spool
	// beyond Options.MaxBytes; the caller drops the record (drop newest).
	ErrFull = errors.New("spool: full")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrTooLarge is returned by Append for a record above MaxRecord.
	ErrTooLarge = errors.New("spool: record too large")
)

// Fsync is the policy that makes written records durable.
type Fsync int

const (
	// FsyncAlways syncs the segment before Commit returns (group commit:
	// one fsync covers every record appended since the last one).
	FsyncAlways Fsync = iota
	// FsyncInterval writes records to the operating system before Commit
	// returns (they survive the process being killed) and syncs every
	// Options.Interval (a power loss may lose the last interval).
	FsyncInterval
)

// ParseFsync reads "always" or "interval" ("" is always).
func ParseFsync(s string) (Fsync, error) {
	switch s {
	case "", "always":
		return FsyncAlways, nil
	case "interval":
		return FsyncInterval, nil
	}
	return 0, fmt.Errorf("spool: fsync %q: want always or interval", s)
}

func (f Fsync) String() string {
	if f == FsyncInterval {
		return "interval"
	}
	return "always"
}

// MaxRecord bounds one record's size.
const MaxRecord = 64 << 20

const (
	segMagic   = "EWSPOOL1"
	segHeader  = 16 // magic + base sequence
	recHeader  = 8  // length + CRC-32C
	ackName    = "ack"
	segSuffix  = ".seg"
	readBuffer = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configure a spool; the zero value is usable.
type Options struct {
	Fsync    Fsync
	Interval time.Duration // FsyncInterval period (default 1s)
	// MaxBytes bounds the segment files (default 256 MiB); SegmentBytes is
	// the size at which a new segment starts (default MaxBytes/8, at most
	// 8 MiB).
	MaxBytes     int64
	SegmentBytes int64
	Logger       *slog.Logger
}

// Record is one record read back.
type Record struct {
	Seq  uint64
	Data []byte
}

type segment struct {
	base  uint64 // sequence of the first record
	count uint64 // complete records
	size  int64  // bytes written, header included
	path  string
}

// Spool is a durable FIFO of records in segment files: Append buffers,
// Commit writes (and syncs, by policy), Read returns committed records in
// order, Ack releases them. Safe for concurrent use; Read and Ack are
// meant for one consumer.
type Spool struct {
	dir  string
	opts Options
	log  *slog.Logger

	commitMu sync.Mutex // serializes Commit (group commit)

	mu      sync.Mutex
	closed  bool
	buf     []byte // appended, not yet written
	bufRecs uint64
	next    uint64 // sequence of the next Append
	written uint64 // records with seq < written are in the files
	segs    []*segment
	active  *os.File // last segment, open for append
	total   int64    // bytes in segments + buf
	dirty   bool     // written since the last sync (interval policy)
	acked   uint64   // every seq <= acked is acknowledged
	ackFile *os.File
	notify  chan struct{}
	stop    chan struct{}
	done    chan struct{}
	lost    uint64 // records dropped at Open because a segment was damaged

	// reader state (one consumer)
	rseq  uint64 // next sequence to read
	rseg  *segment
	rfile *os.File
	rbuf  *bufio.Reader
	roff  int64
}

// Open opens (creating) the spool in dir and recovers its records: a torn
// record at the end of the last segment is cut off; a damaged record
// elsewhere ends its segment (the records after it are counted in Lost).
func Open(dir string, opts Options) (*Spool, error) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = min(8<<20, max(opts.MaxBytes/8, 4096))
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, opts: opts, log: opts.Logger, notify: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	af, err := os.OpenFile(filepath.Join(dir, ackName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s.ackFile = af
	var ab [12]byte
	if n, _ := af.ReadAt(ab[:], 0); n == len(ab) && crc32.Checksum(ab[:8], castagnoli) == binary.LittleEndian.Uint32(ab[8:]) {
		s.acked = binary.LittleEndian.Uint64(ab[:8])
	}
	if err := s.recover(); err != nil {
		af.Close()
		return nil, err
	}
	s.next = s.acked + 1
	if n := len(s.segs); n > 0 {
		s.next = max(s.next, s.segs[n-1].base+s.segs[n-1].count)
	}
	s.written, s.rseq = s.next, s.acked+1
	s.gc()
	go s.syncLoop()
	return s, nil
}

func (s *Spool) recover() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), segSuffix) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names) // zero-padded base sequences sort numerically
	for i, name := range names {
		p := filepath.Join(s.dir, name)
		seg, err := scanSegment(p, i == len(names)-1)
		if err != nil {
			s.log.Error("spool: segment unreadable, removed", "path", p, "err", err)
			_ = os.Remove(p)
			continue
		}
		if seg.lost > 0 {
			s.lost += seg.lost
			s.log.Error("spool: damaged record; the rest of the segment is lost", "path", p, "records", seg.count)
		}
		s.segs = append(s.segs, &seg.segment)
		s.total += seg.size
	}
	return nil
}

type scanned struct {
	segment
	lost uint64
}

// scanSegment validates a segment's records; a torn tail of the last
// segment is truncated.
func scanSegment(p string, last bool) (scanned, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return scanned{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return scanned{}, err
	}
	r := bufio.NewReaderSize(f, readBuffer)
	var h [segHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil || string(h[:8]) != segMagic {
		return scanned{}, fmt.Errorf("bad segment header")
	}
	sc := scanned{segment: segment{base: binary.LittleEndian.Uint64(h[8:]), path: p, size: segHeader}}
	var data []byte
	for {
		var rh [recHeader]byte
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			if err != io.EOF {
				sc.lost = 1
			}
			break
		}
		n := binary.LittleEndian.Uint32(rh[:4])
		if n > MaxRecord || sc.size+recHeader+int64(n) > st.Size() {
			sc.lost = 1
			break
		}
		data = slices.Grow(data[:0], int(n))[:n]
		if _, err := io.ReadFull(r, data); err != nil || crc32.Checksum(data, castagnoli) != binary.LittleEndian.Uint32(rh[4:]) {
			sc.lost = 1
			break
		}
		sc.count++
		sc.size += recHeader + int64(n)
	}
	if sc.size < st.Size() {
		if last {
			if err := f.Truncate(sc.size); err != nil {
				return scanned{}, err
			}
			sc.lost = 0 // a torn write that was never acknowledged
		}
	}
	return sc, nil
}

// Append buffers records and returns the sequence of the last one. They
// are neither readable nor durable before Commit.
func (s *Spool) Append(recs ...[]byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	var need int64
	for _, r := range recs {
		if len(r) > MaxRecord {
			return 0, ErrTooLarge
		}
		need += recHeader + int64(len(r))
	}
	if s.total+need > s.opts.MaxBytes {
		return 0, ErrFull
	}
	for _, r := range recs {
		s.buf = binary.LittleEndian.AppendUint32(s.buf, uint32(len(r)))
		s.buf = binary.LittleEndian.AppendUint32(s.buf, crc32.Checksum(r, castagnoli))
		s.buf = append(s.buf, r...)
		s.next++
		s.bufRecs++
	}
	s.total += need
	return s.next - 1, nil
}

// Commit writes the records appended so far to the segment files and, with
// FsyncAlways, syncs them. Concurrent commits share one write and sync.
func (s *Spool) Commit() error {
	s.mu.Lock()
	target := s.next
	s.mu.Unlock()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	if s.written >= target {
		s.mu.Unlock()
		return nil
	}
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	buf, recs, first := s.buf, s.bufRecs, s.written
	s.buf, s.bufRecs = nil, 0
	s.mu.Unlock()

	var err error
	for len(buf) > 0 && err == nil {
		// Write the records that fit the current segment (at least one
		// into a new segment), then start the next one.
		s.mu.Lock()
		seg := s.tail()
		s.mu.Unlock()
		room := s.opts.SegmentBytes - segHeader
		if seg != nil {
			room = s.opts.SegmentBytes - seg.size
		}
		n, k := 0, uint64(0)
		for n < len(buf) {
			l := recHeader + int(binary.LittleEndian.Uint32(buf[n:]))
			if k > 0 && int64(n+l) > room {
				break
			}
			n, k = n+l, k+1
			if seg != nil && int64(n) > room { // one record larger than the room left
				n, k = 0, 0
				break
			}
		}
		if k == 0 {
			s.mu.Lock()
			if s.active != nil {
				s.active.Close()
				s.active = nil
			}
			s.mu.Unlock()
			continue
		}
		if err = s.write(seg, buf[:n], first, k); err == nil {
			buf, recs, first = buf[n:], recs-k, first+k
			s.mu.Lock()
			s.written = first
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// Keep the records for the next Commit.
		s.buf, s.bufRecs = append(buf, s.buf...), recs+s.bufRecs
		return err
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

func (s *Spool) tail() *segment {
	if n := len(s.segs); n > 0 && s.active != nil && s.segs[n-1].size < s.opts.SegmentBytes {
		return s.segs[n-1]
	}
	return nil
}

// write appends buf (recs records starting at first) to seg, or to a new
// segment when seg is nil. Called with commitMu held.
func (s *Spool) write(seg *segment, buf []byte, first, recs uint64) error {
	if seg == nil {
		p := filepath.Join(s.dir, fmt.Sprintf("%020d%s", first, segSuffix))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		var h [segHeader]byte
		copy(h[:], segMagic)
		binary.LittleEndian.PutUint64(h[8:], first)
		if _, err := f.Write(h[:]); err != nil {
			f.Close()
			return fmt.Errorf("spool: %w", err)
		}
		if s.opts.Fsync == FsyncAlways {
			if err := syncDir(s.dir); err != nil {
				f.Close()
				return err
			}
		}
		seg = &segment{base: first, size: segHeader, path: p}
		s.mu.Lock()
		if s.active != nil {
			s.active.Close()
		}
		s.active = f
		s.segs = append(s.segs, seg)
		s.total += segHeader
		s.mu.Unlock()
	}
	s.mu.Lock()
	f, off := s.active, seg.size
	s.mu.Unlock()
	if _, err := f.WriteAt(buf, off); err != nil {
		_ = f.Truncate(off)
		return fmt.Errorf("spool: write: %w", err)
	}
	if s.opts.Fsync == FsyncAlways {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("spool: sync: %w", err)
		}
	}
	s.mu.Lock()
	seg.size += int64(len(buf))
	seg.count += recs
	s.dirty = true
	s.mu.Unlock()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync dir: %w", err)
	}
	return nil
}

// Notify returns a channel that receives after a Commit made records
// readable.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Read returns up to max committed records not read yet, in order (none
// when the reader is at the end). The records stay in the spool until
// acknowledged; after Open the reader starts at the first unacknowledged.
func (s *Spool) Read(max int) ([]Record, error) {
	var out []Record
	for len(out) < max {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return out, ErrClosed
		}
		if s.rseq >= s.written {
			s.mu.Unlock()
			return out, nil
		}
		if s.rseg == nil || s.rseq >= s.rseg.base+s.rseg.count {
			// Move to the segment holding rseq.
			var seg *segment
			for _, g := range s.segs {
				if s.rseq < g.base+g.count {
					seg = g
					break
				}
			}
			if seg == nil {
				s.mu.Unlock()
				return out, nil
			}
			if seg.base > s.rseq { // records lost to damage
				s.rseq = seg.base
			}
			s.mu.Unlock()
			if err := s.openReader(seg); err != nil {
				return out, err
			}
			continue
		}
		s.mu.Unlock()
		var rh [recHeader]byte
		if _, err := io.ReadFull(s.rbuf, rh[:]); err != nil {
			return out, fmt.Errorf("spool: read %s: %w", s.rseg.path, err)
		}
		n := binary.LittleEndian.Uint32(rh[:4])
		if n > MaxRecord {
			return out, fmt.Errorf("spool: read %s: bad record length %d", s.rseg.path, n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(s.rbuf, data); err != nil {
			return out, fmt.Errorf("spool: read %s: %w", s.rseg.path, err)
		}
		s.roff += recHeader + int64(n)
		if crc32.Checksum(data, castagnoli) != binary.LittleEndian.Uint32(rh[4:]) {
			return out, fmt.Errorf("spool: read %s: checksum mismatch at record %d", s.rseg.path, s.rseq)
		}
		if s.rseq > s.acked { // skip records acknowledged before a restart
			out = append(out, Record{Seq: s.rseq, Data: data})
		}
		s.rseq++
	}
	return out, nil
}

// openReader positions the reader at rseq inside seg.
func (s *Spool) openReader(seg *segment) error {
	if s.rfile != nil {
		s.rfile.Close()
		s.rfile = nil
	}
	f, err := os.Open(seg.path)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.rfile, s.rseg, s.roff = f, seg, segHeader
	// The reader never reads past what a finished write covers, so it
	// cannot buffer a record being written.
	s.rbuf = bufio.NewReaderSize(&segReader{s: s, seg: seg, f: f, off: segHeader}, readBuffer)
	skip := s.rseq - seg.base
	for range skip {
		var rh [recHeader]byte
		if _, err := io.ReadFull(s.rbuf, rh[:]); err != nil {
			return fmt.Errorf("spool: seek %s: %w", seg.path, err)
		}
		n := binary.LittleEndian.Uint32(rh[:4])
		if _, err := s.rbuf.Discard(int(n)); err != nil {
			return fmt.Errorf("spool: seek %s: %w", seg.path, err)
		}
		s.roff += recHeader + int64(n)
	}
	return nil
}

// segReader reads a segment up to its committed size.
type segReader struct {
	s   *Spool
	seg *segment
	f   *os.File
	off int64
}

func (r *segReader) Read(p []byte) (int, error) {
	r.s.mu.Lock()
	lim := r.seg.size
	r.s.mu.Unlock()
	if r.off >= lim {
		return 0, io.EOF
	}
	if int64(len(p)) > lim-r.off {
		p = p[:lim-r.off]
	}
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Rewind makes the next Read start again at the first unacknowledged
// record (after a consumer dropped records it had read).
func (s *Spool) Rewind() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rseq = s.acked + 1
	s.rseg = nil
}

// Ack acknowledges every record up to seq: they are not read again after a
// restart, and segments holding only acknowledged records are deleted.
func (s *Spool) Ack(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.acked {
		return nil
	}
	s.acked = seq
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], seq)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	if _, err := s.ackFile.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("spool: ack: %w", err)
	}
	s.dirty = true
	s.gc()
	return nil
}

// gc deletes fully acknowledged segments other than the one being
// written. Caller holds mu.
func (s *Spool) gc() {
	for len(s.segs) > 0 {
		g := s.segs[0]
		if len(s.segs) == 1 && s.active != nil || g.count > 0 && g.base+g.count-1 > s.acked {
			break // being written, or holds unacknowledged records
		}
		if s.rseg == g {
			s.rfile.Close()
			s.rfile, s.rseg = nil, nil
		}
		if err := os.Remove(g.path); err != nil && !os.IsNotExist(err) {
			s.log.Warn("spool: cannot remove segment", "path", g.path, "err", err)
			break
		}
		s.total -= g.size
		s.segs = s.segs[1:]
	}
}

// Stats are a spool's counters.
type Stats struct {
	Pending uint64 `json:"pending"` // records appended and not acknowledged
	Bytes   int64  `json:"bytes"`   // size of the segment files
	Lost    uint64 `json:"lost,omitempty"`
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Pending: s.next - 1 - s.acked, Bytes: s.total, Lost: s.lost}
}

func (s *Spool) syncLoop() {
	defer close(s.done)
	if s.opts.Fsync != FsyncInterval {
		<-s.stop
		return
	}
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.sync(); err != nil {
				s.log.Error("spool: periodic sync failed", "dir", s.dir, "err", err)
			}
		}
	}
}

func (s *Spool) sync() error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	f, dirty := s.active, s.dirty
	s.dirty = false
	s.mu.Unlock()
	if !dirty {
		return nil
	}
	var errs []error
	if f != nil {
		errs = append(errs, f.Sync())
	}
	errs = append(errs, s.ackFile.Sync())
	return errors.Join(errs...)
}

// Close commits what is buffered, syncs and closes the files.
func (s *Spool) Close() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	err := s.Commit()
	if errors.Is(err, ErrClosed) {
		return nil
	}
	close(s.stop)
	<-s.done
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
	err = errors.Join(err, s.sync())
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.active != nil {
		s.active.Close()
	}
	if s.rfile != nil {
		s.rfile.Close()
	}
	s.ackFile.Close()
	return err
}

// Dir returns the spool's directory.
func (s *Spool) Dir() string { return s.dir }
