package chunkenc

import "encoding/binary"

const encDoD = 1

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// AppendTimestamps appends the delta-of-delta encoding of ts to dst.
// Timestamps need not be sorted, but sorted ones with a steady interval
// compress best (one bit each).
func AppendTimestamps(dst []byte, ts []int64) []byte {
	dst = append(dst, encDoD)
	dst = binary.AppendUvarint(dst, uint64(len(ts)))
	if len(ts) == 0 {
		return dst
	}
	dst = binary.AppendVarint(dst, ts[0])
	if len(ts) == 1 {
		return dst
	}
	// Largest power of ten dividing every delta.
	e := len(pow10) - 1
	for i := 1; i < len(ts) && e > 0; i++ {
		d := int64(uint64(ts[i]) - uint64(ts[i-1]))
		for e > 0 && d%pow10[e] != 0 {
			e--
		}
	}
	scale := pow10[e]
	dst = binary.AppendUvarint(dst, uint64(e))
	prev := int64(uint64(ts[1])-uint64(ts[0])) / scale
	dst = binary.AppendVarint(dst, prev)
	w := bitWriter{b: dst}
	for i := 2; i < len(ts); i++ {
		d := int64(uint64(ts[i])-uint64(ts[i-1])) / scale
		u := zigzag(int64(uint64(d) - uint64(prev)))
		prev = d
		switch {
		case u == 0:
			w.write(0, 1)
		case u < 1<<7:
			w.write(0b10, 2)
			w.write(u, 7)
		case u < 1<<9:
			w.write(0b110, 3)
			w.write(u, 9)
		case u < 1<<12:
			w.write(0b1110, 4)
			w.write(u, 12)
		case u < 1<<32:
			w.write(0b11110, 5)
			w.write(u, 32)
		default:
			w.write(0b11111, 5)
			w.write(u, 64)
		}
	}
	return w.finish()
}

// DecodeTimestamps decodes src (from AppendTimestamps) into dst[:0].
func DecodeTimestamps(src []byte, dst []int64) ([]int64, error) {
	enc, n, rest, err := header(src, 1)
	if err != nil {
		return dst[:0], err
	}
	if enc != encDoD {
		return dst[:0], corrupt("unknown timestamp encoding %d", enc)
	}
	dst = grow(dst, n)
	if n == 0 {
		return dst, nil
	}
	t, rest, err := readVarint(rest)
	if err != nil {
		return dst, err
	}
	dst = append(dst, t)
	if n == 1 {
		return dst, nil
	}
	e, rest, err := readUvarint(rest)
	if err != nil {
		return dst, err
	}
	if e >= uint64(len(pow10)) {
		return dst, corrupt("bad timestamp scale %d", e)
	}
	scale := uint64(pow10[e])
	d, rest, err := readVarint(rest)
	if err != nil {
		return dst, err
	}
	t = int64(uint64(t) + uint64(d)*scale)
	dst = append(dst, t)
	r := bitReader{b: rest}
	for i := 2; i < n; i++ {
		// Count the bucket prefix ones (at most 5).
		ones := uint(0)
		for ones < 5 {
			bit, err := r.readBit()
			if err != nil {
				return dst, err
			}
			if !bit {
				break
			}
			ones++
		}
		var u uint64
		switch ones {
		case 0:
		case 1:
			u, err = r.read(7)
		case 2:
			u, err = r.read(9)
		case 3:
			u, err = r.read(12)
		case 4:
			u, err = r.read(32)
		default:
			u, err = r.read(64)
		}
		if err != nil {
			return dst, err
		}
		d = int64(uint64(d) + uint64(unzigzag(u)))
		t = int64(uint64(t) + uint64(d)*scale)
		dst = append(dst, t)
	}
	return dst, nil
}
