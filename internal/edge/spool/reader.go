package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Reader iterates over the records of a spool in sequence order from a
// starting sequence number. It follows appends and skips records that were
// dropped. It is not safe for concurrent use.
type Reader struct {
	s    *Spool
	seq  uint64 // next sequence number to return
	f    *os.File
	base uint64 // segment of f
	off  int64  // read offset in f (a record boundary at or before seq)
	buf  []byte // bytes of f from offset boff
	boff int64
}

// NewReader returns a reader positioned at seq.
func (s *Spool) NewReader(seq uint64) *Reader { return &Reader{s: s, seq: seq} }

// Pos is the sequence number of the next record Next returns.
func (r *Reader) Pos() uint64 { return r.seq }

// Seek moves the reader to seq.
func (r *Reader) Seek(seq uint64) {
	if seq < r.seq {
		r.off = 0 // rescan the segment from its start
	}
	r.seq = seq
}

// Next returns up to max records (and at most about maxBytes of them when
// maxBytes > 0) that are available now, without waiting. It returns no
// records when the reader is at the end.
func (r *Reader) Next(limit int, maxBytes int) ([]Record, error) {
	var out []Record
	size := 0
	for len(out) < limit && (maxBytes <= 0 || size < maxBytes) {
		r.s.mu.Lock()
		if r.s.closed && r.s.active == nil {
			r.s.mu.Unlock()
			return out, ErrClosed
		}
		var sg segment
		found := false
		for _, c := range r.s.segs {
			if r.seq < c.next {
				// Before c.base: dropped meanwhile, or lost to damage.
				r.seq = max(r.seq, c.base)
				sg, found = *c, r.seq < c.next
				break
			}
		}
		r.s.mu.Unlock()
		if !found {
			return out, nil
		}
		if r.f == nil || r.base != sg.base {
			r.closeFile()
			f, err := os.Open(sg.path)
			if errors.Is(err, os.ErrNotExist) {
				continue // dropped between the lookup and the open
			}
			if err != nil {
				return out, fmt.Errorf("spool: read: %w", err)
			}
			r.f, r.base, r.off, r.buf = f, sg.base, 0, r.buf[:0]
		}
		got, err := r.readSegment(sg, limit-len(out), maxBytes-size, &out)
		if err != nil {
			return out, err
		}
		size += got
		if got == 0 {
			return out, nil
		}
	}
	return out, nil
}

// readSegment decodes records of the open segment up to its known size.
// r.buf holds the file's bytes from offset r.boff; records are decoded
// from it and it is refilled only when it holds no complete record.
func (r *Reader) readSegment(sg segment, limit, maxBytes int, out *[]Record) (int, error) {
	got, progressed := 0, false
	for len(*out) < limit && (maxBytes <= 0 || got < maxBytes) && r.off < sg.size {
		rel := r.off - r.boff
		var rec Record
		var k int
		ok := false
		if rel >= 0 && rel <= int64(len(r.buf)) {
			var err error
			rec, k, ok, err = ReadRecord(r.buf[rel:])
			if err != nil {
				return got, fmt.Errorf("spool: read segment %d at %d: %w", sg.base, r.off, err)
			}
		}
		if !ok {
			if err := r.fill(sg.size); err != nil {
				return got, err
			}
			if rec, k, ok, _ = ReadRecord(r.buf); !ok {
				return got, fmt.Errorf("spool: read segment %d at %d: %w: short record", sg.base, r.off, ErrCorrupt)
			}
		}
		r.off += int64(k)
		progressed = true
		if rec.Seq < r.seq {
			continue
		}
		*out = append(*out, rec)
		got += k
		r.seq = rec.Seq + 1
	}
	if got == 0 && progressed {
		return 1, nil // skipped records only; keep going
	}
	return got, nil
}

// fill reads the segment from r.off: at least one whole record, up to 1 MiB
// or the segment's known size.
func (r *Reader) fill(size int64) error {
	n := min(size-r.off, 1<<20)
	var hdr [4]byte
	if _, err := r.f.ReadAt(hdr[:], r.off); err == nil {
		n = max(n, min(size-r.off, int64(binary.LittleEndian.Uint32(hdr[:]))+frameHeader))
	}
	if int64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	m, err := r.f.ReadAt(r.buf, r.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("spool: read: %w", err)
	}
	r.buf, r.boff = r.buf[:m], r.off
	return nil
}

func (r *Reader) closeFile() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// Close releases the reader's file.
func (r *Reader) Close() { r.closeFile() }
