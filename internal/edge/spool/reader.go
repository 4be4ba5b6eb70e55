package spool

import (
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
	buf  []byte
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
			r.f, r.base, r.off = f, sg.base, 0
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
func (r *Reader) readSegment(sg segment, max, maxBytes int, out *[]Record) (int, error) {
	want := sg.size - r.off
	if want <= 0 {
		return 0, nil
	}
	want = min(want, 1<<20)
	if cap(r.buf) < int(want) {
		r.buf = make([]byte, want)
	}
	b := r.buf[:want]
	n, err := r.f.ReadAt(b, r.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("spool: read: %w", err)
	}
	b = b[:n]
	used, got := 0, 0
	for len(*out) < max && (maxBytes <= 0 || got < maxBytes) {
		rec, k, ok, err := ReadRecord(b[used:])
		if err != nil {
			return got, fmt.Errorf("spool: read segment %d at %d: %w", sg.base, r.off+int64(used), err)
		}
		if !ok {
			if used == 0 && int64(len(b)) == want && want == 1<<20 {
				// A record larger than one read: read it whole.
				big := make([]byte, sg.size-r.off)
				if _, err := r.f.ReadAt(big, r.off); err != nil && !errors.Is(err, io.EOF) {
					return 0, fmt.Errorf("spool: read: %w", err)
				}
				r.buf, b = big, big
				continue
			}
			break
		}
		used += k
		if rec.Seq < r.seq {
			continue
		}
		if rec.Seq >= sg.next {
			break
		}
		*out = append(*out, rec)
		got += k
		r.seq = rec.Seq + 1
	}
	r.off += int64(used)
	if used == 0 {
		return 0, nil
	}
	if got == 0 {
		return 1, nil // skipped records only; keep going
	}
	return got, nil
}

func (r *Reader) closeFile() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// Close releases the reader's file.
func (r *Reader) Close() { r.closeFile() }
