package chunkenc

import "encoding/binary"

const encBoolPacked = 1

// AppendBools appends the bit-packed encoding of vs to dst.
func AppendBools(dst []byte, vs []bool) []byte {
	dst = append(dst, encBoolPacked)
	dst = binary.AppendUvarint(dst, uint64(len(vs)))
	w := bitWriter{b: dst}
	for _, v := range vs {
		w.writeBit(v)
	}
	return w.finish()
}

// DecodeBools decodes src (from AppendBools) into dst[:0].
func DecodeBools(src []byte, dst []bool) ([]bool, error) {
	enc, n, rest, err := header(src, 1)
	if err != nil {
		return dst[:0], err
	}
	if enc != encBoolPacked {
		return dst[:0], corrupt("unknown boolean encoding %d", enc)
	}
	dst = grow(dst, n)
	r := bitReader{b: rest}
	for i := 0; i < n; i++ {
		b, err := r.readBit()
		if err != nil {
			return dst, err
		}
		dst = append(dst, b)
	}
	return dst, nil
}
