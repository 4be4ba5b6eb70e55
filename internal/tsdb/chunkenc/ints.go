package chunkenc

import "encoding/binary"

const (
	encIntVarint   = 1
	encIntPacked   = 2
	encIntPackedDD = 3
)

// AppendInts appends the encoding of vs to dst, choosing the smallest of
// varint deltas, bit-packed deltas and bit-packed delta-of-deltas.
func AppendInts(dst []byte, vs []int64) []byte {
	n := len(vs)
	if n < 2 {
		dst = append(dst, encIntVarint)
		dst = binary.AppendUvarint(dst, uint64(n))
		if n == 1 {
			dst = binary.AppendVarint(dst, vs[0])
		}
		return dst
	}
	// Size estimates in bits for each mode.
	var varintBytes int
	var maxD, maxDD uint64
	prevD := int64(uint64(vs[1]) - uint64(vs[0]))
	for i := 1; i < n; i++ {
		d := int64(uint64(vs[i]) - uint64(vs[i-1]))
		u := zigzag(d)
		varintBytes += uvarintLen(u)
		maxD = max(maxD, u)
		if i >= 2 {
			maxDD = max(maxDD, zigzag(int64(uint64(d)-uint64(prevD))))
			prevD = d
		}
	}
	wD, wDD := bitsLen(maxD), bitsLen(maxDD)
	packedBytes := 1 + (int(wD)*(n-1)+7)/8
	ddBytes := uvarintLen(zigzag(int64(uint64(vs[1])-uint64(vs[0])))) + 1 + (int(wDD)*(n-2)+7)/8

	switch {
	case ddBytes < packedBytes && ddBytes < varintBytes:
		dst = append(dst, encIntPackedDD)
		dst = binary.AppendUvarint(dst, uint64(n))
		dst = binary.AppendVarint(dst, vs[0])
		prev := int64(uint64(vs[1]) - uint64(vs[0]))
		dst = binary.AppendVarint(dst, prev)
		dst = append(dst, byte(wDD))
		w := bitWriter{b: dst}
		for i := 2; i < n; i++ {
			d := int64(uint64(vs[i]) - uint64(vs[i-1]))
			w.write(zigzag(int64(uint64(d)-uint64(prev))), wDD)
			prev = d
		}
		return w.finish()
	case packedBytes < varintBytes:
		dst = append(dst, encIntPacked)
		dst = binary.AppendUvarint(dst, uint64(n))
		dst = binary.AppendVarint(dst, vs[0])
		dst = append(dst, byte(wD))
		w := bitWriter{b: dst}
		for i := 1; i < n; i++ {
			w.write(zigzag(int64(uint64(vs[i])-uint64(vs[i-1]))), wD)
		}
		return w.finish()
	default:
		dst = append(dst, encIntVarint)
		dst = binary.AppendUvarint(dst, uint64(n))
		dst = binary.AppendVarint(dst, vs[0])
		for i := 1; i < n; i++ {
			dst = binary.AppendUvarint(dst, zigzag(int64(uint64(vs[i])-uint64(vs[i-1]))))
		}
		return dst
	}
}

func uvarintLen(u uint64) int {
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// DecodeInts decodes src (from AppendInts) into dst[:0].
func DecodeInts(src []byte, dst []int64) ([]int64, error) {
	enc, n, rest, err := header(src, 0)
	if err != nil {
		return dst[:0], err
	}
	if enc < encIntVarint || enc > encIntPackedDD {
		return dst[:0], corrupt("unknown integer encoding %d", enc)
	}
	if enc == encIntVarint && uint64(n) > uint64(len(rest))+1 {
		return dst[:0], corrupt("count %d too large for %d bytes", n, len(rest))
	}
	dst = grow(dst, n)
	if n == 0 {
		return dst, nil
	}
	v, rest, err := readVarint(rest)
	if err != nil {
		return dst, err
	}
	dst = append(dst, v)
	switch enc {
	case encIntVarint:
		for i := 1; i < n; i++ {
			var u uint64
			u, rest, err = readUvarint(rest)
			if err != nil {
				return dst, err
			}
			v = int64(uint64(v) + uint64(unzigzag(u)))
			dst = append(dst, v)
		}
	case encIntPacked:
		if n == 1 {
			return dst, nil
		}
		if len(rest) < 1 || rest[0] > 64 {
			return dst, corrupt("bad bit width")
		}
		wd := uint(rest[0])
		r := bitReader{b: rest[1:]}
		if uint64(wd)*uint64(n-1) > uint64(r.remaining()) {
			return dst, corrupt("bit stream truncated")
		}
		for i := 1; i < n; i++ {
			u, err := r.read(wd)
			if err != nil {
				return dst, err
			}
			v = int64(uint64(v) + uint64(unzigzag(u)))
			dst = append(dst, v)
		}
	case encIntPackedDD:
		if n == 1 {
			return dst, nil
		}
		var d int64
		d, rest, err = readVarint(rest)
		if err != nil {
			return dst, err
		}
		v = int64(uint64(v) + uint64(d))
		dst = append(dst, v)
		if n == 2 {
			return dst, nil
		}
		if len(rest) < 1 || rest[0] > 64 {
			return dst, corrupt("bad bit width")
		}
		wd := uint(rest[0])
		r := bitReader{b: rest[1:]}
		if uint64(wd)*uint64(n-2) > uint64(r.remaining()) {
			return dst, corrupt("bit stream truncated")
		}
		for i := 2; i < n; i++ {
			u, err := r.read(wd)
			if err != nil {
				return dst, err
			}
			d = int64(uint64(d) + uint64(unzigzag(u)))
			v = int64(uint64(v) + uint64(d))
			dst = append(dst, v)
		}
	}
	return dst, nil
}

// AppendUints appends the encoding of vs (the integer codec applied to the
// two's complement bits, so wrapping deltas keep it exact).
func AppendUints(dst []byte, vs []uint64) []byte {
	tmp := make([]int64, len(vs))
	for i, v := range vs {
		tmp[i] = int64(v)
	}
	return AppendInts(dst, tmp)
}

// DecodeUints decodes src (from AppendUints) into dst[:0].
func DecodeUints(src []byte, dst []uint64) ([]uint64, error) {
	tmp, err := DecodeInts(src, nil)
	dst = grow(dst, len(tmp))
	for _, v := range tmp {
		dst = append(dst, uint64(v))
	}
	return dst, err
}
