package chunkenc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrCorrupt is returned (wrapped) by every decoder when its input is
// truncated, has an unknown encoding byte or is otherwise inconsistent.
var ErrCorrupt = errors.New("chunkenc: corrupt chunk")

// MaxCount is the largest number of values one chunk may hold; decoders
// reject larger counts so that corrupt input cannot force huge allocations.
const MaxCount = 1 << 20

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// bitWriter appends a most-significant-bit-first bit stream to a byte slice.
type bitWriter struct {
	b   []byte
	acc uint64 // the low n bits are pending
	n   uint
}

func (w *bitWriter) write(v uint64, n uint) {
	if n > 32 {
		w.write(v>>32, n-32)
		v &= 0xffffffff
		n = 32
	}
	if n == 0 {
		return
	}
	w.acc = w.acc<<n | (v & (1<<n - 1))
	w.n += n
	for w.n >= 8 {
		w.n -= 8
		w.b = append(w.b, byte(w.acc>>w.n))
	}
}

func (w *bitWriter) writeBit(bit bool) {
	if bit {
		w.write(1, 1)
	} else {
		w.write(0, 1)
	}
}

// finish pads the last byte with zero bits and returns the buffer.
func (w *bitWriter) finish() []byte {
	if w.n > 0 {
		w.b = append(w.b, byte(w.acc<<(8-w.n)))
		w.n = 0
	}
	return w.b
}

// bitReader reads a bit stream written by bitWriter.
type bitReader struct {
	b   []byte
	pos uint // bit position
}

func (r *bitReader) remaining() uint { return uint(len(r.b))*8 - r.pos }

func (r *bitReader) read(n uint) (uint64, error) {
	if n == 0 {
		return 0, nil
	}
	if n > r.remaining() {
		return 0, corrupt("bit stream truncated")
	}
	var v uint64
	for n > 0 {
		idx := r.pos >> 3
		off := r.pos & 7
		avail := 8 - off
		if off == 0 && n >= 8 {
			v = v<<8 | uint64(r.b[idx])
			n -= 8
			r.pos += 8
			continue
		}
		take := min(avail, n)
		bits := uint64(r.b[idx]>>(avail-take)) & (1<<take - 1)
		v = v<<take | bits
		n -= take
		r.pos += take
	}
	return v, nil
}

func (r *bitReader) readBit() (bool, error) {
	if r.pos >= uint(len(r.b))*8 {
		return false, corrupt("bit stream truncated")
	}
	bit := r.b[r.pos>>3]>>(7-r.pos&7)&1 == 1
	r.pos++
	return bit, nil
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// bitsLen is the number of bits needed to hold u (0 for 0).
func bitsLen(u uint64) uint {
	n := uint(0)
	for u != 0 {
		n++
		u >>= 1
	}
	return n
}

// header reads the encoding byte and the value count, and checks the count
// against the input size (each value costs at least minBits bits).
func header(src []byte, minBits int) (enc byte, n int, rest []byte, err error) {
	if len(src) < 1 {
		return 0, 0, nil, corrupt("empty input")
	}
	enc = src[0]
	u, k := binary.Uvarint(src[1:])
	if k <= 0 {
		return 0, 0, nil, corrupt("bad count")
	}
	rest = src[1+k:]
	if u > MaxCount {
		return 0, 0, nil, corrupt("count %d exceeds %d", u, MaxCount)
	}
	if minBits > 0 && u > uint64(len(rest))*8/uint64(minBits)+2 {
		return 0, 0, nil, corrupt("count %d too large for %d bytes", u, len(rest))
	}
	return enc, int(u), rest, nil
}

func readVarint(src []byte) (int64, []byte, error) {
	v, k := binary.Varint(src)
	if k <= 0 {
		return 0, nil, corrupt("bad varint")
	}
	return v, src[k:], nil
}

func readUvarint(src []byte) (uint64, []byte, error) {
	v, k := binary.Uvarint(src)
	if k <= 0 {
		return 0, nil, corrupt("bad uvarint")
	}
	return v, src[k:], nil
}

// grow returns dst with room for n more elements, reusing its capacity.
func grow[T any](dst []T, n int) []T {
	dst = dst[:0]
	if cap(dst) < n {
		dst = make([]T, 0, n)
	}
	return dst
}
